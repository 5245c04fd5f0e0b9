//! `cargo xtask dist`: release folders and archives for both hooks.
//!
//! For each hook: `dist/<hook>/` with the release binary, `index.js` and `index.sh` (the
//! launchers the runner accepts), `LICENSE` and a short README, then
//! `dist/<hook>-<version>-<target>.tar.gz` and a line in `dist/SHA256SUMS`.
//!
//! Then the runner-image overlay `dist/container-hooks-overlay.tar.gz`: `ADD` at `/` on top of
//! `ghcr.io/actions/actions-runner`, it replaces the hooks of the image's `/home/runner/k8s`
//! and `/home/runner/k8s-novolume` folders (where ARC's chart points
//! `ACTIONS_RUNNER_CONTAINER_HOOKS`) and adds `/home/runner/docker`.

use crate::cmd;
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const HOOKS: [&str; 2] = ["docker-hook", "k8s-hook"];

/// The overlay archive's name (`ADD container-hooks-overlay.tar.gz /`).
pub const OVERLAY_NAME: &str = "container-hooks-overlay.tar.gz";

/// The overlay's folders under `home/runner/` and the hook each runs. The names are those of
/// GitHub's runner image (ARC sets `ACTIONS_RUNNER_CONTAINER_HOOKS=/home/runner/k8s/index.js`
/// for `containerMode: kubernetes`, `…/k8s-novolume/index.js` for `kubernetes-novolume`); the
/// launchers tell the binary their folder, and `k8s` means volume mode. A hook's first folder
/// holds its binary, later ones a relative link to it.
pub const OVERLAY: [(&str, &str); 3] = [
    ("k8s", "k8s-hook"),
    ("k8s-novolume", "k8s-hook"),
    ("docker", "docker-hook"),
];

/// Modification time of every overlay entry, so that the same binaries give the same archive.
const OVERLAY_MTIME: u64 = 1_700_000_000;

pub fn run() -> anyhow::Result<Vec<PathBuf>> {
    cmd(
        "cargo",
        &["build", "--release", "-p", "docker-hook", "-p", "k8s-hook"],
    )?;
    let version = env!("CARGO_PKG_VERSION");
    let target = host_target()?;
    let dist = Path::new("dist");
    if dist.exists() {
        fs::remove_dir_all(dist)?;
    }
    fs::create_dir_all(dist)?;
    let mut sums = String::new();
    let mut archives = Vec::new();
    for hook in HOOKS {
        let dir = dist.join(hook);
        fs::create_dir_all(&dir)?;
        fs::copy(Path::new("target/release").join(hook), dir.join(hook))?;
        write_launcher(&dir, hook)?;
        fs::copy("LICENSE", dir.join("LICENSE"))?;
        let glibc = glibc_requirement(&dir.join(hook));
        fs::write(
            dir.join("README.md"),
            readme(hook, version, glibc.as_deref()),
        )?;
        let name = format!("{hook}-{version}-{target}.tar.gz");
        let archive = dist.join(&name);
        archive_dir(&dir, hook, &archive)?;
        let digest = hex::encode(Sha256::digest(fs::read(&archive)?));
        sums.push_str(&format!("{digest}  {name}\n"));
        archives.push(archive);
    }
    let overlay = dist.join(OVERLAY_NAME);
    write_overlay(
        Path::new("target/release"),
        Path::new("LICENSE"),
        fs::File::create(&overlay)?,
    )?;
    let digest = hex::encode(Sha256::digest(fs::read(&overlay)?));
    sums.push_str(&format!("{digest}  {OVERLAY_NAME}\n"));
    archives.push(overlay);
    fs::write(dist.join("SHA256SUMS"), sums)?;
    for a in &archives {
        eprintln!("wrote {}", a.display());
    }
    Ok(archives)
}

/// The launchers for `binary`: `(file name, mode, text)` from the templates `bins/index.sh` and
/// `bins/index.js`.
pub fn launchers(binary: &str) -> [(&'static str, u32, String); 2] {
    [
        (
            "index.sh",
            0o755,
            include_str!("../../bins/index.sh").replace("@BIN@", binary),
        ),
        (
            "index.js",
            0o644,
            include_str!("../../bins/index.js").replace("@BIN@", binary),
        ),
    ]
}

/// Writes `index.sh` and `index.js` for `binary` into `dir`.
pub fn write_launcher(dir: &Path, binary: &str) -> anyhow::Result<()> {
    for (name, mode, text) in launchers(binary) {
        let path = dir.join(name);
        fs::write(&path, text)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Writes the runner-image overlay (a `.tar.gz`) of the hook binaries in `binaries` to `out`:
/// `home/runner/<folder>/` of every [`OVERLAY`] folder with the launchers, `LICENSE` and the
/// binary (or a link to it), owned by root and read-only for the runner.
///
/// There are no entries for `home/` and `home/runner/` themselves: `ADD` would give the image's
/// `/home/runner` (owned by the runner user) the archive's owner and mode.
pub fn write_overlay(
    binaries: &Path,
    license: &Path,
    out: impl std::io::Write,
) -> anyhow::Result<()> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    let header = |kind, mode, size| testenv::tar_header(kind, mode, size, OVERLAY_MTIME);
    let license = fs::read(license)?;
    let mut first: Vec<(&str, &str)> = Vec::new();
    for (folder, hook) in OVERLAY {
        let dir = format!("home/runner/{folder}");
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, format!("{dir}/"), std::io::empty())?;
        let mut files: Vec<(String, u32, Vec<u8>)> = launchers(hook)
            .into_iter()
            .map(|(name, mode, text)| (name.to_owned(), mode, text.into_bytes()))
            .collect();
        files.push(("LICENSE".into(), 0o644, license.clone()));
        match first.iter().find(|(_, h)| *h == hook) {
            Some((owner, _)) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                tar.append_link(
                    &mut h,
                    format!("{dir}/{hook}"),
                    format!("../{owner}/{hook}"),
                )?;
            }
            None => {
                let binary = fs::read(binaries.join(hook))
                    .map_err(|e| anyhow::anyhow!("{}: {e}", binaries.join(hook).display()))?;
                files.push((hook.to_owned(), 0o755, binary));
                first.push((folder, hook));
            }
        }
        for (name, mode, data) in files {
            let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
            tar.append_data(&mut h, format!("{dir}/{name}"), data.as_slice())?;
        }
    }
    tar.into_inner()?.finish()?;
    Ok(())
}

fn archive_dir(dir: &Path, prefix: &str, archive: &Path) -> anyhow::Result<()> {
    let file = fs::File::create(archive)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(prefix, dir)?;
    tar.into_inner()?.finish()?;
    Ok(())
}

fn host_target() -> anyhow::Result<String> {
    let out = std::process::Command::new("rustc").arg("-vV").output()?;
    let text = String::from_utf8(out.stdout)?;
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("rustc -vV printed no host triple"))
}

/// The newest `GLIBC_x.y` symbol version the binary needs (via `objdump -T`), if it can be read.
fn glibc_requirement(binary: &Path) -> Option<String> {
    let out = std::process::Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = |v: &str| -> Vec<u32> { v.split('.').filter_map(|n| n.parse().ok()).collect() };
    text.split_whitespace()
        .filter_map(|w| {
            w.strip_prefix("(GLIBC_")
                .or_else(|| w.strip_prefix("GLIBC_"))
        })
        .map(|v| v.trim_end_matches(')').to_owned())
        .max_by_key(|v| version(v))
}

fn readme(hook: &str, version: &str, glibc: Option<&str>) -> String {
    let glibc = glibc.map_or_else(
        || "a glibc-based Linux".to_owned(),
        |v| format!("glibc {v} or newer (Ubuntu 22.04+, Debian 12+, RHEL 9+; the actions-runner image qualifies)"),
    );
    let mode = if hook == "k8s-hook" {
        "Kubernetes"
    } else {
        "Docker"
    };
    format!(
        "# {hook} {version}\n\nThe {mode} container hook for self-hosted GitHub Actions runners.\n\n\
         Install: unpack this folder into the runner image (e.g. /home/runner/{hook}) and set\n\n\
         ```\nACTIONS_RUNNER_CONTAINER_HOOKS=/home/runner/{hook}/index.js\n```\n\n\
         (or `index.sh`). The runner only accepts hook paths ending in .sh, .js or .ps1; both\n\
         launchers start the `{hook}` binary next to them. For a runner image, the overlay\n\
         {OVERLAY_NAME} replaces the image's own hook folders instead.\n\
         The binary is x86_64 Linux and needs {glibc}.\n\
         `{hook} --help` lists its options; the project's docs/ describe every setting.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A stand-in hook: says which binary and launcher folder started it, exits 7.
    const STAND_IN: &str = "#!/bin/sh\nread -r line\n\
        echo \"$(basename \"$0\") from $(basename \"$CONTAINER_HOOKS_LAUNCHER_DIR\"): $line\"\nexit 7\n";

    fn overlay() -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        for hook in HOOKS {
            fs::write(dir.path().join(hook), STAND_IN).unwrap();
        }
        fs::write(dir.path().join("LICENSE"), "license\n").unwrap();
        let mut out = Vec::new();
        write_overlay(dir.path(), &dir.path().join("LICENSE"), &mut out).unwrap();
        (dir, out)
    }

    #[test]
    fn overlay_layout_owners_and_links() {
        let (_dir, gz) = overlay();
        let mut again = Vec::new();
        let (dir2, _) = overlay();
        write_overlay(dir2.path(), &dir2.path().join("LICENSE"), &mut again).unwrap();
        assert_eq!(gz, again, "the same binaries give the same archive");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
        let mut entries = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            let path = e.path().unwrap().display().to_string();
            let link = e.link_name().unwrap().map(|l| l.display().to_string());
            entries.push((path, h.mode().unwrap(), link));
        }
        let names: Vec<&str> = entries.iter().map(|(p, ..)| p.as_str()).collect();
        // Never home/ or home/runner/ themselves: ADD would change the runner's home.
        assert!(
            names
                .iter()
                .all(|p| p.starts_with("home/runner/") && p.len() > 12)
        );
        for (folder, hook) in OVERLAY {
            for file in ["index.js", "index.sh", "LICENSE", hook] {
                let path = format!("home/runner/{folder}/{file}");
                assert!(names.contains(&path.as_str()), "{path}: {names:?}");
            }
        }
        let link = entries
            .iter()
            .find(|(p, ..)| p == "home/runner/k8s-novolume/k8s-hook")
            .unwrap();
        assert_eq!(link.2.as_deref(), Some("../k8s/k8s-hook"));
        let binary = entries
            .iter()
            .find(|(p, ..)| p == "home/runner/k8s/k8s-hook")
            .unwrap();
        assert_eq!((binary.1, binary.2.as_deref()), (0o755, None));
    }

    #[test]
    fn overlay_launchers_start_the_right_binary_from_each_folder() {
        let (_dir, gz) = overlay();
        let root = tempfile::tempdir().unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
        archive.set_preserve_permissions(true);
        archive.unpack(root.path()).unwrap();
        for (folder, hook) in OVERLAY {
            let dir = root.path().join("home/runner").join(folder);
            // As the runner starts them: `sh -e index.sh`, `node index.js`.
            for (program, flags, file) in
                [("sh", &["-e"][..], "index.sh"), ("node", &[], "index.js")]
            {
                let mut child = Command::new(program)
                    .args(flags)
                    .arg(dir.join(file))
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                use std::io::Write;
                child.stdin.take().unwrap().write_all(b"{}\n").unwrap();
                let out = child.wait_with_output().unwrap();
                assert_eq!(out.status.code(), Some(7), "{program} {folder}");
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    format!("{hook} from {folder}: {{}}\n"),
                    "{program} {folder}"
                );
            }
        }
    }
}
