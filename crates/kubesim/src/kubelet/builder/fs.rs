//! The emulated container's filesystem view: container paths resolved through the pod's
//! volume binds (what the real container would see at that path), and tar handling.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// `host:container[:ro]` binds of one container.
#[derive(Debug, Clone, Default)]
pub struct Mounts {
    binds: Vec<(PathBuf, String, bool)>,
}

impl Mounts {
    /// From Docker bind strings.
    pub fn from_binds(binds: &[String]) -> Self {
        let binds = binds
            .iter()
            .filter_map(|b| {
                let mut parts = b.splitn(3, ':');
                let host = parts.next()?;
                let target = parts.next()?;
                let ro = parts
                    .next()
                    .is_some_and(|o| o.split(',').any(|x| x == "ro"));
                Some((
                    PathBuf::from(host),
                    target.trim_end_matches('/').to_owned(),
                    ro,
                ))
            })
            .collect();
        Self { binds }
    }

    /// The host path behind `path` in the container, and whether it is read-only; None when
    /// no volume covers it (it would be in the container's own filesystem).
    pub fn resolve(&self, path: &str) -> Option<(PathBuf, bool)> {
        let clean = normalize(path)?;
        self.binds
            .iter()
            .filter_map(|(host, target, ro)| {
                let rest = if clean == *target {
                    ""
                } else {
                    clean.strip_prefix(target.as_str())?.strip_prefix('/')?
                };
                let path = if rest.is_empty() {
                    host.clone()
                } else {
                    host.join(rest)
                };
                Some((target.len(), path, *ro))
            })
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, p, ro)| (p, ro))
    }
}

/// An absolute container path without `.`/`..` (None when it escapes `/` or is relative).
pub fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::Prefix(_) => return None,
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Decompresses a gzip stream (what `tar://stdin` and `tar -z` read).
pub fn gunzip(data: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| format!("gzip: {e}"))?;
    Ok(out)
}

/// The regular files and directories of a tar archive, as normalized relative paths.
pub fn entries(tar_bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in archive.entries().map_err(|e| format!("tar: {e}"))? {
        let e = e.map_err(|e| format!("tar: {e}"))?;
        let p = e.path().map_err(|e| format!("tar: {e}"))?;
        let p = p
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        if !p.is_empty() {
            out.push(p);
        }
    }
    Ok(out)
}

/// Unpacks a tar archive into `dir` (paths escaping it are refused by the tar crate).
pub fn unpack(tar_bytes: &[u8], dir: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("tar: {}: {e}", dir.display()))?;
    let mut archive = tar::Archive::new(tar_bytes);
    archive.set_preserve_permissions(true);
    let mut n = 0;
    for e in archive.entries().map_err(|e| format!("tar: {e}"))? {
        let mut e = e.map_err(|e| format!("tar: {e}"))?;
        e.unpack_in(dir).map_err(|e| format!("tar: {e}"))?;
        n += 1;
    }
    Ok(n)
}

/// A tar archive of everything under `dir` (the context a builder reads from a directory).
pub fn pack_dir(dir: &Path, extra: Option<(&str, &[u8])>) -> Result<Vec<u8>, String> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?;
    if let Some((name, data)) = extra {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data)
            .map_err(|e| e.to_string())?;
    }
    b.into_inner().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_resolve_longest_prefix() {
        let m = Mounts::from_binds(&[
            "/pods/x/volumes/docker-config:/kaniko/.docker:ro".into(),
            "/pods/x/termination/kaniko-0:/dev/termination-log".into(),
            "/pods/x/volumes/ctx:/home/user/context".into(),
            "/pods/x/volumes/inner:/home/user/context/inner".into(),
        ]);
        assert_eq!(
            m.resolve("/kaniko/.docker/config.json"),
            Some((
                PathBuf::from("/pods/x/volumes/docker-config/config.json"),
                true
            ))
        );
        assert_eq!(
            m.resolve("/dev/termination-log"),
            Some((PathBuf::from("/pods/x/termination/kaniko-0"), false))
        );
        assert_eq!(
            m.resolve("/home/user/context/inner/a"),
            Some((PathBuf::from("/pods/x/volumes/inner/a"), false))
        );
        assert_eq!(
            m.resolve("/home/user/context/../context/b").unwrap().0,
            PathBuf::from("/pods/x/volumes/ctx/b")
        );
        assert_eq!(m.resolve("/kaniko/.dockerx"), None);
        assert_eq!(m.resolve("/tmp/x"), None);
        assert_eq!(normalize("/.."), None);
        assert_eq!(normalize("rel"), None);
    }

    #[test]
    fn tar_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f"), "x").unwrap();
        let t = pack_dir(dir.path(), Some(("extra", b"y"))).unwrap();
        let mut names = entries(&t).unwrap();
        names.sort();
        assert!(
            names.contains(&"a/b/f".to_owned()) && names.contains(&"extra".to_owned()),
            "{names:?}"
        );
        let out = tempfile::tempdir().unwrap();
        unpack(&t, out.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.path().join("a/b/f")).unwrap(),
            "x"
        );
        assert!(gunzip(b"not gzip", 100).is_err());
    }
}
