//! Docker side effects: build the test images, publish them to the registries, remove them.

use std::collections::HashMap;

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::ImageInspect;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListImagesOptionsBuilder, PushImageOptionsBuilder,
    RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures::TryStreamExt as _;

use crate::http;
use crate::image::{self, Image, Recipe, TAG};
use crate::registry::RegistryKind;
use crate::settings::Settings;

/// Label on every test image: the testenv namespace that owns it.
pub const LABEL_NAMESPACE: &str = "hooktest.testenv.namespace";
/// Label on every test image: which [`Image`] it is (`busybox`, ...).
pub const LABEL_IMAGE: &str = "hooktest.testenv.image";
/// Label on every test image: the recipe fingerprint it was built from.
pub const LABEL_FINGERPRINT: &str = "hooktest.testenv.fingerprint";

const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.manifest.v1+json";

/// Connects to the local engine and negotiates the API version.
pub async fn connect() -> anyhow::Result<Docker> {
    Docker::connect_with_local_defaults()
        .context("connecting to the Docker engine")?
        .negotiate_version()
        .await
        .context("negotiating the Docker API version")
}

/// The image behind `reference`, or `None` if it does not exist.
pub async fn inspect(docker: &Docker, reference: &str) -> anyhow::Result<Option<ImageInspect>> {
    match docker.inspect_image(reference).await {
        Ok(i) => Ok(Some(i)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("inspecting image {reference}")),
    }
}

/// The fingerprint label of an inspected image.
pub fn fingerprint_of(i: &ImageInspect) -> Option<&str> {
    i.config
        .as_ref()?
        .labels
        .as_ref()?
        .get(LABEL_FINGERPRINT)
        .map(String::as_str)
}

/// Runs `busybox --list-full` and turns it into the applet links of the images.
pub fn busybox_applets(settings: &Settings) -> anyhow::Result<Vec<String>> {
    let out = std::process::Command::new(&settings.tools.busybox)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running {} --list-full", settings.tools.busybox.display()))?;
    if !out.status.success() {
        bail!(
            "{} --list-full failed ({})",
            settings.tools.busybox.display(),
            out.status
        );
    }
    image::applet_links(&String::from_utf8_lossy(&out.stdout))
}

/// Builds `recipe` as `<namespace>/<name>:1` with the ownership labels; returns the image id.
pub async fn build(
    docker: &Docker,
    settings: &Settings,
    recipe: &Recipe,
    fingerprint: &str,
) -> anyhow::Result<String> {
    let tag = image::tag_in(&settings.namespace, recipe.image);
    let dockerfile = recipe.dockerfile_with(&[
        (LABEL_NAMESPACE, settings.namespace.as_str()),
        (LABEL_IMAGE, recipe.image.name()),
        (LABEL_FINGERPRINT, fingerprint),
    ]);
    let options = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .build();
    let context = recipe.context_tar(&dockerfile)?;
    let previous = inspect(docker, &tag).await?.and_then(|i| i.id);
    docker
        .build_image(options, None, Some(bollard::body_full(context.into())))
        .try_for_each(|_| async { Ok(()) })
        .await
        .with_context(|| format!("building {tag}"))?;
    let id = inspect(docker, &tag)
        .await?
        .and_then(|i| i.id)
        .with_context(|| format!("{tag} missing after its build"))?;
    // The rebuilt tag left the stale image dangling: remove it unless something still uses it.
    if let Some(old) = previous.filter(|old| *old != id) {
        let opts = RemoveImageOptionsBuilder::new().force(false).build();
        if let Err(e) = docker.remove_image(&old, Some(opts), None).await {
            tracing::debug!(image = %old, error = %e, "stale test image kept");
        }
    }
    tracing::info!(%tag, %id, "built test image");
    Ok(id)
}

/// Repository of `which` in registry `kind`, e.g. `127.0.0.1:5555/hooktest/busybox`.
pub fn remote_repo(settings: &Settings, kind: RegistryKind, which: Image) -> String {
    format!(
        "{}/{}/{}",
        kind.of(settings).addr,
        settings.namespace,
        which.name()
    )
}

fn credentials(settings: &Settings, kind: RegistryKind) -> Option<DockerCredentials> {
    (kind == RegistryKind::Auth).then(|| DockerCredentials {
        username: Some(settings.auth_user.clone()),
        password: Some(settings.auth_password.clone()),
        serveraddress: Some(settings.auth.addr.to_string()),
        ..Default::default()
    })
}

/// The config digest (= local image id) of `which:1` in registry `kind`; `None` if absent.
pub async fn registry_image_id(
    settings: &Settings,
    kind: RegistryKind,
    which: Image,
) -> anyhow::Result<Option<String>> {
    let path = format!(
        "/v2/{}/{}/manifests/{TAG}",
        settings.namespace,
        which.name()
    );
    let auth = http::basic_auth(&settings.auth_user, &settings.auth_password);
    let mut headers = vec![("Accept", MANIFEST_TYPES)];
    if kind == RegistryKind::Auth {
        headers.push(("Authorization", &auth));
    }
    let addr = kind.of(settings).addr;
    let r = http::get(addr, &path, &headers)
        .await
        .with_context(|| format!("GET http://{addr}{path}"))?;
    match r.status {
        404 => Ok(None),
        200 => {
            let manifest: serde_json::Value =
                serde_json::from_slice(&r.body).context("manifest is not JSON")?;
            Ok(manifest["config"]["digest"].as_str().map(str::to_owned))
        }
        other => bail!("GET http://{addr}{path} answered HTTP {other}"),
    }
}

/// Tags the local image as `<registry>/<namespace>/<name>:1`, pushes it, and removes that local
/// tag again so that tests pulling the registry name really pull.
pub async fn publish(
    docker: &Docker,
    settings: &Settings,
    kind: RegistryKind,
    which: Image,
) -> anyhow::Result<()> {
    let local = image::tag_in(&settings.namespace, which);
    let repo = remote_repo(settings, kind, which);
    let remote = format!("{repo}:{TAG}");
    docker
        .tag_image(
            &local,
            Some(TagImageOptionsBuilder::new().repo(&repo).tag(TAG).build()),
        )
        .await
        .with_context(|| format!("tagging {local} as {remote}"))?;
    let pushed = docker
        .push_image(
            &repo,
            Some(PushImageOptionsBuilder::new().tag(TAG).build()),
            credentials(settings, kind),
        )
        .try_for_each(|_| async { Ok(()) })
        .await
        .with_context(|| format!("pushing {remote}"));
    let untag = RemoveImageOptionsBuilder::new().noprune(true).build();
    let untagged = docker.remove_image(&remote, Some(untag), None).await;
    pushed?;
    untagged.with_context(|| format!("removing the local tag {remote}"))?;
    tracing::info!(%remote, "pushed test image");
    Ok(())
}

/// Is `reference` (a tag `repo:1` or a digest reference `repo@sha256:..`) one of the names
/// testenv gives images of `settings.namespace`?
fn is_our_ref(settings: &Settings, reference: &str) -> bool {
    let ns = &settings.namespace;
    let hosts = [settings.plain.addr, settings.auth.addr].map(|a| format!("{a}/"));
    let our_repo = |repo: &str| {
        let path = hosts
            .iter()
            .find_map(|h| repo.strip_prefix(h.as_str()))
            .unwrap_or(repo);
        Image::ALL
            .iter()
            .any(|w| path == format!("{ns}/{}", w.name()))
    };
    match reference.split_once('@') {
        // Digest references exist only for registry names.
        Some((repo, _)) => {
            repo != reference
                && hosts.iter().any(|h| repo.starts_with(h.as_str()))
                && our_repo(repo)
        }
        None => reference
            .strip_suffix(&format!(":{TAG}"))
            .is_some_and(our_repo),
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn removal_problem(reference: &str, e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        } => format!("{reference} is still used by a container"),
        other => format!("{reference}: {other}"),
    }
}

/// Removes the images labelled with our namespace: removes our references (tags and digest
/// references; never someone else's), then deletes images left without any reference. Never
/// forces. Returns what could not be removed.
pub async fn remove_all(docker: &Docker, settings: &Settings) -> anyhow::Result<Vec<String>> {
    let filter = format!("{LABEL_NAMESPACE}={}", settings.namespace);
    let filters = HashMap::from([("label", vec![filter.as_str()])]);
    let list = docker
        .list_images(Some(
            ListImagesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .context("listing test images")?;
    let mut problems = Vec::new();
    for summary in list {
        let refs: Vec<&String> = summary
            .repo_tags
            .iter()
            .chain(&summary.repo_digests)
            .filter(|t| !t.starts_with("<none>"))
            .collect();
        let (ours, foreign): (Vec<&String>, Vec<&String>) =
            refs.iter().partition(|r| is_our_ref(settings, r));
        if !foreign.is_empty() {
            tracing::warn!(image = %summary.id, refs = ?foreign, "test image kept: referenced by someone else");
        }
        // Removing a tag may take the digest references of its repository along (404 then).
        let mut failed = None;
        for reference in ours {
            let opts = RemoveImageOptionsBuilder::new().force(false).build();
            match docker.remove_image(reference, Some(opts), None).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => failed = Some(removal_problem(reference, &e)),
            }
        }
        if failed.is_none() && foreign.is_empty() {
            let opts = RemoveImageOptionsBuilder::new().force(false).build();
            match docker.remove_image(&summary.id, Some(opts), None).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => failed = Some(removal_problem(&summary.id, &e)),
            }
        }
        problems.extend(failed);
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_tags() {
        let s = Settings::default();
        for t in [
            "hooktest/busybox:1",
            "127.0.0.1:5555/hooktest/runner:1",
            "127.0.0.1:5556/hooktest/alpine-like:1",
            "127.0.0.1:5555/hooktest/busybox@sha256:f785a609ef47a21a1e82e4aa9fb83f1e7d81faef96d3b69448d6fecbd82fa602",
        ] {
            assert!(is_our_ref(&s, t), "{t}");
        }
        for t in [
            "hooktest/busybox:2",
            "hooktest/other:1",
            "127.0.0.1:5557/hooktest/busybox:1",
            "someone/hooktest/busybox:1",
            "mine:latest",
            "hooktest/busybox@sha256:f785a609ef47a21a1e82e4aa9fb83f1e7d81faef96d3b69448d6fecbd82fa602",
            "127.0.0.1:5555/other/busybox@sha256:f785",
            "127.0.0.1:5555/hooktest/busybox",
        ] {
            assert!(!is_our_ref(&s, t), "{t}");
        }
    }

    #[test]
    fn remote_names() {
        let s = Settings::default();
        assert_eq!(
            remote_repo(&s, RegistryKind::Auth, Image::Busybox),
            "127.0.0.1:5556/hooktest/busybox"
        );
        assert!(credentials(&s, RegistryKind::Plain).is_none());
        let c = credentials(&s, RegistryKind::Auth).unwrap();
        assert_eq!(c.serveraddress.as_deref(), Some("127.0.0.1:5556"));
    }
}
