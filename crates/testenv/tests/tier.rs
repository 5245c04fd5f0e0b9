//! The Docker tier marker: a plain `cargo test` (no Docker needed) runs only the pure tier and
//! says so here; `cargo xtask ci` (or `cargo test --features e2e`) runs the Docker tier too, and
//! then this test checks that the engine it needs answers (so a tier that silently cannot run
//! fails here first, with the reason).

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "the Docker tier of this crate's tests is off: it needs the Docker Engine and the test registries; `cargo xtask ci` runs it"
)]
fn docker_tier() {
    let out = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .expect("the Docker tier needs the docker CLI");
    assert!(
        out.status.success() && !out.stdout.trim_ascii().is_empty(),
        "the Docker tier needs a reachable Docker Engine: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
