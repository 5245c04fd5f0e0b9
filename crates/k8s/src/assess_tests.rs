//! The wait conditions against pods in the states a kubelet reports.

use crate::wait::{Assessment, Goal, assess, describe};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

fn pod(status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
}

fn job_goal() -> Goal {
    Goal::JobReady {
        job: true,
        services: vec!["redis".into()],
    }
}

fn running(name: &str, ready: bool) -> serde_json::Value {
    json!({"name": name, "ready": ready, "restartCount": 0, "image": "i", "imageID": "",
           "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}})
}

#[test]
fn ready_when_job_runs_and_services_are_ready() {
    let p = pod(
        json!({"phase": "Running", "containerStatuses": [running("job", true), running("redis", true)]}),
    );
    assert_eq!(assess(&p, &job_goal()), Assessment::Done(None));
    let p = pod(
        json!({"phase": "Running", "containerStatuses": [running("job", true), running("redis", false)]}),
    );
    assert_eq!(assess(&p, &job_goal()), Assessment::Waiting(None));
    assert!(
        describe(&p).contains("redis: running, not ready"),
        "{}",
        describe(&p)
    );
}

#[test]
fn image_pull_errors_fail_fast_with_the_reason() {
    for reason in [
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
    ] {
        let p = pod(json!({"phase": "Pending", "containerStatuses": [
            running("job", true),
            {"name": "redis", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"waiting": {"reason": reason, "message": "pull access denied\nfor redis"}}}
        ]}));
        assert_eq!(
            assess(&p, &job_goal()),
            Assessment::Failed(format!(
                "container redis cannot start: {reason}: pull access denied for redis"
            ))
        );
    }
}

#[test]
fn init_failures_and_exits() {
    let p = pod(json!({"phase": "Pending", "initContainerStatuses": [
        {"name": "fs-init", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
         "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": "cp: no such file"}}}
    ]}));
    assert_eq!(
        assess(&p, &job_goal()),
        Assessment::Failed(
            "init container fs-init failed with exit code 1 (Error: cp: no such file)".into()
        )
    );
    let p = pod(json!({"phase": "Running", "containerStatuses": [
        running("job", true),
        {"name": "redis", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
         "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
    ]}));
    assert_eq!(
        assess(&p, &job_goal()),
        Assessment::Failed("service redis exited with code 137 (OOMKilled)".into())
    );
}

#[test]
fn unschedulable_is_progress() {
    let p = pod(json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 Insufficient cpu."}
    ]}));
    assert_eq!(
        assess(&p, &job_goal()),
        Assessment::Waiting(Some(
            "waiting for a node (Unschedulable): 0/3 nodes are available: 3 Insufficient cpu."
                .into()
        ))
    );
}

#[test]
fn step_goals() {
    let init_running =
        pod(json!({"phase": "Pending", "initContainerStatuses": [running("fs-init", false)]}));
    assert_eq!(
        assess(&init_running, &Goal::InitRunning("fs-init".into())),
        Assessment::Done(None)
    );
    let finished = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "job", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
         "state": {"terminated": {"exitCode": 3, "reason": "Error"}}},
        running("fs-sync", true)
    ]}));
    assert_eq!(
        assess(&finished, &Goal::Started("job".into())),
        Assessment::Done(None)
    );
    assert_eq!(
        assess(&finished, &Goal::Terminated("job".into())),
        Assessment::Done(Some(3))
    );
    let failed = pod(json!({"phase": "Failed", "message": "Pod was rejected: node(s) had taint"}));
    assert_eq!(
        assess(&failed, &Goal::Started("job".into())),
        Assessment::Failed("the pod failed (Pod was rejected: node(s) had taint)".into())
    );
}
