//! What a hook writes into the runner's response file.

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The response to `prepare_job`.
///
/// Serialized as the runner reads it:
/// `{"state":…,"context":{"container":{"id","network"},"services":[{"id","network","ports":{}}]},"isAlpine":…}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepareJobResponse<S> {
    /// Handed back to the hook on every later command.
    pub state: S,
    /// Ids and networks of what was created.
    pub context: JobContext,
    /// Whether the job container runs Alpine (the runner then uses the Alpine build of node).
    pub is_alpine: bool,
}

/// `context` of the `prepare_job` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobContext {
    /// The job container; absent for a services-only job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    /// One entry per input service, in input order.
    pub services: Vec<ServiceInfo>,
}

/// The job container as the runner sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerInfo {
    /// Container id (docker) or pod/container name (Kubernetes).
    pub id: String,
    /// Network name.
    pub network: String,
}

/// A service container as the runner sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceInfo {
    /// Container id or name.
    pub id: String,
    /// Network name.
    pub network: String,
    /// `{containerPort: hostPort}`; always present (the runner crashes on null).
    pub ports: BTreeMap<String, String>,
}

/// A response that only carries `state` (any command after `prepare_job`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateResponse<S> {
    /// The new state, handed back on every later command.
    pub state: S,
}

/// Why the response file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// The response file's directory does not exist or is not writable.
    #[error("cannot write the response file {path}: {source}")]
    Io {
        /// The response file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The response could not be serialized.
    #[error("cannot serialize the hook response: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Writes `response` as one JSON document into `path`, atomically.
///
/// The document is written to a temporary file in the same directory, flushed, and renamed over
/// `path`, so the runner never reads half a response. A missing directory is an error naming it.
pub fn write_response(path: &Path, response: &impl Serialize) -> Result<(), ResponseError> {
    let bytes = serde_json::to_vec(response)?;
    let io = |source| ResponseError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("directory {} does not exist", dir.display()),
        )));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".hook-response-")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(&bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
