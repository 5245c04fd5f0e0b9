//! The build itself: create the builder pod, send it the context, stream its log live into the
//! step log, take the outcome from the container's terminated state, delete the pod after a
//! success (keep it after a failure, for inspection until `cleanup_job`).

use super::attach;
use super::error::BuildError;
use super::naming::References;
use super::pods::{self, BuilderPod};
use super::settings::{BuildSettings, Builder};
use crate::joblog::{self, Group};
use crate::mounts::Placement;
use crate::objects::Cluster;
use crate::retry;
use crate::wait::{self, Goal, WaitError};
use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::LogParams;
use std::collections::VecDeque;
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
    /// The Dockerfile's path inside the context.
    pub dockerfile: &'a str,
    /// The gzipped context.
    pub context_gz: bytes::Bytes,
    /// The dockerconfigjson secret.
    pub secret: Option<&'a str>,
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

/// Builds and pushes; returns the pushed digest.
pub async fn build(cluster: &Cluster, plan: Plan<'_>) -> Result<String, BuildError> {
    let started = Instant::now();
    let builder = plan.settings.builder;
    let title = builder_title(builder);
    let (main, stdin_container) = pods::containers(builder);
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
        settings: plan.settings,
        plain_http: plan.plain_http,
    });
    let name = plan.pod;
    let group = Group::start(&format!(
        "Building {} with {title} in pod {name}",
        plan.refs.push
    ));
    let created = cluster.create_pod(&pod, &token).await?;
    let first = if builder == Builder::Kaniko {
        Goal::Started(main.into())
    } else {
        Goal::InitRunning(stdin_container.into())
    };
    let (ready, _) = wait::until(
        &cluster.pods,
        name,
        created.metadata.resource_version.clone(),
        &first,
        plan.start_timeout,
        joblog::info,
    )
    .await?;
    joblog::info(&format!(
        "sending the build context ({} gzipped)",
        human(plan.context_gz.len())
    ));
    let sent = attach::send_stdin(
        &cluster.client,
        &cluster.namespace,
        name,
        stdin_container,
        plan.context_gz.clone(),
    )
    .await;
    let mut rv = ready.metadata.resource_version.clone();
    if builder == Builder::BuildKit && sent.is_ok() {
        let (p, _) = wait::until(
            &cluster.pods,
            name,
            rv,
            &Goal::Started(main.into()),
            plan.start_timeout,
            joblog::info,
        )
        .await?;
        rv = p.metadata.resource_version.clone();
    }
    let mut tail = VecDeque::new();
    let outcome = match sent {
        Ok(()) => follow(cluster, name, main, rv, plan.settings.timeout, &mut tail).await,
        Err(e) => {
            // The builder may have refused its arguments before reading stdin: its own
            // account of it beats a broken pipe.
            match wait::until(
                &cluster.pods,
                name,
                None,
                &Goal::Terminated(main.into()),
                LOG_GRACE,
                |_| {},
            )
            .await
            {
                Ok((p, Some(code))) => {
                    if code != 0 {
                        tail.extend(last_log(cluster, name, main).await);
                    }
                    Ok(p)
                }
                _ => Err(BuildError::Attach(e)),
            }
        }
    };
    let pod = match outcome {
        Ok(pod) => pod,
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
    let state = terminated(&pod, main).cloned().unwrap_or_default();
    if state.exit_code != 0 {
        drop(group);
        if !tail.is_empty() {
            joblog::info(&format!("the last lines of the {title} log:"));
            for line in &tail {
                joblog::info(&format!("  {line}"));
            }
        }
        joblog::info(&format!(
            "builder pod {name} is kept for inspection (kubectl logs {name}); cleanup_job deletes it"
        ));
        let last = tail
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        return Err(BuildError::Failed {
            builder: title,
            destination: plan.refs.push.clone(),
            pod: name.to_owned(),
            container: main.to_owned(),
            code: state.exit_code,
            reason: state.reason.unwrap_or_else(|| "Error".into()),
            last,
        });
    }
    let message = state.message.unwrap_or_default();
    let Some(digest) = pods::digest_from_message(builder, &message) else {
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

/// Streams the builder's log to stderr (keeping the last lines) until its container ends;
/// returns the pod with the terminated state.
async fn follow(
    cluster: &Cluster,
    name: &str,
    container: &str,
    rv: Option<String>,
    timeout: Duration,
    tail: &mut VecDeque<String>,
) -> Result<Pod, BuildError> {
    let logs = async {
        let params = LogParams {
            container: Some(container.into()),
            follow: true,
            ..LogParams::default()
        };
        let stream = retry::api(format!("logs of {name}"), || {
            cluster.pods.log_stream(name, &params)
        })
        .await?;
        let mut lines = stream.lines();
        let failed = |e: std::io::Error| BuildError::Log {
            pod: name.to_owned(),
            reason: e.to_string(),
        };
        while let Some(line) = futures::StreamExt::next(&mut lines).await {
            let line = line.map_err(failed)?;
            eprintln!("{line}");
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
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
            "the log of builder pod {name} did not end with its container"
        ));
    }
    Ok(pod)
}

/// The last lines of a finished container's log (best effort).
async fn last_log(cluster: &Cluster, name: &str, container: &str) -> Vec<String> {
    let params = LogParams {
        container: Some(container.into()),
        tail_lines: Some(TAIL_LINES as i64),
        ..LogParams::default()
    };
    match cluster.pods.logs(name, &params).await {
        Ok(text) => {
            for line in text.lines() {
                eprintln!("{line}");
            }
            text.lines().map(str::to_owned).collect()
        }
        Err(_) => Vec::new(),
    }
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
