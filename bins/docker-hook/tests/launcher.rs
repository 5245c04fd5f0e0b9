//! The `index.sh` launcher (bins/index.sh, shipped by `cargo xtask dist`) run exactly as the runner
//! runs a `.sh` hook: `bash -e <path>` (or `sh -e <path>` where bash is missing). It must pass
//! stdin, arguments and the exit code through to the binary next to it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_docker-hook");

fn install() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // a path with a space, as runner installs sometimes have
    let hook_dir = dir.path().join("hooks dir");
    std::fs::create_dir(&hook_dir).unwrap();
    std::fs::copy(BIN, hook_dir.join("docker-hook")).unwrap();
    let template = include_str!("../../index.sh");
    let launcher = hook_dir.join("index.sh");
    std::fs::write(&launcher, template.replace("@BIN@", "docker-hook")).unwrap();
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn launch(
    shell: &str,
    dir: &tempfile::TempDir,
    args: &[&str],
    stdin: &str,
) -> (i32, String, String) {
    let launcher = dir.path().join("hooks dir/index.sh");
    let mut child = Command::new(shell)
        .arg("-e")
        .arg(&launcher)
        .args(args)
        .current_dir(dir.path())
        .env("RUNNER_NAME", "launcher-test")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn passes_arguments_stdin_and_exit_code_through() {
    let dir = install();
    for shell in ["bash", "sh"] {
        let (code, stdout, _) = launch(shell, &dir, &["--version"], "");
        assert_eq!(code, 0, "{shell}");
        assert!(stdout.starts_with("docker-hook "), "{shell}: {stdout}");

        // stdin reaches the binary: its error quotes what we sent
        let (code, _, stderr) = launch(
            shell,
            &dir,
            &[],
            r#"{"command":"brew_tea","responseFile":"/nonexistent/r.json","args":{}}"#,
        );
        assert_eq!(code, 1, "{shell}: {stderr}");
        assert!(
            stderr.contains("::error::unknown command \"brew_tea\""),
            "{shell}: {stderr}"
        );

        // clap's usage error exits 2: a code other than 1 passes through unchanged
        let (code, _, stderr) = launch(shell, &dir, &["--no-such-flag"], "");
        assert_eq!(code, 2, "{shell}: {stderr}");
    }
}
