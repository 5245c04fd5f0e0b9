use super::*;
use std::time::Duration;

/// The fake hooks' `PATH` (`sh`, `sed`, `sleep`, `head`).
const PATH: &str = "/usr/bin:/bin";

#[test]
fn the_tree_has_the_runner_layout() {
    let tree = WorkTree::in_temp_dir("runner-test-", "shop").unwrap();
    let root = tree.root().to_owned();
    for dir in [
        "_work/shop/shop",
        "_work/_temp/_runner_hook_responses",
        "_work/_temp/_runner_file_commands",
        "_work/_temp/_github_home",
        "_work/_temp/_github_workflow",
        "_work/_actions",
        "_work/_tool",
        "externals/node20/bin",
    ] {
        assert!(root.join(dir).is_dir(), "{dir}");
    }
    assert_eq!(tree.container_workspace(), "/__w/shop/shop");
    let env = tree.hook_env();
    assert_eq!(env[0], ("GITHUB_WORKSPACE", root.join("_work/shop/shop")));
    assert_eq!(env[1], ("RUNNER_WORKSPACE", root.join("_work/shop")));
    assert_eq!(env[2], ("RUNNER_TEMP", root.join("_work/_temp")));
    drop(tree);
    assert!(!root.exists(), "a temp tree is removed on drop");
}

#[test]
fn file_commands_are_created_empty_and_named_for_the_step() {
    let tree = WorkTree::in_temp_dir("runner-test-", "repo").unwrap();
    let fc = tree
        .create_file_commands("abc", STEP_FILE_COMMANDS, &["set_output", "set_env"])
        .unwrap();
    assert_eq!(
        Value::Object(fc.vars.clone()),
        json!({"GITHUB_OUTPUT": "/github/file_commands/set_output_abc",
               "GITHUB_ENV": "/github/file_commands/set_env_abc"})
    );
    let file = tree.file_commands().join("set_output_abc");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
    std::fs::write(&file, "a=1\n").unwrap();
    assert_eq!(fc.read("set_output"), "a=1\n");
    assert_eq!(fc.read("add_path"), "", "not created: empty");
    assert!(!tree.file_commands().join("add_path_abc").exists());
}

#[test]
fn a_script_is_written_to_temp_and_run_with_sh_e() {
    let tree = WorkTree::in_temp_dir("runner-test-", "repo").unwrap();
    let script = tree.write_script("echo hi\n").unwrap();
    assert_eq!(std::fs::read_to_string(&script.host).unwrap(), "echo hi\n");
    assert_eq!(script.host, tree.temp().join(format!("{}.sh", script.id)));
    let args = script.args(json!({}), json!([]), "/w");
    assert_eq!(
        args["entryPointArgs"],
        json!(["-e", script.container_path()])
    );
    assert_eq!(
        script.container_path(),
        format!("/__w/_temp/{}.sh", script.id)
    );
    script.remove();
    assert!(!script.host.exists());
}

/// A stand-in hook: echoes its stdin line to stdout, a marker to stderr, writes a response
/// into the file the line names and exits 3; it runs in the workspace with the hook's env.
const FAKE_HOOK: &str = r#"read -r line
printf '%s\n' "$line"
echo "::error::cwd=$(pwd) temp=$RUNNER_TEMP" >&2
file=$(printf '%s' "$line" | sed 's/.*"responseFile":"\([^"]*\)".*/\1/')
test -f "$file" && test ! -s "$file" && printf '{"state":{"n":1}}' > "$file"
exit 3"#;

#[test]
fn a_hook_gets_one_line_a_precreated_response_file_and_the_runner_env() {
    let tree = WorkTree::in_temp_dir("runner-test-", "repo").unwrap();
    let mut cmd = tree.clean_command("sh", PATH);
    cmd.args(["-c", FAKE_HOOK]);
    let state = json!({"s": true});
    let started = start(
        cmd,
        &tree.responses(),
        "run_script_step",
        &json!({"a": 1}),
        Some(&state),
    )
    .unwrap();
    let response = started.response().to_owned();
    assert!(response.starts_with(tree.responses()));
    let run = started.finish_within(Duration::from_secs(60));
    assert_eq!(run.code, 3, "{run:#?}");
    let line: Value = serde_json::from_str(run.stdout.trim_end()).unwrap();
    assert_eq!(
        line,
        json!({"command": "run_script_step", "responseFile": response, "args": {"a": 1},
               "state": {"s": true}})
    );
    assert_eq!(run.json(), json!({"state": {"n": 1}}));
    assert_eq!(
        run.one_error(3),
        format!(
            "::error::cwd={} temp={}",
            tree.workspace().display(),
            tree.temp().display()
        )
    );
    assert!(!response.exists(), "finish removes the response file");
}

#[test]
fn a_signal_is_timed_and_stdout_is_read_up_to_a_line() {
    let tree = WorkTree::in_temp_dir("runner-test-", "repo").unwrap();
    let mut cmd = tree.clean_command("sh", PATH);
    cmd.args([
        "-c",
        "trap 'echo bye; exit 130' INT; echo ready; while :; do sleep 0.05; done",
    ]);
    let mut started = start(cmd, &tree.responses(), "run_script_step", &json!({}), None).unwrap();
    started.wait_for_line("ready");
    started.signal("INT");
    let run = started.finish_within(Duration::from_secs(60));
    assert_eq!((run.code, run.stdout.as_str()), (130, "ready\nbye\n"));
    assert!(run.elapsed < Duration::from_secs(60));
}

#[test]
fn count_stdout_keeps_nothing() {
    let tree = WorkTree::in_temp_dir("runner-test-", "repo").unwrap();
    let mut cmd = tree.clean_command("sh", PATH);
    cmd.args(["-c", "head -c 300000 /dev/zero"]);
    let mut started = start(cmd, &tree.responses(), "x", &json!({}), None).unwrap();
    assert_eq!(started.count_stdout().unwrap(), 300_000);
    let run = started.finish();
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
}

#[test]
fn errors_come_from_both_streams_and_warnings_from_stderr() {
    let run = Run {
        code: 1,
        stdout: "::error::b\n::warning::no\n".into(),
        stderr: "x\n::error::a\n::warning::w\n".into(),
        response: String::new(),
        elapsed: Duration::ZERO,
    };
    assert_eq!(run.errors(), ["::error::a", "::error::b"]);
    assert_eq!(run.warnings(), ["::warning::w"]);
}

#[test]
fn a_hook_that_reads_no_input_is_a_run_not_a_start_error() {
    let tree = WorkTree::in_temp_dir("runner-test-", "repo").unwrap();
    let mut cmd = tree.clean_command("sh", PATH);
    cmd.args(["-c", "exec 0<&-; echo early >&2; exit 4"]);
    // More than a pipe holds, so the write meets the closed end whatever the timing.
    let input = vec![b'x'; 1 << 20];
    let response = tree.responses().join("r.json");
    let run = start_with_stdin(cmd, response, &input).unwrap().finish();
    assert_eq!((run.code, run.stderr.as_str()), (4, "early\n"));
}
