//! The node agent: watches pods in the store and runs them as Docker containers.

pub mod builder;
mod containers;
pub mod plan;
mod probes;
pub mod pull;
mod recorder;
pub mod runtime;
mod scheduling;
pub mod status;
pub mod volumes;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::faults::{Faults, KillMode};
use crate::status::ApiError;
use crate::store::{EventType, Kind, Store, meta_str};
use plan::Labels;
use runtime::ContainerRuntime;
use worker::{Stop, Worker};

/// Kubelet settings.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// sandbox image (present locally)
    pub sandbox_image: String,
    /// where pod directories live
    pub state_dir: PathBuf,
    /// static PVC -> host dir map
    pub volumes: BTreeMap<String, PathBuf>,
    /// root for other PVCs
    pub dynamic_volume_root: PathBuf,
    /// Docker labels
    pub labels: Labels,
}

struct WorkerHandle {
    stop: watch::Sender<Option<Stop>>,
    worker: Arc<Worker>,
}

/// The kubelet.
pub struct Kubelet {
    runtime: Arc<dyn ContainerRuntime>,
    store: Arc<Store>,
    faults: Faults,
    cfg: KubeletConfig,
    workers: Mutex<HashMap<String, WorkerHandle>>,
    claims: Mutex<HashMap<(String, String), PathBuf>>,
    claim_dirs: Mutex<BTreeMap<String, PathBuf>>,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet").field("cfg", &self.cfg).finish()
    }
}

fn uid_of(o: &Value) -> String {
    o["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

impl Kubelet {
    /// A kubelet on a runtime.
    pub fn new(
        runtime: Arc<dyn ContainerRuntime>,
        store: Arc<Store>,
        faults: Faults,
        cfg: KubeletConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            runtime,
            store,
            faults,
            workers: Mutex::new(HashMap::new()),
            claims: Mutex::new(HashMap::new()),
            claim_dirs: Mutex::new(cfg.volumes.clone()),
            cfg,
        })
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<dyn ContainerRuntime> {
        &self.runtime
    }

    /// Whether a worker still owns the pod with this uid.
    pub fn is_managing(&self, uid: &str) -> bool {
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(uid)
    }

    fn spawn_worker(self: &Arc<Self>, pod: &Value) {
        let uid = uid_of(pod);
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if workers.contains_key(&uid) {
            return;
        }
        let Ok(p) = serde_json::from_value(pod.clone()) else {
            return;
        };
        let (tx, rx) = watch::channel(None);
        let w = Arc::new(Worker::new(self.clone(), p));
        workers.insert(
            uid,
            WorkerHandle {
                stop: tx,
                worker: w.clone(),
            },
        );
        tokio::spawn(w.run(rx));
    }

    pub(crate) fn forget(&self, uid: &str) {
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }

    fn stop_worker(&self, uid: &str, stop: Stop) {
        if let Some(h) = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
        {
            h.stop.send_if_modified(|cur| match cur {
                Some(c) if c.grace <= stop.grace && (c.force || !stop.force) => false,
                _ => {
                    *cur = Some(stop);
                    true
                }
            });
        }
    }

    /// The controller loop (runs until the store goes away).
    pub async fn run(self: Arc<Self>) {
        let mut rx = self.store.subscribe();
        // Pods created before this task first ran (the simulator's start returns before it
        // does; under load a test's first pods come first) are in no event we will receive.
        self.resync();
        loop {
            match rx.recv().await {
                Ok(ev) if ev.kind == Kind::Pod => {
                    let uid = uid_of(&ev.object);
                    match ev.etype {
                        EventType::Added => self.spawn_worker(&ev.object),
                        EventType::Modified => {
                            if let Some(g) =
                                ev.object["metadata"]["deletionGracePeriodSeconds"].as_i64()
                            {
                                self.stop_worker(
                                    &uid,
                                    Stop {
                                        grace: g,
                                        force: false,
                                    },
                                );
                            }
                        }
                        EventType::Deleted => self.stop_worker(
                            &uid,
                            Stop {
                                grace: 0,
                                force: true,
                            },
                        ),
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.resync(),
                Err(_) => return,
            }
        }
    }

    fn resync(self: &Arc<Self>) {
        let (pods, _) = self.store.list(Kind::Pod, None);
        let live: HashMap<String, Value> = pods.into_iter().map(|p| (uid_of(&p), p)).collect();
        for p in live.values() {
            self.spawn_worker(p);
            if let Some(g) = p["metadata"]["deletionGracePeriodSeconds"].as_i64() {
                self.stop_worker(
                    &uid_of(p),
                    Stop {
                        grace: g,
                        force: false,
                    },
                );
            }
        }
        let known: Vec<String> = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for uid in known.iter().filter(|u| !live.contains_key(*u)) {
            self.stop_worker(
                uid,
                Stop {
                    grace: 0,
                    force: true,
                },
            );
        }
    }

    /// Bind a new PVC to its host directory (status Bound).
    pub fn bind_claim(&self, pvc: &Value) {
        let ns = meta_str(pvc, "namespace").to_string();
        let name = meta_str(pvc, "name").to_string();
        let dir = {
            let map = self.claim_dirs.lock().unwrap_or_else(|p| p.into_inner());
            volumes::claim_host_dir(&map, &self.cfg.dynamic_volume_root, &ns, &name)
        };
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), "cannot create the claim's directory: {e}");
            return;
        }
        self.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((ns.clone(), name.clone()), dir);
        let uid = uid_of(pvc);
        let _ = self
            .store
            .update(Kind::PersistentVolumeClaim, &ns, &name, |o| {
                o["spec"]["volumeName"] = json!(format!("pvc-{uid}"));
                o["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
                o["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = json!("yes");
                o["status"] = volumes::bound_status(o);
                Ok(())
            });
    }

    /// Choose the host directory a claim (`namespace/name`, or `name` for any namespace) binds
    /// to when it is created later.
    pub fn set_claim_dir(&self, claim: &str, dir: PathBuf) {
        self.claim_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(claim.to_string(), dir);
    }

    pub(crate) fn claim_dir(&self, ns: &str, name: &str) -> Option<PathBuf> {
        self.store.get(Kind::PersistentVolumeClaim, ns, name)?;
        self.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Resolve the Docker container behind `pod`/`container` for exec, attach or logs, with the
    /// apiserver's errors. `need_running` for exec/attach.
    pub fn container_target(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        need_running: bool,
    ) -> Result<String, ApiError> {
        let p = self.store.get_or_404(Kind::Pod, ns, pod)?;
        let names_in = |list: &str| -> Vec<String> {
            p["spec"][list]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        };
        let (names, init_names) = (names_in("containers"), names_in("initContainers"));
        let cname = match container.filter(|c| !c.is_empty()) {
            Some(c) => c.to_string(),
            None if names.len() == 1 => names[0].clone(),
            None => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod}, choose one of: [{}]",
                    names.join(" ")
                )));
            }
        };
        if !names.contains(&cname) && !init_names.contains(&cname) {
            let mut msg = format!("container {cname} is not valid for pod {pod}");
            if need_running {
                msg = format!("container {cname} is not valid for pod {pod}");
            }
            return Err(ApiError::bad_request(msg));
        }
        let phase = p["status"]["phase"].as_str().unwrap_or_default();
        if need_running && (phase == "Succeeded" || phase == "Failed") {
            return Err(ApiError::bad_request(format!(
                "cannot exec into a container in a completed pod; current phase is {phase}"
            )));
        }
        let statuses = p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(
                p["status"]["initContainerStatuses"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            );
        let st = statuses.into_iter().find(|s| s["name"] == cname.as_str());
        let waiting = |st: Option<&Value>| {
            st.and_then(|s| s["state"]["waiting"]["reason"].as_str().map(str::to_string))
                .unwrap_or_else(|| "ContainerCreating".into())
        };
        let Some(st) = st.filter(|s| s["containerID"].is_string()) else {
            return Err(ApiError::bad_request(format!(
                "container {cname:?} in pod {pod:?} is waiting to start: {}",
                waiting(st)
            )));
        };
        if need_running && st["state"]["running"].is_null() {
            return Err(ApiError::bad_request(format!(
                "unable to upgrade connection: container not found ({cname:?})"
            )));
        }
        let id = st["containerID"].as_str().unwrap_or_default();
        Ok(id.strip_prefix("docker://").unwrap_or(id).to_string())
    }

    /// Kill a container (OOMKilled) or evict the pod (every container).
    pub async fn kill(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        mode: KillMode,
    ) -> Result<(), ApiError> {
        let p = self.store.get_or_404(Kind::Pod, ns, pod)?;
        let w = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&uid_of(&p))
            .map(|h| h.worker.clone())
            .ok_or_else(|| {
                ApiError::bad_request(format!("pod {pod} is not running on this node"))
            })?;
        w.kill(container, mode).await
    }

    /// Remove every container of this simulator instance.
    pub async fn remove_all(&self) -> usize {
        self.runtime
            .remove_labelled("kubesim.instance", &self.cfg.labels.instance)
            .await
            .unwrap_or(0)
    }
}
