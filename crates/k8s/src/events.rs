//! A pod's newest Warning events (FailedScheduling, FailedMount, Failed pulls, BackOff, …), for
//! the message of a wait that failed or timed out: the kubelet and the scheduler say there why a
//! pod does not start. Listing events is an optional permission: without it (403) the hook says
//! so once and the message goes without events.

use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How many events a message shows.
pub const SHOWN: usize = 3;

/// The longest an event listing may delay a failure.
const BUDGET: Duration = Duration::from_secs(5);

static FORBIDDEN_SAID: AtomicBool = AtomicBool::new(false);

/// The field selector of a pod's events (the apiserver's selectable event fields).
pub fn selector(pod: &str, uid: Option<&str>) -> String {
    let mut s = format!("involvedObject.kind=Pod,involvedObject.name={pod},type=Warning");
    if let Some(uid) = uid.filter(|u| !u.is_empty()) {
        s.push_str(&format!(",involvedObject.uid={uid}"));
    }
    s
}

fn when(e: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The newest [`SHOWN`] Warning events of `pod` (uid `uid`, when known), newest first, one line
/// each: `reason: message` and how often it happened (pure).
pub fn summarize(events: &[Event], pod: &str, uid: Option<&str>) -> Vec<String> {
    let mut mine: Vec<&Event> = events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter(|e| e.involved_object.name.as_deref() == Some(pod))
        .filter(|e| uid.is_none_or(|u| e.involved_object.uid.as_deref().is_none_or(|x| x == u)))
        .collect();
    mine.sort_by_key(|e| std::cmp::Reverse(when(e)));
    mine.into_iter()
        .take(SHOWN)
        .map(|e| {
            let reason = e.reason.as_deref().unwrap_or("Warning");
            let message = e
                .message
                .as_deref()
                .unwrap_or_default()
                .trim()
                .replace(['\n', '\r'], " ");
            let times = match e.count.or(e.series.as_ref().and_then(|s| s.count)) {
                Some(n) if n > 1 => format!(" (×{n})"),
                _ => String::new(),
            };
            if message.is_empty() {
                format!("{reason}{times}")
            } else {
                format!("{reason}: {message}{times}")
            }
        })
        .collect()
}

/// `; recent warning events: a; b` or "" (pure).
pub fn suffix(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; recent warning events: {}", lines.join("; "))
    }
}

/// Lists the pod's Warning events; never fails (an empty list when they cannot be had).
pub async fn warnings(
    client: Client,
    namespace: &str,
    pod: &str,
    uid: Option<&str>,
) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client, namespace);
    let lp = ListParams::default().fields(&selector(pod, uid));
    match tokio::time::timeout(BUDGET, api.list(&lp)).await {
        Ok(Ok(list)) => summarize(&list.items, pod, uid),
        Ok(Err(kube::Error::Api(s))) if s.code == 403 => {
            if !FORBIDDEN_SAID.swap(true, Ordering::SeqCst) {
                hooklib::joblog::info(&format!(
                    "(pod events are not shown: this service account may not list events in \
                     namespace {namespace}; the permission is optional, see examples/rbac.yaml)"
                ));
            }
            Vec::new()
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, pod, "listing the pod's events failed");
            Vec::new()
        }
        Err(_) => {
            tracing::debug!(pod, "listing the pod's events timed out");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ev(
        reason: &str,
        message: &str,
        kind: &str,
        at: i64,
        count: Option<i32>,
        uid: &str,
    ) -> Event {
        Event {
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(kind.into()),
            count,
            last_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::from_second(at).unwrap())),
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("p".into()),
                uid: Some(uid.into()),
                ..ObjectReference::default()
            },
            ..Event::default()
        }
    }

    #[test]
    fn newest_warnings_of_this_pod_first() {
        let events = [
            ev("Scheduled", "assigned", "Normal", 10, None, "u1"),
            ev(
                "FailedMount",
                "secret \"s\" not found",
                "Warning",
                20,
                Some(4),
                "u1",
            ),
            ev("Failed", "Error: ErrImagePull", "Warning", 30, None, "u1"),
            ev(
                "BackOff",
                "Back-off pulling image \"x\"",
                "Warning",
                40,
                Some(2),
                "u1",
            ),
            ev(
                "Failed",
                "an older pod of the same name",
                "Warning",
                50,
                None,
                "u0",
            ),
            ev(
                "FailedScheduling",
                "0/3 nodes\nare available",
                "Warning",
                5,
                None,
                "u1",
            ),
        ];
        let got = summarize(&events, "p", Some("u1"));
        assert_eq!(
            got,
            [
                "BackOff: Back-off pulling image \"x\" (×2)",
                "Failed: Error: ErrImagePull",
                "FailedMount: secret \"s\" not found (×4)",
            ]
        );
        assert_eq!(summarize(&events, "p", None).len(), SHOWN);
        assert_eq!(summarize(&events, "q", None), Vec::<String>::new());
        assert_eq!(
            suffix(&got[..1]),
            "; recent warning events: BackOff: Back-off pulling image \"x\" (×2)"
        );
        assert_eq!(suffix(&[]), "");
        assert_eq!(
            selector("p", Some("u1")),
            "involvedObject.kind=Pod,involvedObject.name=p,type=Warning,involvedObject.uid=u1"
        );
    }
}
