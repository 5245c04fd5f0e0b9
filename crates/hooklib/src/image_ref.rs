//! The one image reference of the project: `[registry/]path[:tag][@digest]` read with Docker's
//! rules, used by the image policy ([`crate::policy`]), the docker hook's pulls and the
//! Kubernetes hook's registry check (which converts it to its registry client's reference at the
//! edge).
//!
//! - The first path component is a registry when the reference has a `/` and that component
//!   has a `.` or a `:`, is `localhost`, or has an upper-case letter (Docker's rule: a
//!   repository path is lower case). Without one the registry is `docker.io`, and a
//!   one-component Docker Hub path gets `library/`. `index.docker.io` is `docker.io`.
//!   Registries are kept in lower case.
//! - The tag is after the last `:` of the last path component; the digest after `@`.
//! - Parsing is lenient: it splits and normalises, it does not validate characters, so the
//!   policy's glob patterns (`ghcr.io/acme/{a,b}:*`) split by the same rules as images.

use std::fmt;

/// An image reference split into its parts, the registry and path normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The name as written (trimmed), without tag or digest: `alpine`, `GHCR.io/acme/tool`.
    name: String,
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5555`.
    registry: String,
    /// The repository below the registry: `library/alpine`.
    path: String,
    /// The tag as written.
    tag: Option<String>,
    /// The digest as written, e.g. `sha256:…`.
    digest: Option<String>,
}

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";

impl ImageRef {
    /// Splits and normalises `text`. `None` when it names no repository (blank, `:tag`,
    /// `@digest`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (name_tag, digest) = match text.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (text, None),
        };
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        if name.is_empty() {
            return None;
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_ascii_lowercase(), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_owned()
        } else {
            registry
        };
        let path = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Some(Self {
            name: name.to_owned(),
            registry,
            path,
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// The name as written, without tag or digest (what the Docker Engine's pull API takes as
    /// `fromImage`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registry, `host[:port]` in lower case; `docker.io` for Docker Hub.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository below the registry, e.g. `library/alpine`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `registry/path`, e.g. `docker.io/library/alpine`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }

    /// The tag as written.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest as written.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The tag an image without tag or digest means: the written one, else `latest` unless a
    /// digest names the image.
    pub fn tag_or_latest(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (None, None) => Some("latest"),
            (t, _) => t.as_deref(),
        }
    }
}

impl fmt::Display for ImageRef {
    /// The normalised reference: `docker.io/library/alpine:latest`, `ghcr.io/a/b:1@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)?;
        if let Some(t) = self.tag_or_latest() {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        let r = ImageRef::parse("  busybox ").unwrap();
        assert_eq!(
            (r.name(), r.registry(), r.path(), r.tag(), r.digest()),
            ("busybox", "docker.io", "library/busybox", None, None)
        );
        assert_eq!(r.tag_or_latest(), Some("latest"));
        let r = ImageRef::parse("127.0.0.1:5555/hooktest/busybox:1").unwrap();
        assert_eq!(
            (r.name(), r.registry(), r.path(), r.tag()),
            (
                "127.0.0.1:5555/hooktest/busybox",
                "127.0.0.1:5555",
                "hooktest/busybox",
                Some("1")
            )
        );
        let r = ImageRef::parse("GHCR.io/Acme/x:t@sha256:abc").unwrap();
        assert_eq!(
            (r.name(), r.registry(), r.path()),
            ("GHCR.io/Acme/x", "ghcr.io", "Acme/x")
        );
        assert_eq!((r.tag(), r.digest()), (Some("t"), Some("sha256:abc")));
        assert_eq!(r.to_string(), "ghcr.io/Acme/x:t@sha256:abc");
        let r = ImageRef::parse("redis@sha256:abc").unwrap();
        assert_eq!((r.tag_or_latest(), r.digest()), (None, Some("sha256:abc")));
        assert_eq!(r.repository(), "docker.io/library/redis");
        // Docker's registry rule: a first component without `.`/`:` is a Docker Hub path.
        let r = ImageRef::parse("myregistry/ci/x:1").unwrap();
        assert_eq!((r.registry(), r.path()), ("docker.io", "myregistry/ci/x"));
        for none in ["", "  ", ":tag", "@sha256:abc"] {
            assert_eq!(ImageRef::parse(none), None, "{none:?}");
        }
    }
}
