//! Shared by both hook binaries' `tests/protocol.rs`: runs the real binary the way the runner
//! does (a `testenv::runner` tree, a pre-created empty response file, one stdin line) with bad input, and checks
//! that each case fails with exactly one `::error::` line, a non-zero exit, and the response file
//! untouched.

use std::path::Path;
use std::process::Command;
use testenv::runner::{Run, WorkTree, start_with_stdin};

/// Runs `bin` in a fresh runner tree with `stdin` (where `{RESPONSE}` is replaced by the
/// pre-created response file's path) and only `env` (and `PATH`) in its environment.
pub fn run(bin: &Path, env: &[(&str, &str)], stdin: &[u8]) -> Run {
    let tree = WorkTree::in_temp_dir("protocol-", "repo").unwrap();
    let response = tree.responses().join("response.json");
    std::fs::write(&response, "").unwrap();
    let stdin = match std::str::from_utf8(stdin) {
        Ok(text) => text
            .replace("{RESPONSE}", &response.display().to_string())
            .into_bytes(),
        Err(_) => stdin.to_vec(),
    };
    let mut cmd = Command::new(bin);
    cmd.current_dir(tree.workspace())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied());
    start_with_stdin(cmd, response, &stdin).unwrap().finish()
}

/// The bad-input table.
pub fn bad_inputs() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        ("empty stdin", b"".to_vec(), "no input on stdin"),
        ("only a newline", b"\n".to_vec(), "no input on stdin"),
        (
            "truncated JSON",
            br#"{"command":"prepare_job","responseFile":"{RESPONSE}","args":{"conta"#.to_vec(),
            "not valid JSON",
        ),
        (
            "wrong type",
            br#"{"command":"prepare_job","responseFile":"{RESPONSE}","state":null,"args":{"container":{"image":"a","portMappings":"80"},"services":[]}}"#.to_vec(),
            "args.container.portMappings",
        ),
        (
            "unknown command",
            br#"{"command":"prepare_pizza","responseFile":"{RESPONSE}","args":{},"state":null}"#.to_vec(),
            "unknown command \"prepare_pizza\"",
        ),
        (
            "two JSON documents",
            br#"{"command":"cleanup_job","responseFile":"{RESPONSE}","args":{},"state":null}
{"command":"cleanup_job","responseFile":"{RESPONSE}","args":{},"state":null}"#
                .to_vec(),
            "more than one JSON document",
        ),
        ("not UTF-8", vec![b'{', 0xff, 0xfe, b'}'], "not valid UTF-8"),
        ("a JSON array", b"[1,2,3]".to_vec(), "invalid hook input"),
        // Well-formed, but a container the runner described badly: refused by hooklib before
        // the hook does anything, naming the container.
        (
            "unbalanced quotes in args",
            br#"{"command":"prepare_job","responseFile":"{RESPONSE}","state":null,"args":{"container":{"image":"a:1","entryPointArgs":["\"open"]},"services":[]}}"#.to_vec(),
            "the job container (a:1): cannot split the container arguments",
        ),
        (
            "a port that is not one",
            br#"{"command":"run_container_step","responseFile":"{RESPONSE}","state":null,"args":{"image":"a:1","portMappings":["99999"]}}"#.to_vec(),
            "the container step (a:1): invalid port mapping \"99999\"",
        ),
    ]
}

/// Asserts the whole table against `bin` with the environment it needs to start.
pub fn assert_bad_inputs_fail_cleanly(bin: &Path, env: &[(&str, &str)]) {
    for (name, stdin, expected) in bad_inputs() {
        let run = run(bin, env, &stdin);
        assert_ne!(run.code, 0, "{name}: must fail");
        assert_ne!(run.code, -1, "{name}: killed by a signal\n{}", run.stderr);
        let errors = run.errors();
        assert_eq!(
            errors.len(),
            1,
            "{name}: want exactly one ::error:: line, got {errors:?}\nstderr: {}",
            run.stderr
        );
        assert!(
            errors[0].contains(expected),
            "{name}: {:?} lacks {expected:?}",
            errors[0]
        );
        assert_eq!(
            run.response, "",
            "{name}: the response file must stay untouched"
        );
    }
}

/// A missing required variable is one clear error.
pub fn assert_missing_env_is_one_error(bin: &Path, var: &str) {
    let run = run(
        bin,
        &[],
        br#"{"command":"cleanup_job","responseFile":"{RESPONSE}","args":{},"state":null}"#,
    );
    assert_eq!(run.code, 1);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(var), "{}", errors[0]);
    assert_eq!(run.response, "");
}

/// `--version` names the binary; `--help` tells where the runner is pointed.
pub fn assert_version_and_help(bin: &Path, name: &str) {
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("{name} ")));
    let out = Command::new(bin).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("ACTIONS_RUNNER_CONTAINER_HOOKS"));
}

/// The whole protocol suite for one hook binary: `protocol_tests!("k8s-hook", "ACTIONS_RUNNER_POD_NAME")`
/// names the binary and the environment variable it requires.
#[macro_export]
macro_rules! protocol_tests {
    ($bin:literal, $required:literal) => {
        const BIN: &str = env!(concat!("CARGO_BIN_EXE_", $bin));

        #[test]
        fn bad_input_fails_with_one_error_line_and_an_untouched_response() {
            harness::assert_bad_inputs_fail_cleanly(
                std::path::Path::new(BIN),
                &[($required, "protocol-test")],
            );
        }

        #[test]
        fn the_required_variable_is_required() {
            harness::assert_missing_env_is_one_error(std::path::Path::new(BIN), $required);
        }

        #[test]
        fn version_and_help() {
            harness::assert_version_and_help(std::path::Path::new(BIN), $bin);
        }
    };
}
