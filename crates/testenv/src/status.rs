//! A read-only report of what exists (for `cargo xtask testenv status` and tests).

use std::fmt;
use std::net::SocketAddr;

use bollard::Docker;

use crate::image::{self, Image};
use crate::images;
use crate::registry::{self, Probe, RegistryKind};
use crate::settings::Settings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryStatus {
    pub kind: RegistryKind,
    pub addr: SocketAddr,
    /// Pid of our registry process, if one runs.
    pub pid: Option<u32>,
    /// Answers as configured (anonymous / password-protected).
    pub healthy: bool,
    /// What the probe found, e.g. `Healthy`, `Down`.
    pub probe: String,
    /// The state directory exists.
    pub dir_exists: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageStatus {
    pub image: Image,
    /// Local tag, e.g. `hooktest/busybox:1`.
    pub tag: String,
    /// Local image id (`sha256:...`), if the tag exists.
    pub id: Option<String>,
    /// Built from the current recipe (fingerprint label matches).
    pub current: bool,
    /// Image id (manifest config digest) served by the plain registry, if any.
    pub plain: Option<String>,
    /// Image id served by the auth registry, if any.
    pub auth: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub registries: Vec<RegistryStatus>,
    pub images: Vec<ImageStatus>,
}

impl Status {
    /// Everything `ensure()` would produce is in place.
    pub fn is_up(&self) -> bool {
        self.registries.iter().all(|r| r.healthy && r.pid.is_some())
            && self
                .images
                .iter()
                .all(|i| i.current && i.id.is_some() && i.plain == i.id && i.auth == i.id)
    }

    /// Nothing of this environment exists (after teardown).
    pub fn is_gone(&self) -> bool {
        self.registries
            .iter()
            .all(|r| r.pid.is_none() && !r.dir_exists)
            && self.images.iter().all(|i| i.id.is_none())
    }

    pub fn image(&self, which: Image) -> &ImageStatus {
        self.images
            .iter()
            .find(|i| i.image == which)
            .expect("status lists every image")
    }

    pub fn registry(&self, kind: RegistryKind) -> &RegistryStatus {
        self.registries
            .iter()
            .find(|r| r.kind == kind)
            .expect("status lists both registries")
    }
}

fn short(id: Option<&String>) -> &str {
    id.map_or("-", |s| {
        let s = s.strip_prefix("sha256:").unwrap_or(s);
        &s[..s.len().min(12)]
    })
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.registries {
            writeln!(
                f,
                "registry {:<5} {:<15} pid {:<8} {}",
                r.kind.name(),
                r.addr,
                r.pid.map_or("-".to_owned(), |p| p.to_string()),
                r.probe
            )?;
        }
        for i in &self.images {
            let registry = |there: Option<&String>| match (there, i.id.as_ref()) {
                (None, _) => "absent",
                (Some(t), Some(id)) if t == id => "ok",
                _ => "stale",
            };
            writeln!(
                f,
                "image {:<24} {:<12} {:<7} plain:{:<6} auth:{}",
                i.tag,
                short(i.id.as_ref()),
                if i.id.is_none() {
                    "missing"
                } else if i.current {
                    "current"
                } else {
                    "stale"
                },
                registry(i.plain.as_ref()),
                registry(i.auth.as_ref()),
            )?;
        }
        write!(f, "{}", if self.is_up() { "up" } else { "not (fully) up" })
    }
}

pub(crate) async fn collect(docker: &Docker, settings: &Settings) -> anyhow::Result<Status> {
    let mut registries = Vec::new();
    for kind in RegistryKind::ALL {
        let reg = kind.of(settings);
        let probe = registry::probe(kind, reg, &settings.auth_user, &settings.auth_password).await;
        registries.push(RegistryStatus {
            kind,
            addr: reg.addr,
            pid: registry::running_pid(reg),
            healthy: probe == Probe::Healthy,
            probe: match probe {
                Probe::Unexpected(s) => format!("unexpected: {s}"),
                other => format!("{other:?}"),
            },
            dir_exists: reg.dir.exists(),
        });
    }
    let applets = images::busybox_applets(settings)?;
    let mut list = Vec::new();
    for which in Image::ALL {
        let tag = image::tag_in(&settings.namespace, which);
        let inspected = images::inspect(docker, &tag).await?;
        let fingerprint = image::recipe(which, &settings.tools.busybox, &applets).fingerprint()?;
        let healthy = |kind: RegistryKind| registries.iter().any(|r| r.kind == kind && r.healthy);
        let mut in_registry = [None, None];
        for (slot, kind) in in_registry.iter_mut().zip(RegistryKind::ALL) {
            if healthy(kind) {
                *slot = images::registry_image_id(settings, kind, which)
                    .await
                    .ok()
                    .flatten();
            }
        }
        let [plain, auth] = in_registry;
        list.push(ImageStatus {
            image: which,
            current: inspected
                .as_ref()
                .is_some_and(|i| images::fingerprint_of(i) == Some(fingerprint.as_str())),
            id: inspected.and_then(|i| i.id),
            plain,
            auth,
            tag,
        });
    }
    Ok(Status {
        registries,
        images: list,
    })
}
