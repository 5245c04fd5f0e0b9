//! What an emulated builder process has to work with: its command line, environment, user,
//! volumes (through the pod's binds), stdin, output, and the engine.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::io::{AsyncReadExt, DuplexStream};

use super::engine;
use super::fs::{self, Mounts};
use super::logbuf::LogBuf;

/// The largest context read from stdin.
const STDIN_LIMIT: u64 = 2 << 30;

/// What an emulated builder process has to work with.
pub(crate) struct Process {
    /// entrypoint + args as the container would exec them (None entrypoint = the image's)
    pub command: Option<Vec<String>>,
    /// the container's args
    pub args: Vec<String>,
    /// the container's environment
    pub env: HashMap<String, String>,
    /// `uid[:gid]` it runs as
    pub user: Option<String>,
    /// its volumes
    pub mounts: Mounts,
    /// its stdin (EOF when closed)
    pub stdin: DuplexStream,
    /// its output
    pub log: Arc<LogBuf>,
    /// the engine
    pub docker: Docker,
    /// its pod and container spec, from the store
    pub pod: Option<Pod>,
    /// this container's spec
    pub container: Option<Container>,
    /// the container's own filesystem (paths no volume covers)
    pub scratch: PathBuf,
    /// local image tags the process creates (removed when it ends, however it ends)
    pub tags: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Notes a local tag before creating it.
    pub fn note_tag(&self, tag: &str) {
        self.tags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tag.to_string());
    }

    /// Reads stdin to its end.
    pub async fn read_stdin(&mut self) -> Result<Vec<u8>, String> {
        let mut data = Vec::new();
        (&mut self.stdin)
            .take(STDIN_LIMIT)
            .read_to_end(&mut data)
            .await
            .map_err(|e| format!("reading stdin: {e}"))?;
        Ok(data)
    }

    /// Where a container path lives on the host (its volume, else its own filesystem).
    pub fn host_path(&self, path: &str) -> Result<PathBuf, String> {
        match self.mounts.resolve(path) {
            Some((p, _)) => Ok(p),
            None => {
                let clean = fs::normalize(path).ok_or_else(|| format!("invalid path {path:?}"))?;
                Ok(self.scratch.join(clean.trim_start_matches('/')))
            }
        }
    }

    /// Writes a file at a container path.
    pub fn write_file(&self, path: &str, data: &[u8]) -> Result<(), String> {
        if let Some((_, true)) = self.mounts.resolve(path) {
            return Err(format!("open {path}: read-only file system"));
        }
        let p = self.host_path(path)?;
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{path}: {e}"))?;
        }
        std::fs::write(&p, data).map_err(|e| format!("open {path}: {e}"))
    }

    /// The command line as the container execs it: its command (none: the image's entrypoint,
    /// given by the args here), then its args.
    pub fn argv(&self) -> Vec<String> {
        self.command
            .iter()
            .flatten()
            .chain(&self.args)
            .cloned()
            .collect()
    }

    /// The program's arguments: the command's words after the first, then the args.
    pub fn arguments(&self) -> Vec<String> {
        self.command
            .iter()
            .flatten()
            .skip(1)
            .chain(&self.args)
            .cloned()
            .collect()
    }

    /// `$HOME/.docker`, with the image user's `home` when `HOME` is unset.
    pub fn home_docker_dir(&self, home: &str) -> String {
        format!(
            "{}/.docker",
            self.env.get("HOME").map_or(home, String::as_str)
        )
    }

    /// Credentials from `config.json` in `$DOCKER_CONFIG`, else in `default_dir` (none when
    /// the file does not exist).
    pub fn config_credentials(
        &self,
        default_dir: &str,
    ) -> Result<HashMap<String, DockerCredentials>, String> {
        let dir = self
            .env
            .get("DOCKER_CONFIG")
            .map_or(default_dir, String::as_str);
        self.docker_credentials(&format!("{}/config.json", dir.trim_end_matches('/')))
    }

    /// Credentials from the docker config at `path` (none when the file does not exist).
    fn docker_credentials(&self, path: &str) -> Result<HashMap<String, DockerCredentials>, String> {
        match std::fs::read(self.host_path(path)?) {
            Ok(doc) => engine::docker_config_credentials(&doc),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
            Err(e) => Err(format!("{path}: {e}")),
        }
    }
}
