//! The build itself: create the builder pod, stream it the context, stream the builder's and
//! then the pusher's log live into the step log, take each outcome from the container's
//! terminated state, delete the pod after a success (keep it after a failure, for inspection
//! until `cleanup_job`; delete it at once when the step is cancelled).

use super::attach;
use super::error::BuildError;
use super::lines::Lines;
use super::naming::References;
use super::pods::{self, BuilderPod, PUSH_CONTAINER};
use super::settings::{BuildSettings, Builder};
use crate::mounts::Placement;
use crate::objects::Cluster;
use crate::retry;
use crate::wait::{self, Goal, WaitError};
use futures::AsyncReadExt;
use hooklib::joblog::{self, Group};
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::LogParams;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

/// Log lines repeated after a failed build.
const TAIL_LINES: usize = 25;
/// How long the log may lag behind the builder's end.
const LOG_GRACE: Duration = Duration::from_secs(10);

/// What one build needs besides the cluster.
#[derive(Debug)]
pub struct Plan<'a> {
    /// Builder pod name.
    pub pod: &'a str,
    /// The runner pod (labels).
    pub runner_pod: &'a str,
    /// Image references.
    pub refs: &'a References,
    /// The Dockerfile on the runner (its directory is the context, packed again as it is sent).
    pub dockerfile_path: &'a Path,
    /// The Dockerfile's path inside the context.
    pub dockerfile: &'a str,
    /// The digest of the context the image is named after.
    pub context_digest: &'a str,
    /// The dockerconfigjson secret of the push (the pusher's only).
    pub secret: Option<&'a str>,
    /// The optional base-image pull secret (the builder's).
    pub pull_secret: Option<&'a str>,
    /// The job pod, or the runner pod.
    pub owner: Option<OwnerReference>,
    /// Where to run.
    pub placement: Placement,
    /// Builder settings.
    pub settings: &'a BuildSettings,
    /// Whether the push registry speaks plain HTTP.
    pub plain_http: bool,
    /// How long the pod may take to start (ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS).
    pub start_timeout: Duration,
}

fn builder_title(b: Builder) -> &'static str {
    match b {
        Builder::Kaniko => "Kaniko",
        Builder::BuildKit => "BuildKit",
    }
}

fn terminated<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStateTerminated> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|c| c.name == container)?
        .state
        .as_ref()?
        .terminated
        .as_ref()
}

/// The last lines of the log, shared by the stages of one build.
type Tail = RefCell<VecDeque<String>>;

fn keep(tail: &Tail, line: String) {
    let mut t = tail.borrow_mut();
    if t.len() == TAIL_LINES {
        t.pop_front();
    }
    t.push_back(line);
}

/// Builds and pushes; returns the pushed digest. When `cancel` fires, the builder pod is
/// deleted at once and [`BuildError::Cancelled`] returned.
pub async fn build(
    cluster: &Cluster,
    plan: Plan<'_>,
    cancel: &hooklib::Cancel,
) -> Result<String, BuildError> {
    let started = Instant::now();
    let builder = plan.settings.builder;
    let title = builder_title(builder);
    let token = uuid::Uuid::new_v4().to_string();
    let pod = pods::builder_pod(&BuilderPod {
        name: plan.pod,
        runner_pod: plan.runner_pod,
        token: &token,
        owner: plan.owner.clone(),
        placement: &plan.placement,
        destination: &plan.refs.push,
        dockerfile: plan.dockerfile,
        secret: plan.secret,
        pull_secret: plan.pull_secret,
        settings: plan.settings,
        plain_http: plan.plain_http,
    });
    let name = plan.pod;
    if cancel.is_cancelled() {
        return Err(BuildError::Cancelled { pod: None });
    }
    let group = Group::start(&format!(
        "Building {} with {title} in pod {name}",
        plan.refs.push
    ));
    let created = cluster.create_pod(&pod, &token).await?;
    let tail = Tail::default();
    let outcome = tokio::select! {
        r = stages(cluster, &plan, created, &tail) => r,
        () = cancel.cancelled() => {
            drop(group);
            return match cluster.delete_pod(name).await {
                Ok(()) => {
                    joblog::info(&format!("the step was cancelled: builder pod {name} deleted"));
                    Err(BuildError::Cancelled { pod: Some(name.to_owned()) })
                }
                Err(e) => Err(e.into()),
            };
        }
    };
    let (pod, failed_container) = match outcome {
        Ok(done) => done,
        Err(BuildError::Wait(WaitError::Timeout { .. })) => {
            drop(group);
            return Err(BuildError::Timeout {
                destination: plan.refs.push.clone(),
                pod: name.to_owned(),
                timeout: plan.settings.timeout,
            });
        }
        Err(e) => return Err(e),
    };
    if let Some(container) = failed_container {
        drop(group);
        let tail = tail.into_inner();
        let state = terminated(&pod, container).cloned().unwrap_or_default();
        if !tail.is_empty() {
            joblog::info(&format!("the last lines of the {container} log:"));
            for line in &tail {
                joblog::info(&format!("  {line}"));
            }
        }
        joblog::info(&format!(
            "builder pod {name} is kept for inspection (kubectl logs {name} -c {container}); cleanup_job deletes it"
        ));
        let last = tail
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        let reason = state.reason.unwrap_or_else(|| "Error".into());
        return Err(if container == PUSH_CONTAINER {
            BuildError::PushFailed {
                destination: plan.refs.push.clone(),
                pod: name.to_owned(),
                code: state.exit_code,
                reason,
                last,
            }
        } else {
            BuildError::Failed {
                builder: title,
                destination: plan.refs.push.clone(),
                pod: name.to_owned(),
                container: container.to_owned(),
                code: state.exit_code,
                reason,
                last,
            }
        });
    }
    let message = terminated(&pod, PUSH_CONTAINER)
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    let Some(digest) = pods::digest_from_message(&message) else {
        drop(group);
        return Err(BuildError::NoDigest {
            pod: name.to_owned(),
            message: message.chars().take(200).collect(),
        });
    };
    group.end();
    if let Err(e) = cluster.delete_pod(name).await {
        joblog::warning(&format!("could not delete builder pod {name}: {e}"));
    }
    joblog::info(&format!(
        "built and pushed {}@{digest} in {}; builder pod {name} deleted",
        plan.refs.push,
        joblog::secs(started.elapsed())
    ));
    Ok(digest)
}

/// Sends the context, follows the builder, then the pusher. Returns the pod as last seen and
/// the container that failed, if one did.
async fn stages(
    cluster: &Cluster,
    plan: &Plan<'_>,
    created: Pod,
    tail: &Tail,
) -> Result<(Pod, Option<&'static str>), BuildError> {
    let name = plan.pod;
    let (build, stdin_container) = pods::containers(plan.settings.builder);
    let first = wait::until(
        &cluster.pods,
        name,
        created.metadata.resource_version.clone(),
        &Goal::InitRunning(stdin_container.into()),
        plan.start_timeout,
        joblog::info,
    )
    .await;
    let ready = match first {
        Ok((p, _)) => p,
        // The builder may have refused its arguments at once: its own account of it.
        Err(e @ WaitError::Failed { .. }) => {
            return match builder_failed(cluster, name, build, tail).await {
                Some(p) => Ok((p, Some(build))),
                None => Err(e.into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    let (frames, packer) = attach::context_stream(plan.dockerfile_path.to_owned());
    let sent = attach::send_stdin(
        &cluster.client,
        &cluster.namespace,
        name,
        stdin_container,
        frames,
    )
    .await;
    let packed = packer.await;
    let sent = match sent {
        Ok(n) => n,
        // The builder may have refused its arguments before reading stdin: its own account
        // of it beats a broken pipe.
        Err(e) => {
            return match builder_failed(cluster, name, build, tail).await {
                Some(p) => Ok((p, Some(build))),
                None => Err(BuildError::Attach(e)),
            };
        }
    };
    let packed = packed
        .map_err(|e| {
            BuildError::Context(buildctx::Error::Context {
                path: plan.dockerfile_path.display().to_string(),
                source: std::io::Error::other(e),
            })
        })?
        .map_err(BuildError::Context)?;
    if packed.digest != plan.context_digest {
        return Err(BuildError::ContextChanged {
            path: plan.dockerfile_path.display().to_string(),
        });
    }
    joblog::info(&format!(
        "sent the build context ({} files, {} gzipped)",
        packed.entries,
        human(usize::try_from(sent).unwrap_or(usize::MAX))
    ));
    let deadline = Instant::now() + plan.settings.timeout;
    drop(ready);
    for container in [build, PUSH_CONTAINER] {
        let started = wait::until(
            &cluster.pods,
            name,
            // From the current state: a watch from an older version would wait for a change
            // that may already have happened.
            None,
            &Goal::Started(container.into()),
            plan.start_timeout,
            joblog::info,
        )
        .await;
        let p = match started {
            Ok((p, _)) => p,
            // Already over (a failed init container fails the pod): its log is still there.
            Err(e @ WaitError::Failed { .. }) => {
                let goal = Goal::Terminated(container.into());
                match wait::until(&cluster.pods, name, None, &goal, LOG_GRACE, |_| {}).await {
                    Ok((p, _)) => p,
                    Err(_) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        // From the current state (a GET first): the container may already be over, and a watch
        // from that version would wait for a change that never comes.
        drop(p);
        let pod = follow(cluster, name, container, None, remaining, tail).await?;
        if terminated(&pod, container).is_none_or(|t| t.exit_code != 0) {
            return Ok((pod, Some(container)));
        }
        if container == PUSH_CONTAINER {
            return Ok((pod, None));
        }
    }
    unreachable!("the loop returns at the pusher")
}

/// The pod, when the builder container has ended (or ends within [`LOG_GRACE`]) with a
/// non-zero code; its last log lines go to `tail`.
async fn builder_failed(cluster: &Cluster, name: &str, build: &str, tail: &Tail) -> Option<Pod> {
    let goal = Goal::Terminated(build.into());
    match wait::until(&cluster.pods, name, None, &goal, LOG_GRACE, |_| {}).await {
        Ok((p, Some(code))) if code != 0 => {
            for line in last_log(cluster, name, build).await {
                keep(tail, line);
            }
            Some(p)
        }
        _ => None,
    }
}

/// Streams a container's log to stderr in bounded lines (keeping the last ones) until it
/// ends; returns the pod with its terminated state.
async fn follow(
    cluster: &Cluster,
    name: &str,
    container: &str,
    rv: Option<String>,
    timeout: Duration,
    tail: &Tail,
) -> Result<Pod, BuildError> {
    let logs = async {
        let params = LogParams {
            container: Some(container.into()),
            follow: true,
            ..LogParams::default()
        };
        let mut stream = retry::api(format!("logs of {name}"), || {
            cluster.pods.log_stream(name, &params)
        })
        .await?;
        let failed = |source: std::io::Error| BuildError::Log {
            pod: name.to_owned(),
            source,
        };
        let mut lines = Lines::default();
        let mut buf = vec![0u8; 16 * 1024];
        let print = |line: String| {
            eprintln!("{line}");
            keep(tail, line);
        };
        loop {
            let n = stream.read(&mut buf).await.map_err(failed)?;
            if n == 0 {
                break;
            }
            lines.push(&buf[..n], print);
        }
        lines.finish(print);
        Ok::<_, BuildError>(())
    };
    let goal = Goal::Terminated(container.into());
    let end = wait::until(&cluster.pods, name, rv, &goal, timeout, joblog::info);
    let mut logs = std::pin::pin!(logs);
    let mut end = std::pin::pin!(end);
    let mut logs_done = false;
    let pod = tokio::select! {
        r = &mut end => r?.0,
        r = &mut logs => { logs_done = true; r?; end.await?.0 }
    };
    if !logs_done && tokio::time::timeout(LOG_GRACE, logs).await.is_err() {
        joblog::warning(&format!(
            "the log of builder pod {name} ({container}) did not end with its container"
        ));
    }
    Ok(pod)
}

/// The last lines of a finished container's log (best effort, bounded).
async fn last_log(cluster: &Cluster, name: &str, container: &str) -> Vec<String> {
    let params = LogParams {
        container: Some(container.into()),
        tail_lines: Some(TAIL_LINES as i64),
        limit_bytes: Some((TAIL_LINES * super::lines::MAX_LINE) as i64),
        ..LogParams::default()
    };
    let mut out = Vec::new();
    if let Ok(text) = cluster.pods.logs(name, &params).await {
        let mut lines = Lines::default();
        lines.push(text.as_bytes(), |l| out.push(l));
        lines.finish(|l| out.push(l));
    }
    for line in &out {
        eprintln!("{line}");
    }
    out
}

/// `1.2 KiB`.
pub fn human(n: usize) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{:.1} MiB", n / 1024.0 / 1024.0)
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
