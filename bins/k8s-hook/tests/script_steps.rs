//! Script steps through the real binary: environment, PATH, literal values, quoting, working
//! directory, exit codes, file commands.
#![cfg(feature = "e2e")]

mod support;

use serde_json::{Value, json};
use support::{Runner, container, testenv};
use testenv::Image;

fn job(runner: &Runner, image: Image) -> Value {
    let mut job = container(&testenv().image(image));
    job["workingDirectory"] = json!("/__w/repo/repo");
    job["environmentVariables"] = json!({"HOME": "/github/home"});
    let (run, state) = runner.prepare(Some(job), vec![]);
    run.ok();
    state
}

#[test]
fn values_arrive_literally_and_path_is_prepended() {
    use std::os::unix::fs::PermissionsExt;
    let runner = Runner::new("literal");
    // A tool in the workspace (copied in with _work at prepare_job), found through PATH.
    std::fs::create_dir_all(runner.workspace().join("bin")).unwrap();
    std::fs::create_dir_all(runner.workspace().join("sub dir")).unwrap();
    let tool = runner.workspace().join("bin/mytool");
    std::fs::write(&tool, "#!/bin/sh\necho mytool ran with \"$@\"\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = job(&runner, Image::Busybox);
    let tricky = "$HOME ${HOME} $(echo nope) `echo nope` 'single' \"double\" back\\slash ; exit 3";
    let step = runner.script_with(
        &state,
        "printf '%s\\n' \"$TRICKY\"\nprintf '[%s]\\n' \"$EMPTY\"\necho \"$PATH\"\npwd\nmytool 'a b'\n",
        &[("TRICKY", tricky), ("EMPTY", "")],
        &["/opt/first", "/__w/repo/repo/bin"],
        "/__w/repo/repo/sub dir",
    );
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    let lines: Vec<&str> = step.run.stdout.lines().collect();
    assert_eq!(lines[0], tricky);
    assert_eq!(lines[1], "[]");
    assert!(
        lines[2].starts_with("/opt/first:/__w/repo/repo/bin:"),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].len() > "/opt/first:/__w/repo/repo/bin:".len(),
        "the image's PATH follows: {}",
        lines[2]
    );
    assert_eq!(lines[3], "/__w/repo/repo/sub dir");
    assert_eq!(lines[4], "mytool ran with a b");
    // Without the prepend, the tool is not found.
    let step = runner.script(&state, "mytool\n", &[]);
    assert_eq!(step.run.code, 127, "{:#?}", step.run);
}

#[test]
fn exit_codes_pass_through() {
    let runner = Runner::new("codes");
    let state = job(&runner, Image::Busybox);
    for code in [0, 1, 2, 255] {
        let step = runner.script(&state, &format!("echo before\nexit {code}\n"), &[]);
        assert_eq!(step.run.code, code, "{:#?}", step.run);
        assert_eq!(step.run.stdout, "before\n");
        assert!(
            step.run.errors().is_empty(),
            "a failed step is not a hook failure: {:#?}",
            step.run
        );
    }
    let step = runner.script(&state, "no-such-command\n", &[]);
    assert_eq!(step.run.code, 127, "{:#?}", step.run);
    // Output written before a failure still reaches the runner.
    let step = runner.script(&state, "echo 'v=1' >> \"$GITHUB_OUTPUT\"\nexit 2\n", &[]);
    assert_eq!((step.run.code, step.output.as_str()), (2, "v=1\n"));
}

#[test]
fn env_and_path_files_and_state_between_steps() {
    let runner = Runner::new("files");
    let state = job(&runner, Image::Busybox);
    let first = runner.script(
        &state,
        "echo 'NAME=value with spaces' >> \"$GITHUB_ENV\"\n\
         echo '/opt/tools' >> \"$GITHUB_PATH\"\n\
         echo 'multi<<EOF' >> \"$GITHUB_OUTPUT\"\n\
         printf 'line1\\nline2\\nEOF\\n' >> \"$GITHUB_OUTPUT\"\n\
         echo kept > /__w/repo/repo/made-in-step-1\n",
        &[],
    );
    assert_eq!(first.run.code, 0, "{:#?}", first.run);
    assert_eq!(first.env, "NAME=value with spaces\n");
    assert_eq!(first.path, "/opt/tools\n");
    assert_eq!(first.output, "multi<<EOF\nline1\nline2\nEOF\n");
    // The workspace lives on in the pod between steps.
    let second = runner.script(&state, "cat made-in-step-1\n", &[]);
    assert_eq!(second.run.stdout, "kept\n", "{:#?}", second.run);
}

#[test]
fn invalid_env_name_is_a_clear_error() {
    let runner = Runner::new("badenv");
    let state = job(&runner, Image::Busybox);
    let step = runner.script(&state, "true\n", &[("MY-VAR", "x")]);
    assert_eq!(step.run.code, 1);
    let errors = step.run.errors();
    assert_eq!(errors.len(), 1, "{:#?}", step.run);
    assert!(errors[0].contains("\"MY-VAR\""), "{}", errors[0]);
}

#[test]
fn alpine_is_detected() {
    let runner = Runner::new("alpine");
    let mut job = container(&testenv().image(Image::AlpineLike));
    job["workingDirectory"] = json!("/__w/repo/repo");
    let (run, _) = runner.prepare(Some(job), vec![]);
    assert_eq!(run.ok().json()["isAlpine"], json!(true));
}
