//! One pod's lifecycle: schedule, volumes, sandbox, init containers, app containers, status,
//! termination.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::json;
use tokio::sync::watch;

use super::Kubelet;
use super::plan::{self, NODE_NAME};
use super::status::{CState, CStatus, StatusModel};
use super::volumes::{self, HostVolume, VolumeError};
use crate::faults::KillMode;
use crate::status::ApiError;
use crate::store::{Kind, now_rfc3339};

/// Why and how fast to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stop {
    pub grace: i64,
    /// the object is already gone (force delete): no status updates
    pub force: bool,
}

/// Which container slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Slot {
    Init(usize),
    App(usize),
}

pub(crate) struct Worker {
    pub(super) kl: Arc<Kubelet>,
    pub(super) pod: Pod,
    pub(super) ns: String,
    pub(super) name: String,
    pub(super) uid: String,
    pub(super) model: Mutex<StatusModel>,
    /// every Docker container created (sandbox first)
    pub(super) created: Mutex<Vec<String>>,
    /// current container of each slot
    pub(super) current: Mutex<HashMap<Slot, String>>,
    pub(super) overrides: Mutex<HashMap<String, KillMode>>,
    pub(super) evicted: AtomicBool,
    pub(super) pod_dir: PathBuf,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn docker_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl Worker {
    pub(super) fn new(kl: Arc<Kubelet>, pod: Pod) -> Self {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let model = StatusModel {
            phase: "Pending".into(),
            init: spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| {
                    CStatus::waiting(&c.name, c.image.as_deref().unwrap_or(""), "PodInitializing")
                })
                .collect(),
            containers: spec
                .containers
                .iter()
                .map(|c| {
                    let reason = if spec.init_containers.as_ref().is_some_and(|i| !i.is_empty()) {
                        "PodInitializing"
                    } else {
                        "ContainerCreating"
                    };
                    CStatus::waiting(&c.name, c.image.as_deref().unwrap_or(""), reason)
                })
                .collect(),
            ..Default::default()
        };
        let pod_dir = kl.cfg.state_dir.join("pods").join(&uid);
        Self {
            kl,
            pod,
            ns,
            name,
            uid,
            model: Mutex::new(model),
            created: Mutex::new(Vec::new()),
            current: Mutex::new(HashMap::new()),
            overrides: Mutex::new(HashMap::new()),
            evicted: AtomicBool::new(false),
            pod_dir,
        }
    }

    pub(super) fn spec_containers(&self, slot: Slot) -> Container {
        let spec = self.pod.spec.clone().unwrap_or_default();
        match slot {
            Slot::Init(i) => spec.init_containers.unwrap_or_default()[i].clone(),
            Slot::App(i) => spec.containers[i].clone(),
        }
    }

    pub(super) fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    /// Write the model into the pod's status. False when the pod is gone.
    pub(super) fn flush(&self) -> bool {
        let st = {
            let mut m = lock(&self.model);
            let policy = self.restart_policy();
            if m.scheduled.as_ref().is_some_and(|s| s.0) {
                m.phase = m.compute_phase(&policy);
            }
            m.render(&now_rfc3339())
        };
        let uid = self.uid.clone();
        self.kl
            .store
            .update(Kind::Pod, &self.ns, &self.name, move |o| {
                if o["metadata"]["uid"].as_str() != Some(uid.as_str()) {
                    return Err(ApiError::not_found("", "pods", ""));
                }
                let qos = o["status"]["qosClass"].clone();
                o["status"] = st;
                if !qos.is_null() {
                    o["status"]["qosClass"] = qos;
                }
                Ok(())
            })
            .is_ok()
    }

    pub(super) fn set_slot(&self, slot: Slot, f: impl FnOnce(&mut CStatus)) {
        let mut m = lock(&self.model);
        let c = match slot {
            Slot::Init(i) => &mut m.init[i],
            Slot::App(i) => &mut m.containers[i],
        };
        f(c);
    }

    pub(super) fn set_waiting(&self, slot: Slot, reason: &str, message: Option<String>) {
        self.set_slot(slot, |c| {
            c.state = CState::Waiting {
                reason: reason.into(),
                message,
            }
        });
        self.flush();
    }

    pub(super) async fn run(self: Arc<Self>, mut stop: watch::Receiver<Option<Stop>>) {
        let lifecycle = self.clone().lifecycle();
        tokio::pin!(lifecycle);
        let early = tokio::select! {
            _ = &mut lifecycle => None,
            v = stop.wait_for(Option::is_some) => Some(v.ok().and_then(|v| *v)),
        };
        let stop_value = match early {
            Some(v) => v,
            None => stop.wait_for(Option::is_some).await.ok().and_then(|v| *v),
        };
        let stop_value = stop_value.unwrap_or(Stop {
            grace: 0,
            force: true,
        });
        self.teardown(stop_value).await;
    }

    fn node_selector_ok(&self) -> bool {
        super::scheduling::fits(&self.pod, NODE_NAME, &plan::node_labels())
    }

    async fn lifecycle(self: Arc<Self>) {
        let kl = self.kl.clone();
        let delay = kl.faults.pod_start_delay(&self.ns, &self.name);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(n) = self.pod.spec.as_ref().and_then(|s| s.node_name.clone())
            && n != NODE_NAME
        {
            // bound to a node that does not exist: no kubelet ever picks it up
            return;
        }
        let unsched = kl.faults.unschedulable_for(&self.ns, &self.name);
        let selector_ok = self.node_selector_ok();
        if !unsched.is_zero() || !selector_ok {
            let msg = if selector_ok {
                "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
            } else {
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
            };
            lock(&self.model).scheduled =
                Some((false, Some("Unschedulable".into()), Some(msg.into())));
            self.flush();
            self.event(
                crate::events::SCHEDULER,
                "Warning",
                "FailedScheduling",
                msg.into(),
                None,
            );
            if !selector_ok {
                return std::future::pending().await;
            }
            tokio::time::sleep(unsched).await;
        }
        // bind
        let _ = kl.store.update(Kind::Pod, &self.ns, &self.name, |o| {
            if o["metadata"]["uid"].as_str() == Some(self.uid.as_str()) {
                o["spec"]["nodeName"] = json!(NODE_NAME);
            }
            Ok(())
        });
        {
            let mut m = lock(&self.model);
            m.scheduled = Some((true, None, None));
            m.start_time = Some(now_rfc3339());
        }
        if !self.flush() {
            return;
        }
        // volumes (retried while referenced objects are missing)
        let vols = loop {
            let res = volumes::prepare(&self.pod, &self.pod_dir, &kl.store, &|c| {
                kl.claim_dir(&self.ns, c)
            });
            match res {
                Ok(v) => break v,
                Err(VolumeError::Missing(m)) | Err(VolumeError::Io(m)) => {
                    tracing::debug!(pod = %self.name, "volumes not ready: {m}");
                    self.event(
                        crate::events::KUBELET,
                        "Warning",
                        "FailedMount",
                        format!("MountVolume.SetUp failed: {m}"),
                        None,
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        // sandbox
        let sandbox = loop {
            match self.create_sandbox().await {
                Ok(id) => break id,
                Err(e) => {
                    tracing::warn!(pod = %self.name, "sandbox: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let ip = kl.runtime.ip(&sandbox).await.ok().flatten();
        {
            let mut m = lock(&self.model);
            m.sandbox_ready = true;
            m.pod_ip = ip.clone();
        }
        self.flush();
        let ip = ip.unwrap_or_default();
        let spec = self.pod.spec.clone().unwrap_or_default();
        // init containers, in order, each to completion
        for i in 0..spec.init_containers.as_ref().map_or(0, Vec::len) {
            loop {
                let slot = Slot::Init(i);
                let Some(id) = self.start_container(slot, &sandbox, &vols, &ip).await else {
                    return;
                };
                let code = self.wait_container(slot, &id).await;
                if code == 0 {
                    break;
                }
                if self.restart_policy() == "Never" || self.evicted.load(Ordering::SeqCst) {
                    self.flush();
                    return;
                }
                self.crash_backoff(slot).await;
            }
        }
        lock(&self.model).initialized = true;
        self.flush();
        let mut ids = Vec::new();
        for i in 0..spec.containers.len() {
            let Some(id) = self
                .start_container(Slot::App(i), &sandbox, &vols, &ip)
                .await
            else {
                return;
            };
            ids.push(id);
        }
        let sups = ids.into_iter().enumerate().map(|(i, id)| {
            self.clone()
                .supervise(i, id, sandbox.clone(), vols.clone(), ip.clone())
        });
        futures::future::join_all(sups).await;
        self.flush();
    }

    async fn crash_backoff(&self, slot: Slot) {
        let (restarts, name) = {
            let m = lock(&self.model);
            let c = match slot {
                Slot::Init(i) => &m.init[i],
                Slot::App(i) => &m.containers[i],
            };
            (c.restart_count, c.name.clone())
        };
        let secs = (10u64 << restarts.min(5)).min(300);
        self.set_slot(slot, |c| {
            c.last_state = Some(c.state.clone());
            c.restart_count += 1;
        });
        self.warn(
            slot,
            "BackOff",
            format!(
                "Back-off restarting failed container {name} in pod {}_{}({})",
                self.name, self.ns, self.uid
            ),
        );
        self.set_waiting(
            slot,
            "CrashLoopBackOff",
            Some(format!(
                "back-off {secs}s restarting failed container={name} pod={}_{}({})",
                self.name, self.ns, self.uid
            )),
        );
        // kubesim backs off 1 s per restart (max 10 s) instead of 10 s doubling to keep tests quick
        tokio::time::sleep(Duration::from_secs((restarts as u64 + 1).min(10))).await;
    }

    async fn supervise(
        self: Arc<Self>,
        i: usize,
        mut id: String,
        sandbox: String,
        vols: HashMap<String, HostVolume>,
        ip: String,
    ) {
        let slot = Slot::App(i);
        loop {
            let probes = tokio::spawn(self.clone().probe_loop(i, id.clone()));
            let code = self.wait_container(slot, &id).await;
            probes.abort();
            let policy = self.restart_policy();
            let restart = !self.evicted.load(Ordering::SeqCst)
                && (policy == "Always" || (policy == "OnFailure" && code != 0));
            if !restart {
                return;
            }
            self.crash_backoff(slot).await;
            match self.start_container(slot, &sandbox, &vols, &ip).await {
                Some(new) => id = new,
                None => return,
            }
        }
    }

    async fn create_sandbox(&self) -> Result<String, String> {
        let kl = &self.kl;
        let body = plan::sandbox_body(&kl.cfg.labels, &self.pod, &kl.cfg.sandbox_image);
        let name = docker_name(&format!(
            "kubesim_{}_POD_{}_{}",
            self.name,
            self.ns,
            &self.uid[..8.min(self.uid.len())]
        ));
        let id = kl
            .runtime
            .create(&name, body)
            .await
            .map_err(|e| e.to_string())?;
        lock(&self.created).push(id.clone());
        kl.runtime.start(&id).await.map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// Kill fault: OOMKilled (one container) or Evicted (the whole pod).
    pub(super) async fn kill(
        &self,
        container: Option<&str>,
        mode: KillMode,
    ) -> Result<(), ApiError> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let targets: Vec<(Slot, String)> = match (mode, container) {
            (KillMode::Evicted, _) => spec
                .containers
                .iter()
                .enumerate()
                .map(|(i, c)| (Slot::App(i), c.name.clone()))
                .collect(),
            (KillMode::OOMKilled, Some(n)) => spec
                .containers
                .iter()
                .enumerate()
                .filter(|(_, c)| c.name == n)
                .map(|(i, c)| (Slot::App(i), c.name.clone()))
                .collect(),
            (KillMode::OOMKilled, None) => spec
                .containers
                .first()
                .map(|c| (Slot::App(0), c.name.clone()))
                .into_iter()
                .collect(),
        };
        if targets.is_empty() {
            return Err(ApiError::bad_request(format!(
                "container {} is not valid for pod {}",
                container.unwrap_or(""),
                self.name
            )));
        }
        if mode == KillMode::Evicted {
            self.event(
                crate::events::KUBELET,
                "Warning",
                "Evicted",
                "The node was low on resource: memory. ".into(),
                None,
            );
            self.evicted.store(true, Ordering::SeqCst);
            let mut m = lock(&self.model);
            m.phase = "Failed".into();
            m.reason = Some("Evicted".into());
            m.message = Some("The node was low on resource: memory. ".into());
            m.disruption = Some((
                "TerminationByKubelet".into(),
                "The node was low on resource: memory. ".into(),
            ));
        }
        for (slot, name) in targets {
            if mode == KillMode::OOMKilled {
                lock(&self.overrides).insert(name.clone(), mode);
            }
            let id = lock(&self.current).get(&slot).cloned();
            if let Some(id) = id {
                let _ = self.kl.runtime.kill(&id, "SIGKILL").await;
            }
        }
        self.flush();
        Ok(())
    }

    async fn teardown(self: Arc<Self>, stop: Stop) {
        let kl = self.kl.clone();
        let ids = lock(&self.created).clone();
        let (sandbox, rest) = ids
            .split_first()
            .map(|(s, r)| (Some(s.clone()), r.to_vec()))
            .unwrap_or((None, Vec::new()));
        futures::future::join_all(rest.iter().map(|id| kl.runtime.stop(id, stop.grace))).await;
        if !stop.force {
            // record how the running containers ended
            let current: Vec<(Slot, String)> = lock(&self.current)
                .iter()
                .map(|(s, i)| (*s, i.clone()))
                .collect();
            for (slot, id) in current {
                let running = {
                    let m = lock(&self.model);
                    match slot {
                        Slot::Init(i) => m.init[i].running(),
                        Slot::App(i) => m.containers[i].running(),
                    }
                };
                if running {
                    self.wait_container(slot, &id).await;
                }
            }
        }
        if let Some(s) = &sandbox {
            let _ = kl.runtime.stop(s, 0).await;
        }
        for id in rest.iter().chain(sandbox.iter()) {
            if let Err(e) = kl.runtime.remove(id).await {
                tracing::warn!(pod = %self.name, "removing container {id}: {e}");
            }
        }
        let _ = tokio::fs::remove_dir_all(&self.pod_dir).await;
        kl.forget(&self.uid);
        if !stop.force {
            let cur = kl.store.get(Kind::Pod, &self.ns, &self.name);
            let no_finalizers = cur.as_ref().is_some_and(|o| {
                o["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(Vec::is_empty)
            });
            if no_finalizers {
                kl.store
                    .remove_uid(Kind::Pod, &self.ns, &self.name, &self.uid);
            }
        }
    }
}
