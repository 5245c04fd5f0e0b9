//! What the job pod says about a script step that stopped answering: gone (deleted), killed
//! under the step (OOM kill, eviction, the container terminated or restarted), or nothing wrong.

use crate::names::JOB_CONTAINER;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use kube::Api;
use kube::api::{WatchEvent, WatchParams};
use std::time::Duration;

/// Watches the job pod while a step runs; resolves only when the pod is going away or the job
/// container died (a deletion with a grace period keeps the container, and so the step's
/// stream, alive for that long: the watch says so at once). Never resolves without RBAC to
/// watch pods, or while the API server is unreachable (the follower's own failures cover that).
pub async fn watch(pods: &Api<Pod>, name: &str) -> Verdict {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    let mut version = "0".to_owned();
    loop {
        match pods.watch(&params, &version).await {
            Ok(stream) => {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) => {
                            if let Some(rv) = &pod.metadata.resource_version {
                                version.clone_from(rv);
                            }
                            match verdict(Some(&pod), name, false) {
                                Verdict::Alive => {}
                                other => return other,
                            }
                        }
                        Ok(WatchEvent::Deleted(_)) => {
                            return Verdict::Gone("it was deleted".into());
                        }
                        Ok(WatchEvent::Bookmark(b)) => version = b.metadata.resource_version,
                        Ok(WatchEvent::Error(_)) | Err(_) => {
                            version = "0".into();
                            break;
                        }
                    }
                }
            }
            Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => {
                tracing::debug!("cannot watch the job pod: {}", s.message);
                return std::future::pending().await;
            }
            Err(e) => tracing::debug!("cannot watch the job pod: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What the job pod says about a step that stopped answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing wrong that the pod shows: keep trying.
    Alive,
    /// The pod is gone or going.
    Gone(String),
    /// The job container died under the step (OOM kill, eviction): exit 137 with this reason.
    Killed(String),
}

/// Reads the job pod (`None`: not found) after a step's follower failed; `lost`: the follower
/// found the step's process gone without an exit status, so a past restart of the job
/// container explains it.
pub fn verdict(pod: Option<&Pod>, name: &str, lost: bool) -> Verdict {
    let Some(pod) = pod else {
        return Verdict::Gone("it no longer exists".into());
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return Verdict::Gone("it is being deleted".into());
    }
    let status = pod.status.clone().unwrap_or_default();
    if status.reason.as_deref() == Some("Evicted") {
        let message = status.message.unwrap_or_default();
        return Verdict::Killed(
            format!("the job pod {name} was evicted while the step ran: {message}")
                .trim_end_matches([' ', ':'])
                .to_owned(),
        );
    }
    let job = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == JOB_CONTAINER);
    if let Some(term) = job
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
    {
        return Verdict::Killed(format!(
            "the job container was {} while the step ran",
            terminated(term)
        ));
    }
    if lost
        && let Some(term) = job
            .and_then(|c| c.last_state.as_ref())
            .and_then(|s| s.terminated.as_ref())
    {
        return Verdict::Killed(format!(
            "the job container was {} and restarted while the step ran",
            terminated(term)
        ));
    }
    match status.phase.as_deref() {
        Some(phase @ ("Failed" | "Succeeded")) => Verdict::Killed(format!(
            "the job pod {name} stopped (phase {phase}) while the step ran"
        )),
        _ => Verdict::Alive,
    }
}

fn terminated(t: &ContainerStateTerminated) -> String {
    let reason = t.reason.as_deref().unwrap_or("no reason given");
    let how = if reason == "OOMKilled" {
        "OOM-killed"
    } else {
        "terminated"
    };
    format!("{how} ({reason}, exit code {})", t.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, PodStatus};

    fn pod(status: PodStatus) -> Pod {
        Pod {
            status: Some(status),
            ..Pod::default()
        }
    }

    fn job(state: Option<ContainerState>, last: Option<ContainerState>) -> ContainerStatus {
        ContainerStatus {
            name: JOB_CONTAINER.into(),
            state,
            last_state: last,
            ..ContainerStatus::default()
        }
    }

    fn term(reason: &str, code: i32) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                reason: Some(reason.into()),
                exit_code: code,
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            verdict(None, "p", false),
            Verdict::Gone("it no longer exists".into())
        );
        let running = pod(PodStatus {
            phase: Some("Running".into()),
            container_statuses: Some(vec![job(None, Some(term("OOMKilled", 137)))]),
            ..PodStatus::default()
        });
        assert_eq!(verdict(Some(&running), "p", false), Verdict::Alive);
        assert_eq!(
            verdict(Some(&running), "p", true),
            Verdict::Killed(
                "the job container was OOM-killed (OOMKilled, exit code 137) and restarted while the step ran".into()
            )
        );
        let oom = pod(PodStatus {
            phase: Some("Running".into()),
            container_statuses: Some(vec![job(Some(term("OOMKilled", 137)), None)]),
            ..PodStatus::default()
        });
        assert_eq!(
            verdict(Some(&oom), "p", false),
            Verdict::Killed(
                "the job container was OOM-killed (OOMKilled, exit code 137) while the step ran"
                    .into()
            )
        );
        let evicted = pod(PodStatus {
            phase: Some("Failed".into()),
            reason: Some("Evicted".into()),
            message: Some("The node was low on resource: memory. ".into()),
            ..PodStatus::default()
        });
        assert_eq!(
            verdict(Some(&evicted), "p", false),
            Verdict::Killed(
                "the job pod p was evicted while the step ran: The node was low on resource: memory."
                    .into()
            )
        );
        let mut deleting = running.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(matches!(
            verdict(Some(&deleting), "p", true),
            Verdict::Gone(_)
        ));
    }
}
