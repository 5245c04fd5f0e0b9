//! The build context of a Dockerfile action: the Dockerfile's directory as a tar stream,
//! filtered by `.dockerignore`, written deterministically (sorted, fixed times and owners) so
//! its hash names the image and an unchanged action is not rebuilt.

use crate::dockerignore::{DockerIgnore, IgnoreError};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// A packed build context.
#[derive(Debug)]
pub struct BuildContext {
    /// The tar archive.
    pub tar: Vec<u8>,
    /// Hex SHA-256 of the archive and the Dockerfile's name.
    pub digest: String,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    /// How many files and directories were packed.
    pub entries: usize,
}

impl BuildContext {
    /// The first 16 hex digits of the digest: enough to name an image tag.
    pub fn short_digest(&self) -> &str {
        &self.digest[..16]
    }
}

/// The build context could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the context could not be read.
    #[error("cannot read the build context {path}: {source}")]
    Context {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `.dockerignore` is invalid.
    #[error(transparent)]
    DockerIgnore(#[from] IgnoreError),
}

/// What [`pack_into`] wrote: everything of a [`BuildContext`] but the archive itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Hex SHA-256 of the archive and the Dockerfile's name.
    pub digest: String,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    /// How many files and directories were packed.
    pub entries: usize,
}

impl Packed {
    /// The first 16 hex digits of the digest.
    pub fn short_digest(&self) -> &str {
        &self.digest[..16]
    }
}

struct HashingWriter<W> {
    out: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Context {
        path: path.display().to_string(),
        source,
    }
}

/// Packs the directory of `dockerfile` (an absolute host path) as a build context, in memory.
pub fn pack(dockerfile: &Path) -> Result<BuildContext, Error> {
    let (packed, tar) = pack_into(dockerfile, Vec::new())?;
    Ok(BuildContext {
        tar,
        digest: packed.digest,
        dockerfile: packed.dockerfile,
        entries: packed.entries,
    })
}

/// The digest of the build context of `dockerfile`, reading its files once and keeping
/// nothing (the archive goes to a sink).
pub fn digest(dockerfile: &Path) -> Result<Packed, Error> {
    pack_into(dockerfile, std::io::sink()).map(|(p, _)| p)
}

/// Packs the build context of `dockerfile` into `out` as it goes (a stream: nothing is held
/// in memory but the file being read); returns its digest and `out`. The same files give the
/// same bytes, so a second pass can be checked against the digest of a first.
pub fn pack_into<W: Write>(dockerfile: &Path, out: W) -> Result<(Packed, W), Error> {
    let dir = dockerfile.parent().unwrap_or(Path::new("/"));
    let name = dockerfile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".to_owned());
    std::fs::metadata(dockerfile).map_err(io_err(dockerfile))?;
    let ignore_path = dir.join(".dockerignore");
    let mut ignore = match std::fs::read_to_string(&ignore_path) {
        Ok(text) => DockerIgnore::parse(&text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DockerIgnore::default(),
        Err(e) => return Err(io_err(&ignore_path)(e)),
    };
    ignore.keep(".dockerignore");
    ignore.keep(&name);

    let mut builder = tar::Builder::new(HashingWriter {
        out,
        hash: Sha256::new(),
    });
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    let mut entries = 0;
    walk(&mut builder, dir, "", &ignore, &mut entries)?;
    let mut writer = builder.into_inner().map_err(io_err(dir))?;
    writer.flush().map_err(io_err(dir))?;
    writer.hash.update(b"\0dockerfile\0");
    writer.hash.update(name.as_bytes());
    let packed = Packed {
        digest: hex::encode(writer.hash.finalize()),
        dockerfile: name,
        entries,
    };
    Ok((packed, writer.out))
}

fn walk<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &Path,
    rel: &str,
    ignore: &DockerIgnore,
    entries: &mut usize,
) -> Result<(), Error> {
    let mut list: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    list.sort_by_key(|e| e.file_name());
    for entry in list {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel_path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
        let excluded = ignore.is_excluded(&rel_path);
        if meta.is_dir() {
            if !excluded {
                builder
                    .append_path_with_name(&path, &rel_path)
                    .map_err(io_err(&path))?;
                *entries += 1;
            }
            if !excluded || ignore.must_descend(&rel_path) {
                walk(builder, &path, &rel_path, ignore, entries)?;
            }
        } else if !excluded && (meta.is_file() || meta.file_type().is_symlink()) {
            builder
                .append_path_with_name(&path, &rel_path)
                .map_err(io_err(&path))?;
            *entries += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ctx: &BuildContext) -> Vec<String> {
        let mut archive = tar::Archive::new(ctx.tar.as_slice());
        archive
            .entries()
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_owned()
            })
            .collect()
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        dir
    }

    #[test]
    fn honours_dockerignore_and_always_sends_the_dockerfile() {
        let dir = tree(&[
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "*\n!src\nsrc/*.tmp\n!keep/me\n"),
            ("secret.env", "x"),
            ("src/main.sh", "echo"),
            ("src/junk.tmp", "x"),
            ("keep/me", "x"),
            ("keep/not-me", "x"),
        ]);
        let ctx = pack(&dir.path().join("Dockerfile")).unwrap();
        assert_eq!(
            names(&ctx),
            [
                ".dockerignore",
                "Dockerfile",
                "keep/me",
                "src",
                "src/main.sh"
            ]
        );
        assert_eq!(ctx.dockerfile, "Dockerfile");
        assert_eq!(ctx.entries, 5);
    }

    #[test]
    fn digest_is_stable_and_follows_content() {
        let dir = tree(&[("Dockerfile", "FROM scratch\n"), ("a", "1")]);
        let df = dir.path().join("Dockerfile");
        let one = pack(&df).unwrap();
        // Touching a file (new mtime) does not change the digest…
        std::fs::write(dir.path().join("a"), "1").unwrap();
        assert_eq!(pack(&df).unwrap().digest, one.digest);
        // …changing its content does.
        std::fs::write(dir.path().join("a"), "2").unwrap();
        let two = pack(&df).unwrap();
        assert_ne!(two.digest, one.digest);
        assert_eq!(two.short_digest(), &two.digest[..16]);
        // The streaming passes agree with the in-memory one, byte for byte.
        let d = digest(&df).unwrap();
        assert_eq!(
            (d.digest.as_str(), d.entries),
            (two.digest.as_str(), two.entries)
        );
        let (p, bytes) = pack_into(&df, Vec::new()).unwrap();
        assert_eq!((p, bytes), (d, two.tar));
    }

    #[test]
    fn missing_dockerfile_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = pack(&dir.path().join("Dockerfile"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot read the build context"), "{err}");
        assert!(err.contains("Dockerfile"), "{err}");
    }

    #[test]
    fn bad_dockerignore_is_reported() {
        let dir = tree(&[("Dockerfile", "FROM scratch\n"), (".dockerignore", "!\n")]);
        let err = pack(&dir.path().join("Dockerfile"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(".dockerignore line 1"), "{err}");
    }
}
