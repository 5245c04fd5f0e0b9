//! Where a test environment lives and which host tools build it.
//!
//! `Settings::default()` is THE shared environment every test crate uses (`ensure()`); testenv's own
//! lifecycle tests build an isolated one (own namespace, ports and directories) with
//! [`Settings::isolated`] so that tearing it down never disturbs tests running concurrently.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// Image namespace of the shared environment: images are `hooktest/<name>:1`.
pub const DEFAULT_NAMESPACE: &str = "hooktest";
/// User of the password-protected registry.
pub const AUTH_USER: &str = "hookuser";
/// Fixed password of the password-protected registry (test data, not a secret).
pub const AUTH_PASSWORD: &str = "hook-test-pw-4c1e";

/// One registry process: where it listens and where its state (config, htpasswd, data, pidfile,
/// log) lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Loopback address the registry listens on, e.g. `127.0.0.1:5555`.
    pub addr: SocketAddr,
    /// State directory, e.g. `/tmp/hooktest-registry-plain`.
    pub dir: PathBuf,
}

/// Host programs the environment is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// A static busybox (Debian's busybox-static): copied into every image; also used for `kill`.
    pub busybox: PathBuf,
    /// Debian's docker-registry (distribution v2).
    pub docker_registry: PathBuf,
    /// apache2-utils' htpasswd (bcrypt entries).
    pub htpasswd: PathBuf,
    /// util-linux setsid: detaches the registries from the caller's session.
    pub setsid: PathBuf,
}

impl Default for Tools {
    fn default() -> Self {
        Self {
            busybox: PathBuf::from("/bin/busybox"),
            docker_registry: PathBuf::from("/usr/bin/docker-registry"),
            htpasswd: PathBuf::from("/usr/bin/htpasswd"),
            setsid: PathBuf::from("/usr/bin/setsid"),
        }
    }
}

/// Everything that identifies one test environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Image repository namespace (`hooktest`) — also the value of the ownership label
    /// [`crate::LABEL_NAMESPACE`] on every image, so teardown removes only its own.
    pub namespace: String,
    /// Plain HTTP registry without auth.
    pub plain: RegistrySettings,
    /// Registry requiring HTTP basic auth.
    pub auth: RegistrySettings,
    pub auth_user: String,
    pub auth_password: String,
    /// Cross-process lock serialising `ensure`/`teardown`.
    pub lock_file: PathBuf,
    pub tools: Tools,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            plain: RegistrySettings {
                addr: SocketAddr::from(([127, 0, 0, 1], 5555)),
                dir: PathBuf::from("/tmp/hooktest-registry-plain"),
            },
            auth: RegistrySettings {
                addr: SocketAddr::from(([127, 0, 0, 1], 5556)),
                dir: PathBuf::from("/tmp/hooktest-registry-auth"),
            },
            auth_user: AUTH_USER.to_owned(),
            auth_password: AUTH_PASSWORD.to_owned(),
            lock_file: PathBuf::from("/tmp/hooktest-testenv.lock"),
            tools: Tools::default(),
        }
    }
}

impl Settings {
    /// A separate environment: namespace `namespace`, registries on 127.0.0.1 at the given ports,
    /// all state (registry dirs, lock file) under `root`.
    pub fn isolated(namespace: &str, root: &Path, plain_port: u16, auth_port: u16) -> Self {
        Self {
            namespace: namespace.to_owned(),
            plain: RegistrySettings {
                addr: SocketAddr::from(([127, 0, 0, 1], plain_port)),
                dir: root.join("registry-plain"),
            },
            auth: RegistrySettings {
                addr: SocketAddr::from(([127, 0, 0, 1], auth_port)),
                dir: root.join("registry-auth"),
            },
            lock_file: root.join("testenv.lock"),
            ..Self::default()
        }
    }

    /// Checks what can be checked without side effects: names, addresses, tools.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.validate_names()?;
        for (what, path) in [
            ("busybox", &self.tools.busybox),
            ("docker-registry", &self.tools.docker_registry),
            ("htpasswd", &self.tools.htpasswd),
            ("setsid", &self.tools.setsid),
        ] {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("{what} not found at {}", path.display()))?;
            if !meta.is_file() {
                bail!("{what} at {} is not a regular file", path.display());
            }
        }
        Ok(())
    }

    /// The checks teardown needs too (it must not depend on the build tools).
    pub(crate) fn validate_names(&self) -> anyhow::Result<()> {
        let ns = &self.namespace;
        let ok = !ns.is_empty()
            && ns.len() <= 64
            && ns
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        if !ok {
            bail!(
                "invalid testenv namespace {ns:?}: use 1-64 of [a-z0-9-], not starting/ending with '-'"
            );
        }
        for reg in [&self.plain, &self.auth] {
            if !reg.addr.ip().is_loopback() {
                bail!("registry address {} is not a loopback address", reg.addr);
            }
            if !reg.dir.is_absolute() {
                bail!("registry state dir {} is not absolute", reg.dir.display());
            }
        }
        if self.plain.addr == self.auth.addr {
            bail!("plain and auth registry both use {}", self.plain.addr);
        }
        if self.plain.dir == self.auth.dir {
            bail!(
                "plain and auth registry both use {}",
                self.plain.dir.display()
            );
        }
        if self.auth_user.is_empty() || self.auth_user.contains(':') {
            bail!("invalid registry user {:?}", self.auth_user);
        }
        if self.auth_password.is_empty() {
            bail!("empty registry password");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_matches_contract() {
        let s = Settings::default();
        s.validate_names().unwrap();
        assert_eq!(s.plain.addr.to_string(), "127.0.0.1:5555");
        assert_eq!(s.auth.addr.to_string(), "127.0.0.1:5556");
        assert_eq!(s.plain.dir, Path::new("/tmp/hooktest-registry-plain"));
        assert_eq!(s.auth.dir, Path::new("/tmp/hooktest-registry-auth"));
    }

    #[test]
    fn rejects_bad_names_and_addresses() {
        for ns in ["", "Hooktest", "a/b", "-x", "x-", "a_b"] {
            let s = Settings {
                namespace: ns.to_owned(),
                ..Settings::default()
            };
            assert!(s.validate_names().is_err(), "{ns:?} accepted");
        }
        let mut s = Settings::default();
        s.plain.addr = SocketAddr::from(([10, 0, 0, 1], 5555));
        let err = s.validate_names().unwrap_err().to_string();
        assert!(err.contains("not a loopback"), "{err}");
        let mut s = Settings::default();
        s.auth.addr = s.plain.addr;
        assert!(s.validate_names().is_err());
    }

    #[test]
    fn missing_tool_is_a_clear_error() {
        let mut s = Settings::default();
        s.tools.htpasswd = PathBuf::from("/nonexistent/htpasswd");
        let err = s.validate().unwrap_err().to_string();
        assert_eq!(err, "htpasswd not found at /nonexistent/htpasswd");
    }
}
