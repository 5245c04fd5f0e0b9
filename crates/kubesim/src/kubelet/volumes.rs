//! Pod volumes as host directories bind-mounted into the containers: emptyDir, secret,
//! configMap, projected, downwardAPI, hostPath, persistentVolumeClaim.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, KeyToPath, Pod};
use serde_json::Value;

use crate::store::{Kind, Store};

/// Why volumes could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// a referenced object does not exist yet (the kubelet retries, the pod stays ContainerCreating)
    #[error("{0}")]
    Missing(String),
    /// host filesystem trouble
    #[error("{0}")]
    Io(String),
}

fn io(e: std::io::Error, what: &Path) -> VolumeError {
    VolumeError::Io(format!("{}: {e}", what.display()))
}

/// A prepared volume.
#[derive(Debug, Clone)]
pub struct HostVolume {
    /// host directory (or file)
    pub path: PathBuf,
    /// always mounted read-only (secret, configMap, projected, downwardAPI)
    pub read_only: bool,
}

impl HostVolume {
    fn read_only(path: PathBuf) -> Self {
        Self {
            path,
            read_only: true,
        }
    }

    fn writable(path: PathBuf) -> Self {
        Self {
            path,
            read_only: false,
        }
    }
}

fn mk(d: &Path, mode: u32) -> Result<(), VolumeError> {
    std::fs::create_dir_all(d).map_err(|e| io(e, d))?;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).map_err(|e| io(e, d))
}

fn write_file(dir: &Path, rel: &str, data: &[u8], mode: i32) -> Result<(), VolumeError> {
    if rel.split('/').any(|s| s == "..") || rel.starts_with('/') {
        return Err(VolumeError::Io(format!("invalid path {rel:?}")));
    }
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(e, parent))?;
    }
    let mut f = std::fs::File::create(&p).map_err(|e| io(e, &p))?;
    f.write_all(data).map_err(|e| io(e, &p))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode as u32 & 0o7777))
        .map_err(|e| io(e, &p))?;
    Ok(())
}

fn project(
    dir: &Path,
    data: &HashMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    what: &str,
) -> Result<(), VolumeError> {
    match items {
        Some(items) => {
            for it in items {
                let Some(d) = data.get(&it.key) else {
                    return Err(VolumeError::Missing(format!(
                        "configmap references non-existent config key: {} in {what}",
                        it.key
                    )));
                };
                write_file(dir, &it.path, d, it.mode.unwrap_or(default_mode))?;
            }
        }
        None => {
            for (k, d) in data {
                write_file(dir, k, d, default_mode)?;
            }
        }
    }
    Ok(())
}

/// A secret or configMap volume: its `data` (the `items` of it, when given; nothing when an
/// optional source is missing) in a read-only directory.
fn data_volume(
    dir: PathBuf,
    data: Option<HashMap<String, Vec<u8>>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    name: &str,
) -> Result<HostVolume, VolumeError> {
    mk(&dir, 0o755)?;
    let data = data.unwrap_or_default();
    project(&dir, &data, items, default_mode.unwrap_or(0o644), name)?;
    Ok(HostVolume::read_only(dir))
}

/// Where a volume's files come from.
#[derive(Debug, Clone, Copy)]
enum Data {
    Secret,
    ConfigMap,
}

/// A secret's or configmap's data as a volume source: missing is fine (`None`) only when the
/// source is `optional`, as the kubelet has it.
fn source(
    store: &Store,
    ns: &str,
    kind: Data,
    name: &str,
    optional: Option<bool>,
) -> Result<Option<HashMap<String, Vec<u8>>>, VolumeError> {
    let (found, kind) = match kind {
        Data::Secret => (secret_map(store, ns, name), "secret"),
        Data::ConfigMap => (config_map(store, ns, name), "configmap"),
    };
    match found {
        Some(d) => Ok(Some(d)),
        None if optional == Some(true) => Ok(None),
        None => Err(VolumeError::Missing(format!("{kind} {name:?} not found"))),
    }
}

/// Writes the downwardAPI `items` into `dir`, each with its mode or `default_mode`.
fn write_downward(
    dir: &Path,
    pod: &Pod,
    items: Option<&Vec<DownwardAPIVolumeFile>>,
    default_mode: i32,
) -> Result<(), VolumeError> {
    for it in items.into_iter().flatten() {
        let val = it
            .field_ref
            .as_ref()
            .map(|f| downward(pod, &f.field_path))
            .unwrap_or_default();
        write_file(
            dir,
            &it.path,
            val.as_bytes(),
            it.mode.unwrap_or(default_mode),
        )?;
    }
    Ok(())
}

fn secret_map(store: &Store, ns: &str, name: &str) -> Option<HashMap<String, Vec<u8>>> {
    store
        .get(Kind::Secret, ns, name)
        .map(|o| super::plan::secret_data(&o))
}

fn config_map(store: &Store, ns: &str, name: &str) -> Option<HashMap<String, Vec<u8>>> {
    let o = store.get(Kind::ConfigMap, ns, name)?;
    let mut m: HashMap<String, Vec<u8>> = o["data"]
        .as_object()
        .map(|d| {
            d.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().unwrap_or_default().as_bytes().to_vec(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(b) = o["binaryData"].as_object() {
        for (k, v) in b {
            if let Ok(bytes) =
                base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default())
            {
                m.insert(k.clone(), bytes);
            }
        }
    }
    Some(m)
}

fn downward(pod: &Pod, path: &str) -> String {
    let m = &pod.metadata;
    let fmt_map = |x: &Option<std::collections::BTreeMap<String, String>>| {
        x.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => fmt_map(&m.labels),
        "metadata.annotations" => fmt_map(&m.annotations),
        _ => String::new(),
    }
}

/// Apply fsGroup ownership (group = fsGroup, group rw, setgid dirs) recursively.
fn apply_fs_group(p: &Path, gid: u32) {
    let _ = std::os::unix::fs::chown(p, None, Some(gid));
    if let Ok(md) = std::fs::metadata(p) {
        let mut mode = md.permissions().mode();
        mode |= 0o060;
        if md.is_dir() {
            mode |= 0o2010;
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    apply_fs_group(&e.path(), gid);
                }
            }
        }
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    }
}

/// Materialize every volume of the pod under `pod_dir/volumes`. `claim_dir` maps a PVC name to
/// its bound host directory.
pub fn prepare(
    pod: &Pod,
    pod_dir: &Path,
    store: &Store,
    claim_dir: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<HashMap<String, HostVolume>, VolumeError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let fs_group = spec.security_context.as_ref().and_then(|s| s.fs_group);
    let mut out = HashMap::new();
    for v in spec.volumes.iter().flatten() {
        let dir = pod_dir.join("volumes").join(&v.name);
        let hv = if v.empty_dir.is_some() {
            mk(&dir, 0o777)?;
            HostVolume::writable(dir)
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let data = source(store, &ns, Data::Secret, &name, s.optional)?;
            data_volume(dir, data, s.items.as_ref(), s.default_mode, &name)?
        } else if let Some(c) = &v.config_map {
            let data = source(store, &ns, Data::ConfigMap, &c.name, c.optional)?;
            data_volume(dir, data, c.items.as_ref(), c.default_mode, &c.name)?
        } else if let Some(p) = &v.projected {
            mk(&dir, 0o755)?;
            let mode = p.default_mode.unwrap_or(0o644);
            for src in p.sources.iter().flatten() {
                if let Some(s) = &src.secret
                    && let Some(d) = source(store, &ns, Data::Secret, &s.name, s.optional)?
                {
                    project(&dir, &d, s.items.as_ref(), mode, &s.name)?;
                }
                if let Some(c) = &src.config_map
                    && let Some(d) = source(store, &ns, Data::ConfigMap, &c.name, c.optional)?
                {
                    project(&dir, &d, c.items.as_ref(), mode, &c.name)?;
                }
                if let Some(d) = &src.downward_api {
                    write_downward(&dir, pod, d.items.as_ref(), mode)?;
                }
                if let Some(t) = &src.service_account_token {
                    write_file(&dir, &t.path, b"kubesim-service-account-token", mode)?;
                }
            }
            HostVolume::read_only(dir)
        } else if let Some(d) = &v.downward_api {
            mk(&dir, 0o755)?;
            write_downward(&dir, pod, d.items.as_ref(), d.default_mode.unwrap_or(0o644))?;
            HostVolume::read_only(dir)
        } else if let Some(h) = &v.host_path {
            let p = PathBuf::from(&h.path);
            match h.type_.as_deref().unwrap_or("") {
                "DirectoryOrCreate" => mk(&p, 0o755)?,
                "Directory" if !p.is_dir() => {
                    return Err(VolumeError::Missing(format!(
                        "hostPath type check failed: {} is not a directory",
                        h.path
                    )));
                }
                "FileOrCreate" if !p.exists() => {
                    std::fs::File::create(&p).map_err(|e| io(e, &p))?;
                }
                "File" if !p.is_file() => {
                    return Err(VolumeError::Missing(format!(
                        "hostPath type check failed: {} is not a file",
                        h.path
                    )));
                }
                _ => {}
            }
            HostVolume::writable(p)
        } else if let Some(c) = &v.persistent_volume_claim {
            match claim_dir(&c.claim_name) {
                Some(p) => HostVolume {
                    path: p,
                    read_only: c.read_only == Some(true),
                },
                None => {
                    return Err(VolumeError::Missing(format!(
                        "persistentvolumeclaim {:?} not found",
                        c.claim_name
                    )));
                }
            }
        } else {
            // unsupported volume source: an empty directory keeps the pod runnable
            mk(&dir, 0o777)?;
            HostVolume::writable(dir)
        };
        if let Some(g) = fs_group
            && (v.empty_dir.is_some()
                || v.secret.is_some()
                || v.projected.is_some()
                || v.config_map.is_some())
        {
            apply_fs_group(&hv.path, g as u32);
        }
        out.insert(v.name.clone(), hv);
    }
    Ok(out)
}

/// Docker binds for one container's volumeMounts.
pub fn binds(c: &Container, vols: &HashMap<String, HostVolume>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let v = vols
            .get(&m.name)
            .ok_or_else(|| format!("volume {:?} not found", m.name))?;
        let mut host = v.path.clone();
        if let Some(sp) = m.sub_path.as_ref().filter(|s| !s.is_empty()) {
            if sp.split('/').any(|s| s == "..") || sp.starts_with('/') {
                return Err(format!("invalid subPath {sp:?}"));
            }
            host = host.join(sp);
            if !host.exists() {
                std::fs::create_dir_all(&host).map_err(|e| format!("{}: {e}", host.display()))?;
            }
        }
        let ro = v.read_only || m.read_only == Some(true);
        out.push(format!(
            "{}:{}{}",
            host.display(),
            m.mount_path,
            if ro { ":ro" } else { "" }
        ));
    }
    Ok(out)
}

/// Claim directory for a PVC from the configured map (`ns/name`, then `name`) or the dynamic root.
pub fn claim_host_dir(
    static_map: &std::collections::BTreeMap<String, PathBuf>,
    dynamic_root: &Path,
    ns: &str,
    name: &str,
) -> PathBuf {
    static_map
        .get(&format!("{ns}/{name}"))
        .or_else(|| static_map.get(name))
        .cloned()
        .unwrap_or_else(|| dynamic_root.join(format!("{ns}-{name}")))
}

/// The subset of a PVC status the binder writes (pure).
pub fn bound_status(pvc: &Value) -> Value {
    serde_json::json!({
        "phase": "Bound",
        "accessModes": pvc["spec"]["accessModes"],
        "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_volume_with_items_and_modes() {
        let store = Store::new(10);
        store
            .create(Kind::Namespace, "", json!({"metadata": {"name": "n"}}))
            .unwrap();
        store
            .create(
                Kind::Secret,
                "n",
                json!({"metadata": {"name": "s"}, "data": {"a": "aGk=", "b": "eW8="}}),
            )
            .unwrap();
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "n"}, "spec": {
            "volumes": [{"name": "v", "secret": {"secretName": "s", "items": [{"key": "a", "path": "sub/a.txt", "mode": 0o600}]}},
                        {"name": "e", "emptyDir": {}}],
            "containers": [{"name": "c", "image": "i", "volumeMounts": [{"name": "v", "mountPath": "/s"}, {"name": "e", "mountPath": "/e", "subPath": "x"}]}]}})).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let vols = prepare(&pod, tmp.path(), &store, &|_| None).unwrap();
        let f = tmp.path().join("volumes/v/sub/a.txt");
        assert_eq!(std::fs::read(&f).unwrap(), b"hi");
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!tmp.path().join("volumes/v/b").exists());
        let b = binds(&pod.spec.as_ref().unwrap().containers[0], &vols).unwrap();
        assert!(b[0].ends_with("volumes/v:/s:ro"), "{b:?}");
        assert!(b[1].ends_with("volumes/e/x:/e"), "{b:?}");
        // missing secret -> retry later
        let pod2: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "n"}, "spec": {
            "volumes": [{"name": "v", "secret": {"secretName": "nope"}}], "containers": []}}),
        )
        .unwrap();
        assert!(matches!(
            prepare(&pod2, tmp.path(), &store, &|_| None),
            Err(VolumeError::Missing(_))
        ));
    }
}
