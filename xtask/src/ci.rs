//! `cargo xtask ci`: what CI runs, in the order that fails fastest.

use crate::{cmd, cmd_env};

pub fn run() -> anyhow::Result<()> {
    cmd("cargo", &["fmt", "--all", "--", "--check"])?;
    deny()?;
    cmd(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    let status = std::process::Command::new("cargo")
        .args(["doc", "--no-deps", "-p", "hooklib"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .status()?;
    anyhow::ensure!(status.success(), "cargo doc -p hooklib has warnings");
    // The pure tier alone first: it must pass without Docker (no test of it may need the engine).
    cmd_env(
        "cargo",
        &["test", "--workspace", "--no-fail-fast"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    )?;
    crate::testenv::run(&["up".to_owned()])?;
    // Every tier: the `e2e` feature turns on the Docker tier (engine, registries, kubesim).
    cmd(
        "cargo",
        &["test", "--workspace", "--all-features", "--no-fail-fast"],
    )?;
    // The demo is documentation that runs: both variants must keep working.
    crate::demo::run(&[])?;
    crate::demo::run(&["--k8s".to_owned()])
}

/// The dependency rules of `deny.toml`: licenses, banned and duplicate versions, sources.
/// `advisories` is left out: it fetches the RustSec database from github.com, which CI cannot
/// reach (docs/testing.md).
fn deny() -> anyhow::Result<()> {
    let installed = std::process::Command::new("cargo")
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    anyhow::ensure!(
        installed,
        "cargo-deny is not installed: `bash .ci/run` installs it \
         (or `cargo install --locked --version <the one in .ci/run> cargo-deny`)"
    );
    cmd(
        "cargo",
        &[
            "deny",
            "check",
            "--hide-inclusion-graph",
            "bans",
            "licenses",
            "sources",
        ],
    )
}
