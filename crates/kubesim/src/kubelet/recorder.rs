//! The events a kubelet (and the scheduler) records about a pod, through
//! [`crate::events::record`].

use super::worker::{Slot, Worker};
use crate::events::{self, PodEvent, Reporter};
use crate::store::Kind;

impl Worker {
    /// Records an event about this pod (or the container in `slot`), if the pod still exists.
    pub(super) fn event(
        &self,
        by: Reporter<'_>,
        type_: &str,
        reason: &str,
        message: String,
        slot: Option<Slot>,
    ) {
        let Some(pod) = self.kl.store.get(Kind::Pod, &self.ns, &self.name) else {
            return;
        };
        if pod["metadata"]["uid"].as_str() != Some(self.uid.as_str()) {
            return;
        }
        let field_path = slot.map(|s| {
            let c = self.spec_containers(s);
            match s {
                Slot::Init(_) => format!("spec.initContainers{{{}}}", c.name),
                Slot::App(_) => format!("spec.containers{{{}}}", c.name),
            }
        });
        events::record(
            &self.kl.store,
            &pod,
            by,
            PodEvent {
                type_,
                reason,
                message,
                field_path,
            },
        );
    }

    /// A kubelet Warning about the container in `slot`.
    pub(super) fn warn(&self, slot: Slot, reason: &str, message: String) {
        self.event(events::KUBELET, "Warning", reason, message, Some(slot));
    }

    /// The kubelet's pair for a container that cannot be created or started: the cause, then
    /// `Error: <waiting reason>` (`kuberuntime_container.go` / `pod_workers.go`).
    pub(super) fn warn_failed(&self, slot: Slot, cause: Option<String>, waiting: &str) {
        if let Some(c) = cause {
            self.warn(slot, "Failed", c);
        }
        self.warn(slot, "Failed", format!("Error: {waiting}"));
    }
}
