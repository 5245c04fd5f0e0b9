//! The connection to the Docker Engine.

use crate::error::{Error, reason};
use bollard::Docker;

/// Connects with the local defaults (`DOCKER_HOST` or the local socket) and negotiates the API
/// version, since the engine may be older than bollard's default.
pub(crate) async fn connect() -> Result<Docker, Error> {
    let docker = Docker::connect_with_local_defaults().map_err(|e| Error::Connect(reason(&e)))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| Error::Connect(reason(&e)))
}
