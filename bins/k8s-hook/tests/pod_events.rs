//! A pod wait that fails or times out says what the cluster said about the pod: its newest
//! Warning events (kubesim's kubelet and scheduler record them as a real cluster does). Listing
//! events is an optional permission: without it the hook says so once and carries on.
#![cfg(feature = "e2e")]

mod support;

use kubesim::DenyRule;
use kubesim::faults::Unschedulable;
use serde_json::json;
use support::{Runner, container, sim, testenv};
use testenv::Image;

fn busybox_job() -> serde_json::Value {
    let mut job = container(&testenv().image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    job
}

fn short_timeout(runner: &mut Runner) {
    runner.extra_env.push((
        "ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS".into(),
        "4".into(),
    ));
}

#[test]
fn a_pull_failure_shows_the_kubelets_events() {
    let runner = Runner::new("ev-pull");
    let step = runner.container_step(
        None,
        "127.0.0.1:5555/hooktest/does-not-exist:1",
        None,
        &[],
        &[],
    );
    let e = step.run.one_error(1);
    assert!(e.contains("cannot start: ErrImagePull"), "{e}");
    assert!(e.contains("; recent warning events: "), "{e}");
    assert!(
        e.contains("Failed: Failed to pull image \"127.0.0.1:5555/hooktest/does-not-exist:1\""),
        "{e}"
    );
    assert!(e.contains("Failed: Error: ErrImagePull"), "{e}");
    // The failed step pod is deleted.
    assert_eq!(runner.labelled(), (vec![], vec![]));
}

#[test]
fn an_unschedulable_job_pod_times_out_with_the_schedulers_event() {
    let mut runner = Runner::new("ev-sched");
    short_timeout(&mut runner);
    sim().faults().add_unschedulable(Unschedulable {
        namespace: Some(runner.ns.clone()),
        pod: Some("*-workflow".into()),
        seconds: 600,
    });
    let (run, _) = runner.prepare(Some(busybox_job()), vec![]);
    let e = run.one_error(1);
    assert!(e.contains("was not ready within 4s"), "{e}");
    assert!(
        e.contains("recent warning events: FailedScheduling: 0/1 nodes are available"),
        "{e}"
    );
}

#[test]
fn a_missing_secret_volume_times_out_with_failed_mount() {
    let mut runner = Runner::new("ev-mount");
    short_timeout(&mut runner);
    runner.use_template(
        "spec:\n  volumes:\n    - name: creds\n      secret:\n        secretName: no-such-secret\n",
    );
    let (run, _) = runner.prepare(Some(busybox_job()), vec![]);
    let e = run.one_error(1);
    assert!(e.contains("was not ready within 4s"), "{e}");
    assert!(
        e.contains("FailedMount: MountVolume.SetUp failed: secret \"no-such-secret\" not found"),
        "{e}"
    );
}

#[test]
fn without_permission_to_list_events_the_hook_says_so_once_and_carries_on() {
    let mut runner = Runner::new("ev-denied");
    short_timeout(&mut runner);
    sim().authz().deny(DenyRule {
        verb: "list".into(),
        group: "*".into(),
        resource: "events".into(),
        subresource: None,
        namespace: Some(runner.ns.clone()),
    });
    sim().faults().add_unschedulable(Unschedulable {
        namespace: Some(runner.ns.clone()),
        pod: Some("*-workflow".into()),
        seconds: 600,
    });
    let (run, _) = runner.prepare(Some(busybox_job()), vec![]);
    let error = run.one_error(1);
    assert!(error.contains("was not ready within 4s"), "{error}");
    assert!(!error.contains("recent warning events"), "{error}");
    let said = run
        .stderr
        .lines()
        .filter(|l| l.contains("may not list events"))
        .count();
    assert_eq!(said, 1, "{}", run.stderr);
}
