//! The administrator's privilege policy for `createOptions` and volumes
//! (`ACTIONS_RUNNER_CONTAINER_HOOKS_DOCKER_REFUSE_PRIVILEGED=true`): what a job may not ask the
//! engine for, because it would reach the host, the runner's files or other jobs. Checked
//! before anything is created; the first refused option is the error.

use crate::options::CreateOptions;
use crate::settings::REFUSE_PRIVILEGED;
use bollard::models::MountType;
use hooklib::{Container, Mount};
use std::path::{Component, Path, PathBuf};

/// An option the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("container option `{option}` is refused on this runner: {why} ({REFUSE_PRIVILEGED}=true)")]
pub struct Refused {
    /// The option as the hook understood it (`--cap-add SYS_ADMIN`, `--volume /etc:/x`).
    pub option: String,
    /// Why it is dangerous.
    pub why: String,
}

fn refuse(option: impl Into<String>, why: impl Into<String>) -> Refused {
    Refused {
        option: option.into(),
        why: why.into(),
    }
}

/// `--security-opt` values that only tighten confinement.
fn tightens(opt: &str) -> bool {
    matches!(
        opt.trim(),
        "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true"
    )
}

/// Whether a host path stays inside `work` (the runner's `_work`) once every symbolic link in
/// it is resolved. No `work` known: nothing is inside.
pub(crate) fn inside_work(source: &str, work: Option<&Path>) -> bool {
    let Some(work) = work else {
        return false;
    };
    let path = Path::new(source);
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return false;
    }
    let work = std::fs::canonicalize(work).unwrap_or_else(|_| work.to_owned());
    // Resolve the longest existing prefix (links included); the rest does not exist yet and
    // will be created as plain directories by the engine.
    let mut existing = path.to_owned();
    let mut missing: Vec<PathBuf> = Vec::new();
    let resolved = loop {
        match std::fs::canonicalize(&existing) {
            Ok(real) => break missing.iter().rev().fold(real, |acc, m| acc.join(m)),
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    missing.push(PathBuf::from(name));
                    existing = parent.to_owned();
                }
                _ => return false,
            },
        }
    };
    resolved.starts_with(&work)
}

fn host_bind(option: String, source: &str, work: Option<&Path>) -> Result<(), Refused> {
    if inside_work(source, work) {
        return Ok(());
    }
    let why = match work {
        Some(w) => format!(
            "the host path {source} is outside the runner's work directory {}",
            w.display()
        ),
        None => format!(
            "the host path {source} cannot be checked: RUNNER_TEMP is not set, so the runner's work directory is unknown"
        ),
    };
    Err(refuse(option, why))
}

/// Checks parsed `createOptions`.
pub(crate) fn check_options(o: &CreateOptions, work: Option<&Path>) -> Result<(), Refused> {
    let h = &o.host;
    if h.privileged == Some(true) {
        return Err(refuse(
            "--privileged",
            "it gives the container every capability and every host device",
        ));
    }
    if let Some(cap) = h.cap_add.first() {
        return Err(refuse(
            format!("--cap-add {cap}"),
            "added capabilities loosen the container's confinement",
        ));
    }
    for (flag, mode, allowed) in [
        ("--pid", &h.pid, &["", "private"][..]),
        ("--ipc", &h.ipc, &["", "none", "private", "shareable"][..]),
        ("--userns", &h.userns, &[""][..]),
    ] {
        if let Some(m) = mode
            && !allowed.contains(&m.as_str())
        {
            return Err(refuse(
                format!("{flag} {m}"),
                "it shares a namespace with the host or another container",
            ));
        }
    }
    if let Some(d) = h.devices.first() {
        return Err(refuse(
            format!("--device {}", d.path_on_host.as_deref().unwrap_or_default()),
            "host devices are not given to jobs",
        ));
    }
    if !h.device_requests.is_empty() {
        return Err(refuse("--gpus", "host devices are not given to jobs"));
    }
    if let Some(opt) = h.security_opt.iter().find(|s| !tightens(s)) {
        let shown = if opt.starts_with("seccomp={") {
            "seccomp=<profile>"
        } else {
            opt.as_str()
        };
        return Err(refuse(
            format!("--security-opt {shown}"),
            "only no-new-privileges is allowed: other security options can loosen confinement",
        ));
    }
    for bind in &h.binds {
        let source = bind.split(':').next().unwrap_or_default();
        if source.starts_with('/') {
            host_bind(format!("--volume {bind}"), source, work)?;
        }
    }
    for m in &h.mounts {
        match m.typ {
            Some(MountType::BIND) => {
                let source = m.source.as_deref().unwrap_or_default();
                host_bind(format!("--mount source={source}"), source, work)?;
            }
            Some(MountType::VOLUME)
                if m.volume_options
                    .as_ref()
                    .is_some_and(|v| v.driver_config.is_some()) =>
            {
                return Err(refuse(
                    "--mount volume-driver/volume-opt",
                    "volume driver options can mount any host path",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks the workflow's `volumes:` (the runner's own system mounts are trusted).
pub(crate) fn check_user_mounts(mounts: &[Mount], work: Option<&Path>) -> Result<(), Refused> {
    for m in mounts {
        let source = m.source_volume_path.as_deref().unwrap_or_default().trim();
        if source.starts_with('/') {
            host_bind(
                format!(
                    "volumes: {}",
                    m.user_provided_value.as_deref().unwrap_or(source)
                ),
                source,
                work,
            )?;
        }
    }
    Ok(())
}

/// Removes the runner's docker-socket mount from a spec: with the engine's socket a job can
/// start any privileged container, which the policy exists to refuse. Returns whether one was
/// removed.
pub(crate) fn withhold_docker_socket(spec: &mut Container, socket: Option<&str>) -> bool {
    let before = spec.system_mount_volumes.len();
    spec.system_mount_volumes.retain(|m| {
        let source = m.source_volume_path.as_deref().unwrap_or_default();
        let is_socket = Path::new(source)
            .file_name()
            .is_some_and(|n| n == "docker.sock")
            || socket.is_some_and(|s| s == source);
        !is_socket
    });
    spec.system_mount_volumes.len() != before
}

#[cfg(test)]
mod tests;
