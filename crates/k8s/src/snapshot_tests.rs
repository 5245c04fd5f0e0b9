//! Snapshots of every object the hook sends, for the main input variants.

use crate::mounts::{Layout, Placement, Storage};
use crate::pod::{self, PodContext};
use crate::prepare::response;
use crate::secrets::{self, Credentials};
use crate::template::{Customization, PodKind};
use hooklib::{Container, ContainerSpec, PrepareJob, PrepareJobArgs, Registry, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::json;
use std::path::Path;

fn ctx(storage: Storage) -> PodContext {
    PodContext {
        runner_pod: "runner-abc".into(),
        owner: Some(OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: "runner-abc".into(),
            uid: "[runner-uid]".into(),
            ..OwnerReference::default()
        }),
        token: "[token]".into(),
        runner_image: "ghcr.io/actions/actions-runner:latest".into(),
        storage,
        layout: Layout::new(
            Some(Path::new("/home/runner/_work/_temp")),
            Some(Path::new("/home/runner/_work/shop")),
            Some(Path::new("/home/runner/_work/shop/shop")),
        )
        .unwrap(),
        cost_labels: Default::default(),
    }
}

fn spec(image: &str) -> ContainerSpec {
    ContainerSpec {
        image: Some(image.into()),
        ..ContainerSpec::default()
    }
}

/// The runner's `prepare_job` arguments as hooklib hands them to the hook.
fn job(args: &PrepareJobArgs) -> PrepareJob {
    PrepareJob::from_args(args.clone()).unwrap()
}

/// A runner's container step as hooklib hands it to the hook.
fn step_of(spec: &ContainerSpec) -> Container {
    Container::step(spec.clone()).unwrap()
}

fn full_args() -> PrepareJobArgs {
    let mut job = spec("node:22-bookworm");
    job.working_directory = Some("/__w/shop/shop".into());
    job.environment_variables = [("HOME", "/github/home"), ("NODE_ENV", "test")]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    job.port_mappings = vec!["3000".into()];
    job.create_options = Some("--cpus 2".into());
    job.registry = Some(Registry {
        username: Some("octo".into()),
        password: Some(Secret::new("pw")),
        server_url: Some(String::new()),
    });
    let mut pg = spec("postgres:16");
    pg.create_options = Some(
        r#"--health-cmd "pg_isready -U postgres" --health-interval 2s --health-retries 20 --shm-size 1g"#
            .into(),
    );
    pg.environment_variables = [("POSTGRES_PASSWORD".to_owned(), "pw".to_owned())].into();
    pg.port_mappings = vec!["5432:5432".into()];
    let mut private = spec("127.0.0.1:5556/hooktest/busybox:1");
    private.registry = Some(Registry {
        username: Some("hookuser".into()),
        password: Some(Secret::new("pw2")),
        server_url: Some("127.0.0.1:5556".into()),
    });
    PrepareJobArgs {
        container: Some(job),
        services: vec![
            spec("redis:7"),
            pg,
            spec("docker.io/library/redis"),
            private,
        ],
    }
}

#[test]
fn job_pod_copy_mode() {
    let built = pod::job_pod(
        &ctx(Storage::Copy),
        "runner-abc-workflow",
        &job(&full_args()),
        &["runner-abc-secret-1".into(), "runner-abc-secret-2".into()],
    )
    .unwrap();
    insta::assert_yaml_snapshot!(built.pod);
    insta::assert_yaml_snapshot!("job_pod_copy_mode_warnings", built.warnings);
    let r = response(&built.pod, &job(&full_args()), &built.service_names, false);
    insta::assert_json_snapshot!(serde_json::to_value(&r).unwrap());
}

#[test]
fn services_only_job_pod_volume_mode() {
    let args = PrepareJobArgs {
        container: None,
        services: vec![spec("redis:7")],
    };
    let storage = Storage::Volume {
        claim: "runner-abc-work".into(),
        placement: Placement::NodeName("node-1".into()),
    };
    let built = pod::job_pod(&ctx(storage), "runner-abc-workflow", &job(&args), &[]).unwrap();
    insta::assert_yaml_snapshot!(built.pod);
    let r = response(&built.pod, &job(&args), &built.service_names, false);
    insta::assert_json_snapshot!(serde_json::to_value(&r).unwrap());
}

#[test]
fn job_pod_with_kube_scheduler_affinity() {
    let args = PrepareJobArgs {
        container: Some(spec("busybox")),
        services: vec![],
    };
    let storage = Storage::Volume {
        claim: "work".into(),
        placement: Placement::Affinity("node-1".into()),
    };
    let built = pod::job_pod(&ctx(storage), "runner-abc-workflow", &job(&args), &[]).unwrap();
    let spec = built.pod.spec.unwrap();
    insta::assert_yaml_snapshot!(spec.affinity);
    assert_eq!(spec.node_name, None);
}

fn template() -> serde_json::Value {
    json!({
        "metadata": {
            "labels": {"team": "shop", "container-hooks/role": "mine"},
            "annotations": {"cost-center": "42"},
            "name": "ignored"
        },
        "spec": {
            "nodeSelector": {"pool": "ci"},
            "serviceAccountName": "ci-jobs",
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "containers": [
                {"name": "$job", "image": "evil:1", "command": ["sh", "-c", "sleep 999999"],
                 "env": [{"name": "FROM_TEMPLATE", "value": "1"}],
                 "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                 "resources": {"limits": {"memory": "1Gi"}}},
                {"name": "$redis", "env": [{"name": "REDIS_ARGS", "value": "--save ''"}],
                 "resources": {"requests": {"cpu": "100m"}}},
                {"name": "$mysql", "env": []},
                {"name": "sidecar", "image": "busybox:1", "command": ["sleep", "infinity"]}
            ]
        }
    })
}

#[test]
fn template_merge() {
    let args = PrepareJobArgs {
        container: Some(spec("node:22")),
        services: vec![spec("redis:7")],
    };
    let mut built =
        pod::job_pod(&ctx(Storage::Copy), "runner-abc-workflow", &job(&args), &[]).unwrap();
    let custom = Customization::from_values(Some(template()), None);
    let warnings = custom.apply(&mut built.pod, PodKind::Job).unwrap();
    insta::assert_yaml_snapshot!(built.pod);
    insta::assert_yaml_snapshot!("template_merge_warnings", warnings);
    // Side-cars are not services.
    let r = response(&built.pod, &job(&args), &built.service_names, false);
    assert_eq!(r.context.services.len(), 1);
}

#[test]
fn patches_apply_last() {
    let args = PrepareJobArgs {
        container: Some(spec("node:22")),
        services: vec![],
    };
    let mut built =
        pod::job_pod(&ctx(Storage::Copy), "runner-abc-workflow", &job(&args), &[]).unwrap();
    let merge = Customization::from_values(
        Some(template()),
        Some(json!({"spec": {"nodeSelector": {"pool": "big"}, "priorityClassName": "ci"}})),
    );
    merge.apply(&mut built.pod, PodKind::Job).unwrap();
    let spec = built.pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_selector.as_ref().unwrap()["pool"], "big");
    assert_eq!(spec.priority_class_name.as_deref(), Some("ci"));
    let json6902 = Customization::from_values(
        None,
        Some(json!([
            {"op": "add", "path": "/spec/containers/0/securityContext", "value": {"runAsUser": 1001}},
            {"op": "replace", "path": "/spec/restartPolicy", "value": "Never"}
        ])),
    );
    json6902.apply(&mut built.pod, PodKind::Job).unwrap();
    let c = &built.pod.spec.as_ref().unwrap().containers[0];
    assert_eq!(c.security_context.as_ref().unwrap().run_as_user, Some(1001));
    let bad = Customization::from_values(
        None,
        Some(json!([{"op": "remove", "path": "/spec/containers/7"}])),
    );
    let e = bad.apply(&mut built.pod, PodKind::Job).unwrap_err();
    assert!(e.to_string().contains("runner-abc-workflow"), "{e}");
    let wrong_type = Customization::from_values(
        None,
        Some(json!({"spec": {"containers": [{"name": "x", "ports": "80"}]}})),
    );
    let e = wrong_type.apply(&mut built.pod, PodKind::Job).unwrap_err();
    assert!(e.to_string().contains("spec.containers[0].ports"), "{e}");
}

#[test]
fn step_pods() {
    let mut step = spec("127.0.0.1:5555/hooktest/busybox:1");
    step.entry_point_args = vec!["\"Hello".into(), "world\"".into(), "--flag".into()];
    step.working_directory = Some("/github/workspace".into());
    step.environment_variables = [
        ("INPUT_WHO".to_owned(), "octo".to_owned()),
        (
            "GITHUB_OUTPUT".to_owned(),
            "/github/file_commands/set_output_1".to_owned(),
        ),
    ]
    .into();
    let copy = pod::step_pod(
        &ctx(Storage::Copy),
        "runner-abc-step-01234567",
        "127.0.0.1:5555/hooktest/busybox:1",
        &step_of(&step),
        &[],
    )
    .unwrap();
    insta::assert_yaml_snapshot!("step_pod_copy_mode", copy);
    step.entry_point = Some("/entrypoint.sh".into());
    let mut volume = pod::step_pod(
        &ctx(Storage::Volume {
            claim: "runner-abc-work".into(),
            placement: Placement::NodeName("node-1".into()),
        }),
        "runner-abc-step-01234567",
        "registry.local/built@sha256:abc",
        &step_of(&step),
        &["runner-abc-kaniko-secret".into()],
    )
    .unwrap();
    let warnings = Customization::from_values(Some(template()), None)
        .apply(&mut volume, PodKind::Step)
        .unwrap();
    insta::assert_yaml_snapshot!("step_pod_volume_mode_with_template", volume);
    assert!(
        !warnings.iter().any(|w| w.contains("$redis")),
        "{warnings:?}"
    );
}

#[test]
fn registry_secret() {
    let creds = Credentials::from_registry(Some(&Registry {
        username: Some("octo".into()),
        password: Some(Secret::new("hunter2")),
        server_url: None,
    }))
    .unwrap();
    let s = secrets::registry_secret(
        "runner-abc-secret-01234567",
        pod::labels("runner-abc", "registry-secret"),
        "[token]",
        ctx(Storage::Copy).owner,
        &creds,
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&s.data.as_ref().unwrap()[".dockerconfigjson"].0).unwrap();
    assert_eq!(
        doc["auths"]["https://index.docker.io/v1/"]["password"],
        "hunter2"
    );
    insta::assert_yaml_snapshot!(s, {".data" => "[redacted]"});
}

#[test]
fn bad_input_is_refused_before_anything_is_created() {
    let e = pod::job_pod(
        &ctx(Storage::Copy),
        "x",
        &job(&PrepareJobArgs::default()),
        &[],
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("neither a job container nor services")
    );
    // hooklib refuses a port that is not one; a port range is valid but no pod can have it.
    let mut bad = spec("redis");
    bad.port_mappings = vec!["99999".into()];
    let e = PrepareJob::from_args(PrepareJobArgs {
        container: None,
        services: vec![bad],
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "service #1 (redis): invalid port mapping \"99999\": \"99999\" is not a port number"
    );
    let mut range = spec("redis");
    range.port_mappings = vec!["8000-8001:8000-8001".into()];
    let e = pod::job_pod(
        &ctx(Storage::Copy),
        "x",
        &job(&PrepareJobArgs {
            container: None,
            services: vec![range],
        }),
        &[],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the service #1 (redis): invalid port mapping \"8000-8001:8000-8001/tcp\": port ranges are not supported by the Kubernetes hook"
    );
}

/// Every kind of pod the hook makes: job pod with services, services-only pod, step pods in
/// both modes.
fn every_pod(ctx: &PodContext) -> Vec<k8s_openapi::api::core::v1::Pod> {
    let services_only = PrepareJobArgs {
        container: None,
        services: vec![spec("redis:7")],
    };
    let mut step = spec("alpine:3");
    step.working_directory = Some("/github/workspace".into());
    vec![
        pod::job_pod(ctx, "runner-abc-workflow", &job(&full_args()), &[])
            .unwrap()
            .pod,
        pod::job_pod(ctx, "runner-abc-workflow", &job(&services_only), &[])
            .unwrap()
            .pod,
        pod::step_pod(ctx, "runner-abc-step-1", "alpine:3", &step_of(&step), &[]).unwrap(),
    ]
}

#[test]
fn no_service_account_token_unless_the_template_says_so() {
    let volume = Storage::Volume {
        claim: "w".into(),
        placement: Placement::Anywhere,
    };
    for storage in [Storage::Copy, volume] {
        let ctx = ctx(storage);
        for p in every_pod(&ctx) {
            let automount = |p: &k8s_openapi::api::core::v1::Pod| {
                p.spec.as_ref().unwrap().automount_service_account_token
            };
            assert_eq!(automount(&p), Some(false), "{:?}", p.metadata.name);
            let with = |t: serde_json::Value, kind| {
                let mut p = p.clone();
                Customization::from_values(Some(t), None)
                    .apply(&mut p, kind)
                    .unwrap();
                p
            };
            let kind = if p.metadata.name.as_deref() == Some("runner-abc-workflow") {
                PodKind::Job
            } else {
                PodKind::Step
            };
            // A template without a word about service accounts keeps the token out.
            let p1 = with(json!({"spec": {"nodeSelector": {"a": "b"}}}), kind);
            assert_eq!(automount(&p1), Some(false));
            // The template opts in.
            let p2 = with(
                json!({"spec": {"automountServiceAccountToken": true}}),
                kind,
            );
            assert_eq!(automount(&p2), Some(true));
            // A service account without a word about the token: the account's setting applies.
            let p3 = with(json!({"spec": {"serviceAccountName": "ci-jobs"}}), kind);
            assert_eq!(automount(&p3), None);
            assert_eq!(
                p3.spec.as_ref().unwrap().service_account_name.as_deref(),
                Some("ci-jobs")
            );
            // Both: the template's word.
            let p4 = with(
                json!({"spec": {"serviceAccountName": "ci-jobs", "automountServiceAccountToken": false}}),
                kind,
            );
            assert_eq!(automount(&p4), Some(false));
        }
    }
}

#[test]
fn cost_labels_on_every_pod_and_never_over_the_hooks_own() {
    let mut ctx = ctx(Storage::Copy);
    let env: std::collections::BTreeMap<&str, &str> = [
        ("GITHUB_REPOSITORY", "octo-org/shop"),
        ("GITHUB_WORKFLOW", "CI / build & test"),
        ("GITHUB_JOB", "unit"),
        ("GITHUB_RUN_ID", "9876543210"),
        ("GITHUB_RUN_NUMBER", "42"),
        ("GITHUB_RUN_ATTEMPT", "1"),
        ("GITHUB_ACTOR", "octocat"),
        ("GITHUB_EVENT_NAME", "pull_request"),
    ]
    .into_iter()
    .collect();
    ctx.cost_labels = hooklib::cost::cost_labels(|k| env.get(k).map(|v| (*v).to_owned()));
    let pods = every_pod(&ctx);
    insta::assert_yaml_snapshot!("cost_labels", pods[0].metadata.labels);
    for p in &pods {
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels.len(), 10, "{labels:?}");
        for (k, v) in &ctx.cost_labels {
            assert_eq!(labels.get(k), Some(v));
        }
    }
    // A cost label can never take the place of the runner label.
    ctx.cost_labels
        .insert(crate::names::RUNNER_POD_LABEL.into(), "someone-else".into());
    for p in every_pod(&ctx) {
        assert_eq!(
            p.metadata.labels.as_ref().unwrap()[crate::names::RUNNER_POD_LABEL],
            "runner-abc"
        );
    }
}

#[test]
fn service_entrypoint_and_args_like_a_container_step() {
    let mut svc = spec("redis:7");
    svc.entry_point = Some("redis-server".into());
    svc.entry_point_args = vec![
        "--save".into(),
        "\"\"".into(),
        "--loglevel".into(),
        "\"very".into(),
        "verbose\"".into(),
    ];
    let mut args_only = spec("postgres:16");
    args_only.entry_point_args = vec!["-c".into(), "max_connections=200".into()];
    let args = PrepareJobArgs {
        container: None,
        services: vec![svc, args_only],
    };
    let built = pod::job_pod(&ctx(Storage::Copy), "runner-abc-workflow", &job(&args), &[]).unwrap();
    let containers = &built.pod.spec.as_ref().unwrap().containers;
    assert_eq!(
        containers[0].command.as_deref(),
        Some(&["redis-server".to_owned()][..])
    );
    assert_eq!(
        containers[0].args.as_deref().unwrap(),
        ["--save", "", "--loglevel", "very verbose"]
    );
    // Without an entrypoint the image's own ENTRYPOINT runs with the args.
    assert_eq!(containers[1].command, None);
    assert_eq!(
        containers[1].args.as_deref().unwrap(),
        ["-c", "max_connections=200"]
    );
}

#[test]
fn step_pods_get_the_runners_temp_at_github_runner_temp() {
    let volume = Storage::Volume {
        claim: "w".into(),
        placement: Placement::Anywhere,
    };
    for storage in [Storage::Copy, volume] {
        let ctx = ctx(storage);
        let step = pod::step_pod(&ctx, "s", "alpine:3", &step_of(&spec("alpine:3")), &[]).unwrap();
        let action = &step.spec.as_ref().unwrap().containers[0];
        let m = action
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == "/github/runner_temp")
            .expect("/github/runner_temp is mounted");
        assert_eq!(
            (m.name.as_str(), m.sub_path.as_deref()),
            (crate::mounts::WORK_VOLUME, Some("_temp"))
        );
    }
}

#[test]
fn the_prepare_plan_is_decided_before_anything_is_created() {
    let args = full_args();
    let custom = Customization::from_values(None, None);
    let plan = crate::prepare::plan_job(
        &ctx(Storage::Copy),
        &custom,
        "runner-abc-workflow",
        &job(&args),
    )
    .unwrap();
    // Two distinct logins (docker.io for the job, 127.0.0.1:5556 for a service): two secrets,
    // both the pod's pull secrets, all with the invocation's token.
    assert_eq!(plan.secrets.len(), 2);
    let pulls: Vec<String> = plan
        .pod
        .spec
        .as_ref()
        .unwrap()
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(pulls, plan.secret_names);
    for s in &plan.secrets {
        assert_eq!(
            s.metadata
                .annotations
                .as_ref()
                .unwrap()
                .values()
                .filter(|v| *v == "[token]")
                .count(),
            1,
            "{s:?}"
        );
    }
    assert_eq!(plan.service_names.len(), 4);
    // The options no pod can honour are said, not dropped.
    assert!(
        plan.warnings.iter().any(|w| w.contains("--cpus 2")),
        "{:?}",
        plan.warnings
    );
}
