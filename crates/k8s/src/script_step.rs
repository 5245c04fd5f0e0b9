//! `run_script_step`: bring `_temp` into the job pod (copy mode), run the step detached in the
//! job container and follow its output live (`script_run.rs`), bring the file commands back.
//! A cancellation stops whichever phase runs; a started step is stopped in the pod.
//!
//! Background steps run several of these at once against one job pod, so in copy mode a step
//! moves only its *own* file-command files (those its environment names) in and out: the
//! shared `_runner_file_commands` folder is never copied over wholesale, which would put a
//! concurrent step's empty or half-written files over the ones it is writing. The hook's own
//! files (the step script, the copies of the file commands) are staged in a private folder
//! beside `_temp`, never in `_temp`, where another step packing `_temp` could catch them
//! half-made or vanishing.

use crate::admit::Limits;
use crate::context::Ctx;
use crate::copy::{self, Endpoint};
use crate::error::Error;
use crate::mounts::WORK_MOUNT;
use crate::objects::Cluster;
use crate::pod::ARCHIVER_CONTAINER;
use crate::prepare::NOT_COPIED;
use crate::tarball::Source;
use crate::{State, script, script_run};
use hooklib::joblog::{self, Group};
use hooklib::{RunScriptStepArgs, StepOutcome};
use std::path::{Path, PathBuf};

/// The runner's file-command folder inside `_temp`.
pub const FILE_COMMANDS: &str = "_runner_file_commands";

pub async fn run_script_step(
    ctx: &Ctx<'_>,
    args: RunScriptStepArgs,
    state: State,
) -> Result<StepOutcome<State>, Error> {
    let pod = state
        .job_pod
        .clone()
        .ok_or(Error::NoJobPod("run_script_step"))?;
    let layout = ctx.layout()?;
    let script = script::step_script(&args)?;
    let temp = layout.temp();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let file_name = format!("k8s-hook-{id}.sh");
    if ctx.settings.volume_mode() {
        // `_temp` is the job pod's own: nothing is copied, the script is simply there.
        let host_script = temp.join(&file_name);
        write_script(&host_script, &script)?;
        let result = run(ctx, &pod, &id, &file_name, &temp, None).await;
        let _ = std::fs::remove_file(&host_script);
        return result.map(StepOutcome::exited);
    }
    let staging = Staging::new(&layout.work_root, &id, &temp, &own_file_commands(&args))?;
    write_script(&staging.temp().join(&file_name), &script)?;
    run(ctx, &pod, &id, &file_name, &temp, Some(&staging))
        .await
        .map(StepOutcome::exited)
}

/// This step's own files in `_runner_file_commands`: those its environment names
/// (`GITHUB_OUTPUT`, `GITHUB_ENV`, `GITHUB_PATH`, `GITHUB_STEP_SUMMARY`, `GITHUB_STATE`, …).
pub fn own_file_commands(args: &RunScriptStepArgs) -> Vec<String> {
    let dir = format!("{WORK_MOUNT}/_temp/{FILE_COMMANDS}/");
    let mut names: Vec<String> = args
        .environment_variables
        .values()
        .filter_map(|v| v.strip_prefix(&dir))
        .filter(|n| !n.is_empty() && !n.contains('/') && *n != "." && *n != "..")
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A copy-mode step's private folder `_work/.k8s-hook-<id>/`: `temp/` is what the step adds to
/// the job pod's `_temp` (its script, its own file-command files as the runner made them),
/// `back/` receives the file commands from the pod. Removed when dropped.
struct Staging {
    root: PathBuf,
    own: Vec<String>,
}

impl Staging {
    fn new(work_root: &Path, id: &str, temp: &Path, own: &[String]) -> Result<Self, Error> {
        let root = work_root.join(format!(".k8s-hook-{id}"));
        let staging = Self {
            root,
            own: own.to_vec(),
        };
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| Error::Io {
                what: "cannot stage the step's files",
                path,
                source,
            }
        };
        let fc_host = temp.join(FILE_COMMANDS);
        let fc = staging.temp().join(FILE_COMMANDS);
        std::fs::create_dir_all(&fc).map_err(io(&fc))?;
        // The folders' entries in the archive carry these modes: keep the runner's.
        for (ours, theirs) in [
            (staging.temp(), temp.to_owned()),
            (fc.clone(), fc_host.clone()),
        ] {
            if let Ok(meta) = std::fs::metadata(&theirs) {
                std::fs::set_permissions(&ours, meta.permissions()).map_err(io(&ours))?;
            }
        }
        for name in own {
            let from = fc_host.join(name);
            if from.is_file() {
                std::fs::copy(&from, fc.join(name)).map_err(io(&from))?;
            }
        }
        Ok(staging)
    }

    fn temp(&self) -> PathBuf {
        self.root.join("temp")
    }

    fn back(&self) -> PathBuf {
        self.root.join("back")
    }

    /// Puts the step's own file commands, as copied back into [`Self::back`], over the
    /// runner's; the other files that came back belong to other steps and are left alone.
    /// Only regular files count: the archive is the job's, and a link it planted (to the
    /// runner's credentials, say) is never followed.
    fn deliver(&self, temp: &Path) -> Result<(), Error> {
        for name in &self.own {
            let from = self.back().join(FILE_COMMANDS).join(name);
            let regular = std::fs::symlink_metadata(&from).is_ok_and(|m| m.file_type().is_file());
            if !regular {
                if from.symlink_metadata().is_ok() {
                    tracing::warn!(file = %name, "a file command came back as a link or folder: ignored");
                }
                continue;
            }
            let to = temp.join(FILE_COMMANDS).join(name);
            // Replace, never write through, whatever is not a regular file there.
            if std::fs::symlink_metadata(&to).is_ok_and(|m| !m.file_type().is_file()) {
                let _ = std::fs::remove_file(&to);
            }
            std::fs::copy(&from, &to).map_err(|source| Error::Io {
                what: "cannot write the step's file commands",
                path: to.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
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

/// Runs the step; with `staging` (copy mode) `_temp` goes into the pod first and the step's
/// file commands come back after.
async fn run(
    ctx: &Ctx<'_>,
    pod: &str,
    id: &str,
    file_name: &str,
    temp: &Path,
    staging: Option<&Staging>,
) -> Result<i32, Error> {
    let cancel = ctx.cancel;
    let cluster = cancellable(cancel, ctx.cluster()).await??;
    // Every tar of the job pod runs in its archiver, never in the job image.
    let archiver = cluster.endpoint(pod, ARCHIVER_CONTAINER);
    if let Some(staging) = staging {
        let group = Group::start("Copying _temp into the job pod");
        // The staged files first; then `_temp` without anyone's file commands (its own
        // entry comes last, so the folder keeps the runner's mode).
        let mut shared = temp_source(temp);
        shared.exclude.push(FILE_COMMANDS.into());
        let staged = Source {
            dir: staging.temp(),
            name: "_temp".into(),
            exclude: Vec::new(),
        };
        let report = cancellable(
            cancel,
            copy::to_pod(
                &cluster.client,
                cluster.heartbeat,
                archiver,
                "the runner's _temp",
                vec![staged, shared],
                WORK_MOUNT,
            ),
        )
        .await??;
        eprintln!("{report}");
        group.end();
    }
    let ended = exec_step(ctx, cluster, pod, id, file_name).await;
    let Some(staging) = staging else {
        return ended.map(|e| e.code());
    };
    // The script leaves the pod with the step, whatever its outcome.
    let script = [format!("{WORK_MOUNT}/_temp/{file_name}")];
    let removed = copy::remove(&cluster.client, cluster.heartbeat, archiver, &script);
    let back = async {
        let ended = ended?;
        let group = Group::start("Copying the step's file commands back");
        let limits = ctx.settings.copy_back.file_commands;
        let copied = cancellable(
            cancel,
            file_commands_back(cluster, archiver, &staging.back(), limits, &staging.own),
        )
        .await?;
        match (copied, ended) {
            (Ok(report), _) => {
                staging.deliver(temp)?;
                eprintln!("{report}");
            }
            // The job container died under the step: what it wrote is out of reach, and the
            // step already failed with the reason.
            (Err(e), script_run::Ended::Killed) => {
                joblog::warning(&format!("the step's file commands are lost: {e}"));
            }
            (Err(e), script_run::Ended::Exited(_)) => return Err(e),
        }
        group.end();
        Ok(ended.code())
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

/// Copies `/__w/_temp/_runner_file_commands` of `from` (a trusted container: the job pod's
/// archiver, a step pod's `fs-sync`) over the runner's, admitting only regular files and folders
/// within `limits` (refused entries are `::warning::` lines; a cap is an error). With `own`
/// names, only those files of the folder are read (a background step's own file commands).
pub async fn file_commands_back(
    cluster: &Cluster,
    from: Endpoint<'_>,
    temp: &Path,
    limits: Limits,
    own: &[String],
) -> Result<copy::CopyReport, Error> {
    let only: Vec<String> = own.iter().map(|n| format!("{FILE_COMMANDS}/{n}")).collect();
    Ok(copy::from_pod(
        &cluster.client,
        cluster.heartbeat,
        from,
        "the step's file commands",
        &format!("{WORK_MOUNT}/_temp"),
        FILE_COMMANDS,
        temp,
        limits,
        &only,
    )
    .await?)
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

async fn exec_step(
    ctx: &Ctx<'_>,
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
    script_run::run(target, ctx.settings.resume_timeout, ctx.cancel).await
}
