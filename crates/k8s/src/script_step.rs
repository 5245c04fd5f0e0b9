//! `run_script_step`: bring `_temp` into the job pod (copy mode), run the step over exec with
//! its output streamed live, bring the file commands back.

use crate::copy::{self, Endpoint};
use crate::error::Error;
use crate::exec::{self, Sink};
use crate::joblog::Group;
use crate::mounts::WORK_MOUNT;
use crate::names::JOB_CONTAINER;
use crate::objects::Cluster;
use crate::prepare::NOT_COPIED;
use crate::tarball::Source;
use crate::{K8sHook, State, script};
use hooklib::{RunScriptStepArgs, StepOutcome};
use std::path::Path;

/// The runner's file-command folder inside `_temp`.
pub const FILE_COMMANDS: &str = "_runner_file_commands";

pub async fn run_script_step(
    hook: &K8sHook,
    args: RunScriptStepArgs,
    state: State,
) -> Result<StepOutcome<State>, Error> {
    let pod = state
        .job_pod
        .clone()
        .ok_or(Error::NoJobPod("run_script_step"))?;
    let layout = hook.layout()?;
    let script = script::step_script(&args)?;
    let temp = layout.temp();
    let file_name = format!("k8s-hook-{}.sh", uuid::Uuid::new_v4().simple());
    let host_script = temp.join(&file_name);
    write_script(&host_script, &script)?;
    let result = run(hook, &pod, &file_name, &temp).await;
    let _ = std::fs::remove_file(&host_script);
    result.map(StepOutcome::exited)
}

fn write_script(path: &Path, script: &str) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| Error::Io {
        what: "cannot write the step script",
        path: path.display().to_string(),
        source,
    };
    std::fs::write(path, script).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io)
}

async fn run(hook: &K8sHook, pod: &str, file_name: &str, temp: &Path) -> Result<i32, Error> {
    let cluster = hook.cluster().await?;
    let copy_mode = !hook.settings.volume_mode();
    let job = Endpoint {
        namespace: &cluster.namespace,
        pod,
        container: JOB_CONTAINER,
    };
    if copy_mode {
        let group = Group::start("Copying _temp into the job pod");
        let report = copy::to_pod(
            &cluster.client,
            cluster.heartbeat,
            job,
            "the runner's _temp",
            vec![temp_source(temp)],
            WORK_MOUNT,
        )
        .await?;
        eprintln!("{report}");
        group.end();
    }
    let code = exec_step(&cluster, pod, file_name).await?;
    if copy_mode {
        let group = Group::start("Copying the step's file commands back");
        let report = copy_file_commands_back(&cluster, job, temp).await?;
        eprintln!("{report}");
        group.end();
    }
    Ok(code)
}

/// `_temp` as an archive source (without the runner's hook responses).
pub fn temp_source(temp: &Path) -> Source {
    Source {
        dir: temp.to_owned(),
        name: "_temp".into(),
        exclude: NOT_COPIED
            .iter()
            .filter_map(|p| p.strip_prefix("_temp/"))
            .map(Into::into)
            .collect(),
    }
}

/// Copies `/__w/_temp/_runner_file_commands` of `from` over the runner's.
pub async fn copy_file_commands_back(
    cluster: &Cluster,
    from: Endpoint<'_>,
    temp: &Path,
) -> Result<copy::CopyReport, Error> {
    Ok(copy::from_pod(
        &cluster.client,
        cluster.heartbeat,
        from,
        "the step's file commands",
        &format!("{WORK_MOUNT}/_temp"),
        FILE_COMMANDS,
        temp,
    )
    .await?)
}

async fn exec_step(cluster: &Cluster, pod: &str, file_name: &str) -> Result<i32, Error> {
    let cmd = exec::Command {
        namespace: &cluster.namespace,
        pod,
        container: JOB_CONTAINER,
        argv: vec![
            "sh".into(),
            "-e".into(),
            format!("{WORK_MOUNT}/_temp/{file_name}"),
        ],
    };
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let code = exec::run(
        &cluster.client,
        cluster.heartbeat,
        &cmd,
        None,
        &mut Sink::Writer(&mut stdout),
        &mut Sink::Writer(&mut stderr),
    )
    .await?;
    Ok(code)
}
