//! The pod status as a kubelet writes it (pure model + rendering).
//! Checked against `pkg/kubelet/kubelet_pods.go` (generateAPIPodStatus, getPhase) and
//! `pkg/kubelet/status/generate.go` (GeneratePodReadyCondition & co).

use std::collections::HashMap;

use serde_json::{Value, json};

/// State of one container.
#[derive(Debug, Clone, PartialEq)]
pub enum CState {
    /// waiting with reason/message
    Waiting {
        reason: String,
        message: Option<String>,
    },
    /// running since
    Running { started_at: Value },
    /// exited
    Terminated {
        exit_code: i64,
        reason: String,
        message: Option<String>,
        started_at: Value,
        finished_at: Value,
        container_id: Option<String>,
    },
}

/// One container's status.
#[derive(Debug, Clone, PartialEq)]
pub struct CStatus {
    /// container name
    pub name: String,
    /// image as in the spec
    pub image: String,
    /// image id once known
    pub image_id: String,
    /// `docker://<id>` once created
    pub container_id: Option<String>,
    /// current state
    pub state: CState,
    /// previous termination (after a restart)
    pub last_state: Option<CState>,
    /// readiness
    pub ready: bool,
    /// startup probe passed (or none)
    pub started: bool,
    /// restarts
    pub restart_count: i32,
}

impl CStatus {
    /// A container not yet created.
    pub fn waiting(name: &str, image: &str, reason: &str) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            image_id: String::new(),
            container_id: None,
            state: CState::Waiting {
                reason: reason.into(),
                message: None,
            },
            last_state: None,
            ready: false,
            started: false,
            restart_count: 0,
        }
    }
    /// Whether it is running.
    pub fn running(&self) -> bool {
        matches!(self.state, CState::Running { .. })
    }
    /// Whether it exited.
    pub fn terminated(&self) -> Option<i64> {
        match self.state {
            CState::Terminated { exit_code, .. } => Some(exit_code),
            _ => None,
        }
    }
}

fn render_state(s: &CState) -> Value {
    match s {
        CState::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        }
        CState::Running { started_at } => json!({"running": {"startedAt": started_at}}),
        CState::Terminated {
            exit_code,
            reason,
            message,
            started_at,
            finished_at,
            container_id,
        } => {
            let mut t = json!({"exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at});
            if let Some(m) = message.as_ref().filter(|m| !m.is_empty()) {
                t["message"] = json!(m);
            }
            if let Some(c) = container_id {
                t["containerID"] = json!(c);
            }
            json!({"terminated": t})
        }
    }
}

fn render_container(c: &CStatus, init: bool) -> Value {
    let mut v = json!({
        "name": c.name, "image": c.image, "imageID": c.image_id,
        "state": render_state(&c.state),
        "lastState": c.last_state.as_ref().map(render_state).unwrap_or_else(|| json!({})),
        "ready": c.ready, "restartCount": c.restart_count,
    });
    if !init {
        v["started"] = json!(c.running() && c.started);
    }
    if let Some(id) = &c.container_id {
        v["containerID"] = json!(id);
    }
    v
}

/// The kubelet's view of a pod.
#[derive(Debug, Clone, Default)]
pub struct StatusModel {
    /// Pending / Running / Succeeded / Failed
    pub phase: String,
    /// pod-level reason (Evicted, ...)
    pub reason: Option<String>,
    /// pod-level message
    pub message: Option<String>,
    /// PodScheduled: (status, reason, message)
    pub scheduled: Option<(bool, Option<String>, Option<String>)>,
    /// sandbox up
    pub sandbox_ready: bool,
    /// init containers done
    pub initialized: bool,
    /// init container statuses
    pub init: Vec<CStatus>,
    /// app container statuses
    pub containers: Vec<CStatus>,
    /// pod IP
    pub pod_ip: Option<String>,
    /// start time
    pub start_time: Option<Value>,
    /// DisruptionTarget condition (reason, message)
    pub disruption: Option<(String, String)>,
    /// lastTransitionTime per condition type: (status, time)
    pub transitions: HashMap<String, (bool, Value)>,
}

impl StatusModel {
    /// Render `status` (also records condition transition times).
    pub fn render(&mut self, now: &Value) -> Value {
        let mut conds = Vec::new();
        let mut cond = |m: &mut HashMap<String, (bool, Value)>,
                        t: &str,
                        ok: bool,
                        reason: Option<String>,
                        msg: Option<String>| {
            let e = m.entry(t.to_string()).or_insert_with(|| (ok, now.clone()));
            if e.0 != ok {
                *e = (ok, now.clone());
            }
            let mut c = json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": e.1});
            if let Some(r) = reason {
                c["reason"] = json!(r);
            }
            if let Some(mm) = msg {
                c["message"] = json!(mm);
            }
            conds.push(c);
        };
        let completed = self.phase == "Succeeded" || self.phase == "Failed";
        if let Some((ok, r, m)) = self.scheduled.clone() {
            if ok {
                if let Some((reason, message)) = self.disruption.clone() {
                    cond(
                        &mut self.transitions,
                        "DisruptionTarget",
                        true,
                        Some(reason),
                        Some(message),
                    );
                }
                cond(
                    &mut self.transitions,
                    "PodReadyToStartContainers",
                    self.sandbox_ready && !completed,
                    None,
                    None,
                );
                let pending_init: Vec<&str> = self
                    .init
                    .iter()
                    .filter(|c| c.terminated() != Some(0))
                    .map(|c| c.name.as_str())
                    .collect();
                if self.initialized || pending_init.is_empty() {
                    cond(
                        &mut self.transitions,
                        "Initialized",
                        true,
                        completed.then(|| "PodCompleted".to_string()),
                        None,
                    );
                } else {
                    cond(
                        &mut self.transitions,
                        "Initialized",
                        false,
                        Some("ContainersNotInitialized".into()),
                        Some(format!(
                            "containers with incomplete status: [{}]",
                            pending_init.join(" ")
                        )),
                    );
                }
                let unready: Vec<&str> = self
                    .containers
                    .iter()
                    .filter(|c| !c.ready)
                    .map(|c| c.name.as_str())
                    .collect();
                let (ok, reason, msg) = if completed {
                    (false, Some("PodCompleted".to_string()), None)
                } else if unready.is_empty() {
                    (true, None, None)
                } else {
                    (
                        false,
                        Some("ContainersNotReady".to_string()),
                        Some(format!(
                            "containers with unready status: [{}]",
                            unready.join(" ")
                        )),
                    )
                };
                cond(
                    &mut self.transitions,
                    "Ready",
                    ok,
                    reason.clone(),
                    msg.clone(),
                );
                cond(&mut self.transitions, "ContainersReady", ok, reason, msg);
            }
            cond(&mut self.transitions, "PodScheduled", ok, r, m);
        }
        let mut st = json!({"phase": self.phase, "conditions": conds});
        if self.scheduled.as_ref().is_some_and(|s| s.0) {
            st["hostIP"] = json!("127.0.0.1");
            st["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
        }
        if let Some(ip) = &self.pod_ip {
            st["podIP"] = json!(ip);
            st["podIPs"] = json!([{"ip": ip}]);
        }
        if let Some(t) = &self.start_time {
            st["startTime"] = t.clone();
        }
        for (key, list, init) in [
            ("initContainerStatuses", &self.init, true),
            ("containerStatuses", &self.containers, false),
        ] {
            if !list.is_empty() {
                let rendered = list.iter().map(|c| render_container(c, init)).collect();
                st[key] = Value::Array(rendered);
            }
        }
        if let Some(r) = &self.reason {
            st["reason"] = json!(r);
        }
        if let Some(m) = &self.message {
            st["message"] = json!(m);
        }
        st
    }

    /// Phase from container states for restartPolicy Never/OnFailure/Always (`getPhase`).
    pub fn compute_phase(&self, restart_policy: &str) -> String {
        if self.phase == "Failed" && self.reason.is_some() {
            return self.phase.clone();
        }
        if self
            .init
            .iter()
            .any(|c| c.terminated().is_some_and(|c| c != 0))
            && restart_policy == "Never"
        {
            return "Failed".into();
        }
        if !self.initialized {
            return "Pending".into();
        }
        let running = self.containers.iter().filter(|c| c.running()).count();
        let waiting = self
            .containers
            .iter()
            .filter(|c| matches!(c.state, CState::Waiting { .. }))
            .count();
        let failed = self
            .containers
            .iter()
            .filter(|c| c.terminated().is_some_and(|c| c != 0))
            .count();
        let succeeded = self
            .containers
            .iter()
            .filter(|c| c.terminated() == Some(0))
            .count();
        let n = self.containers.len();
        if waiting > 0 && running == 0 && (failed + succeeded) == 0 {
            return "Pending".into();
        }
        if running > 0 || waiting > 0 {
            return "Running".into();
        }
        if succeeded + failed == n {
            return match restart_policy {
                "Always" => "Running".into(),
                "OnFailure" if failed > 0 => "Running".into(),
                _ if failed > 0 => "Failed".into(),
                _ => "Succeeded".into(),
            };
        }
        "Pending".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases() {
        let mut m = StatusModel {
            phase: "Pending".into(),
            initialized: true,
            ..Default::default()
        };
        m.containers
            .push(CStatus::waiting("a", "img", "ContainerCreating"));
        assert_eq!(m.compute_phase("Never"), "Pending");
        m.containers[0].state = CState::Running {
            started_at: json!("t"),
        };
        assert_eq!(m.compute_phase("Never"), "Running");
        m.containers[0].state = CState::Terminated {
            exit_code: 1,
            reason: "Error".into(),
            message: None,
            started_at: json!("t"),
            finished_at: json!("t"),
            container_id: None,
        };
        assert_eq!(m.compute_phase("Never"), "Failed");
        assert_eq!(m.compute_phase("OnFailure"), "Running");
    }

    #[test]
    fn render_snapshot() {
        let mut m = StatusModel {
            phase: "Running".into(),
            scheduled: Some((true, None, None)),
            sandbox_ready: true,
            initialized: true,
            pod_ip: Some("172.17.0.9".into()),
            start_time: Some(json!("2025-01-01T00:00:00Z")),
            ..Default::default()
        };
        let mut c = CStatus::waiting("app", "busybox:1", "ContainerCreating");
        c.state = CState::Running {
            started_at: json!("2025-01-01T00:00:01Z"),
        };
        c.container_id = Some("docker://abc".into());
        m.containers.push(c);
        m.containers
            .push(CStatus::waiting("side", "busybox:1", "ContainerCreating"));
        insta::assert_json_snapshot!(m.render(&json!("2025-01-01T00:00:02Z")));
    }
}
