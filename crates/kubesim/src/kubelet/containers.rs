//! Container steps of a pod worker: image pulls (policy, credentials, back-off), create and
//! start with env/volumes resolved, wait and record the termination.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use serde_json::{Value, json};

use super::Kubelet;
use super::plan::{self, ContainerInputs, EnvSources};
use super::pull::credentials_for;
use super::runtime::LogRequest;
use super::status::CState;
use super::volumes::{self, HostVolume};
use super::worker::{Slot, Worker, docker_name, lock};
use crate::faults::KillMode;
use crate::store::{Kind, now_rfc3339};

struct StoreEnv<'a>(&'a Kubelet, &'a str);
impl EnvSources for StoreEnv<'_> {
    fn secret(&self, name: &str) -> Option<HashMap<String, Vec<u8>>> {
        self.0
            .store
            .get(Kind::Secret, self.1, name)
            .map(|o| plan::secret_data(&o))
    }
    fn config_map(&self, name: &str) -> Option<HashMap<String, String>> {
        let o = self.0.store.get(Kind::ConfigMap, self.1, name)?;
        Some(
            o["data"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }
}

impl Worker {
    /// Pull as the policy says; loops with ErrImagePull / ImagePullBackOff until it works.
    pub(super) async fn ensure_image(&self, slot: Slot, c: &Container) {
        let kl = &self.kl;
        let image = c.image.clone().unwrap_or_default();
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| "IfNotPresent".into());
        let mut attempt = 0u32;
        loop {
            let present = kl.runtime.image_present(&image).await.unwrap_or(false);
            if policy == "Never" {
                if present {
                    return;
                }
                let msg =
                    format!("Container image {image:?} is not present with pull policy of Never");
                self.warn(slot, "ErrImageNeverPull", msg.clone());
                self.warn_failed(slot, None, "ErrImageNeverPull");
                self.set_waiting(slot, "ErrImageNeverPull", Some(msg));
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            if policy == "IfNotPresent" && present {
                return;
            }
            let err = if kl.faults.pull_fails(&self.ns, &image) {
                Some("kubesim: injected pull failure".to_string())
            } else {
                let secrets: Vec<Value> = self
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.image_pull_secrets.clone())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|r| kl.store.get(Kind::Secret, &self.ns, &r.name))
                    .collect();
                let creds = credentials_for(&image, &secrets);
                let mut last = None;
                if creds.is_empty() {
                    last = kl
                        .runtime
                        .pull(&image, None)
                        .await
                        .err()
                        .map(|e| e.to_string());
                } else {
                    for cr in creds {
                        match kl.runtime.pull(&image, Some(cr)).await {
                            Ok(()) => {
                                last = None;
                                break;
                            }
                            Err(e) => last = Some(e.to_string()),
                        }
                    }
                }
                last
            };
            let Some(err) = err else { return };
            attempt += 1;
            let failed = format!("Failed to pull image {image:?}: {err}");
            self.warn_failed(slot, Some(failed.clone()), "ErrImagePull");
            self.set_waiting(slot, "ErrImagePull", Some(failed));
            tokio::time::sleep(Duration::from_millis(1000)).await;
            self.warn(slot, "BackOff", format!("Back-off pulling image {image:?}"));
            self.warn_failed(slot, None, "ImagePullBackOff");
            self.set_waiting(
                slot,
                "ImagePullBackOff",
                Some(format!("Back-off pulling image {image:?}: {err}")),
            );
            tokio::time::sleep(Duration::from_secs((1u64 << attempt.min(3)).min(10))).await;
        }
    }

    /// Pull, create and start a container; None if the pod went away.
    pub(super) async fn start_container(
        &self,
        slot: Slot,
        sandbox: &str,
        vols: &HashMap<String, HostVolume>,
        ip: &str,
    ) -> Option<String> {
        let kl = &self.kl;
        let c = self.spec_containers(slot);
        self.set_waiting(
            slot,
            if matches!(slot, Slot::Init(_)) {
                "PodInitializing"
            } else {
                "ContainerCreating"
            },
            None,
        );
        self.ensure_image(slot, &c).await;
        let env = loop {
            match plan::resolve_env(&self.pod, &c, ip, &StoreEnv(kl, &self.ns)) {
                Ok(e) => break e,
                Err(msg) => {
                    self.warn_failed(slot, None, &msg);
                    self.set_waiting(slot, "CreateContainerConfigError", Some(msg));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let binds = match volumes::binds(&c, vols) {
            Ok(b) => b,
            Err(msg) => {
                self.warn_failed(slot, None, &msg);
                self.set_waiting(slot, "CreateContainerConfigError", Some(msg));
                return std::future::pending().await;
            }
        };
        let term_dir = self.pod_dir.join("termination");
        let restarts = {
            let m = lock(&self.model);
            match slot {
                Slot::Init(i) => m.init[i].restart_count,
                Slot::App(i) => m.containers[i].restart_count,
            }
        };
        let term = term_dir.join(format!("{}-{restarts}", c.name));
        let _ = std::fs::create_dir_all(&term_dir);
        let _ = std::fs::write(&term, b"");
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&term, std::fs::Permissions::from_mode(0o666));
        let inputs = ContainerInputs {
            env,
            binds,
            sandbox_id: sandbox.to_string(),
            termination_file: Some(term.display().to_string()),
        };
        let body = plan::container_body(&kl.cfg.labels, &self.pod, &c, &inputs);
        let name = docker_name(&format!(
            "kubesim_{}_{}_{}_{}_{restarts}",
            c.name,
            self.name,
            self.ns,
            &self.uid[..8.min(self.uid.len())]
        ));
        let id = match kl.runtime.create(&name, body).await {
            Ok(id) => id,
            Err(e) => {
                self.warn_failed(slot, None, &e.to_string());
                self.set_waiting(slot, "CreateContainerError", Some(e.to_string()));
                return std::future::pending().await;
            }
        };
        lock(&self.created).push(id.clone());
        lock(&self.current).insert(slot, id.clone());
        let started = kl.runtime.start(&id).await;
        let image_id = kl.runtime.image_id(&id).await.unwrap_or_default();
        let now = now_rfc3339();
        if let Err(e) = &started {
            self.warn(slot, "Failed", format!("Error: {e}"));
        }
        match started {
            Ok(()) => self.set_slot(slot, |s| {
                s.state = CState::Running { started_at: now };
                s.container_id = Some(format!("docker://{id}"));
                s.image_id = image_id;
            }),
            Err(e) => self.set_slot(slot, |s| {
                s.state = CState::Terminated {
                    exit_code: 128,
                    reason: "StartError".into(),
                    message: Some(e.to_string()),
                    started_at: json!("1970-01-01T00:00:00Z"),
                    finished_at: now,
                    container_id: Some(format!("docker://{id}")),
                };
                s.container_id = Some(format!("docker://{id}"));
            }),
        }
        if !self.flush() {
            return None;
        }
        Some(id)
    }

    /// Wait for exit and record the terminated state; returns the exit code.
    pub(super) async fn wait_container(&self, slot: Slot, id: &str) -> i64 {
        let kl = &self.kl;
        if let Some(code) = {
            let m = lock(&self.model);
            match slot {
                Slot::Init(i) => m.init[i].terminated(),
                Slot::App(i) => m.containers[i].terminated(),
            }
        } {
            return code; // StartError
        }
        let info = match kl.runtime.wait(id).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(pod = %self.name, "waiting for container: {e}");
                super::runtime::ExitInfo {
                    code: 137,
                    oom_killed: false,
                    started_at: None,
                    finished_at: None,
                }
            }
        };
        let c = self.spec_containers(slot);
        let forced = lock(&self.overrides).remove(&c.name);
        let (code, reason) = if forced == Some(KillMode::OOMKilled) || info.oom_killed {
            (if info.code == 0 { 137 } else { info.code }, "OOMKilled")
        } else if info.code == 0 {
            (0, "Completed")
        } else {
            (info.code, "Error")
        };
        let mut message = self.termination_message(&c, slot).await;
        if message.is_empty()
            && code != 0
            && c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
        {
            message = self.log_tail(id).await;
        }
        let fin = now_rfc3339();
        self.set_slot(slot, |s| {
            let started_at = match &s.state {
                CState::Running { started_at } => started_at.clone(),
                _ => fin.clone(),
            };
            s.state = CState::Terminated {
                exit_code: code,
                reason: reason.into(),
                message: Some(message),
                started_at,
                finished_at: fin,
                container_id: s.container_id.clone(),
            };
            s.ready = false;
        });
        self.flush();
        code
    }

    async fn termination_message(&self, c: &Container, slot: Slot) -> String {
        let restarts = {
            let m = lock(&self.model);
            match slot {
                Slot::Init(i) => m.init[i].restart_count,
                Slot::App(i) => m.containers[i].restart_count,
            }
        };
        let p = self
            .pod_dir
            .join("termination")
            .join(format!("{}-{restarts}", c.name));
        let mut b = tokio::fs::read(&p).await.unwrap_or_default();
        b.truncate(4096);
        String::from_utf8_lossy(&b).into_owned()
    }

    async fn log_tail(&self, id: &str) -> String {
        use futures::StreamExt;
        let last = LogRequest {
            tail: Some(80),
            ..Default::default()
        };
        let mut s = self.kl.runtime.logs(id, last);
        let mut out = Vec::new();
        while let Some(Ok(b)) = s.next().await {
            out.extend_from_slice(&b);
        }
        let start = out.len().saturating_sub(2048);
        String::from_utf8_lossy(&out[start..]).into_owned()
    }
}
