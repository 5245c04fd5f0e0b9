//! The test images: what they contain (pure recipes), their Dockerfiles, build contexts and
//! fingerprints. Nothing here talks to Docker.

use std::path::Path;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

/// Tag of every test image.
pub const TAG: &str = "1";

/// Bump when the recipe changes in a way the fingerprint cannot see (e.g. how applets are linked).
const RECIPE_VERSION: &str = "testenv-recipe-1";

/// Applets tests rely on; the build fails if the host busybox lacks one.
pub const REQUIRED_APPLETS: &[&str] = &[
    "sh", "tail", "tar", "env", "cat", "sleep", "echo", "ls", "mkdir", "rm", "cp", "mv", "id",
    "grep", "sed", "wc", "head", "true", "false", "printf", "test", "touch", "chmod", "kill",
    "whoami",
];

/// The uid/gid of the unprivileged user (`runner`) present in every image.
pub const RUNNER_UID: u32 = 1001;

/// Version string printed by the fake `node --version` in the Runner image.
pub const FAKE_NODE_VERSION: &str = "v20.19.0-hooktest";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Image {
    /// FROM scratch + static busybox with applets linked: sh, tail, tar, env, cat, sleep, echo, ls,
    /// ... ; /etc/os-release ID=debian (NOT alpine)
    Busybox,
    /// same, but /etc/os-release has ID=alpine
    AlpineLike,
    /// busybox + HEALTHCHECK that turns healthy after ~3 s (interval 1s)
    Healthy,
    /// busybox + HEALTHCHECK that never passes (interval 1s, retries 3)
    Unhealthy,
    /// busybox + /home/runner/externals/... (a fake runner "externals" tree) — the
    /// ACTIONS_RUNNER_IMAGE stand-in for the k8s hook's fs-init container
    Runner,
}

impl Image {
    pub const ALL: [Self; 5] = [
        Self::Busybox,
        Self::AlpineLike,
        Self::Healthy,
        Self::Unhealthy,
        Self::Runner,
    ];

    /// Repository name inside the namespace, e.g. `busybox`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Busybox => "busybox",
            Self::AlpineLike => "alpine-like",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::Runner => "runner",
        }
    }

    /// `/etc/os-release` of the image.
    pub fn os_release(self) -> &'static str {
        match self {
            Self::AlpineLike => concat!(
                "NAME=\"Alpine Linux\"\n",
                "ID=alpine\n",
                "VERSION_ID=3.20.0\n",
                "PRETTY_NAME=\"Alpine Linux v3.20 (hooktest busybox stand-in)\"\n",
                "HOME_URL=\"https://alpinelinux.org/\"\n",
            ),
            _ => concat!(
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm) (hooktest busybox stand-in)\"\n",
                "NAME=\"Debian GNU/Linux\"\n",
                "VERSION_ID=\"12\"\n",
                "VERSION=\"12 (bookworm)\"\n",
                "VERSION_CODENAME=bookworm\n",
                "ID=debian\n",
                "HOME_URL=\"https://www.debian.org/\"\n",
            ),
        }
    }
}

/// The locally tagged name in the default namespace, e.g. `hooktest/busybox:1`.
pub fn local_tag(which: Image) -> &'static str {
    match which {
        Image::Busybox => "hooktest/busybox:1",
        Image::AlpineLike => "hooktest/alpine-like:1",
        Image::Healthy => "hooktest/healthy:1",
        Image::Unhealthy => "hooktest/unhealthy:1",
        Image::Runner => "hooktest/runner:1",
    }
}

/// `<namespace>/<name>:1`
pub fn tag_in(namespace: &str, which: Image) -> String {
    format!("{namespace}/{}:{TAG}", which.name())
}

/// Where a context entry's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Bytes(Vec<u8>),
    /// A host file, read only when the context tar is built; fingerprinted by its metadata.
    Host(std::path::PathBuf),
}

/// One entry of a build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        source: Source,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// Everything needed to build one image: its Dockerfile and build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    pub image: Image,
    pub dockerfile: String,
    pub entries: Vec<Entry>,
}

fn exec_form(args: &[&str]) -> String {
    serde_json::to_string(args).expect("string array serialises")
}

/// The Dockerfile of `which` (without the ownership `LABEL`, see [`Recipe::dockerfile_with`]).
/// Every instruction costs the legacy builder about a second, so there are few, and the ones all
/// images share come first (the builder's cache then reuses them).
pub fn dockerfile(which: Image) -> String {
    let mut d = String::from("FROM scratch\nCOPY rootfs/ /\n");
    d.push_str(&format!(
        "COPY --chown={RUNNER_UID}:{RUNNER_UID} home/ /home/\n"
    ));
    d.push_str("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
    d.push_str("COPY os-release /etc/os-release\n");
    if which == Image::Runner {
        d.push_str(&format!(
            "COPY --chown={RUNNER_UID}:{RUNNER_UID} externals/ /home/runner/externals/\n"
        ));
    }
    // `trap` + `sleep & wait`: PID 1 reacts to `docker stop` at once instead of after 10 s.
    let forever = "while :; do sleep 3600 & wait $!; done";
    match which {
        Image::Healthy => {
            d.push_str("HEALTHCHECK --interval=1s --retries=30 CMD test -f /tmp/ready\n");
            let script =
                format!("trap 'exit 0' TERM INT; sleep 3 & wait $!; touch /tmp/ready; {forever}");
            d.push_str(&format!("CMD {}\n", exec_form(&["sh", "-c", &script])));
        }
        Image::Unhealthy => {
            d.push_str("HEALTHCHECK --interval=1s --retries=3 CMD false\n");
            let script = format!("trap 'exit 0' TERM INT; {forever}");
            d.push_str(&format!("CMD {}\n", exec_form(&["sh", "-c", &script])));
        }
        Image::Busybox | Image::AlpineLike | Image::Runner => {
            d.push_str(&format!("CMD {}\n", exec_form(&["sh"])));
        }
    }
    d
}

/// Applet links from `busybox --list-full` output (`usr/bin/env` per line). Fails if a
/// [`REQUIRED_APPLETS`] entry is missing.
pub fn applet_links(list_full: &str) -> anyhow::Result<Vec<String>> {
    let mut links: Vec<String> = list_full
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && l.contains('/') && !l.contains(".."))
        .filter(|l| *l != "bin/busybox")
        .map(str::to_owned)
        .collect();
    links.sort();
    links.dedup();
    for applet in REQUIRED_APPLETS {
        if !links.iter().any(|l| l.rsplit('/').next() == Some(applet)) {
            anyhow::bail!("busybox lacks the required applet {applet:?}");
        }
    }
    Ok(links)
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
runner:x:1001:1001:runner:/home/runner:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nrunner:x:1001:\nnogroup:x:65534:\n";

fn fake_node() -> String {
    format!(
        r#"#!/bin/sh
# Fake node for hook tests (test data): prints what it was asked to run.
if [ "$1" = "--version" ]; then
  echo "{FAKE_NODE_VERSION}"
  exit 0
fi
echo "fake-node20 $*"
"#
    )
}
const EXTERNALS_README: &str = "Fake GitHub Actions runner 'externals' tree for container hook tests.\n\
node20/bin/node is a shell script that prints its arguments.\n";

/// The build recipe of `which`; `applets` comes from [`applet_links`].
pub fn recipe(which: Image, busybox: &Path, applets: &[String]) -> Recipe {
    let dir = |path: &str, mode: u32| Entry::Dir {
        path: path.to_owned(),
        mode,
    };
    let text = |path: &str, mode: u32, data: &str| Entry::File {
        path: path.to_owned(),
        mode,
        source: Source::Bytes(data.as_bytes().to_vec()),
    };
    let mut e = vec![dir("rootfs", 0o755)];
    for d in [
        "bin",
        "etc",
        "root",
        "sbin",
        "tmp",
        "usr",
        "usr/bin",
        "usr/local",
        "usr/local/bin",
        "usr/sbin",
        "var",
        "var/tmp",
    ] {
        let mode = match d {
            "tmp" | "var/tmp" => 0o1777,
            "root" => 0o700,
            _ => 0o755,
        };
        e.push(dir(&format!("rootfs/{d}"), mode));
    }
    e.push(Entry::File {
        path: "rootfs/bin/busybox".to_owned(),
        mode: 0o755,
        source: Source::Host(busybox.to_path_buf()),
    });
    for link in applets {
        e.push(Entry::Symlink {
            path: format!("rootfs/{link}"),
            target: "/bin/busybox".to_owned(),
        });
    }
    e.push(text("rootfs/etc/passwd", 0o644, PASSWD));
    e.push(text("rootfs/etc/group", 0o644, GROUP));
    e.push(dir("home", 0o755));
    e.push(dir("home/runner", 0o755));
    e.push(text("os-release", 0o644, which.os_release()));
    if which == Image::Runner {
        e.push(dir("externals", 0o755));
        e.push(text("externals/README", 0o644, EXTERNALS_README));
        e.push(dir("externals/node20", 0o755));
        e.push(dir("externals/node20/bin", 0o755));
        e.push(text("externals/node20/bin/node", 0o755, &fake_node()));
    }
    Recipe {
        image: which,
        dockerfile: dockerfile(which),
        entries: e,
    }
}

impl Recipe {
    /// Content fingerprint: changes whenever the image would differ. Host files count by path,
    /// size and mtime (hashing a 2 MB busybox on every `ensure()` would cost more than it saves).
    pub fn fingerprint(&self) -> anyhow::Result<String> {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(RECIPE_VERSION.as_bytes());
        field(self.dockerfile.as_bytes());
        for entry in &self.entries {
            match entry {
                Entry::Dir { path, mode } => {
                    field(b"dir");
                    field(path.as_bytes());
                    field(&mode.to_le_bytes());
                }
                Entry::Symlink { path, target } => {
                    field(b"symlink");
                    field(path.as_bytes());
                    field(target.as_bytes());
                }
                Entry::File { path, mode, source } => {
                    field(b"file");
                    field(path.as_bytes());
                    field(&mode.to_le_bytes());
                    match source {
                        Source::Bytes(b) => field(b),
                        Source::Host(p) => {
                            let meta = std::fs::metadata(p)
                                .with_context(|| format!("reading {}", p.display()))?;
                            let mtime = meta
                                .modified()
                                .ok()
                                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                                .map_or(0, |d| d.as_nanos());
                            field(p.as_os_str().as_encoded_bytes());
                            field(&meta.len().to_le_bytes());
                            field(&mtime.to_le_bytes());
                        }
                    }
                }
            }
        }
        Ok(hex::encode(h.finalize()))
    }

    /// The Dockerfile plus one `LABEL` instruction carrying `labels` (one build step, where the
    /// build API's `labels` parameter would add one step per label).
    pub fn dockerfile_with(&self, labels: &[(&str, &str)]) -> String {
        let mut d = self.dockerfile.clone();
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).expect("string")))
                .collect();
            d.push_str(&format!("LABEL {}\n", pairs.join(" ")));
        }
        d
    }

    /// The build context as an uncompressed tar (`dockerfile` + entries), deterministic headers.
    pub fn context_tar(&self, dockerfile: &str) -> anyhow::Result<Vec<u8>> {
        const MTIME: u64 = 1_700_000_000;
        let mut b = tar::Builder::new(Vec::new());
        let header = |kind, mode, size| tar_header(kind, mode, size, MTIME);
        let df = dockerfile.as_bytes();
        let mut h = header(tar::EntryType::Regular, 0o644, df.len() as u64);
        b.append_data(&mut h, "Dockerfile", df)?;
        for entry in &self.entries {
            match entry {
                Entry::Dir { path, mode } => {
                    let mut h = header(tar::EntryType::Directory, *mode, 0);
                    b.append_data(&mut h, format!("{path}/"), std::io::empty())?;
                }
                Entry::Symlink { path, target } => {
                    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                    b.append_link(&mut h, path, target)?;
                }
                Entry::File { path, mode, source } => {
                    let data = match source {
                        Source::Bytes(bytes) => bytes.clone(),
                        Source::Host(p) => {
                            std::fs::read(p).with_context(|| format!("reading {}", p.display()))?
                        }
                    };
                    let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                    b.append_data(&mut h, path, data.as_slice())?;
                }
            }
        }
        Ok(b.into_inner()?)
    }
}

/// A deterministic tar header: `kind`, `mode`, `size`, owned by root (0:0), modified at `mtime`.
pub fn tar_header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applets() -> Vec<String> {
        let list = REQUIRED_APPLETS
            .iter()
            .map(|a| format!("bin/{a}"))
            .chain(["bin/busybox".to_owned(), "usr/bin/env".to_owned()])
            .collect::<Vec<_>>()
            .join("\n");
        applet_links(&list).unwrap()
    }

    #[test]
    fn local_tags_follow_the_naming_scheme() {
        for which in Image::ALL {
            assert_eq!(local_tag(which), tag_in("hooktest", which));
        }
    }

    #[test]
    fn dockerfiles() {
        for which in Image::ALL {
            insta::assert_snapshot!(which.name(), dockerfile(which));
        }
    }

    #[test]
    fn os_release_ids() {
        let id = |w: Image| {
            w.os_release()
                .lines()
                .find_map(|l| l.strip_prefix("ID="))
                .unwrap()
                .to_owned()
        };
        assert_eq!(id(Image::AlpineLike), "alpine");
        for w in [
            Image::Busybox,
            Image::Healthy,
            Image::Unhealthy,
            Image::Runner,
        ] {
            assert_eq!(id(w), "debian");
        }
    }

    #[test]
    fn applet_list_parsing() {
        let links = applets();
        assert!(links.contains(&"bin/sh".to_owned()));
        assert!(links.contains(&"usr/bin/env".to_owned()));
        assert!(!links.contains(&"bin/busybox".to_owned()));
        let err = applet_links("bin/sh\nlinuxrc\n").unwrap_err().to_string();
        assert_eq!(err, "busybox lacks the required applet \"tail\"");
    }

    #[test]
    fn runner_recipe_listing() {
        let r = recipe(Image::Runner, Path::new("/bin/busybox"), &applets());
        let listing: Vec<String> = r
            .entries
            .iter()
            .filter(|e| !matches!(e, Entry::Symlink { .. }))
            .map(|e| match e {
                Entry::Dir { path, mode } => format!("d {mode:o} {path}"),
                Entry::File { path, mode, source } => match source {
                    Source::Bytes(b) => format!("f {mode:o} {path} ({} bytes)", b.len()),
                    Source::Host(p) => format!("f {mode:o} {path} <- {}", p.display()),
                },
                Entry::Symlink { .. } => unreachable!(),
            })
            .collect();
        insta::assert_snapshot!(listing.join("\n"));
    }

    #[test]
    fn fingerprint_tracks_content() {
        let dir = tempfile::tempdir().unwrap();
        let bb = dir.path().join("busybox");
        std::fs::write(&bb, b"v1").unwrap();
        let a = recipe(Image::Busybox, &bb, &applets());
        let fp = a.fingerprint().unwrap();
        assert_eq!(fp, a.fingerprint().unwrap());
        assert_ne!(
            fp,
            recipe(Image::AlpineLike, &bb, &applets())
                .fingerprint()
                .unwrap()
        );
        std::fs::write(&bb, b"v2-longer").unwrap();
        assert_ne!(fp, a.fingerprint().unwrap());
    }

    #[test]
    fn context_tar_is_deterministic_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let bb = dir.path().join("busybox");
        std::fs::write(&bb, b"#!fake busybox").unwrap();
        let r = recipe(Image::Healthy, &bb, &applets());
        let df = r.dockerfile_with(&[("a.b", "x y"), ("c", "1")]);
        assert!(df.ends_with("\nLABEL a.b=\"x y\" c=\"1\"\n"), "{df}");
        let tar1 = r.context_tar(&df).unwrap();
        assert_eq!(tar1, r.context_tar(&df).unwrap());
        let mut archive = tar::Archive::new(tar1.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            if path == "rootfs/bin/sh" {
                assert_eq!(
                    entry.link_name().unwrap().unwrap().display().to_string(),
                    "/bin/busybox"
                );
            }
            if path == "rootfs/tmp/" {
                assert_eq!(entry.header().mode().unwrap(), 0o1777);
            }
            seen.push(path);
        }
        for must in [
            "Dockerfile",
            "rootfs/bin/busybox",
            "rootfs/etc/passwd",
            "os-release",
        ] {
            assert!(seen.iter().any(|p| p == must), "{must} missing: {seen:?}");
        }
    }
}
