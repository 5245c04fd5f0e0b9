//! The connection to the Docker Engine.

use crate::error::Error;
use crate::settings::DockerHost;
use bollard::{API_DEFAULT_VERSION, Docker};

/// Seconds bollard waits for one API response (pulls and builds stream, so this is per chunk).
const TIMEOUT_SECS: u64 = 600;

/// Connects to the engine named by `DOCKER_HOST` (the local socket by default) and negotiates
/// the API version, since the engine may be older than bollard's default.
pub(crate) async fn connect(host: &DockerHost) -> Result<Docker, Error> {
    let docker = match host {
        DockerHost::Unix(path) => {
            Docker::connect_with_socket(path, TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
        DockerHost::Tcp(addr) => Docker::connect_with_http(addr, TIMEOUT_SECS, API_DEFAULT_VERSION),
    }
    .map_err(|e| Error::Connect { source: e.into() })?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| Error::Connect { source: e.into() })
}
