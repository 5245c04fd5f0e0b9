//! Failures through the real binary on kubesim: each is one clear `::error::` line and a
//! non-zero exit, never a false success, and nothing is left behind.
#![cfg(feature = "e2e")]

mod support;

use kubesim::DenyRule;
use kubesim::faults::{PodDelay, PullFailure, RequestFault, StreamDrop, Unschedulable};
use serde_json::json;
use support::{Runner, container, sim, testenv};
use testenv::Image;

fn busybox_job() -> serde_json::Value {
    let mut job = container(&testenv().image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    job
}

#[test]
fn rbac_denial_lists_every_missing_permission() {
    let runner = Runner::new("rbac");
    for (verb, sub) in [("watch", None), ("create", Some("exec")), ("delete", None)] {
        sim().authz().deny(DenyRule {
            verb: verb.into(),
            group: "*".into(),
            resource: "pods".into(),
            subresource: sub.map(Into::into),
            namespace: Some(runner.ns.clone()),
        });
    }
    let (run, _) = runner.prepare(Some(busybox_job()), vec![]);
    let error = run.one_error(1);
    assert!(
        error.contains(&format!(
            "permissions in namespace {}: watch pods, delete pods, create pods/exec",
            runner.ns
        )),
        "{error}"
    );
    assert_eq!(run.response, "");
    assert!(runner.labelled().0.is_empty(), "nothing was created");
}

#[test]
fn an_image_that_cannot_be_pulled_fails_fast_with_its_reason() {
    let runner = Runner::new("pull");
    let env = testenv();
    // A real missing image (the registry answers "manifest unknown") and an injected failure.
    let missing = container(&format!("{}/hooktest/no-such-image:1", env.registry));
    let (run, _) = runner.prepare(Some(busybox_job()), vec![missing]);
    let error = run.one_error(1);
    assert!(
        error.contains("container no-such-image cannot start: ErrImagePull"),
        "{error}"
    );
    assert!(!error.contains("within"), "not a timeout: {error}");
    assert_eq!(
        runner.labelled(),
        (vec![], vec![]),
        "the failed job pod was deleted"
    );

    // An injected pull failure (an untagged image is always pulled).
    sim().faults().add_pull_failure(PullFailure {
        namespace: Some(runner.ns.clone()),
        image: "*/hooktest/alpine-like".into(),
    });
    let untagged = format!("{}/hooktest/alpine-like", env.registry);
    let (run, _) = runner.prepare(Some(container(&untagged)), vec![]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.errors()[0].contains("container job cannot start: ErrImagePull"),
        "{run:#?}"
    );
    // cleanup_job after a failed prepare_job (null state) succeeds.
    runner.call("cleanup_job", json!({}), None).ok();
}

#[test]
fn bursts_of_500_and_429_are_survived() {
    let runner = Runner::new("burst");
    let faults = sim().faults();
    for (verb, resource, sub, code, count) in [
        ("create", "pods", None, 500, 2),
        ("get", "pods", None, 429, 2),
        ("list", "pods", None, 503, 2),
        ("list", "secrets", None, 500, 1),
        ("watch", "pods", None, 500, 2),
        ("create", "pods", Some("exec"), 500, 2),
        ("create", "pods", Some("exec"), 429, 1),
        ("delete", "pods", None, 500, 1),
    ] {
        faults.add_request_error(RequestFault {
            namespace: Some(runner.ns.clone()),
            verb: verb.into(),
            resource: resource.into(),
            subresource: sub.map(Into::into),
            code,
            count,
            retry_after_seconds: Some(1),
        });
    }
    let (run, state) = runner.prepare(Some(busybox_job()), vec![]);
    let run = run.ok();
    assert!(run.errors().is_empty());
    let step = runner.script(&state, "echo survived\n", &[]);
    assert_eq!(
        (step.run.code, step.run.stdout.as_str()),
        (0, "survived\n"),
        "{:#?}",
        step.run
    );
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert_eq!(runner.labelled(), (vec![], vec![]));
    let left: Vec<_> = faults
        .get()
        .request_errors
        .into_iter()
        .filter(|f| f.namespace.as_deref() == Some(runner.ns.as_str()))
        .collect();
    assert!(
        left.is_empty(),
        "every injected failure was met and retried: {left:?}"
    );
}

#[test]
fn a_dropped_exec_connection_fails_the_step() {
    let mut runner = Runner::new("drop");
    // Resuming off: the step runs attached to one exec stream (tests/resume.rs covers resuming).
    runner.extra_env.push((
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_RESUME_TIMEOUT_SECONDS".into(),
        "0".into(),
    ));
    let (run, state) = runner.prepare(Some(busybox_job()), vec![]);
    run.ok();
    // Every stream of this namespace is cut after 100 kB of output: the copies stay below it,
    // the step does not.
    sim().faults().add_stream_drop(StreamDrop {
        namespace: Some(runner.ns.clone()),
        after_bytes: Some(100_000),
        after_millis: None,
        count: None,
        command: None,
    });
    let step = runner.script(
        &state,
        "i=0; while [ $i -lt 20000 ]; do echo \"line $i of a long step output\"; i=$((i+1)); done\nexit 0\n",
        &[],
    );
    assert_eq!(
        step.run.code, 1,
        "never a success without a status: {:#?}",
        step.run.stderr
    );
    let errors = step.run.errors();
    assert_eq!(errors.len(), 1, "{}", step.run.stderr);
    assert!(errors[0].contains("result is unknown"), "{}", errors[0]);
    assert!(
        step.run.stdout.starts_with("line 0 of"),
        "output before the drop was streamed"
    );
    assert!(step.run.stdout.len() <= 100_000);
}

#[test]
fn a_slow_start_within_the_timeout_succeeds_and_beyond_it_fails() {
    let mut runner = Runner::new("slow");
    sim().faults().add_unschedulable(Unschedulable {
        namespace: Some(runner.ns.clone()),
        pod: Some("*-workflow".into()),
        seconds: 1,
    });
    sim().faults().add_pod_start_delay(PodDelay {
        namespace: Some(runner.ns.clone()),
        pod: Some("*-workflow".into()),
        // Longer than the 10 s a wait may stay silent in the job log.
        millis: 11_000,
    });
    runner.extra_env.push((
        "ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS".into(),
        "30".into(),
    ));
    let (run, state) = runner.prepare(Some(busybox_job()), vec![]);
    let run = run.ok();
    assert!(
        run.stderr.contains("waiting for a node (Unschedulable)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("still waiting for pod runner-slow-workflow (10 s): "),
        "a long wait must report progress: {}",
        run.stderr
    );
    runner.call("cleanup_job", json!({}), Some(&state)).ok();

    runner.extra_env.push((
        "ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS".into(),
        "1".into(),
    ));
    let (run, _) = runner.prepare(Some(busybox_job()), vec![]);
    let error = run.one_error(1);
    assert!(error.contains("was not ready within 1s"), "{error}");
    assert_eq!(
        runner.labelled(),
        (vec![], vec![]),
        "the late pod was deleted"
    );
}
