//! Emulated builder pods: when a container's image is a configured Kaniko, BuildKit or crane
//! (the pusher) image, the kubelet does not run that image (it is not available offline, and Kaniko needs a real
//! root filesystem); this runtime wrapper performs the build the way the builder would, from
//! what the container really received:
//!
//! - its arguments (parsed and checked like the builder does: unknown or unsupported flags fail
//!   the container with the builder's message and exit code 1);
//! - its stdin (the gzipped tar of `--context=tar://stdin`, sent through `attach`; `stdinOnce`
//!   closes it when the first attach session ends);
//! - its volumes, seen through the pod's binds: the docker config projected from a registry
//!   secret (`/kaniko/.docker/config.json`, the pusher's `$DOCKER_CONFIG`), an emptyDir holding
//!   a context or the image tarball the builder writes and the pusher reads, the termination
//!   log the digest is written to.
//!
//! The build and the push go through the Docker Engine; the build output is the container's
//! log; the container ends with exit code 0, or 1 (reason `Error`) like the builder. Every
//! other image goes to the wrapped runtime untouched.

mod buildkit;
mod crane;
mod engine;
mod fs;
mod images;
mod kaniko;
mod logbuf;
mod process;

pub use images::{
    BuilderImages, BuilderKind, DEFAULT_BUILDKIT_IMAGES, DEFAULT_KANIKO_IMAGES,
    DEFAULT_PUSHER_IMAGES,
};
pub(crate) use process::Process;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::ContainerCreateBody;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::io::DuplexStream;
use tokio::sync::{OnceCell, watch};

use super::runtime::{
    Chan, ContainerRuntime, ExecRequest, ExitInfo, IoSession, LogRequest, RuntimeError, Streams,
    TtySize,
};
use crate::store::{Kind, Store};
use fs::Mounts;
use logbuf::LogBuf;

struct Virtual {
    kind: BuilderKind,
    image: String,
    body: ContainerCreateBody,
    log: Arc<LogBuf>,
    /// the writer end of stdin, handed to the first attach (stdinOnce)
    stdin_writer: Mutex<Option<DuplexStream>>,
    stdin_reader: Mutex<Option<DuplexStream>>,
    exit: watch::Sender<Option<ExitInfo>>,
    /// set when the process started
    started: std::sync::atomic::AtomicBool,
    /// a stop or kill: the exit code it ends with
    cancel: watch::Sender<Option<i64>>,
    scratch: tempfile::TempDir,
}

impl Virtual {
    fn end(&self, code: i64) {
        self.log.finish();
        self.exit.send_if_modified(|e| {
            if e.is_none() {
                *e = Some(ExitInfo {
                    code,
                    oom_killed: false,
                    started_at: None,
                    finished_at: None,
                });
                true
            } else {
                false
            }
        });
    }
}

/// A runtime running configured builder images as emulated builders and everything else on
/// the wrapped runtime.
pub struct BuilderRuntime {
    inner: Arc<dyn ContainerRuntime>,
    store: Arc<Store>,
    images: BuilderImages,
    docker: OnceCell<Docker>,
    virtuals: Mutex<HashMap<String, Arc<Virtual>>>,
}

impl std::fmt::Debug for BuilderRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuilderRuntime")
            .field("inner", &self.inner)
            .field("images", &self.images)
            .finish()
    }
}

/// Wraps `inner` so that builder images are emulated (the kubelet's single hook point).
pub fn wrap(
    inner: Arc<dyn ContainerRuntime>,
    store: Arc<Store>,
    images: BuilderImages,
) -> Arc<dyn ContainerRuntime> {
    Arc::new(BuilderRuntime {
        inner,
        store,
        images,
        docker: OnceCell::new(),
        virtuals: Mutex::new(HashMap::new()),
    })
}

impl BuilderRuntime {
    fn get(&self, id: &str) -> Option<Arc<Virtual>> {
        self.virtuals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    async fn docker(&self) -> Result<Docker, RuntimeError> {
        self.docker
            .get_or_try_init(|| async {
                Docker::connect_with_local_defaults()?
                    .with_timeout(std::time::Duration::from_secs(24 * 3600))
                    .negotiate_version()
                    .await
            })
            .await
            .cloned()
            .map_err(RuntimeError::from)
    }

    /// The pod and container spec behind a create body (kubelet labels).
    fn spec_of(&self, body: &ContainerCreateBody) -> (Option<Pod>, Option<Container>) {
        let labels = body.labels.clone().unwrap_or_default();
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let (ns, name, uid, cname) = (
            get("io.kubernetes.pod.namespace"),
            get("io.kubernetes.pod.name"),
            get("io.kubernetes.pod.uid"),
            get("io.kubernetes.container.name"),
        );
        let pod: Option<Pod> = self
            .store
            .get(Kind::Pod, &ns, &name)
            .filter(|p| p["metadata"]["uid"].as_str() == Some(uid.as_str()))
            .and_then(|p| serde_json::from_value(p).ok());
        let container = pod.as_ref().and_then(|p| p.spec.as_ref()).and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == cname)
                .cloned()
        });
        (pod, container)
    }

    /// Stops the process: it is cancelled (its image tags are removed) and ends with `code`.
    fn terminate(&self, v: &Virtual, code: i64) {
        v.cancel.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(code);
                true
            } else {
                false
            }
        });
        if !v.started.load(std::sync::atomic::Ordering::SeqCst) {
            v.end(code);
        }
    }
}

fn new_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[async_trait]
impl ContainerRuntime for BuilderRuntime {
    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        if self.images.kind_of(image).is_some() {
            return Ok(true);
        }
        self.inner.image_present(image).await
    }

    async fn pull(
        &self,
        image: &str,
        creds: Option<DockerCredentials>,
    ) -> Result<(), RuntimeError> {
        if self.images.kind_of(image).is_some() {
            return Ok(());
        }
        self.inner.pull(image, creds).await
    }

    async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, RuntimeError> {
        let image = body.image.clone().unwrap_or_default();
        let Some(kind) = self.images.kind_of(&image) else {
            return self.inner.create(name, body).await;
        };
        let (writer, reader) = tokio::io::duplex(256 * 1024);
        let with_stdin = body.open_stdin == Some(true);
        let scratch = tempfile::Builder::new()
            .prefix("kubesim-builder-")
            .tempdir()
            .map_err(|e| RuntimeError::Other(format!("creating the builder's filesystem: {e}")))?;
        let v = Virtual {
            kind,
            image,
            body,
            log: Arc::new(LogBuf::default()),
            // No stdin: the process reads EOF at once.
            stdin_writer: Mutex::new(with_stdin.then_some(writer)),
            stdin_reader: Mutex::new(Some(reader)),
            exit: watch::channel(None).0,
            started: std::sync::atomic::AtomicBool::new(false),
            cancel: watch::channel(None).0,
            scratch,
        };
        let id = new_id();
        self.virtuals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), Arc::new(v));
        tracing::debug!(name, id, "emulated builder container created");
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let Some(v) = self.get(id) else {
            return self.inner.start(id).await;
        };
        let docker = self.docker().await?;
        let (pod, container) = self.spec_of(&v.body);
        let stdin = v
            .stdin_reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| RuntimeError::Other("container already started".into()))?;
        let env = v
            .body
            .env
            .iter()
            .flatten()
            .filter_map(|e| {
                e.split_once('=')
                    .map(|(k, val)| (k.to_string(), val.to_string()))
            })
            .collect();
        let process = Process {
            command: v.body.entrypoint.clone().filter(|c| !c.is_empty()),
            args: v.body.cmd.clone().unwrap_or_default(),
            env,
            user: v.body.user.clone(),
            mounts: Mounts::from_binds(
                &v.body
                    .host_config
                    .as_ref()
                    .and_then(|h| h.binds.clone())
                    .unwrap_or_default(),
            ),
            stdin,
            log: v.log.clone(),
            docker,
            pod,
            container,
            scratch: v.scratch.path().to_owned(),
            tags: Arc::new(Mutex::new(Vec::new())),
        };
        let me = v.clone();
        let tags = process.tags.clone();
        let docker = process.docker.clone();
        let mut cancel = v.cancel.subscribe();
        v.started.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::spawn(async move {
            let run = async {
                match me.kind {
                    BuilderKind::Kaniko => kaniko::run(process).await,
                    BuilderKind::BuildKit => buildkit::run(process).await,
                    BuilderKind::Crane => crane::run(process).await,
                }
            };
            let code = tokio::select! {
                code = run => code,
                c = cancel.wait_for(Option::is_some) => c.ok().and_then(|c| *c).unwrap_or(137),
            };
            // Whatever the process tagged in the engine goes (a cancelled build included).
            let tags: Vec<String> = tags
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..)
                .collect();
            for t in tags {
                engine::untag(&docker, &t).await;
            }
            me.end(code);
        });
        Ok(())
    }

    async fn wait(&self, id: &str) -> Result<ExitInfo, RuntimeError> {
        let Some(v) = self.get(id) else {
            return self.inner.wait(id).await;
        };
        let mut rx = v.exit.subscribe();
        let info = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| RuntimeError::Other("the builder vanished".into()))?;
        Ok(info.clone().unwrap_or(ExitInfo {
            code: 137,
            oom_killed: false,
            started_at: None,
            finished_at: None,
        }))
    }

    async fn ip(&self, id: &str) -> Result<Option<String>, RuntimeError> {
        if self.get(id).is_some() {
            return Ok(None);
        }
        self.inner.ip(id).await
    }

    async fn image_id(&self, id: &str) -> Result<String, RuntimeError> {
        match self.get(id) {
            Some(v) => Ok(format!("kubesim-emulated://{}", v.image)),
            None => self.inner.image_id(id).await,
        }
    }

    async fn stop(&self, id: &str, grace: i64) -> Result<(), RuntimeError> {
        match self.get(id) {
            // SIGTERM ends the builder at once (143); a zero grace is SIGKILL (137).
            Some(v) => {
                self.terminate(&v, if grace == 0 { 137 } else { 143 });
                Ok(())
            }
            None => self.inner.stop(id, grace).await,
        }
    }

    async fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError> {
        match self.get(id) {
            Some(v) => {
                self.terminate(
                    &v,
                    if signal.ends_with("KILL") || signal == "9" {
                        137
                    } else {
                        143
                    },
                );
                Ok(())
            }
            None => self.inner.kill(id, signal).await,
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let v = self
            .virtuals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        match v {
            Some(v) => {
                self.terminate(&v, 137);
                Ok(())
            }
            None => self.inner.remove(id).await,
        }
    }

    async fn exec(&self, id: &str, req: ExecRequest) -> Result<IoSession, RuntimeError> {
        match self.get(id) {
            Some(v) => Err(RuntimeError::Other(format!(
                "OCI runtime exec failed: exec failed: unable to start container process: exec: {:?}: kubesim emulates {} and cannot exec in it",
                req.command.first().cloned().unwrap_or_default(),
                v.image
            ))),
            None => self.inner.exec(id, req).await,
        }
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<i64, RuntimeError> {
        self.inner.exec_exit_code(exec_id).await
    }

    async fn attach(&self, id: &str, streams: Streams) -> Result<IoSession, RuntimeError> {
        let Some(v) = self.get(id) else {
            return self.inner.attach(id, streams).await;
        };
        let input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>> = match streams.stdin {
            // stdinOnce: only the first session gets the stream; closing it is EOF.
            true => match v
                .stdin_writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                Some(w) => Box::pin(w),
                None => Box::pin(tokio::io::sink()),
            },
            false => Box::pin(tokio::io::sink()),
        };
        let log = v.log.clone();
        let exit = v.exit.subscribe();
        // Output from now on; the stream ends with the container.
        let output: BoxStream<'static, Result<(Chan, Bytes), RuntimeError>> =
            if streams.stdout || streams.stderr {
                log.from(log.written(), true)
                    .map(|r| r.map(|b| (Chan::Stdout, b)))
                    .boxed()
            } else {
                futures::stream::unfold(exit, |mut rx| async move {
                    let _ = rx.wait_for(Option::is_some).await;
                    None
                })
                .boxed()
            };
        Ok(IoSession {
            output,
            input,
            exec_id: None,
        })
    }

    async fn resize(
        &self,
        id: &str,
        exec: Option<&str>,
        size: TtySize,
    ) -> Result<(), RuntimeError> {
        if self.get(id).is_some() {
            return Ok(());
        }
        self.inner.resize(id, exec, size).await
    }

    fn logs(&self, id: &str, req: LogRequest) -> BoxStream<'static, Result<Bytes, RuntimeError>> {
        match self.get(id) {
            Some(v) => v.log.stream(req.follow, req.tail),
            None => self.inner.logs(id, req),
        }
    }

    async fn remove_labelled(&self, label: &str, value: &str) -> Result<usize, RuntimeError> {
        let gone: Vec<Arc<Virtual>> = {
            let mut map = self.virtuals.lock().unwrap_or_else(|p| p.into_inner());
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, v)| {
                    v.body
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(label))
                        .is_some_and(|x| x == value)
                })
                .map(|(k, _)| k.clone())
                .collect();
            ids.iter().filter_map(|i| map.remove(i)).collect()
        };
        for v in &gone {
            self.terminate(v, 137);
        }
        Ok(gone.len() + self.inner.remove_labelled(label, value).await?)
    }

    async fn list_labelled(
        &self,
        label: &str,
    ) -> Result<Vec<(String, HashMap<String, String>)>, RuntimeError> {
        self.inner.list_labelled(label).await
    }
}
