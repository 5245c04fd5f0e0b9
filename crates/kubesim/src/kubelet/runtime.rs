//! The container-runtime layer the kubelet drives. [`ContainerRuntime`] is a trait so special
//! images (e.g. a Kaniko executor performed by the engine itself) can be handled by a wrapper
//! runtime; [`DockerRuntime`] is the real implementation on the Docker Engine (bollard).

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ContainerSummary};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, KillContainerOptions,
    ListContainersOptions, LogsOptions, RemoveContainerOptions, ResizeContainerTTYOptions,
    ResizeExecOptions, StopContainerOptions,
};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::AsyncWrite;

/// Runtime failures (message is what ends up in pod status / Status objects).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// the engine answered with an error
    #[error("{0}")]
    Docker(#[from] bollard::errors::Error),
    /// anything else
    #[error("{0}")]
    Other(String),
}

/// Which output a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chan {
    /// stdout (or the tty)
    Stdout,
    /// stderr
    Stderr,
}

/// An attached process: output chunks, and its stdin.
pub struct IoSession {
    /// output chunks in order
    pub output: BoxStream<'static, Result<(Chan, Bytes), RuntimeError>>,
    /// stdin (shut it down to close the process's stdin)
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    /// exec id (exec sessions only)
    pub exec_id: Option<String>,
}

impl std::fmt::Debug for IoSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoSession")
            .field("exec_id", &self.exec_id)
            .finish()
    }
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// exit code
    pub code: i64,
    /// the engine saw an OOM kill
    pub oom_killed: bool,
    /// RFC 3339 start
    pub started_at: Option<String>,
    /// RFC 3339 end
    pub finished_at: Option<String>,
}

/// An exec request.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// argv
    pub command: Vec<String>,
    /// attach stdin
    pub stdin: bool,
    /// attach stdout
    pub stdout: bool,
    /// attach stderr
    pub stderr: bool,
    /// allocate a tty
    pub tty: bool,
}

/// Which streams an attach session joins.
#[derive(Debug, Clone, Copy, Default)]
pub struct Streams {
    /// stdin
    pub stdin: bool,
    /// stdout (or the tty)
    pub stdout: bool,
    /// stderr
    pub stderr: bool,
}

/// A read of a container's output.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogRequest {
    /// go on until the container ends
    pub follow: bool,
    /// only the last lines
    pub tail: Option<u64>,
    /// each line prefixed with its RFC 3339 time
    pub timestamps: bool,
}

/// A terminal's size.
#[derive(Debug, Clone, Copy)]
pub struct TtySize {
    /// columns
    pub width: u16,
    /// rows
    pub height: u16,
}

/// What the kubelet needs from a container runtime.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + std::fmt::Debug {
    /// Whether the image is present locally.
    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError>;
    /// Pull an image (with credentials when given).
    async fn pull(&self, image: &str, creds: Option<DockerCredentials>)
    -> Result<(), RuntimeError>;
    /// Create a container; returns its id.
    async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, RuntimeError>;
    /// Start it.
    async fn start(&self, id: &str) -> Result<(), RuntimeError>;
    /// Wait for it to exit.
    async fn wait(&self, id: &str) -> Result<ExitInfo, RuntimeError>;
    /// The container's IP on its network (sandbox).
    async fn ip(&self, id: &str) -> Result<Option<String>, RuntimeError>;
    /// Image id the container runs.
    async fn image_id(&self, id: &str) -> Result<String, RuntimeError>;
    /// SIGTERM, then SIGKILL after `grace` seconds.
    async fn stop(&self, id: &str, grace: i64) -> Result<(), RuntimeError>;
    /// Send a signal.
    async fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError>;
    /// Remove (force).
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;
    /// Start an exec session.
    async fn exec(&self, id: &str, req: ExecRequest) -> Result<IoSession, RuntimeError>;
    /// Exit code of a finished exec session.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<i64, RuntimeError>;
    /// Attach to a running container.
    async fn attach(&self, id: &str, streams: Streams) -> Result<IoSession, RuntimeError>;
    /// Resize a tty (container when `exec_id` is None).
    async fn resize(&self, id: &str, exec: Option<&str>, size: TtySize)
    -> Result<(), RuntimeError>;
    /// Container output (stdout and stderr interleaved).
    fn logs(&self, id: &str, req: LogRequest) -> BoxStream<'static, Result<Bytes, RuntimeError>>;
    /// Remove every container labelled with `label=value` (returns how many).
    async fn remove_labelled(&self, label: &str, value: &str) -> Result<usize, RuntimeError>;
    /// Containers with `label` (any value): (id, labels).
    async fn list_labelled(
        &self,
        label: &str,
    ) -> Result<Vec<(String, HashMap<String, String>)>, RuntimeError>;
}

/// The Docker Engine runtime.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
}

impl DockerRuntime {
    /// Connect to the local engine and negotiate the API version.
    pub async fn connect() -> Result<Self, RuntimeError> {
        // Waits, log follows and attaches last as long as containers do: no request timeout.
        let docker = Docker::connect_with_local_defaults()?
            .with_timeout(Duration::from_secs(30 * 24 * 3600))
            .negotiate_version()
            .await?;
        Ok(Self { docker })
    }
    /// The bollard client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Every container (running or not) matching the label filter `label` or `label=value`.
    async fn list(&self, label: String) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let filters = HashMap::from([("label".to_string(), vec![label])]);
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        Ok(self.docker.list_containers(Some(opts)).await?)
    }
}

fn split_image(image: &str) -> (String, String) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo.to_string(), digest.to_string());
    }
    let last_slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[last_slash..].rfind(':') {
        Some(i) => (
            image[..last_slash + i].to_string(),
            image[last_slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

/// `r`, with the engine's answers in `fine` (already stopped, already gone, ...) taken as done.
fn tolerating(r: Result<(), bollard::errors::Error>, fine: &[u16]) -> Result<(), RuntimeError> {
    match r {
        Err(bollard::errors::Error::DockerResponseServerError { status_code, .. })
            if fine.contains(&status_code) =>
        {
            Ok(())
        }
        r => Ok(r?),
    }
}

/// An attached process's output as [`Chan`]-tagged chunks (stdin echoes dropped).
fn chunks(
    output: Pin<Box<dyn futures::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
) -> BoxStream<'static, Result<(Chan, Bytes), RuntimeError>> {
    output
        .filter_map(|r| async move { r.map(log_chunk).map_err(RuntimeError::from).transpose() })
        .boxed()
}

fn log_chunk(o: LogOutput) -> Option<(Chan, Bytes)> {
    match o {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            Some((Chan::Stdout, message))
        }
        LogOutput::StdErr { message } => Some((Chan::Stderr, message)),
        LogOutput::StdIn { .. } => None,
    }
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn pull(
        &self,
        image: &str,
        creds: Option<DockerCredentials>,
    ) -> Result<(), RuntimeError> {
        let (repo, tag) = split_image(image);
        let opts = CreateImageOptions {
            from_image: Some(repo),
            tag: Some(tag),
            ..Default::default()
        };
        let mut s = self.docker.create_image(Some(opts), None, creds);
        while let Some(item) = s.next().await {
            let info = item?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(RuntimeError::Other(err));
            }
        }
        Ok(())
    }

    async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, RuntimeError> {
        let opts = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        Ok(self.docker.create_container(Some(opts), body).await?.id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        Ok(self.docker.start_container(id, None).await?)
    }

    async fn wait(&self, id: &str) -> Result<ExitInfo, RuntimeError> {
        let mut s = self.docker.wait_container(id, None);
        // A non-zero exit arrives as DockerContainerWaitError: the code is data, read it below.
        match s.next().await {
            Some(Ok(_))
            | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. }))
            | None => {}
            Some(Err(e)) => return Err(e.into()),
        }
        let info = self.docker.inspect_container(id, None).await?;
        let st = info.state.unwrap_or_default();
        Ok(ExitInfo {
            code: st.exit_code.unwrap_or(-1),
            oom_killed: st.oom_killed.unwrap_or(false),
            started_at: st.started_at,
            finished_at: st.finished_at,
        })
    }

    async fn ip(&self, id: &str) -> Result<Option<String>, RuntimeError> {
        let info = self.docker.inspect_container(id, None).await?;
        Ok(info
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|n| {
                n.into_values()
                    .find_map(|e| e.ip_address.filter(|s| !s.is_empty()))
            }))
    }

    async fn image_id(&self, id: &str) -> Result<String, RuntimeError> {
        let info = self.docker.inspect_container(id, None).await?;
        Ok(info.image.unwrap_or_default())
    }

    async fn stop(&self, id: &str, grace: i64) -> Result<(), RuntimeError> {
        let opts = StopContainerOptions {
            t: Some(grace.clamp(0, i32::MAX as i64) as i32),
            signal: None,
        };
        // 304: not running; 404: gone.
        tolerating(
            self.docker.stop_container(id, Some(opts)).await,
            &[304, 404],
        )
    }

    async fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError> {
        Ok(self
            .docker
            .kill_container(
                id,
                Some(KillContainerOptions {
                    signal: signal.to_string(),
                }),
            )
            .await?)
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        // 404: gone; 409: its removal is already in progress.
        tolerating(
            self.docker.remove_container(id, Some(opts)).await,
            &[404, 409],
        )
    }

    async fn exec(&self, id: &str, req: ExecRequest) -> Result<IoSession, RuntimeError> {
        let created = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    attach_stdin: Some(req.stdin),
                    attach_stdout: Some(req.stdout),
                    attach_stderr: Some(req.stderr),
                    tty: Some(req.tty),
                    cmd: Some(req.command),
                    ..Default::default()
                },
            )
            .await?;
        let opts = StartExecOptions {
            detach: false,
            tty: req.tty,
            output_capacity: Some(64 * 1024),
        };
        match self.docker.start_exec(&created.id, Some(opts)).await? {
            StartExecResults::Attached { output, input } => Ok(IoSession {
                output: chunks(output),
                input,
                exec_id: Some(created.id),
            }),
            StartExecResults::Detached => Err(RuntimeError::Other("exec started detached".into())),
        }
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<i64, RuntimeError> {
        // The output stream can end a moment before the engine records the exit.
        for _ in 0..400 {
            let i = self.docker.inspect_exec(exec_id).await?;
            if i.running != Some(true)
                && let Some(c) = i.exit_code
            {
                return Ok(c);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(RuntimeError::Other(
            "exec did not report an exit code".into(),
        ))
    }

    async fn attach(&self, id: &str, streams: Streams) -> Result<IoSession, RuntimeError> {
        let opts = AttachContainerOptions {
            stdin: streams.stdin,
            stdout: streams.stdout,
            stderr: streams.stderr,
            stream: true,
            logs: false,
            detach_keys: None,
        };
        let r = self.docker.attach_container(id, Some(opts)).await?;
        Ok(IoSession {
            output: chunks(r.output),
            input: r.input,
            exec_id: None,
        })
    }

    async fn resize(
        &self,
        id: &str,
        exec: Option<&str>,
        size: TtySize,
    ) -> Result<(), RuntimeError> {
        let (h, w) = (size.height as i32, size.width as i32);
        match exec {
            Some(e) => {
                self.docker
                    .resize_exec(e, ResizeExecOptions { h, w })
                    .await?
            }
            None => {
                self.docker
                    .resize_container_tty(id, ResizeContainerTTYOptions { h, w })
                    .await?
            }
        }
        Ok(())
    }

    fn logs(&self, id: &str, req: LogRequest) -> BoxStream<'static, Result<Bytes, RuntimeError>> {
        let opts = LogsOptions {
            follow: req.follow,
            stdout: true,
            stderr: true,
            timestamps: req.timestamps,
            tail: req
                .tail
                .map(|t| t.to_string())
                .unwrap_or_else(|| "all".into()),
            ..Default::default()
        };
        self.docker
            .logs(id, Some(opts))
            .filter_map(|r| async move {
                r.map(|o| log_chunk(o).map(|(_, b)| b))
                    .map_err(RuntimeError::from)
                    .transpose()
            })
            .boxed()
    }

    async fn remove_labelled(&self, label: &str, value: &str) -> Result<usize, RuntimeError> {
        let list = self.list(format!("{label}={value}")).await?;
        let n = list.len();
        for c in list {
            if let Some(id) = c.id {
                self.remove(&id).await?;
            }
        }
        Ok(n)
    }

    async fn list_labelled(
        &self,
        label: &str,
    ) -> Result<Vec<(String, HashMap<String, String>)>, RuntimeError> {
        Ok(self
            .list(label.to_string())
            .await?
            .into_iter()
            .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_split() {
        assert_eq!(split_image("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(
            split_image("127.0.0.1:5555/a/b:1"),
            ("127.0.0.1:5555/a/b".into(), "1".into())
        );
        assert_eq!(
            split_image("127.0.0.1:5555/a/b"),
            ("127.0.0.1:5555/a/b".into(), "latest".into())
        );
        assert_eq!(split_image("a@sha256:ab"), ("a".into(), "sha256:ab".into()));
    }
}
