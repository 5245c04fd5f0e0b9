//! `cargo xtask ci`: what CI runs, in the order that fails fastest.

use crate::cmd;

pub fn run() -> anyhow::Result<()> {
    cmd("cargo", &["fmt", "--all", "--", "--check"])?;
    cmd(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
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
    crate::testenv::run(&["up".to_owned()])?;
    cmd("cargo", &["test", "--workspace", "--no-fail-fast"])?;
    // The demo is documentation that runs: both variants must keep working.
    crate::demo::run(&[])?;
    crate::demo::run(&["--k8s".to_owned()])
}
