//! Cancellation through the real binary: the runner signals the hook (SIGINT, then SIGTERM),
//! and the step must stop *where it runs* — `docker exec` kills nothing by itself.
//!
//! Each test waits until the step is really running (a file it creates), signals the hook, and
//! then checks: exit 130 / 143 with one `::error::` line, no step process left in the
//! container, the step's late side effect never happens, and the job goes on (next step,
//! cleanup). The only time bound is a generous liveness one that catches a hang.
#![cfg(feature = "e2e")]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::{Run, Runner, Started, container, docker, runner_split, testenv, wait_until};
use testenv::Image;

/// Far above the hook's own bound (6.5 s after the signal), far below the step's 40 s.
const LIVENESS: Duration = Duration::from_secs(30);

fn prepare(runner: &Runner) -> Value {
    runner.prepare_busybox()["state"].clone()
}

/// Signals the hook (`INT`, `TERM`) as the runner does on cancellation and waits for it.
fn cancel(mut started: Started, sig: &str, what: &str) -> Run {
    started.signal(sig);
    let run = started.finish_within(LIVENESS);
    // Informative only (timings belong in benchmarks): how long stopping took.
    eprintln!("{what}: the hook exited {:?} after the signal", run.elapsed);
    run
}

fn exec_in(id: &str, cmd: &str) -> String {
    docker(&["exec", id, "sh", "-c", cmd]).unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn cancel_a_script_step(sig: &str, code: i32, name: &str) {
    let runner = Runner::new(name);
    let state = prepare(&runner);
    let id = state["container"].as_str().unwrap().to_owned();
    let args = runner.script_args(
        // A child that ignores SIGTERM and one that left the step's environment behind: the
        // first needs the SIGKILL after the grace period, the second is found by its group.
        "touch /tmp/started\n(trap '' TERM; sleep 45) &\nenv -i sleep 46 &\nsleep 40 && echo late > /tmp/marker\n",
        json!({}),
        json!([]),
    );
    let started = runner.start("run_script_step", args, Some(&state));
    wait_until("the step started", LIVENESS, || {
        docker(&["exec", &id, "test", "-f", "/tmp/started"]).is_ok()
    });
    let run = cancel(started, sig, &format!("SIG{sig}"));
    assert_eq!(run.code, code, "{run:#?}");
    assert_eq!(
        run.errors(),
        [format!("::error::The step was cancelled (SIG{sig})")],
        "{run:#?}"
    );
    let ps = exec_in(&id, "ps -o pid,stat,args");
    for p in ["sleep 40", "sleep 45", "sleep 46"] {
        // Zombies (`Z`, reparented to the keep-alive that never reaps) are dead already.
        let alive = ps
            .lines()
            .any(|l| l.contains(p) && !l.split_whitespace().nth(1).unwrap_or("").starts_with('Z'));
        assert!(!alive, "{p} still runs:\n{ps}");
    }
    assert_eq!(
        exec_in(&id, "test -e /tmp/marker && echo yes || echo no"),
        "no\n"
    );

    // The job goes on: the next step runs, then cleanup.
    let next = runner
        .script_step(&state, "echo next-step", json!({}), json!([]))
        .ok();
    assert_eq!(next.stdout, "next-step\n");
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    runner.assert_nothing_left();
}

#[test]
fn sigint_stops_a_script_step_inside_the_job_container() {
    cancel_a_script_step("INT", 130, "cancel-int");
}

#[test]
fn sigterm_stops_a_script_step_inside_the_job_container() {
    cancel_a_script_step("TERM", 143, "cancel-term");
}

#[test]
fn a_cancelled_container_step_is_stopped_and_removed() {
    let runner = Runner::new("cancel-container");
    let state = prepare(&runner);
    let mut step = container(&testenv().image(Image::Busybox));
    step["entryPoint"] = json!("sh");
    step["entryPointArgs"] = json!(runner_split(
        "-c \"touch /github/workspace/started; sleep 40 && echo late > /github/workspace/marker\""
    ));
    step["systemMountVolumes"] = runner.step_mounts();
    let started = runner.start("run_container_step", step, Some(&state));
    let flag = runner.workspace().join("started");
    wait_until("the container step started", LIVENESS, || flag.exists());
    let run = cancel(started, "INT", "container step");
    assert_eq!(run.code, 130, "{run:#?}");
    assert_eq!(run.errors().len(), 1, "{run:#?}");
    // Only the job container is left: the step container was stopped and removed.
    assert_eq!(runner.containers(), [state["container"].as_str().unwrap()]);
    assert!(!runner.workspace().join("marker").exists());
    runner
        .script_step(&state, "echo after", json!({}), json!([]))
        .ok();
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    runner.assert_nothing_left();
}

#[test]
fn a_cancelled_prepare_job_leaves_nothing_behind() {
    let runner = Runner::new("cancel-prepare");
    let mut job = container(&testenv().image(Image::Busybox));
    job["systemMountVolumes"] = runner.job_mounts();
    // A service that stays `starting` for a minute keeps prepare_job waiting.
    let mut slow = container(&testenv().image(Image::Busybox));
    slow["entryPoint"] = json!("sleep");
    slow["entryPointArgs"] = json!(["600"]);
    slow["createOptions"] =
        json!("--health-cmd \"test -f /never\" --health-interval 1s --health-start-period 60s");
    let started = runner.start(
        "prepare_job",
        json!({"container": job, "services": [slow]}),
        None,
    );
    wait_until("both containers run", LIVENESS, || {
        runner.containers().len() == 2
    });
    let run = cancel(started, "INT", "prepare_job");
    assert_eq!(run.code, 130, "{run:#?}");
    assert_eq!(run.response, "", "{run:#?}");
    runner.assert_nothing_left();
    runner.call("cleanup_job", json!({}), None).ok();
}
