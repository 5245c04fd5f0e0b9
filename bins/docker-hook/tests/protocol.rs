//! Bad input through the real `docker-hook` binary (see `bins/protocol_harness.rs`).

#[path = "../../protocol_harness.rs"]
mod harness;

use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_docker-hook");

#[test]
fn bad_input_fails_with_one_error_line_and_an_untouched_response() {
    harness::assert_bad_inputs_fail_cleanly(Path::new(BIN), &[("RUNNER_NAME", "protocol-test")]);
}

#[test]
fn runner_name_is_required() {
    harness::assert_missing_env_is_one_error(Path::new(BIN), "RUNNER_NAME");
}

#[test]
fn version_and_help() {
    let out = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("docker-hook "));
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("ACTIONS_RUNNER_CONTAINER_HOOKS"));
}
