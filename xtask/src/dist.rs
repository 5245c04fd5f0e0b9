//! `cargo xtask dist`: release folders and archives for both hooks.
//!
//! For each hook: `dist/<hook>/` with the release binary, `index.sh` (the launcher the runner
//! accepts), `LICENSE` and a short README, then `dist/<hook>-<version>-<target>.tar.gz` and a
//! line in `dist/SHA256SUMS`.

use crate::cmd;
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const HOOKS: [&str; 2] = ["docker-hook", "k8s-hook"];

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
    fs::write(dist.join("SHA256SUMS"), sums)?;
    for a in &archives {
        eprintln!("wrote {}", a.display());
    }
    Ok(archives)
}

/// Writes `index.sh` for `binary` into `dir` from the template in `bins/index.sh`.
pub fn write_launcher(dir: &Path, binary: &str) -> anyhow::Result<()> {
    let template = include_str!("../../bins/index.sh");
    let path = dir.join("index.sh");
    fs::write(&path, template.replace("@BIN@", binary))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
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
         ```\nACTIONS_RUNNER_CONTAINER_HOOKS=/home/runner/{hook}/index.sh\n```\n\n\
         The runner only accepts hook paths ending in .sh, .js or .ps1; index.sh execs the\n\
         `{hook}` binary next to it. The binary is x86_64 Linux and needs {glibc}.\n\
         `{hook} --help` lists its options; the project's docs/ describe every setting.\n"
    )
}
