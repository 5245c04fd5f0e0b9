//! Cancellation through the real binary on kubesim: the runner's SIGINT or SIGTERM stops a
//! script step where it runs (its processes in the job container), the hook exits 130 / 143
//! with one `::error::` line, and the job goes on (the next step, cleanup); a `prepare_job`
//! cancelled half-way leaves nothing that `cleanup_job` does not remove.
#![cfg(feature = "e2e")]

mod support;

use kubesim::faults::PodDelay;
use serde_json::{Value, json};
use std::time::Duration;
use support::spawn::{Program, Started, start};
use support::{Run, Runner, container, sim, testenv, wait_until};
use testenv::Image;

/// Liveness bound only (the hook's own budget is 6.5 s after the signal; this is no timing test).
const LIVENESS: Duration = Duration::from_secs(15);

fn job() -> Value {
    let mut job = container(&testenv().image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    job
}

/// Starts one hook command like the runner does, without waiting for it.
fn spawn(runner: &Runner, command: &str, args: Value, state: Option<&Value>) -> Started {
    start(runner, &Program::Binary, command, args, state)
}

/// Sends `signal` (`INT`, `TERM`) and waits for the hook; returns its run and the time it took
/// after the signal.
fn signal_and_wait(mut started: Started, signal: &str) -> (Run, Duration) {
    started.signal(signal);
    let run = started.finish();
    let after = run.elapsed;
    (run, after)
}

/// Lists the live processes whose command line holds `sleep 40` (zombies have none); the
/// words are apart here so that this program's own command line does not match.
const SLEEPERS: &str = "w=sleep; for d in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $d/cmdline 2>/dev/null) || continue; \
     case \"$c\" in *\"$w 40\"*) echo \"${d#/proc/}: $c\";; esac; done";

fn a_cancelled_step_stops_in_the_pod(signal: &str, code: i32, name: &str) {
    let runner = Runner::new(name);
    let (run, state) = runner.prepare(Some(job()), vec![]);
    run.ok();
    let pod = state["jobPod"].as_str().unwrap().to_owned();
    let args = runner
        .write_script("echo started\nsleep 40 && echo late > /tmp/marker\n")
        .unwrap()
        .args(json!({}), json!([]), "/__w/repo/repo");
    let child = spawn(&runner, "run_script_step", args, Some(&state));
    wait_until("the step's sleep runs", || {
        !runner.job_exec(&pod, &["sh", "-c", SLEEPERS]).is_empty()
    });
    let (run, after) = signal_and_wait(child, signal);
    eprintln!("SIG{signal}: the hook exited {after:?} after the signal");
    let name = if signal == "INT" { "SIGINT" } else { "SIGTERM" };
    assert_eq!(run.code, code, "{run:#?}");
    assert!(after < LIVENESS, "{after:?}: {run:#?}");
    assert_eq!(
        run.errors(),
        [format!("::error::The step was cancelled ({name})").as_str()],
        "{run:#?}"
    );
    assert_eq!(run.response, "", "no response after a cancellation");
    assert_eq!(run.stdout, "started\n", "{run:#?}");

    // No step process is left, the marker never appears, and the job goes on.
    let next = runner.script(
        &state,
        &format!("{SLEEPERS}\n[ -e /tmp/marker ] && echo marker\necho checked\n"),
        &[],
    );
    assert_eq!(
        (next.run.code, next.run.stdout.as_str()),
        (0, "checked\n"),
        "{:#?}",
        next.run
    );
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert_eq!(runner.labelled(), (vec![], vec![]));
}

#[test]
fn sigint_stops_a_script_step_in_the_pod() {
    a_cancelled_step_stops_in_the_pod("INT", 130, "cancel-int");
}

#[test]
fn sigterm_stops_a_script_step_in_the_pod() {
    a_cancelled_step_stops_in_the_pod("TERM", 143, "cancel-term");
}

#[test]
fn a_prepare_job_cancelled_half_way_leaves_nothing_after_cleanup() {
    let runner = Runner::new("cancel-prep");
    let env = testenv();
    // A registry login (so a secret is made) and a job pod that takes long to start.
    let mut job = job();
    job["image"] = json!(env.auth_image(Image::Busybox));
    job["registry"] = json!({"username": env.auth_user, "password": env.auth_password,
                             "serverUrl": env.auth_registry});
    sim().faults().add_pod_start_delay(PodDelay {
        namespace: Some(runner.ns.clone()),
        pod: Some("*-workflow".into()),
        millis: 60_000,
    });
    let child = spawn(
        &runner,
        "prepare_job",
        json!({"container": job, "services": []}),
        None,
    );
    wait_until("the job pod and its secret exist", || {
        let (pods, secrets) = runner.labelled();
        !pods.is_empty() && !secrets.is_empty()
    });
    let (run, after) = signal_and_wait(child, "INT");
    assert_eq!(run.code, 130, "{run:#?}");
    assert!(after < LIVENESS, "{after:?}: {run:#?}");
    assert_eq!(run.errors().len(), 1, "{run:#?}");
    assert_eq!(run.response, "", "no response after a cancellation");
    // The runner runs cleanup_job after a failed prepare_job, with a null state.
    runner.call("cleanup_job", json!({}), None).ok();
    assert_eq!(runner.labelled(), (vec![], vec![]));
}
