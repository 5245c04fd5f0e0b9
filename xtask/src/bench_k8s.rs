//! `cargo xtask bench k8s [--quick] [--iterations N]`: the Kubernetes hook's benchmarks on
//! kubesim. Builds the release `k8s-hook` and runs `crates/k8s/examples/bench_k8s.rs` (which
//! holds the measurements, since it needs kubesim as a library) against it.

use anyhow::{Context as _, bail};
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    for a in args {
        if !matches!(a.as_str(), "--quick" | "--iterations") && a.parse::<usize>().is_err() {
            bail!("unknown argument {a:?} for `bench k8s` (expected --quick, --iterations N)");
        }
    }
    let hook = build_hook()?;
    let status = Command::new(cargo())
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "container-hooks-k8s",
            "--example",
            "bench_k8s",
            "--",
        ])
        .arg("--hook")
        .arg(&hook)
        .args(args)
        .status()
        .context("running the k8s benchmarks")?;
    if !status.success() {
        bail!("the k8s benchmarks failed ({status})");
    }
    Ok(())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Builds the release `k8s-hook` and returns the executable's path (from cargo's own report).
pub(crate) fn build_hook() -> anyhow::Result<PathBuf> {
    let out = Command::new(cargo())
        .args([
            "build",
            "--release",
            "-p",
            "k8s-hook",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("building k8s-hook")?;
    if !out.status.success() {
        bail!("building k8s-hook failed");
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "k8s-hook")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo did not report the k8s-hook executable")
}
