//! Shared test environment: local busybox-based images and two local registries.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let env = testenv::ensure().await?;
//! let image = env.image(testenv::Image::Busybox); // "127.0.0.1:5555/hooktest/busybox:1"
//! # Ok(()) }
//! ```
//!
//! `ensure()` builds the images (if missing or stale), starts both registries (if not running)
//! and pushes the images to both (if not there), under a cross-process file lock; when
//! everything is up it only checks (a few loopback HTTP requests and image inspects).
//! See `docs/testing.md`.

mod http;
mod image;
mod images;
mod registry;
pub mod runner;
mod settings;
mod status;

use std::fs::File;
use std::path::Path;

use anyhow::{Context as _, bail};

pub use image::{FAKE_NODE_VERSION, Image, REQUIRED_APPLETS, RUNNER_UID, local_tag, tar_header};
pub use images::{LABEL_FINGERPRINT, LABEL_IMAGE, LABEL_NAMESPACE};
pub use registry::{PROCESS_LABEL, RegistryKind, registry_secret};
pub use settings::{
    AUTH_PASSWORD, AUTH_USER, DEFAULT_NAMESPACE, RegistrySettings, Settings, Tools,
};
pub use status::{ImageStatus, RegistryStatus, Status};

/// Everything tests need, after `ensure()` made it exist.
#[derive(Debug, Clone)]
pub struct TestEnv {
    /// "127.0.0.1:5555" — plain HTTP registry, no auth.
    pub registry: String,
    /// "127.0.0.1:5556" — registry requiring basic auth (htpasswd). Plain HTTP: the engine sends
    /// basic auth to registries on 127.0.0.0/8 (insecure by default), so no TLS is involved.
    pub auth_registry: String,
    /// "hookuser"
    pub auth_user: String,
    /// "hook-test-pw-4c1e"
    pub auth_password: String,
    /// Image namespace: "hooktest" (only isolated environments differ).
    pub namespace: String,
}

impl TestEnv {
    fn new(settings: &Settings) -> Self {
        Self {
            registry: settings.plain.addr.to_string(),
            auth_registry: settings.auth.addr.to_string(),
            auth_user: settings.auth_user.clone(),
            auth_password: settings.auth_password.clone(),
            namespace: settings.namespace.clone(),
        }
    }

    /// Full reference of a test image in the plain registry, e.g. image(Image::Busybox) =
    /// "127.0.0.1:5555/hooktest/busybox:1".
    pub fn image(&self, which: Image) -> String {
        format!("{}/{}", self.registry, self.local(which))
    }

    /// The same image in the password-protected registry.
    pub fn auth_image(&self, which: Image) -> String {
        format!("{}/{}", self.auth_registry, self.local(which))
    }

    /// The locally tagged name (no registry), e.g. "hooktest/busybox:1".
    pub fn local(&self, which: Image) -> String {
        image::tag_in(&self.namespace, which)
    }
}

/// Build the images (if missing), start both registries (if not running), push the images to both.
/// Safe to call from many test processes at once (file lock /tmp/hooktest-testenv.lock).
pub async fn ensure() -> anyhow::Result<TestEnv> {
    ensure_with(&Settings::default()).await
}

/// Stop the registries and remove the test images and registry data.
pub async fn teardown() -> anyhow::Result<()> {
    teardown_with(&Settings::default()).await
}

/// What exists right now (no changes, no lock).
pub async fn status() -> anyhow::Result<Status> {
    status_with(&Settings::default()).await
}

/// Holds the cross-process lock until dropped (closing the file releases the `flock`).
async fn lock(path: &Path) -> anyhow::Result<File> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(file)
    })
    .await
    .context("lock task")?
}

/// [`ensure`] for any environment.
pub async fn ensure_with(settings: &Settings) -> anyhow::Result<TestEnv> {
    settings.validate()?;
    let docker = images::connect().await?;
    let _lock = lock(&settings.lock_file).await?;

    // Decide for both registries before changing anything, so a taken port fails cleanly.
    let mut plans = Vec::new();
    for kind in RegistryKind::ALL {
        plans.push((kind, registry::plan(kind, settings).await?));
    }

    // Images first (a failed build leaves the registries untouched). Busybox alone first: it
    // fills the builder's cache with the layers every other image starts with; the others then
    // build concurrently (each build step is mostly engine latency).
    let applets = images::busybox_applets(settings)?;
    let current_or_build = |which: Image| {
        let (docker, applets) = (&docker, &applets);
        async move {
            let recipe = image::recipe(which, &settings.tools.busybox, applets);
            let fingerprint = recipe.fingerprint()?;
            let tag = image::tag_in(&settings.namespace, which);
            let existing = images::inspect(docker, &tag).await?;
            let current = existing
                .as_ref()
                .filter(|i| images::fingerprint_of(i) == Some(fingerprint.as_str()))
                .and_then(|i| i.id.clone());
            let id = match current {
                Some(id) => id,
                None => images::build(docker, settings, &recipe, &fingerprint).await?,
            };
            anyhow::Ok((which, id))
        }
    };
    let mut ids = vec![current_or_build(Image::Busybox).await?];
    let rest = Image::ALL.into_iter().filter(|w| *w != Image::Busybox);
    ids.extend(futures::future::try_join_all(rest.map(current_or_build)).await?);

    for (kind, plan) in plans {
        match plan {
            registry::Plan::Keep => {}
            registry::Plan::Start => {
                registry::start(kind, settings).await?;
            }
            registry::Plan::Restart(pid) => {
                registry::stop_process(kind, settings, pid).await?;
                registry::start(kind, settings).await?;
            }
        }
    }

    let publish_to = |kind: RegistryKind| {
        let (docker, ids) = (&docker, &ids);
        async move {
            for (which, id) in ids {
                let there = images::registry_image_id(settings, kind, *which).await?;
                if there.as_deref() != Some(id.as_str()) {
                    images::publish(docker, settings, kind, *which).await?;
                    let now = images::registry_image_id(settings, kind, *which).await?;
                    if now.as_deref() != Some(id.as_str()) {
                        bail!(
                            "{} registry serves {:?} for {} after the push, expected {id}",
                            kind.name(),
                            now,
                            which.name()
                        );
                    }
                }
            }
            anyhow::Ok(())
        }
    };
    let (plain, auth) = tokio::join!(
        publish_to(RegistryKind::Plain),
        publish_to(RegistryKind::Auth)
    );
    plain?;
    auth?;
    Ok(TestEnv::new(settings))
}

/// [`teardown`] for any environment. Never forces: images still used by containers stay, and
/// the error says which.
pub async fn teardown_with(settings: &Settings) -> anyhow::Result<()> {
    settings.validate_names()?;
    let docker = images::connect().await?;
    let _lock = lock(&settings.lock_file).await?;
    let mut problems = Vec::new();
    for kind in RegistryKind::ALL {
        if let Err(e) = registry::remove(kind, settings).await {
            problems.push(format!("{e:#}"));
        }
    }
    problems.extend(images::remove_all(&docker, settings).await?);
    if !problems.is_empty() {
        bail!("teardown incomplete: {}", problems.join("; "));
    }
    Ok(())
}

/// [`status`] for any environment.
pub async fn status_with(settings: &Settings) -> anyhow::Result<Status> {
    settings.validate_names()?;
    let docker = images::connect().await?;
    status::collect(&docker, settings).await
}
