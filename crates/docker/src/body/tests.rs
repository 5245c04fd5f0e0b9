//! Snapshots of the bodies sent to the engine, built from runner-shaped inputs.

use super::*;
use hooklib::{ContainerSpec, PrepareJobArgs};

fn owner() -> Owner {
    Owner {
        runner: "runner-1".into(),
        job: Some("0123456789ab".into()),
    }
}

/// The prepare_job example of PROTOCOL.md §8, plus a read-only user volume and a named volume.
fn prepare_args() -> PrepareJobArgs {
    serde_json::from_value(serde_json::json!({
        "container": {
            "image": "node:22-bookworm", "dockerfile": null, "entryPointArgs": [], "entryPoint": null,
            "workingDirectory": "/__w/shop/shop", "createOptions": "--cpus 2", "registry": null,
            "environmentVariables": {"HOME": "/github/home", "NODE_ENV": "test"},
            "portMappings": ["3000"],
            "systemMountVolumes": [
                {"userProvidedValue": null, "sourceVolumePath": "/home/runner/_work", "targetVolumePath": "/__w", "readOnly": false},
                {"userProvidedValue": null, "sourceVolumePath": "/home/runner/externals", "targetVolumePath": "/__e", "readOnly": true}
            ],
            "userMountVolumes": [
                {"userProvidedValue": "cache:/cache", "sourceVolumePath": "cache", "targetVolumePath": "/cache", "readOnly": false},
                {"userProvidedValue": "/scratch", "sourceVolumePath": null, "targetVolumePath": "/scratch", "readOnly": false}
            ]
        },
        "services": [{
            "image": "postgres:16", "dockerfile": null, "entryPointArgs": [], "entryPoint": null,
            "workingDirectory": null,
            "createOptions": "--health-cmd \"pg_isready -U postgres\" --health-interval 2s --health-retries 20 --network-alias db",
            "registry": null, "environmentVariables": {"POSTGRES_PASSWORD": "pw"},
            "portMappings": ["5432:5432", "127.0.0.1:8125:8125/udp"],
            "systemMountVolumes": [], "userMountVolumes": []
        }]
    }))
    .unwrap()
}

/// Cost labels as `Settings` reads them from the runner's `GITHUB_*` environment.
fn cost_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("arc-context-repository".to_owned(), "octo_shop".to_owned()),
        ("arc-context-run-id".to_owned(), "4242".to_owned()),
    ])
}

fn build(
    role: Role,
    spec: &ContainerSpec,
    network: &str,
    alias: Option<&str>,
) -> ContainerCreateBody {
    // The runner's spec as hooklib hands it to the hook.
    let spec = &Container::from_spec("the container".into(), spec.clone()).unwrap();
    let options = CreateOptions::parse(spec.create_options.as_deref()).unwrap();
    let image = spec.image.clone().unwrap_or_else(|| "built:tag".into());
    container_body(BodyInput {
        role,
        spec,
        image: &image,
        options: &options,
        network,
        alias,
        owner: &owner(),
        cost_labels: &cost_labels(),
    })
    .unwrap()
}

fn snapshot(name: &str, value: impl serde::Serialize) {
    insta::with_settings!({sort_maps => true, prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!(name, value);
    });
}

#[test]
fn job_container_body() {
    let args = prepare_args();
    let body = build(
        Role::Job,
        args.container.as_ref().unwrap(),
        "r-0123-network",
        None,
    );
    snapshot("job_container", &body);
}

#[test]
fn service_container_body() {
    let args = prepare_args();
    let body = build(
        Role::Service,
        &args.services[0],
        "r-0123-network",
        Some("postgres"),
    );
    snapshot("service_container", &body);
}

#[test]
fn service_on_host_network_has_no_ports_or_aliases() {
    let args = prepare_args();
    let body = build(Role::Service, &args.services[0], "host", Some("postgres"));
    snapshot("service_on_host_network", &body);
}

#[test]
fn job_container_with_own_entrypoint_and_quoted_args() {
    let spec = ContainerSpec {
        image: Some("busybox".into()),
        entry_point: Some("sh".into()),
        entry_point_args: vec!["-c".into(), "\"echo".into(), "hi\"".into()],
        environment_variables: [("CI".to_owned(), "false".to_owned())].into(),
        ..Default::default()
    };
    let body = build(Role::Job, &spec, "net", None);
    assert_eq!(body.entrypoint.unwrap(), ["sh"]);
    assert_eq!(body.cmd.unwrap(), ["-c", "echo hi"]);
    // CI set by the workflow is kept; GITHUB_ACTIONS is added.
    assert_eq!(body.env.unwrap(), ["CI=false", "GITHUB_ACTIONS=true"]);
}

#[test]
fn options_entrypoint_replaces_the_keep_alive() {
    let spec = ContainerSpec {
        image: Some("busybox".into()),
        create_options: Some("--entrypoint /bin/sleepy".into()),
        ..Default::default()
    };
    let body = build(Role::Job, &spec, "net", None);
    assert_eq!(body.entrypoint.unwrap(), ["/bin/sleepy"]);
    assert_eq!(body.cmd, None);
}

#[test]
fn dockerfile_step_container_body() {
    let spec: ContainerSpec = serde_json::from_value(serde_json::json!({
        "image": null, "dockerfile": "/home/runner/_work/_actions/acme/lint/v2/Dockerfile",
        "entryPointArgs": ["--strict", "\"Mona", "the", "Octocat\""], "entryPoint": null,
        "workingDirectory": "/github/workspace", "createOptions": null, "registry": null,
        "environmentVariables": {"INPUT_PATH": "src", "GITHUB_OUTPUT": "/github/file_commands/set_output_9a"},
        "portMappings": ["80"],
        "systemMountVolumes": [
            {"userProvidedValue": null, "sourceVolumePath": "/var/run/docker.sock", "targetVolumePath": "/var/run/docker.sock", "readOnly": false},
            {"userProvidedValue": null, "sourceVolumePath": "/home/runner/_work/_temp", "targetVolumePath": "/github/runner_temp", "readOnly": false},
            {"userProvidedValue": null, "sourceVolumePath": "/home/runner/_work/repo/repo", "targetVolumePath": "/github/workspace", "readOnly": false}
        ],
        "userMountVolumes": []
    }))
    .unwrap();
    let body = build(Role::Step, &spec, "r-0123-network", None);
    // Container steps publish no ports.
    assert!(body.exposed_ports.is_none());
    snapshot("dockerfile_step_container", &body);
}

#[test]
fn mounts_with_colons_use_the_mount_api() {
    let spec = ContainerSpec {
        image: Some("busybox".into()),
        user_mount_volumes: vec![Mount {
            source_volume_path: Some("/data/a:b".into()),
            target_volume_path: "/a".into(),
            read_only: true,
            ..Default::default()
        }],
        ..Default::default()
    };
    let body = build(Role::Service, &spec, "net", None);
    let host = body.host_config.unwrap();
    assert_eq!(host.binds, None);
    let m = &host.mounts.unwrap()[0];
    assert_eq!(m.typ, Some(MountType::BIND));
    assert_eq!(m.read_only, Some(true));
}

#[test]
fn service_entrypoint_and_command_are_honoured_like_a_container_steps() {
    // runner #4276: a service's `entrypoint:` and `command:` arrive as entryPoint and the
    // runner-split entryPointArgs.
    let spec = ContainerSpec {
        image: Some("redis:7".into()),
        entry_point: Some("redis-server".into()),
        entry_point_args: vec![
            "--save".into(),
            "\"\"".into(),
            "--appendonly".into(),
            "'no".into(),
            "really'".into(),
        ],
        ..Default::default()
    };
    let body = build(Role::Service, &spec, "net", Some("redis"));
    assert_eq!(body.entrypoint.unwrap(), ["redis-server"]);
    assert_eq!(
        body.cmd.unwrap(),
        ["--save", "", "--appendonly", "no really"]
    );
    // `command:` alone keeps the image's entrypoint.
    let spec = ContainerSpec {
        image: Some("redis:7".into()),
        entry_point_args: vec!["redis-server".into(), "--port".into(), "6380".into()],
        ..Default::default()
    };
    let body = build(Role::Service, &spec, "net", Some("redis"));
    assert_eq!(body.entrypoint, None);
    assert_eq!(body.cmd.unwrap(), ["redis-server", "--port", "6380"]);
}

#[test]
fn cost_labels_never_replace_the_hooks_own() {
    let spec = ContainerSpec {
        image: Some("busybox".into()),
        create_options: Some("--label arc-context-repository=spoofed --label team=x".into()),
        ..Default::default()
    };
    let labels = build(Role::Step, &spec, "net", None).labels.unwrap();
    assert_eq!(labels["arc-context-repository"], "octo_shop");
    assert_eq!(labels["arc-context-run-id"], "4242");
    assert_eq!(labels["team"], "x");
    assert_eq!(labels[crate::names::ROLE_LABEL], "step");
}

#[test]
fn bad_inputs_are_errors() {
    // Ports and arguments are refused by hooklib before a body is built.
    let refused = |spec: ContainerSpec| {
        Container::from_spec("service #1 (busybox)".into(), spec)
            .unwrap_err()
            .to_string()
    };
    let e = refused(ContainerSpec {
        image: Some("busybox".into()),
        port_mappings: vec!["99999".into()],
        ..Default::default()
    });
    assert!(
        e.starts_with("service #1 (busybox): ") && e.contains("99999"),
        "{e}"
    );
    let e = refused(ContainerSpec {
        image: Some("busybox".into()),
        entry_point_args: vec!["\"open".into()],
        ..Default::default()
    });
    assert!(e.contains("unbalanced quotes"), "{e}");
    // A mount without a target is the body's own refusal.
    let spec = Container {
        image: Some("busybox".into()),
        user_mount_volumes: vec![Mount {
            source_volume_path: Some("/data".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let options = CreateOptions::default();
    let e = container_body(BodyInput {
        role: Role::Service,
        spec: &spec,
        image: "busybox",
        options: &options,
        network: "net",
        alias: None,
        owner: &owner(),
        cost_labels: &BTreeMap::new(),
    })
    .map(|_| ())
    .unwrap_err();
    assert_eq!(e, BodyError::EmptyMountTarget("/data".into()));
}

#[test]
fn script_step_exec() {
    let args: RunScriptStepArgs = serde_json::from_value(serde_json::json!({
        "entryPoint": "bash",
        "entryPointArgs": ["--noprofile", "--norc", "-e", "-o", "pipefail", "/__w/_temp/5d2a.sh", ""],
        "environmentVariables": {"GITHUB_WORKSPACE": "/__w/shop/shop", "GREETING": "Mona the Octocat; $(rm -rf /)", "CI": "true"},
        "prependPath": ["/__w/_tool/node/22.1.0/x64/bin", "/opt/bin"],
        "workingDirectory": "/__w/shop/shop"
    }))
    .unwrap();
    snapshot(
        "script_step_exec",
        script_exec(&args, "/usr/local/bin:/usr/bin:/bin", "0123abcd"),
    );
}

#[test]
fn script_step_path_from_step_env_wins() {
    let args = RunScriptStepArgs {
        entry_point: "sh".into(),
        environment_variables: [("PATH".to_owned(), "/custom".to_owned())].into(),
        prepend_path: vec!["/first".into()],
        ..Default::default()
    };
    let exec = script_exec(&args, "/usr/bin", "t1");
    assert_eq!(
        exec.env.unwrap(),
        ["PATH=/first:/custom", "CONTAINER_HOOKS_STEP=t1"]
    );
    assert_eq!(exec.working_dir, None);
}

#[test]
fn network_create_body() {
    snapshot(
        "network",
        network_body("runner-1-0123456789ab-network", &owner()),
    );
}

#[test]
fn container_path() {
    let env = vec!["A=1".to_owned(), "PATH=/x:/y".to_owned()];
    assert_eq!(path_from_env(Some(&env)), "/x:/y");
    assert_eq!(path_from_env(None), DEFAULT_PATH);
}

#[test]
fn container_steps_always_get_the_runners_temp() {
    let mount = |source: &str, target: &str| Mount {
        user_provided_value: None,
        source_volume_path: Some(source.into()),
        target_volume_path: target.into(),
        read_only: false,
    };
    let targets = |spec: &Container| -> Vec<(String, String)> {
        spec.system_mount_volumes
            .iter()
            .map(|m| {
                (
                    m.source_volume_path.clone().unwrap_or_default(),
                    m.target_volume_path.clone(),
                )
            })
            .collect()
    };
    // Already sent by the runner: kept as is.
    let mut spec = Container {
        system_mount_volumes: vec![mount("/w/_temp", "/github/runner_temp/")],
        ..Default::default()
    };
    assert!(!ensure_runner_temp(&mut spec, Some("/elsewhere")));
    assert_eq!(spec.system_mount_volumes.len(), 1);
    // Not sent: RUNNER_TEMP, else derived from the `/github/home` mount.
    let mut spec = Container {
        system_mount_volumes: vec![mount("/w/_temp/_github_home", "/github/home")],
        ..Default::default()
    };
    let mut derived = spec.clone();
    assert!(ensure_runner_temp(&mut spec, Some("/runner/_work/_temp")));
    assert_eq!(
        targets(&spec)[1],
        ("/runner/_work/_temp".into(), "/github/runner_temp".into())
    );
    assert!(ensure_runner_temp(&mut derived, None));
    assert_eq!(
        targets(&derived)[1],
        ("/w/_temp".into(), "/github/runner_temp".into())
    );
    // Nothing to derive it from: nothing added.
    let mut bare = Container::default();
    assert!(!ensure_runner_temp(&mut bare, None));
}
