//! The Docker tier marker: a plain `cargo test` (no Docker needed) runs only the pure tier and
//! says so here; `cargo xtask ci` (or `cargo test --features e2e`) runs the Docker tier too.

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "the Docker tier of this crate's tests is off: it needs the Docker Engine and the test registries; `cargo xtask ci` runs it"
)]
fn docker_tier() {}
