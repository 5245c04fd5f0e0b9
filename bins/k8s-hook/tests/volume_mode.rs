//! Shared-volume mode (`ACTIONS_RUNNER_CLAIM_NAME`): `_work` is a PVC bound to the runner's own
//! folder, so nothing is copied and everything a step writes is on the runner at once.
#![cfg(feature = "e2e")]

mod support;

use serde_json::json;
use support::{container, testenv, volume_mode};
use testenv::Image;

#[test]
fn volume_mode_mounts_the_claim_and_copies_nothing() {
    let env = testenv();
    let mut own = volume_mode("vol", "work-claim", true);
    let runner = &mut own.runner;

    let mut job = container(&env.image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    let (run, state) = runner.prepare(Some(job.clone()), vec![]);
    let run = run.ok();
    assert!(
        !run.stderr.contains("copied"),
        "no copy in volume mode: {}",
        run.stderr
    );
    let pod = runner.get_pod("runner-vol-workflow").unwrap();
    let spec = pod.spec.unwrap();
    let runner_node = runner
        .get_pod("runner-vol")
        .unwrap()
        .spec
        .unwrap()
        .node_name;
    assert!(runner_node.is_some());
    assert_eq!(spec.node_name, runner_node, "pinned to the runner's node");
    let claim = spec.volumes.unwrap()[0]
        .persistent_volume_claim
        .clone()
        .unwrap();
    assert_eq!(claim.claim_name, "work-claim");

    let step = runner.script(
        &state,
        "cat README.md\necho from-pod > from-pod.txt\necho 'v=1' >> \"$GITHUB_OUTPUT\"\ntest -f /github/workflow/event.json\n",
        &[],
    );
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    assert!(
        !step.run.stderr.contains("::group::Copying"),
        "{}",
        step.run.stderr
    );
    assert_eq!(step.run.stdout, "# repo\n");
    assert_eq!(step.output, "v=1\n");
    assert_eq!(
        std::fs::read_to_string(runner.workspace().join("from-pod.txt")).unwrap(),
        "from-pod\n"
    );

    let cstep = runner.container_step(
        Some(&state),
        &env.image(Image::Busybox),
        Some("sh"),
        &[
            "-c",
            "\"cat",
            "from-pod.txt;",
            "echo",
            "w=2",
            ">>",
            "$GITHUB_OUTPUT;",
            "echo",
            "x",
            ">",
            "from-action\"",
        ],
        &[],
    );
    assert_eq!(cstep.run.code, 0, "{:#?}", cstep.run);
    assert_eq!(cstep.run.stdout, "from-pod\n");
    assert_eq!(cstep.output, "w=2\n");
    assert!(runner.workspace().join("from-action").exists());
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert_eq!(runner.labelled(), (vec![], vec![]));

    // With the kube scheduler: required node affinity instead of nodeName, and kubesim's
    // scheduler (which evaluates it) must place the pod on the runner's node.
    runner
        .extra_env
        .push(("ACTIONS_RUNNER_USE_KUBE_SCHEDULER".into(), "true".into()));
    let (run, state) = runner.prepare(Some(job), vec![]);
    run.ok();
    let spec = runner.get_pod("runner-vol-workflow").unwrap().spec.unwrap();
    assert!(
        spec.affinity.is_some(),
        "node affinity in kube-scheduler mode"
    );
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert_eq!(runner.labelled(), (vec![], vec![]));
}
