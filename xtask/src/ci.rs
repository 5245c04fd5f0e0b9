//! `cargo xtask ci`: what CI runs, in the order that fails fastest.

use crate::{cmd, cmd_env};

pub fn run() -> anyhow::Result<()> {
    cmd("cargo", &["fmt", "--all", "--", "--check"])?;
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
