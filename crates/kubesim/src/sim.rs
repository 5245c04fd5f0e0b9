//! Starting and stopping one simulator (API server + kubelet + garbage collector).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::config::{Authz, SimConfig};
use crate::faults::Faults;
use crate::kubeconfig::{KubeconfigData, render};
use crate::kubelet::plan::Labels;
use crate::kubelet::runtime::{ContainerRuntime, DockerRuntime, RuntimeError};
use crate::kubelet::{Kubelet, KubeletConfig};
use crate::server::{AppState, router};
use crate::store::{Kind, Store};

/// Errors starting a simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Docker is not reachable
    #[error("cannot use the Docker engine: {0}")]
    Docker(#[from] RuntimeError),
    /// sandbox image missing
    #[error(
        "the sandbox image {0:?} is not in the local Docker engine (build it first, e.g. `cargo xtask testenv up`)"
    )]
    SandboxImage(String),
    /// TLS material
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// filesystem / socket trouble
    #[error("{what}: {source}")]
    Io {
        /// what we were doing
        what: String,
        /// the error
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SimError {
    let what = what.into();
    move |source| SimError::Io { what, source }
}

/// A running simulator (its tasks live on the runtime that started it).
#[derive(Debug)]
pub struct Simulator {
    /// `https://127.0.0.1:<port>`
    pub server: String,
    /// instance id (the `kubesim.instance` label value of its Docker objects)
    pub instance: String,
    /// where the kubeconfig was written
    pub kubeconfig_path: PathBuf,
    /// kubeconfig contents
    pub kubeconfig: KubeconfigData,
    /// the object store
    pub store: Arc<Store>,
    /// fault knobs
    pub faults: Faults,
    /// deny rules
    pub authz: Authz,
    /// the kubelet
    pub kubelet: Arc<Kubelet>,
    handle: Handle,
    tasks: Vec<JoinHandle<()>>,
    state_dir: PathBuf,
    remove_state_dir: bool,
}

/// Remove Docker containers left by kubesim processes that no longer exist.
pub async fn sweep_stale(rt: &dyn ContainerRuntime) -> usize {
    let Ok(list) = rt.list_labelled("kubesim.pid").await else {
        return 0;
    };
    let mut n = 0;
    for (id, labels) in list {
        let alive = labels
            .get("kubesim.pid")
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive && labels.contains_key("kubesim.instance") && rt.remove(&id).await.is_ok() {
            n += 1;
        }
    }
    n
}

impl Simulator {
    /// Start on the current Tokio runtime.
    pub async fn start(cfg: SimConfig) -> Result<Self, SimError> {
        let docker = DockerRuntime::connect().await?;
        let rt: Arc<dyn ContainerRuntime> = Arc::new(docker);
        Self::start_with_runtime(cfg, rt).await
    }

    /// Start with a given container runtime (e.g. a wrapper handling special images).
    pub async fn start_with_runtime(
        cfg: SimConfig,
        rt: Arc<dyn ContainerRuntime>,
    ) -> Result<Self, SimError> {
        if !rt.image_present(&cfg.sandbox_image).await? {
            return Err(SimError::SandboxImage(cfg.sandbox_image.clone()));
        }
        let swept = sweep_stale(rt.as_ref()).await;
        if swept > 0 {
            tracing::info!(swept, "removed containers of dead kubesim processes");
        }
        let instance = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let (state_dir, remove_state_dir) = match &cfg.state_dir {
            Some(d) => (d.clone(), false),
            None => {
                let d = tempfile::Builder::new()
                    .prefix(&format!("kubesim-{instance}-"))
                    .tempdir()
                    .map_err(io_err("creating a state directory"))?;
                (d.keep(), true)
            }
        };
        std::fs::create_dir_all(&state_dir)
            .map_err(io_err(format!("creating {}", state_dir.display())))?;
        let store = Store::new(cfg.watch_history);
        for ns in [
            cfg.default_namespace.as_str(),
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
        ] {
            if store.get(Kind::Namespace, "", ns).is_none() {
                let v = crate::objects::prepare_create(
                    Kind::Namespace,
                    json!({"metadata": {"name": ns}}),
                )
                .map_err(|e| SimError::Io {
                    what: format!("namespace {ns}"),
                    source: std::io::Error::other(e.to_string()),
                })?;
                let _ = store.create(Kind::Namespace, "", v);
            }
        }
        let faults = Faults::new(cfg.faults.clone());
        let authz = Authz::new(cfg.deny.clone());
        let rt = crate::kubelet::builder::wrap(rt, store.clone(), cfg.builders.clone());
        let kubelet = Kubelet::new(
            rt,
            store.clone(),
            faults.clone(),
            KubeletConfig {
                sandbox_image: cfg.sandbox_image.clone(),
                state_dir: state_dir.clone(),
                volumes: cfg.volumes.clone(),
                dynamic_volume_root: cfg
                    .dynamic_volume_root
                    .clone()
                    .unwrap_or_else(|| state_dir.join("pv")),
                labels: Labels {
                    instance: instance.clone(),
                    pid: std::process::id(),
                },
            },
        );
        let tls = crate::tls::generate()?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", cfg.port))
            .map_err(io_err("binding 127.0.0.1"))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("configuring the listener"))?;
        let addr = listener
            .local_addr()
            .map_err(io_err("reading the listener address"))?;
        let token = cfg
            .token
            .clone()
            .unwrap_or_else(|| format!("kubesim-{}", uuid::Uuid::new_v4().simple()));
        let state = AppState {
            store: store.clone(),
            faults: faults.clone(),
            authz: authz.clone(),
            kubelet: kubelet.clone(),
            token: token.clone().into(),
            user: cfg.user.clone().into(),
            address: addr.to_string().into(),
        };
        let handle = Handle::new();
        let server = axum_server::from_tcp_rustls(
            listener,
            RustlsConfig::from_config(tls.server_config.clone()),
        )
        .handle(handle.clone())
        .serve(router(state.clone()).into_make_service());
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(kubelet.clone().run()));
        tasks.push(tokio::spawn(crate::gc::run(state)));
        tasks.push(tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!("kubesim server: {e}");
            }
        }));
        let server_url = format!("https://{addr}");
        let kubeconfig = KubeconfigData {
            server: server_url.clone(),
            ca_pem: tls.ca_pem.clone(),
            token,
            namespace: cfg.default_namespace.clone(),
        };
        let kubeconfig_path = cfg
            .kubeconfig_path
            .clone()
            .unwrap_or_else(|| state_dir.join("kubeconfig"));
        std::fs::write(&kubeconfig_path, render(&kubeconfig))
            .map_err(io_err(format!("writing {}", kubeconfig_path.display())))?;
        tracing::info!(server = %server_url, kubeconfig = %kubeconfig_path.display(), instance, "kubesim is up");
        Ok(Self {
            server: server_url,
            instance,
            kubeconfig_path,
            kubeconfig,
            store,
            faults,
            authz,
            kubelet,
            handle,
            tasks,
            state_dir,
            remove_state_dir,
        })
    }

    /// The state directory (pod volumes, termination files, kubeconfig by default) and whether
    /// shutdown removes it (true when kubesim created it).
    pub fn state_dir(&self) -> (&std::path::Path, bool) {
        (&self.state_dir, self.remove_state_dir)
    }

    /// Stop serving, remove every Docker object and the state directory.
    pub async fn shutdown(mut self) -> usize {
        self.handle.shutdown();
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let n = self.kubelet.remove_all().await;
        if self.remove_state_dir {
            let _ = tokio::fs::remove_dir_all(&self.state_dir).await;
        }
        n
    }
}
