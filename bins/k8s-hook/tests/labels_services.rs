//! Issue 12 through the real binary on kubesim, Kubernetes side: cost labels (`arc-context-*`
//! from the runner's `GITHUB_*`) on job, service-bearing and step pods; a service's
//! `entrypoint`/`command` honoured like a container step's; container steps always get the
//! runner's `_temp` at `/github/runner_temp`.
#![cfg(feature = "e2e")]

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use support::{OwnSim, Runner, container, rt, testenv, volume_mode};
use testenv::Image;

/// The runner's environment for a pull request run, with values no label could hold as they
/// are.
const CONTEXT: [(&str, &str); 8] = [
    ("GITHUB_REPOSITORY", "octo-org/shop"),
    ("GITHUB_WORKFLOW", "CI / build & test 🚀"),
    ("GITHUB_JOB", "unit"),
    ("GITHUB_RUN_ID", "9876543210"),
    ("GITHUB_RUN_NUMBER", "42"),
    ("GITHUB_RUN_ATTEMPT", "1"),
    ("GITHUB_ACTOR", "octo[bot]"),
    ("GITHUB_EVENT_NAME", "pull_request"),
];

/// The labels [`CONTEXT`] gives.
fn expected_labels() -> BTreeMap<String, String> {
    [
        ("arc-context-repository", "octo-org_shop"),
        ("arc-context-workflow", "CI_build_test"),
        ("arc-context-job", "unit"),
        ("arc-context-run-id", "9876543210"),
        ("arc-context-run-number", "42"),
        ("arc-context-run-attempt", "1"),
        ("arc-context-actor", "octo_bot"),
        ("arc-context-event-name", "pull_request"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn cost_labels_of(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.starts_with("arc-context-"))
        .collect()
}

/// `args` as the runner sends a workflow's `command:` string: split on single spaces, quotes
/// kept.
fn runner_split(command: &str) -> Vec<String> {
    command.split(' ').map(str::to_owned).collect()
}

fn sleeping_service() -> Value {
    let mut svc = container(&testenv().image(Image::Busybox));
    svc["entryPoint"] = json!("sleep");
    svc["entryPointArgs"] = json!(["600"]);
    svc
}

#[test]
fn cost_labels_on_job_service_and_step_pods_never_select_anything() {
    let mut runner = Runner::new("cost");
    for (k, v) in CONTEXT {
        runner.extra_env.push((k.into(), v.into()));
    }
    // The job and step containers read their own pod's labels through the downward API.
    runner.use_template("spec:\n  volumes:\n    - name: podinfo\n      downwardAPI:\n        items:\n          - path: labels\n            fieldRef:\n              fieldPath: metadata.labels\n  containers:\n    - name: $job\n      volumeMounts:\n        - name: podinfo\n          mountPath: /podinfo\n");
    let mut job = container(&testenv().image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    let (run, state) = runner.prepare(Some(job), vec![sleeping_service()]);
    run.ok();
    let pod = runner.get_pod("runner-cost-workflow").unwrap();
    assert_eq!(cost_labels_of(&pod), expected_labels());
    assert_eq!(
        pod.metadata.labels.as_ref().unwrap()["runner-pod"],
        "runner-cost"
    );

    let step = runner.script(&state, "cat /podinfo/labels\n", &[]);
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    assert!(
        step.run
            .stdout
            .contains("arc-context-repository=\"octo-org_shop\""),
        "{}",
        step.run.stdout
    );
    // The step pod carries them too.
    let cstep = runner.container_step(
        Some(&state),
        &testenv().image(Image::Busybox),
        Some("cat"),
        &["/podinfo/labels"],
        &[],
    );
    assert_eq!(cstep.run.code, 0, "{:#?}", cstep.run);
    for (k, v) in expected_labels() {
        assert!(
            cstep.run.stdout.contains(&format!("{k}=\"{v}\"")),
            "{k}: {}",
            cstep.run.stdout
        );
    }
    assert!(cstep.run.stdout.contains("container-hooks/role=\"step\""));

    // A pod of someone else's with the very same cost labels is not this runner's.
    let mut decoy_labels = expected_labels();
    decoy_labels.insert("container-hooks/role".into(), "job".into());
    let decoy: Pod = serde_json::from_value(json!({
        "metadata": {"name": "decoy", "labels": decoy_labels},
        "spec": {"containers": [{"name": "c", "image": testenv().image(Image::Busybox),
                                 "command": ["sleep", "600"]}]}
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(runner.client.clone(), &runner.ns);
    rt().block_on(pods.create(&PostParams::default(), &decoy))
        .unwrap();
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert_eq!(runner.labelled(), (vec![], vec![]));
    assert!(
        runner.get_pod("decoy").is_some(),
        "cleanup selects by runner only"
    );
}

#[test]
fn services_only_pods_are_labelled_and_the_setting_turns_labels_off() {
    let mut runner = Runner::new("cost-svc");
    for (k, v) in CONTEXT {
        runner.extra_env.push((k.into(), v.into()));
    }
    let (run, state) = runner.prepare(None, vec![sleeping_service()]);
    run.ok();
    let pod = runner.get_pod("runner-cost-svc-workflow").unwrap();
    assert_eq!(cost_labels_of(&pod), expected_labels());
    runner.call("cleanup_job", json!({}), Some(&state)).ok();

    runner.extra_env.push((
        "ACTIONS_RUNNER_CONTAINER_HOOKS_COST_LABELS".into(),
        "false".into(),
    ));
    let (run, state) = runner.prepare(None, vec![sleeping_service()]);
    run.ok();
    let pod = runner.get_pod("runner-cost-svc-workflow").unwrap();
    assert_eq!(cost_labels_of(&pod), BTreeMap::new());
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert_eq!(runner.labelled(), (vec![], vec![]));
}

#[test]
fn a_services_entrypoint_and_command_are_honoured() {
    let runner = Runner::new("svc-cmd");
    // services.redis: { entrypoint: sh, command: -c "echo 'said  by' $0 > /__w/said; …" }
    let mut with_entrypoint = container(&testenv().image(Image::Busybox));
    with_entrypoint["entryPoint"] = json!("sh");
    with_entrypoint["entryPointArgs"] = json!(runner_split(
        "-c \"echo 'said  by' entrypoint > /__w/said-1; exec sleep 600\""
    ));
    with_entrypoint["createOptions"] =
        json!("--health-cmd \"test -s /__w/said-1\" --health-interval 1s");
    // No entrypoint: the command replaces the image's CMD.
    let mut command_only = container(&testenv().image(Image::Busybox));
    command_only["entryPointArgs"] = json!(runner_split(
        "sh -c \"echo 'said by command' > /__w/said-2; exec sleep 600\""
    ));
    command_only["createOptions"] =
        json!("--health-cmd \"test -s /__w/said-2\" --health-interval 1s");
    let mut job = container(&testenv().image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    let (run, state) = runner.prepare(Some(job), vec![with_entrypoint, command_only]);
    run.ok();
    let step = runner.script(&state, "cat /__w/said-1 /__w/said-2\n", &[]);
    assert_eq!(
        step.run.stdout, "said  by entrypoint\nsaid by command\n",
        "{:#?}",
        step.run
    );
    let spec = runner
        .get_pod("runner-svc-cmd-workflow")
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(
        spec.containers[1].command.as_deref(),
        Some(&["sh".to_owned()][..])
    );
    assert_eq!(spec.containers[2].command, None);
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
}

/// A container step reading the runner's `_temp` at `/github/runner_temp`.
fn reads_runner_temp(runner: &Runner, state: Option<&Value>) {
    std::fs::write(runner.temp().join("from-runner.txt"), "runner's temp\n").unwrap();
    let step = runner.container_step(
        state,
        &testenv().image(Image::Busybox),
        Some("sh"),
        &runner_split(
            "-c \"cat /github/runner_temp/from-runner.txt && test -d /github/runner_temp/_runner_file_commands && echo $RUNNER_TEMP_OK\"",
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
        &[("RUNNER_TEMP_OK", "dirs-ok")],
    );
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    assert_eq!(
        step.run.stdout, "runner's temp\ndirs-ok\n",
        "{:#?}",
        step.run
    );
}

#[test]
fn container_steps_get_the_runners_temp_at_github_runner_temp() {
    // Copy mode, without a job container and with one.
    let runner = Runner::new("rtemp");
    reads_runner_temp(&runner, None);
    let mut job = container(&testenv().image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    let (run, state) = runner.prepare(Some(job), vec![]);
    run.ok();
    reads_runner_temp(&runner, Some(&state));
    runner.call("cleanup_job", json!({}), Some(&state)).ok();

    // Volume mode: the claim is the runner's own `_work`.
    let own = volume_mode("rtemp-vol", "work-claim", true);
    reads_runner_temp(&own.runner, None);
    let OwnSim { runner, sim } = own;
    drop(runner);
    rt().block_on(sim.shutdown());
}
