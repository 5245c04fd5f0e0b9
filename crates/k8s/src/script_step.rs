//! `run_script_step`: bring `_temp` into the job pod (copy mode), run the step over exec with
//! its output streamed live, bring the file commands back.

use crate::admit::Limits;
use crate::copy::{self, Endpoint};
use crate::error::Error;
use crate::exec::{self, Sink};
use crate::joblog::{self, Group};
use crate::mounts::WORK_MOUNT;
use crate::names::JOB_CONTAINER;
use crate::objects::Cluster;
use crate::pod::ARCHIVER_CONTAINER;
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

/// Writes the step script readable by the runner's user only (it holds the step's environment):
/// created 0600, never executable; the pod runs it as `sh <file>`.
fn write_script(path: &Path, script: &str) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| Error::Io {
        what: "cannot write the step script",
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(script.as_bytes()).map_err(io)
}

async fn run(hook: &K8sHook, pod: &str, file_name: &str, temp: &Path) -> Result<i32, Error> {
    let cluster = hook.cluster().await?;
    let copy_mode = !hook.settings.volume_mode();
    // Every tar of the job pod runs in its archiver, never in the job image.
    let archiver = Endpoint {
        namespace: &cluster.namespace,
        pod,
        container: ARCHIVER_CONTAINER,
    };
    if copy_mode {
        let group = Group::start("Copying _temp into the job pod");
        let report = copy::to_pod(
            &cluster.client,
            cluster.heartbeat,
            archiver,
            "the runner's _temp",
            vec![temp_source(temp)],
            WORK_MOUNT,
        )
        .await?;
        eprintln!("{report}");
        group.end();
    }
    let code = exec_step(&cluster, pod, file_name).await;
    if !copy_mode {
        return code;
    }
    // The script leaves the pod with the step, whatever its outcome.
    let script = [format!("{WORK_MOUNT}/_temp/{file_name}")];
    let removed = copy::remove(&cluster.client, cluster.heartbeat, archiver, &script);
    let back = async {
        let code = code?;
        let group = Group::start("Copying the step's file commands back");
        let limits = hook.settings.copy_back.file_commands;
        let report = file_commands_back(&cluster, archiver, temp, limits).await?;
        eprintln!("{report}");
        group.end();
        Ok(code)
    };
    let (removed, code) = tokio::join!(removed, back);
    if let Err(e) = removed {
        joblog::warning(&format!(
            "could not remove the step script from the job pod: {e}"
        ));
    }
    code
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

/// Copies `/__w/_temp/_runner_file_commands` of `from` over the runner's with the default caps
/// ([`Limits::FILE_COMMANDS`]); see [`file_commands_back`].
pub async fn copy_file_commands_back(
    cluster: &Cluster,
    from: Endpoint<'_>,
    temp: &Path,
) -> Result<copy::CopyReport, Error> {
    file_commands_back(cluster, from, temp, Limits::FILE_COMMANDS).await
}

/// Copies `/__w/_temp/_runner_file_commands` of `from` (a trusted container: the job pod's
/// archiver, a step pod's `fs-sync`) over the runner's, admitting only regular files and folders
/// within `limits` (refused entries are `::warning::` lines; a cap is an error).
pub async fn file_commands_back(
    cluster: &Cluster,
    from: Endpoint<'_>,
    temp: &Path,
    limits: Limits,
) -> Result<copy::CopyReport, Error> {
    Ok(copy::from_pod_admitted(
        &cluster.client,
        cluster.heartbeat,
        from,
        "the step's file commands",
        &format!("{WORK_MOUNT}/_temp"),
        FILE_COMMANDS,
        temp,
        limits,
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
