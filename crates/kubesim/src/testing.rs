//! Test support for crates that test against kubesim (the k8s hook): start a simulator on its own
//! runtime thread, create namespaces and a "runner" pod, tear everything down.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use kubesim::testing::Sim;
//! let sim = Sim::start(Default::default()).await?;
//! let ns = sim.create_namespace()?;
//! sim.create_runner_pod(&ns, "runner-1").await?;
//! // point the hook at sim.kubeconfig_path() ...
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tokio::sync::{OnceCell, oneshot};

use crate::config::{Authz, SimConfig};
use crate::faults::{Faults, KillMode};
use crate::kubeconfig::KubeconfigData;
use crate::sim::Simulator;
use crate::store::{Kind, Store};

/// A simulator running on a dedicated runtime thread, so it outlives any one test's runtime.
#[derive(Debug)]
pub struct Sim {
    temp_dir: Option<std::path::PathBuf>,
    kubeconfig_path: std::path::PathBuf,
    kubeconfig: KubeconfigData,
    instance: String,
    store: Arc<Store>,
    faults: Faults,
    authz: Authz,
    kubelet: Arc<crate::kubelet::Kubelet>,
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    done: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

static SHARED: OnceCell<Sim> = OnceCell::const_new();

impl Sim {
    /// Start a simulator.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<Sim> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("kubesim".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx
                            .send(Err(anyhow::anyhow!("building the kubesim runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let sim = match Simulator::start(cfg).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let (dir, owned) = sim.state_dir();
                    // Stopping is wired below, once the handle has reached the caller.
                    let handle = Sim {
                        temp_dir: owned.then(|| dir.to_path_buf()),
                        kubeconfig_path: sim.kubeconfig_path.clone(),
                        kubeconfig: sim.kubeconfig.clone(),
                        instance: sim.instance.clone(),
                        store: sim.store.clone(),
                        faults: sim.faults.clone(),
                        authz: sim.authz.clone(),
                        kubelet: sim.kubelet.clone(),
                        handle: tokio::runtime::Handle::current(),
                        stop: None,
                        done: std::sync::Mutex::new(None),
                    };
                    if ready_tx.send(Ok(handle)).is_err() {
                        sim.shutdown().await;
                        return;
                    }
                    let _ = stop_rx.await;
                    sim.shutdown().await;
                });
                let _ = done_tx.send(());
            })
            .context("spawning the kubesim thread")?;
        let mut sim = ready_rx.await.context("the kubesim thread died")??;
        sim.stop = Some(stop_tx);
        sim.done = std::sync::Mutex::new(Some(done_rx));
        Ok(sim)
    }

    /// One simulator shared by every test of this process (started on first use with default
    /// settings). It is never dropped: its containers are removed by a reaper process when the
    /// test process exits (and by the stale sweep of the next kubesim start as a fallback).
    pub async fn shared() -> anyhow::Result<&'static Sim> {
        SHARED
            .get_or_try_init(|| async {
                let sim = Sim::start(SimConfig::default()).await?;
                spawn_reaper(&sim.instance, sim.temp_dir.as_deref());
                Ok::<_, anyhow::Error>(sim)
            })
            .await
    }

    /// Path of the kubeconfig (token + CA) for this simulator.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }
    /// Server URL, CA and token.
    pub fn kubeconfig(&self) -> &KubeconfigData {
        &self.kubeconfig
    }
    /// Instance id (`kubesim.instance` label of its Docker containers).
    pub fn instance(&self) -> &str {
        &self.instance
    }
    /// Fault knobs.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
    /// Deny rules (403 + SelfSubjectAccessReview).
    pub fn authz(&self) -> &Authz {
        &self.authz
    }
    /// The object store (direct access, bypassing HTTP).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Create a namespace with a unique name.
    pub fn create_namespace(&self) -> anyhow::Result<String> {
        let name = format!(
            "kubesim-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        self.create_namespace_named(&name)?;
        Ok(name)
    }

    /// Create a namespace with this name.
    pub fn create_namespace_named(&self, name: &str) -> anyhow::Result<()> {
        let v =
            crate::objects::prepare_create(Kind::Namespace, json!({"metadata": {"name": name}}))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.store
            .create(Kind::Namespace, "", v)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    /// Create any pod (as `kubectl create` would) and return it as stored.
    pub fn create_pod(&self, ns: &str, pod: &Pod) -> anyhow::Result<Pod> {
        let v = serde_json::to_value(pod)?;
        let v = crate::objects::prepare_create(Kind::Pod, v).map_err(|e| anyhow::anyhow!("{e}"))?;
        let created = self
            .store
            .create(Kind::Pod, ns, v)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(serde_json::from_value(created)?)
    }

    /// Create a "runner" pod (busybox `sleep`, label `app=runner`, a `work` emptyDir at
    /// `/home/runner/_work`) and wait until it is Running.
    pub async fn create_runner_pod(&self, ns: &str, name: &str) -> anyhow::Result<Pod> {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "runner"}},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "volumes": [{"name": "work", "emptyDir": {}}],
                "containers": [{"name": "runner", "image": crate::config::SimConfig::default().sandbox_image,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "2147483647"],
                    "volumeMounts": [{"name": "work", "mountPath": "/home/runner/_work"}]}]
            }
        }))?;
        self.create_pod(ns, &pod)?;
        self.wait_for_pod(ns, name, Duration::from_secs(60), |p| {
            let phase = p["status"]["phase"].as_str().unwrap_or("");
            if phase == "Failed" || phase == "Succeeded" {
                return Some(Err(anyhow::anyhow!("runner pod ended: {phase}")));
            }
            (phase == "Running").then_some(Ok(()))
        })
        .await?;
        let v = self
            .store
            .get(Kind::Pod, ns, name)
            .context("runner pod vanished")?;
        Ok(serde_json::from_value(v)?)
    }

    /// Wait until `check` returns Some for the pod (None = keep waiting). The pod is passed as
    /// JSON (Null once deleted).
    pub async fn wait_for_pod<T>(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
        mut check: impl FnMut(&Value) -> Option<anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let mut rx = self.store.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let cur = self.store.get(Kind::Pod, ns, name).unwrap_or(Value::Null);
            if let Some(r) = check(&cur) {
                return r;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(_) => {}
                Err(_) => bail!(
                    "timed out waiting for pod {ns}/{name}; last status: {}",
                    cur["status"]
                ),
            }
        }
    }

    /// The Docker container id behind a pod's container (for baselines and debugging).
    pub fn kubelet_container_id(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> anyhow::Result<String> {
        self.kubelet
            .container_target(ns, pod, Some(container), false)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Bind the PersistentVolumeClaim `ns/claim` (created later, e.g. by the hook) to `dir`.
    pub fn set_claim_dir(&self, ns: &str, claim: &str, dir: &Path) {
        self.kubelet
            .set_claim_dir(&format!("{ns}/{claim}"), dir.to_path_buf());
    }

    /// Kill a pod's container (OOMKilled) or evict the pod.
    pub async fn kill_container(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        mode: KillMode,
    ) -> anyhow::Result<()> {
        let kl = self.kubelet.clone();
        let (ns, pod, c) = (
            ns.to_string(),
            pod.to_string(),
            container.map(str::to_string),
        );
        self.handle
            .spawn(async move { kl.kill(&ns, &pod, c.as_deref(), mode).await })
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Tells the simulator's thread to stop; the receiver hears when it has.
    fn signal_stop(&mut self) -> Option<std::sync::mpsc::Receiver<()>> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.done.lock().ok().and_then(|mut d| d.take())
    }

    /// Stop the simulator and remove everything it created.
    pub async fn shutdown(mut self) {
        if let Some(done) = self.signal_stop() {
            let _ = tokio::task::spawn_blocking(move || done.recv()).await;
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(done) = self.signal_stop() {
            let _ = done.recv_timeout(Duration::from_secs(60));
        }
    }
}

/// A detached shell that removes this instance's containers once this process is gone.
fn spawn_reaper(instance: &str, temp_dir: Option<&Path>) {
    let pid = std::process::id();
    // only a directory kubesim created itself (named after the instance) is removed
    let rm_dir = temp_dir
        .and_then(|d| d.to_str())
        .filter(|d| d.contains(&format!("kubesim-{instance}-")) && !d.contains('\''))
        .map(|d| format!("rm -rf '{d}';"))
        .unwrap_or_default();
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; ids=$(docker ps -aq --filter label=kubesim.instance={instance}); [ -n \"$ids\" ] && docker rm -f $ids >/dev/null 2>&1; {rm_dir} true"
    );
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}
