//! `run_script_step`: bring `_temp` into the job pod (copy mode), run the step detached in the
//! job container and follow its output live (`script_run.rs`), bring the file commands back.
//! A cancellation stops whichever phase runs; a started step is stopped in the pod.

use crate::copy::{self, Endpoint};
use crate::error::Error;
use crate::joblog::Group;
use crate::mounts::WORK_MOUNT;
use crate::names::JOB_CONTAINER;
use crate::objects::Cluster;
use crate::prepare::NOT_COPIED;
use crate::tarball::Source;
use crate::{K8sHook, State, script, script_run};
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
    let id = file_name
        .trim_start_matches("k8s-hook-")
        .trim_end_matches(".sh")
        .to_owned();
    let result = run(hook, &pod, &id, &file_name, &temp).await;
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

async fn run(
    hook: &K8sHook,
    pod: &str,
    id: &str,
    file_name: &str,
    temp: &Path,
) -> Result<i32, Error> {
    let cancel = hook.cancel();
    let cluster = cancellable(cancel, hook.cluster()).await??;
    let copy_mode = !hook.settings.volume_mode();
    let job = Endpoint {
        namespace: &cluster.namespace,
        pod,
        container: JOB_CONTAINER,
    };
    if copy_mode {
        let group = Group::start("Copying _temp into the job pod");
        let report = cancellable(
            cancel,
            copy::to_pod(
                &cluster.client,
                cluster.heartbeat,
                job,
                "the runner's _temp",
                vec![temp_source(temp)],
                WORK_MOUNT,
            ),
        )
        .await??;
        eprintln!("{report}");
        group.end();
    }
    let ended = exec_step(hook, &cluster, pod, id, file_name).await?;
    if copy_mode {
        let group = Group::start("Copying the step's file commands back");
        let copied = cancellable(cancel, copy_file_commands_back(&cluster, job, temp)).await?;
        match (copied, ended) {
            (Ok(report), _) => eprintln!("{report}"),
            // The job container died under the step: what it wrote is out of reach, and the
            // step already failed with the reason.
            (Err(e), script_run::Ended::Killed) => {
                crate::joblog::warning(&format!("the step's file commands are lost: {e}"));
            }
            (Err(e), script_run::Ended::Exited(_)) => return Err(e),
        }
        group.end();
    }
    Ok(ended.code())
}

/// `work`, unless the runner cancels first (then [`Error::Cancelled`]: nothing of the step
/// runs in the pod during these phases, so there is nothing to stop).
async fn cancellable<T>(
    cancel: &hooklib::Cancel,
    work: impl std::future::Future<Output = T>,
) -> Result<T, Error> {
    tokio::select! {
        v = work => Ok(v),
        () = cancel.cancelled() => Err(Error::Cancelled),
    }
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

async fn exec_step(
    hook: &K8sHook,
    cluster: &Cluster,
    pod: &str,
    id: &str,
    file_name: &str,
) -> Result<script_run::Ended, Error> {
    let script = format!("{WORK_MOUNT}/_temp/{file_name}");
    let target = script_run::Target {
        cluster,
        pod,
        id,
        script: &script,
    };
    script_run::run(target, hook.settings.resume_timeout, hook.cancel()).await
}
