//! Helpers shared by testenv's integration tests: run a throw-away container, pull an image.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{ContainerCreateBody, HealthStatusEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures::{StreamExt as _, TryStreamExt as _};

/// Label on every container these tests create.
pub const TEST_LABEL: &str = "hooktest.testenv.test";

pub async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

fn container_name() -> String {
    format!("hooktest-testenv-{}", uuid::Uuid::new_v4().simple())
}

fn body(image: &str, cmd: Option<&[&str]>, user: Option<&str>) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: cmd.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
        user: user.map(str::to_owned),
        labels: Some(HashMap::from([(TEST_LABEL.to_owned(), "1".to_owned())])),
        ..Default::default()
    }
}

/// Starts a container of `image` with its default command; returns its name.
pub async fn start_detached(docker: &Docker, image: &str) -> anyhow::Result<String> {
    let name = container_name();
    let opts = CreateContainerOptionsBuilder::new().name(&name).build();
    docker
        .create_container(Some(opts), body(image, None, None))
        .await?;
    if let Err(e) = docker.start_container(&name, None).await {
        remove(docker, &name).await;
        return Err(e.into());
    }
    Ok(name)
}

pub async fn remove_container(docker: &Docker, name: &str) {
    remove(docker, name).await;
}

async fn remove(docker: &Docker, name: &str) {
    let opts = RemoveContainerOptionsBuilder::new().force(true).build();
    let _ = docker.remove_container(name, Some(opts)).await;
}

/// Runs `cmd` in a fresh container of `image` (never pulls); returns (exit code, stdout+stderr).
pub async fn run(
    docker: &Docker,
    image: &str,
    cmd: &[&str],
    user: Option<&str>,
) -> anyhow::Result<(i64, String)> {
    let name = container_name();
    let opts = CreateContainerOptionsBuilder::new().name(&name).build();
    docker
        .create_container(Some(opts), body(image, Some(cmd), user))
        .await
        .with_context(|| format!("creating a container of {image}"))?;
    let result = async {
        docker.start_container(&name, None).await?;
        let code = match docker.wait_container(&name, None).next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("wait stream ended without a status"),
        };
        let logs: Vec<_> = docker
            .logs(
                &name,
                Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
            )
            .try_collect()
            .await?;
        let out = logs.iter().map(ToString::to_string).collect::<String>();
        Ok((code, out))
    }
    .await;
    remove(docker, &name).await;
    result
}

/// Starts a long-running container of `image` and polls its health until it is `want` or the
/// deadline passes; returns every distinct status seen, in order.
pub async fn watch_health(
    docker: &Docker,
    image: &str,
    want: HealthStatusEnum,
) -> anyhow::Result<Vec<HealthStatusEnum>> {
    let name = container_name();
    let opts = CreateContainerOptionsBuilder::new().name(&name).build();
    docker
        .create_container(Some(opts), body(image, None, None))
        .await?;
    let result = async {
        docker.start_container(&name, None).await?;
        let mut seen: Vec<HealthStatusEnum> = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            let inspect = docker.inspect_container(&name, None).await?;
            let status = inspect
                .state
                .and_then(|s| s.health)
                .and_then(|h| h.status)
                .unwrap_or(HealthStatusEnum::EMPTY);
            if seen.last() != Some(&status) {
                seen.push(status);
            }
            if status == want {
                return Ok(seen);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("{image} never became {want:?}; saw {seen:?}")
    }
    .await;
    remove(docker, &name).await;
    result
}

/// Pulls `reference` (`repo:tag`) with optional credentials; returns the pulled image id.
pub async fn pull(
    docker: &Docker,
    reference: &str,
    credentials: Option<DockerCredentials>,
) -> anyhow::Result<String> {
    let (repo, tag) = reference
        .rsplit_once(':')
        .context("reference without tag")?;
    let opts = CreateImageOptionsBuilder::new()
        .from_image(repo)
        .tag(tag)
        .build();
    docker
        .create_image(Some(opts), None, credentials)
        .try_for_each(|_| async { Ok(()) })
        .await?;
    let id = docker.inspect_image(reference).await?.id.context("no id")?;
    Ok(id)
}

pub async fn image_id(docker: &Docker, reference: &str) -> String {
    docker
        .inspect_image(reference)
        .await
        .unwrap_or_else(|e| panic!("inspect {reference}: {e}"))
        .id
        .unwrap()
}
