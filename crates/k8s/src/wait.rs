//! Waiting for a pod with a watch: done as soon as the goal is met, failed as soon as a
//! container can never start (bad image, bad config), unschedulable messages reported as
//! progress, and a deadline.

use crate::retry::{self, ApiError};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::Api;
use kube::api::{WatchEvent, WatchParams};
use std::time::Duration;
use tokio::time::Instant;

/// Waiting reasons after which a container will not start by itself.
pub const FATAL_WAITING_REASONS: [&str; 7] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImageNeverPull",
    "RunContainerError",
];

/// What the hook waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    /// The job pod: the `job` container running (when there is one) and every service ready.
    JobReady {
        /// Whether there is a job container.
        job: bool,
        /// The service containers.
        services: Vec<String>,
    },
    /// A running init container (a step pod's `fs-init`, waiting for the workspace).
    InitRunning(String),
    /// A container running or already finished (its logs can be read).
    Started(String),
    /// A container finished; the outcome carries its exit code.
    Terminated(String),
}

/// Where a pod stands with respect to a goal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// The goal is met; for [`Goal::Terminated`], with the exit code.
    Done(Option<i32>),
    /// Not yet; with a progress message worth printing, if any.
    Waiting(Option<String>),
    /// It will never be met.
    Failed(String),
}

/// Waiting failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The pod will not get there.
    #[error("pod {pod}: {reason}")]
    Failed {
        /// The pod.
        pod: String,
        /// Why, in the cluster's words.
        reason: String,
    },
    /// The deadline passed.
    #[error(
        "pod {pod} was not ready within {timeout:?} (ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS): {state}"
    )]
    Timeout {
        /// The pod.
        pod: String,
        /// The deadline.
        timeout: Duration,
        /// The last state seen.
        state: String,
    },
}

fn statuses(pod: &Pod, init: bool) -> &[ContainerStatus] {
    pod.status
        .as_ref()
        .and_then(|s| {
            if init {
                s.init_container_statuses.as_deref()
            } else {
                s.container_statuses.as_deref()
            }
        })
        .unwrap_or(&[])
}

fn status_of<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    statuses(pod, false)
        .iter()
        .chain(statuses(pod, true))
        .find(|c| c.name == name)
}

fn with_message(reason: &str, message: Option<&str>) -> String {
    match message.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => format!("{reason}: {}", m.replace(['\n', '\r'], " ")),
        None => reason.to_owned(),
    }
}

fn terminated_code(c: &ContainerStatus) -> Option<i32> {
    c.state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code)
}

/// Assesses `pod` against `goal` (pure).
pub fn assess(pod: &Pod, goal: &Goal) -> Assessment {
    // A finished container is the goal itself before it is a failure.
    if let Goal::Terminated(name) = goal
        && let Some(code) = status_of(pod, name).and_then(terminated_code)
    {
        return Assessment::Done(Some(code));
    }
    // Deleted (by someone else, or evicted): it will not get there; say so now rather than
    // after the grace period.
    if pod.metadata.deletion_timestamp.is_some() {
        return Assessment::Failed(deleted(pod));
    }
    for c in statuses(pod, true).iter().chain(statuses(pod, false)) {
        let Some(state) = &c.state else { continue };
        if let Some(w) = &state.waiting {
            let reason = w.reason.as_deref().unwrap_or_default();
            if FATAL_WAITING_REASONS.contains(&reason) {
                return Assessment::Failed(format!(
                    "container {} cannot start: {}",
                    c.name,
                    with_message(reason, w.message.as_deref())
                ));
            }
        }
    }
    for c in statuses(pod, true) {
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            return Assessment::Failed(format!(
                "init container {} failed with exit code {} ({})",
                c.name,
                t.exit_code,
                with_message(t.reason.as_deref().unwrap_or("Error"), t.message.as_deref())
            ));
        }
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let running = |name: &str| {
        status_of(pod, name)
            .and_then(|c| c.state.as_ref())
            .is_some_and(|s| s.running.is_some())
    };
    match goal {
        Goal::JobReady { job, services } => {
            let job_name = crate::names::JOB_CONTAINER;
            for name in std::iter::once(job_name)
                .filter(|_| *job)
                .chain(services.iter().map(String::as_str))
            {
                if let Some(c) = status_of(pod, name)
                    && let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref())
                {
                    let what = if name == job_name {
                        "the job container".to_owned()
                    } else {
                        format!("service {name}")
                    };
                    return Assessment::Failed(format!(
                        "{what} exited with code {} ({})",
                        t.exit_code,
                        with_message(t.reason.as_deref().unwrap_or("Error"), t.message.as_deref())
                    ));
                }
            }
            let job_ok = !*job || running(job_name);
            let services_ok = services.iter().all(|s| {
                status_of(pod, s).is_some_and(|c| {
                    c.ready && c.state.as_ref().is_some_and(|st| st.running.is_some())
                })
            });
            if job_ok && services_ok {
                return Assessment::Done(None);
            }
        }
        Goal::InitRunning(name) => {
            if running(name) {
                return Assessment::Done(None);
            }
            if status_of(pod, name).is_some_and(|c| terminated_code(c) == Some(0)) {
                return Assessment::Failed(format!("init container {name} finished too early"));
            }
        }
        Goal::Started(name) => {
            if running(name) || status_of(pod, name).and_then(terminated_code).is_some() {
                return Assessment::Done(None);
            }
        }
        Goal::Terminated(_) => {}
    }
    if matches!(phase, "Failed" | "Succeeded") {
        let status = pod.status.as_ref();
        let why = match status.map(|s| (s.reason.as_deref(), s.message.as_deref())) {
            Some((Some(r), Some(m))) if !m.trim().is_empty() => with_message(r, Some(m)),
            Some((r, m)) => m.or(r).unwrap_or("its containers exited").trim().to_owned(),
            None => "its containers exited".to_owned(),
        };
        return Assessment::Failed(format!("the pod {} ({why})", phase.to_lowercase()));
    }
    Assessment::Waiting(unschedulable(pod))
}

/// Why a pod with a `deletionTimestamp` is going away.
pub fn deleted(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    match status.and_then(|s| s.reason.as_deref()) {
        Some(reason) => format!(
            "the pod is being deleted ({})",
            with_message(reason, status.and_then(|s| s.message.as_deref()))
        ),
        None => "the pod is being deleted".to_owned(),
    }
}

/// Whether the pod was evicted (or otherwise disrupted) by the cluster: the reason line, if so.
pub fn evicted(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.reason.as_deref() == Some("Evicted") {
        return Some(with_message("Evicted", status.message.as_deref()));
    }
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
        .map(|c| {
            with_message(
                c.reason.as_deref().unwrap_or("DisruptionTarget"),
                c.message.as_deref(),
            )
        })
}

fn unschedulable(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
        .map(|c| with_message("waiting for a node (Unschedulable)", c.message.as_deref()))
}

/// One line describing the pod's state, for timeouts.
pub fn describe(pod: &Pod) -> String {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let mut parts = vec![format!("phase {phase}")];
    if let Some(u) = unschedulable(pod) {
        parts.push(u);
    }
    for (init, c) in statuses(pod, true)
        .iter()
        .map(|c| (true, c))
        .chain(statuses(pod, false).iter().map(|c| (false, c)))
    {
        let state = match c.state.as_ref() {
            Some(s) if s.running.is_some() => {
                if c.ready || init {
                    "running".to_owned()
                } else {
                    "running, not ready".to_owned()
                }
            }
            Some(s) if s.terminated.is_some() => format!(
                "exited {}",
                s.terminated.as_ref().map_or(0, |t| t.exit_code)
            ),
            Some(s) => s
                .waiting
                .as_ref()
                .map(|w| format!("waiting ({})", w.reason.as_deref().unwrap_or("?")))
                .unwrap_or_else(|| "unknown".into()),
            None => "unknown".into(),
        };
        parts.push(format!(
            "{}{}: {state}",
            if init { "init container " } else { "" },
            c.name
        ));
    }
    parts.join("; ")
}

/// Watches pod `name` (from `resource_version`, else from its current state) until `goal` is
/// met; `progress` gets every new progress message. Returns the pod and, for
/// [`Goal::Terminated`], the exit code.
pub async fn until(
    api: &Api<Pod>,
    name: &str,
    resource_version: Option<String>,
    goal: &Goal,
    timeout: Duration,
    mut progress: impl FnMut(&str),
) -> Result<(Pod, Option<i32>), WaitError> {
    let deadline = Instant::now() + timeout;
    let started = Instant::now();
    // The last pod state seen, shared with the progress ticker below.
    let last: std::cell::RefCell<Option<Pod>> = std::cell::RefCell::new(None);
    let mut last_progress: Option<String> = None;
    let mut rv = resource_version;
    let failed = |reason: String| WaitError::Failed {
        pod: name.to_owned(),
        reason,
    };
    let work = async {
        loop {
            let version = match rv.clone() {
                Some(v) => v,
                None => {
                    let pod = retry::api(format!("get pod {name}"), || api.get(name)).await?;
                    let version = pod.metadata.resource_version.clone().unwrap_or_default();
                    match assess(&pod, goal) {
                        Assessment::Done(code) => return Ok((pod, code)),
                        Assessment::Failed(r) => {
                            *last.borrow_mut() = Some(pod);
                            return Err(failed(r));
                        }
                        Assessment::Waiting(p) => report(&mut last_progress, p, &mut progress),
                    }
                    *last.borrow_mut() = Some(pod);
                    version
                }
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let params = WatchParams::default()
                .fields(&format!("metadata.name={name}"))
                .timeout(remaining.as_secs().clamp(1, 290) as u32);
            let stream =
                retry::api(format!("watch pod {name}"), || api.watch(&params, &version)).await?;
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) => {
                        rv = pod.metadata.resource_version.clone();
                        match assess(&pod, goal) {
                            Assessment::Done(code) => return Ok((pod, code)),
                            Assessment::Failed(r) => {
                                *last.borrow_mut() = Some(pod);
                                return Err(failed(r));
                            }
                            Assessment::Waiting(p) => report(&mut last_progress, p, &mut progress),
                        }
                        *last.borrow_mut() = Some(pod);
                    }
                    Ok(WatchEvent::Deleted(pod)) => {
                        *last.borrow_mut() = Some(pod);
                        return Err(failed("the pod was deleted".into()));
                    }
                    Ok(WatchEvent::Bookmark(b)) => rv = Some(b.metadata.resource_version),
                    Ok(WatchEvent::Error(status)) => {
                        // 410 Gone: the version is too old; start again from the current state.
                        tracing::debug!(?status, "watch error event");
                        rv = None;
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "watch stream broke; watching again");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        break;
                    }
                }
            }
        }
    };
    // A long wait (a slow pull, an unschedulable pod) is never silent for longer than
    // PROGRESS_EVERY: say how long it has been and where the pod stands.
    let ticker = async {
        let mut tick = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
        loop {
            tick.tick().await;
            let state = last
                .borrow()
                .as_ref()
                .map_or_else(|| "no status yet".into(), describe);
            hooklib::joblog::info(&format!(
                "still waiting for pod {name} ({} s): {state}",
                started.elapsed().as_secs()
            ));
        }
    };
    let watched = async {
        tokio::select! {
            result = work => result,
            never = ticker => never,
        }
    };
    let result = match tokio::time::timeout_at(deadline, watched).await {
        Ok(result) => result,
        Err(_) => Err(WaitError::Timeout {
            pod: name.to_owned(),
            timeout,
            state: last
                .borrow()
                .as_ref()
                .map_or_else(|| "no status yet".into(), describe),
        }),
    };
    // A wait that failed says what the cluster said about the pod.
    match result {
        Err(WaitError::Failed { pod, reason }) => {
            let seen = last.borrow().clone();
            let events = pod_events(api, name, &seen).await;
            Err(WaitError::Failed {
                pod,
                reason: format!("{reason}{events}"),
            })
        }
        Err(WaitError::Timeout {
            pod,
            timeout,
            state,
        }) => {
            let seen = last.borrow().clone();
            let events = pod_events(api, name, &seen).await;
            Err(WaitError::Timeout {
                pod,
                timeout,
                state: format!("{state}{events}"),
            })
        }
        other => other,
    }
}

async fn pod_events(api: &Api<Pod>, name: &str, last: &Option<Pod>) -> String {
    let Some(ns) = api.namespace().map(str::to_owned) else {
        return String::new();
    };
    let uid = last.as_ref().and_then(|p| p.metadata.uid.clone());
    let lines = crate::events::warnings(api.clone().into_client(), &ns, name, uid.as_deref()).await;
    crate::events::suffix(&lines)
}

/// The longest a wait stays silent in the job log.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

fn report(last: &mut Option<String>, now: Option<String>, progress: &mut impl FnMut(&str)) {
    if let Some(p) = now
        && last.as_ref() != Some(&p)
    {
        progress(&p);
        *last = Some(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn deleted_and_evicted_pods_never_get_there() {
        let gone = pod(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Failed", "reason": "Evicted",
                       "message": "The node was low on resource: memory. "}
        }));
        assert_eq!(
            assess(&gone, &Goal::Started("job".into())),
            Assessment::Failed(
                "the pod failed (Evicted: The node was low on resource: memory.)".into()
            )
        );
        assert_eq!(
            evicted(&gone).as_deref(),
            Some("Evicted: The node was low on resource: memory.")
        );
        let disrupted = pod(json!({"status": {"phase": "Running", "conditions": [
            {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}
        ]}}));
        assert_eq!(
            evicted(&disrupted).as_deref(),
            Some("PreemptionByScheduler")
        );
        let running = pod(json!({"status": {"phase": "Running", "containerStatuses": [
            {"name": "job", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"running": {}}}
        ]}}));
        assert_eq!(evicted(&running), None);
        let mut deleting = running.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        // Deletion beats "still running": the action would die at the end of the grace period.
        assert_eq!(
            assess(&deleting, &Goal::Terminated("job".into())),
            Assessment::Failed("the pod is being deleted".into())
        );
        assert_eq!(
            assess(&running, &Goal::Terminated("job".into())),
            Assessment::Waiting(None)
        );
    }
}
