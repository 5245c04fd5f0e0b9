//! Background steps (runner `system.runner.maxbackgroundsteps`, default 10): the runner starts
//! several `run_script_step` hooks at once against one job pod. Each step's output, file
//! commands and exit code must be its own, in copy mode (where `_temp` travels into the pod and
//! the file commands back at every step) and in volume mode.
//!
//! The steps overlap for certain, without timing: step `i + 1` starts only once step `i` has
//! written its first file commands and said `ready i` on stdout, and every step then waits in
//! the pod until the last one has started.
#![cfg(feature = "e2e")]

mod support;

use serde_json::{Value, json};
use support::spawn::{FILE_COMMANDS, Program, ScriptStep};
use support::{Runner, container, testenv, volume_mode};
use testenv::Image;

/// Exit codes of the concurrent steps (one per step).
const CODES: [i32; 5] = [0, 3, 7, 42, 0];
/// Lines each step prints after all have started.
const LINES: usize = 200;

fn script(i: usize, last: bool) -> String {
    let release = if last { "touch /tmp/bg-release\n" } else { "" };
    format!(
        "echo 'early_{i}={i}' >> \"$GITHUB_OUTPUT\"\n\
         echo 'EARLY_{i}=yes' >> \"$GITHUB_ENV\"\n\
         echo '/opt/step{i}' >> \"$GITHUB_PATH\"\n\
         echo 'ready {i}'\n\
         {release}\
         while [ ! -e /tmp/bg-release ]; do sleep 0.2; done\n\
         n=0; while [ $n -lt {LINES} ]; do echo \"step {i} line $n\"; echo \"step {i} err $n\" >&2; n=$((n+1)); done\n\
         echo 'late_{i}={i}' >> \"$GITHUB_OUTPUT\"\n\
         echo '# summary {i}' >> \"$GITHUB_STEP_SUMMARY\"\n\
         exit {}\n",
        CODES[i]
    )
}

/// What step `i`'s four file commands must hold.
fn want_files(i: usize) -> Vec<String> {
    vec![
        format!("early_{i}={i}\nlate_{i}={i}\n"),
        format!("EARLY_{i}=yes\n"),
        format!("/opt/step{i}\n"),
        format!("# summary {i}\n"),
    ]
}

fn prepare(runner: &Runner) -> Value {
    let mut job = container(&testenv().image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    let (run, state) = runner.prepare(Some(job), vec![]);
    run.ok();
    state
}

fn background_steps_are_their_own(runner: &Runner) {
    let state = prepare(runner);
    let mut steps = Vec::new();
    for i in 0..CODES.len() {
        let mut step = ScriptStep::start(
            runner,
            &Program::Binary,
            &state,
            &script(i, i + 1 == CODES.len()),
        );
        step.started.wait_for_line(&format!("ready {i}"));
        steps.push(step);
    }
    // The runner reads a step's file commands as soon as its hook exits.
    let ids: Vec<String> = steps.iter().map(|s| s.id.clone()).collect();
    let results: Vec<_> = steps.into_iter().map(|s| s.finish()).collect();
    for (i, (run, files)) in results.iter().enumerate() {
        assert_eq!(run.code, CODES[i], "step {i}: {run:#?}");
        assert!(run.errors().is_empty(), "step {i}: {run:#?}");
        let mut want = format!("ready {i}\n");
        for n in 0..LINES {
            want.push_str(&format!("step {i} line {n}\n"));
        }
        assert!(run.stdout == want, "step {i}'s stdout: {:?}", run.stdout);
        let err: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("step "))
            .collect();
        let want_err: Vec<String> = (0..LINES).map(|n| format!("step {i} err {n}")).collect();
        assert_eq!(err, want_err, "step {i}'s stderr");
        assert_eq!(files, &want_files(i), "step {i}'s file commands");
    }
    // Nothing a later copy did has changed any of them since.
    let fc = runner.temp().join("_runner_file_commands");
    for (i, id) in ids.iter().enumerate() {
        let files: Vec<String> = FILE_COMMANDS
            .iter()
            .map(|(f, _)| std::fs::read_to_string(fc.join(format!("{f}_{id}"))).unwrap())
            .collect();
        assert_eq!(files, want_files(i), "step {i}'s file commands at the end");
    }
}

#[test]
fn background_steps_in_copy_mode() {
    let runner = Runner::new("bgcopy");
    background_steps_are_their_own(&runner);
}

#[test]
fn background_steps_in_volume_mode() {
    let own = volume_mode("bgvol", "bg-claim", true);
    background_steps_are_their_own(&own.runner);
}

/// The file commands come back from a pod the job controls: a link planted in place of one
/// (here to a file of the runner's) is never followed, and the runner's file stays as it was.
#[test]
fn a_file_command_replaced_by_a_link_is_not_followed() {
    let runner = Runner::new("bglink");
    let secret = runner.root().join("runner-secret");
    std::fs::write(&secret, "TOKEN=hunter2\n").unwrap();
    let state = prepare(&runner);
    let script = format!(
        "rm \"$GITHUB_OUTPUT\"\nln -s '{}' \"$GITHUB_OUTPUT\"\necho 'E=1' >> \"$GITHUB_ENV\"\n",
        secret.display()
    );
    let step = ScriptStep::start(&runner, &Program::Binary, &state, &script);
    let (run, files) = step.finish();
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(files[0], "", "the runner's GITHUB_OUTPUT file is untouched");
    assert_eq!(files[1], "E=1\n");
    let output = runner.temp().join("_runner_file_commands");
    for entry in std::fs::read_dir(output).unwrap() {
        let entry = entry.unwrap();
        assert!(
            entry.file_type().unwrap().is_file(),
            "{:?} is not a regular file",
            entry.path()
        );
    }
}
