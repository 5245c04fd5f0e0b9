//! The launchers (bins/index.sh and bins/index.js, shipped by `cargo xtask dist`) run exactly as
//! the runner runs a hook: `bash -e <path>` (or `sh -e <path>` where bash is missing) for `.sh`,
//! `node <path>` for `.js`. They must pass stdin, arguments and the exit code through to the
//! binary next to them, and tell it the folder they were started from.
#![cfg(feature = "e2e")]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use testenv::runner::start_with_stdin;

const BIN: &str = env!("CARGO_BIN_EXE_docker-hook");

/// The ways the runner starts a launcher: program, its flags, the launcher's file name.
const LAUNCHES: [(&str, &[&str], &str); 3] = [
    ("bash", &["-e"], "index.sh"),
    ("sh", &["-e"], "index.sh"),
    ("node", &[], "index.js"),
];

/// `binary` (its content) installed as `docker-hook` in `<tmp>/hooks dir/` with both launchers.
fn install(binary: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // a path with a space, as runner installs sometimes have
    let hook_dir = dir.path().join("hooks dir");
    std::fs::create_dir(&hook_dir).unwrap();
    let exe = |path: &Path| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    std::fs::write(hook_dir.join("docker-hook"), binary).unwrap();
    exe(&hook_dir.join("docker-hook"));
    for (name, template) in [
        ("index.sh", include_str!("../../index.sh")),
        ("index.js", include_str!("../../index.js")),
    ] {
        let launcher = hook_dir.join(name);
        std::fs::write(&launcher, template.replace("@BIN@", "docker-hook")).unwrap();
        exe(&launcher);
    }
    dir
}

fn launch(
    (program, flags, file): (&str, &[&str], &str),
    dir: &tempfile::TempDir,
    args: &[&str],
    stdin: &str,
) -> (i32, String, String) {
    let launcher = dir.path().join("hooks dir").join(file);
    let mut cmd = Command::new(program);
    cmd.args(flags)
        .arg(&launcher)
        .args(args)
        .current_dir(dir.path())
        .env("RUNNER_NAME", "launcher-test")
        .env("CONTAINER_HOOKS_LAUNCHER_DIR", "/set/by/someone/else");
    // No response file: these commands write none.
    let run = start_with_stdin(cmd, dir.path().join("no-response.json"), stdin.as_bytes())
        .unwrap()
        .finish();
    assert_ne!(run.code, -1, "{program} {file} died: {run:#?}");
    (run.code, run.stdout, run.stderr)
}

#[test]
fn passes_arguments_stdin_and_exit_code_through() {
    let dir = install(&std::fs::read(BIN).unwrap());
    for how in LAUNCHES {
        let (code, stdout, _) = launch(how, &dir, &["--version"], "");
        assert_eq!(code, 0, "{how:?}");
        assert!(stdout.starts_with("docker-hook "), "{how:?}: {stdout}");

        // stdin reaches the binary: its error quotes what we sent
        let (code, _, stderr) = launch(
            how,
            &dir,
            &[],
            r#"{"command":"brew_tea","responseFile":"/nonexistent/r.json","args":{}}"#,
        );
        assert_eq!(code, 1, "{how:?}: {stderr}");
        assert!(
            stderr.contains("::error::unknown command \"brew_tea\""),
            "{how:?}: {stderr}"
        );

        // clap's usage error exits 2: a code other than 1 passes through unchanged
        let (code, _, stderr) = launch(how, &dir, &["--no-such-flag"], "");
        assert_eq!(code, 2, "{how:?}: {stderr}");
    }
}

#[test]
fn the_binary_learns_the_launcher_folder_and_every_byte_of_stdin() {
    // A stand-in that shows what it got: arguments, the folder, stdin (two lines, no final
    // newline), then exits 42.
    let dir = install(
        b"#!/bin/sh\nprintf 'args=[%s] dir=%s\\n' \"$*\" \"$CONTAINER_HOOKS_LAUNCHER_DIR\"\ncat\nexit 42\n",
    );
    let folder = dir.path().join("hooks dir");
    for how in LAUNCHES {
        let (code, stdout, _) = launch(how, &dir, &["a b", "", "c"], "{\"x\":1}\nsecond");
        assert_eq!(code, 42, "{how:?}");
        assert_eq!(
            stdout,
            format!(
                "args=[a b  c] dir={}\n{{\"x\":1}}\nsecond",
                folder.display()
            ),
            "{how:?}"
        );
    }
}

#[test]
fn node_exits_128_plus_the_signal_that_killed_the_binary() {
    // (index.sh execs the binary: the runner sees the binary's own death.)
    let dir = install(b"#!/bin/sh\nkill -TERM $$\nsleep 5\n");
    let (code, _, stderr) = launch(LAUNCHES[2], &dir, &[], "");
    assert_eq!(code, 128 + 15, "{stderr}");
}

#[test]
fn node_reports_a_binary_that_cannot_start() {
    let dir = install(b"#!/bin/sh\nexit 0\n");
    std::fs::remove_file(dir.path().join("hooks dir/docker-hook")).unwrap();
    let (code, _, stderr) = launch(LAUNCHES[2], &dir, &[], "");
    assert_eq!(code, 1, "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("::error::"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("docker-hook"), "{stderr}");
}
