//! `run_container_step`: the action image in its own pod, with the workspace and the runner's
//! `_temp` brought in (copy mode) or mounted (volume mode), its log streamed, its exit code
//! taken from the container's terminated state, its file commands (and workspace changes)
//! brought back, the pod deleted. A cancelled step deletes its pod at once (short grace); an
//! OOM-killed action is exit 137 with its reason; an evicted or deleted pod is an error.

use crate::context::Ctx;
use crate::error::Error;
use crate::mounts::Storage;
use crate::names::{self, FS_INIT_CONTAINER, JOB_CONTAINER};
use crate::objects::Cluster;
use crate::pod::{self, PodContext};
use crate::step_files::StepFiles;
use crate::template::PodKind;
use crate::wait::{self, Goal};
use crate::{State, retry, steplog};
use hooklib::joblog::{self, Group};
use hooklib::{Container, StepOutcome};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PropagationPolicy};
use std::time::Duration;

/// How long the log stream may lag behind the container's end.
const LOG_GRACE: Duration = Duration::from_secs(10);

/// The grace period of a cancelled step's pod (the runner escalates 7.5 s after its SIGINT).
const CANCEL_GRACE_SECONDS: i64 = 1;
/// How long a cancelled step waits for its pod to be gone.
const CANCEL_WAIT: Duration = Duration::from_secs(4);

pub async fn run_container_step(
    ctx: &Ctx<'_>,
    args: Container,
    state: State,
) -> Result<StepOutcome<State>, Error> {
    if let Some(dockerfile) = args.dockerfile.as_deref().filter(|_| args.image.is_none()) {
        return crate::build::run_dockerfile_step(ctx, dockerfile, &args, &state)
            .await
            .map(StepOutcome::exited);
    }
    let image = args
        .image
        .clone()
        .filter(|i| !i.trim().is_empty())
        .ok_or(crate::pod::PodSpecError::NoImage("container step".into()))?;
    run_image(ctx, &image, &args, &state, &[])
        .await
        .map(StepOutcome::exited)
}

/// Runs `image` as a container step (also the path of images built from Dockerfiles, which
/// pass the registry secret in `pull_secrets`). Returns the action's exit code.
pub async fn run_image(
    ctx: &Ctx<'_>,
    image: &str,
    args: &Container,
    state: &State,
    pull_secrets: &[String],
) -> Result<i32, Error> {
    let cancel = ctx.cancel;
    let settings = ctx.settings;
    let layout = ctx.layout()?;
    let custom = ctx.customization()?;
    let cluster = ctx.cluster().await?;
    let runner = retry::api(format!("get runner pod {}", settings.runner_pod), || {
        cluster.pods.get_opt(&settings.runner_pod)
    })
    .await?;
    let pods = PodContext::new(settings, runner.as_ref(), layout.clone());
    let (token, storage) = (pods.token.clone(), pods.storage.clone());
    let name = names::step_pod(&settings.runner_pod, &names::random_id());
    let mut step_pod = pod::step_pod(&pods, &name, image, args, pull_secrets)?;
    for w in custom.apply(&mut step_pod, PodKind::Step)? {
        joblog::warning(&w);
    }
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let group = Group::start(&format!("Starting container step pod {name} ({image})"));
    let created = cluster.create_pod(&step_pod, &token).await?;
    let driven = drive(
        ctx, cluster, &name, created, &storage, &layout, state, group,
    );
    let result = tokio::select! {
        r = driven => r,
        () = cancel.cancelled() => {
            stop(cluster, &name).await;
            return Err(Error::StepCancelled { pod: name });
        }
    };
    if let Err(e) = cluster.delete_pod(&name).await {
        joblog::warning(&format!("could not delete step pod {name}: {e}"));
    }
    result
}

/// Deletes a cancelled step's pod with a short grace period and waits (bounded) until it is
/// gone, so the action has stopped when the hook exits.
async fn stop(cluster: &Cluster, name: &str) {
    let dp = DeleteParams {
        grace_period_seconds: Some(CANCEL_GRACE_SECONDS as u32),
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    let deleted = async {
        match retry::api(format!("delete pod {name}"), || {
            cluster.pods.delete(name, &dp)
        })
        .await
        {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    };
    let gone = async {
        deleted.await?;
        loop {
            let pod = retry::api(format!("get pod {name}"), || cluster.pods.get_opt(name)).await?;
            if pod.is_none() {
                return Ok::<_, retry::ApiError>(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    match tokio::time::timeout(CANCEL_WAIT, gone).await {
        Ok(Ok(())) => tracing::debug!(pod = name, "cancelled step pod deleted"),
        Ok(Err(e)) => joblog::warning(&format!("could not delete step pod {name}: {e}")),
        Err(_) => joblog::warning(&format!(
            "step pod {name} was still terminating {} s after the cancellation",
            CANCEL_WAIT.as_secs()
        )),
    }
}

/// The action's end as the pod reports it: an eviction or a deletion is the hook's error (the
/// action did not end by itself); an OOM kill is exit 137 with its reason in the job log.
fn outcome(name: &str, pod: &Pod, code: Option<i32>) -> Result<i32, Error> {
    if let Some(why) = wait::evicted(pod) {
        return Err(Error::StepPodEvicted {
            pod: name.to_owned(),
            why,
        });
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Err(Error::StepPodDeleted {
            pod: name.to_owned(),
            how: wait::deleted(pod),
        });
    }
    let code = code.ok_or_else(|| Error::NoExitCode {
        pod: name.to_owned(),
    })?;
    let terminated = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .find(|c| c.name == JOB_CONTAINER)
        .and_then(|c| c.state.as_ref()?.terminated.as_ref());
    if terminated.is_some_and(|t| t.reason.as_deref() == Some("OOMKilled")) {
        let code = if code == 0 { 137 } else { code };
        joblog::error(&format!(
            "the action was killed for lack of memory (OOMKilled, exit code {code}): it reached \
             its container's memory limit"
        ));
        return Ok(code);
    }
    Ok(code)
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    ctx: &Ctx<'_>,
    cluster: &Cluster,
    name: &str,
    created: k8s_openapi::api::core::v1::Pod,
    storage: &Storage,
    layout: &crate::mounts::Layout,
    state: &State,
    group: Group,
) -> Result<i32, Error> {
    let timeout = ctx.settings.prepare_timeout;
    let mut rv = created.metadata.resource_version.clone();
    let copy_mode = matches!(storage, Storage::Copy);
    let ws_rel = layout.workspace_rel.clone().unwrap_or_default();
    let files = StepFiles {
        cluster,
        pod: name,
        state,
        layout,
        ws_rel: &ws_rel,
        copy_back: ctx.settings.copy_back,
    };
    if copy_mode {
        let (pod, _) = wait::until(
            &cluster.pods,
            name,
            rv.clone(),
            &Goal::InitRunning(FS_INIT_CONTAINER.into()),
            timeout,
            joblog::info,
        )
        .await?;
        rv = pod.metadata.resource_version.clone();
        files.copy_in().await?;
    }
    group.end();
    let (pod, _) = wait::until(
        &cluster.pods,
        name,
        rv,
        &Goal::Started(JOB_CONTAINER.into()),
        timeout,
        joblog::info,
    )
    .await?;
    // The action's log, live (resumed if the stream breaks), while its end is watched for.
    let logs = steplog::follow(&cluster.pods, name, JOB_CONTAINER);
    let terminated = Goal::Terminated(JOB_CONTAINER.into());
    let end = wait::until(
        &cluster.pods,
        name,
        pod.metadata.resource_version.clone(),
        &terminated,
        // The action may run as long as it likes.
        Duration::from_secs(60 * 60 * 24 * 7),
        joblog::info,
    );
    let mut logs = std::pin::pin!(logs);
    let mut logs_done = false;
    let mut end = std::pin::pin!(end);
    // The exit code is the truth: a broken log stream is warned about, not a failed step.
    let log_broke = |e: Error| {
        joblog::warning(&format!(
            "the log of step pod {name} broke ({e}); waiting for the step's end"
        ));
    };
    let log_done = |r: Result<steplog::Followed, Error>| match r {
        Ok(f) if f.reconnects > 0 => tracing::info!(
            pod = name,
            reconnects = f.reconnects,
            "the step's log was resumed after its stream broke"
        ),
        Ok(_) => {}
        Err(e) => log_broke(e),
    };
    let (pod, code) = tokio::select! {
        r = &mut end => r?,
        r = &mut logs => {
            logs_done = true;
            log_done(r);
            end.await?
        }
    };
    if !logs_done {
        match tokio::time::timeout(LOG_GRACE, logs).await {
            Ok(r) => log_done(r),
            Err(_) => joblog::warning(&format!(
                "the log of step pod {name} did not end with its container"
            )),
        }
    }
    let code = outcome(name, &pod, code)?;
    if copy_mode {
        let group = Group::start("Copying the step's results back");
        files.copy_out().await?;
        group.end();
    }
    Ok(code)
}
