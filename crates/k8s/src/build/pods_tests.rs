//! Snapshots of the builder pods and their arguments.

use super::*;
use crate::build::settings::{BuildSettings, Builder, DEFAULT_PUSHER_IMAGE};

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: "runner-abc-workflow".into(),
        uid: "[job-pod-uid]".into(),
        ..OwnerReference::default()
    }
}

fn input<'a>(settings: &'a BuildSettings, placement: &'a Placement) -> BuilderPod<'a> {
    BuilderPod {
        name: "runner-abc-kaniko-[id]",
        runner_pod: "runner-abc",
        token: "[token]",
        owner: Some(owner()),
        placement,
        destination: "registry.ci.svc.cluster.local:5000/actions/acme-lint-action:[tag]",
        dockerfile: "Dockerfile",
        secret: Some("regcred"),
        pull_secret: None,
        settings,
        plain_http: true,
    }
}

/// Every container that runs the builder image (and so the Dockerfile's `RUN` lines): no
/// volume of the push secret, nothing credential-like in its environment; the push secret is
/// mounted in the pusher and nowhere else.
fn credentials_only_in_the_pusher(pod: &Pod) {
    let spec = pod.spec.as_ref().unwrap();
    let push_volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("regcred"))
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(push_volumes, ["push-config"]);
    let all: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .collect();
    for c in &all {
        let mounts_push = c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "push-config");
        let env = serde_json::to_string(&c.env).unwrap().to_lowercase();
        assert!(c.env_from.is_none(), "{}", c.name);
        if c.name == PUSH_CONTAINER {
            assert!(mounts_push || push_volumes.is_empty());
            assert_ne!(
                c.image,
                pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0].image
            );
        } else {
            assert!(!mounts_push, "{} mounts the push secret", c.name);
            for word in ["password", "token", "auth", "secret", "regcred"] {
                assert!(!env.contains(word), "{}: {env}", c.name);
            }
        }
    }
}

#[test]
fn kaniko_pod_snapshot() {
    let settings = BuildSettings::default();
    let pod = builder_pod(&input(&settings, &Placement::Anywhere));
    insta::assert_yaml_snapshot!(pod);
    let spec = pod.spec.as_ref().unwrap();
    let kaniko = &spec.init_containers.as_ref().unwrap()[0];
    // Nothing privileged about it.
    assert_eq!(
        kaniko.security_context.as_ref().unwrap().privileged,
        Some(false)
    );
    assert!(
        kaniko
            .security_context
            .as_ref()
            .unwrap()
            .capabilities
            .is_none()
    );
    let args = kaniko.args.as_ref().unwrap();
    assert!(args.contains(&"--no-push".to_owned()), "{args:?}");
    assert!(
        args.contains(&"--tar-path=/workspace/image.tar".to_owned()),
        "{args:?}"
    );
    credentials_only_in_the_pusher(&pod);
    let push = &spec.containers[0];
    assert_eq!(push.name, "push");
    assert_eq!(push.image.as_deref(), Some(DEFAULT_PUSHER_IMAGE));
    assert_eq!(
        push.args.as_ref().unwrap(),
        &[
            "push",
            "/workspace/image.tar",
            "registry.ci.svc.cluster.local:5000/actions/acme-lint-action:[tag]",
            "--image-refs=/dev/termination-log",
            "--insecure"
        ]
    );
}

#[test]
fn kaniko_pod_with_extras_pinned_to_the_node() {
    let settings = BuildSettings {
        cache: true,
        insecure_registries: vec!["registry.ci.svc.cluster.local:5000/actions".into()],
        registry_mirror: Some("mirror.gcr.io".into()),
        extra_args: vec!["--build-arg=A=b c".into(), "--target=final".into()],
        image: "gcr.io/kaniko-project/executor:v1.24.0".into(),
        ..BuildSettings::default()
    };
    let placement = Placement::NodeName("node-1".into());
    let mut b = input(&settings, &placement);
    b.secret = None;
    b.plain_http = false;
    b.pull_secret = Some("basecred");
    let pod = builder_pod(&b);
    let spec = pod.spec.unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("node-1"));
    let volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        volumes,
        ["workspace", "pull-config"],
        "no push secret, no volume"
    );
    let kaniko = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        kaniko.image.as_deref(),
        Some("gcr.io/kaniko-project/executor:v1.24.0")
    );
    // The base-image pull secret is Kaniko's docker config; the pusher mounts no secret.
    assert!(
        kaniko
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "pull-config" && m.mount_path == "/kaniko/.docker")
    );
    assert_eq!(spec.containers[0].volume_mounts.as_ref().unwrap().len(), 1);
    assert!(
        !spec.containers[0]
            .args
            .as_ref()
            .unwrap()
            .contains(&"--insecure".to_owned())
    );
    insta::assert_yaml_snapshot!(kaniko.args);
}

#[test]
fn buildkit_pod_snapshot() {
    let settings = BuildSettings {
        builder: Builder::BuildKit,
        image: Builder::BuildKit.default_image().into(),
        ..BuildSettings::default()
    };
    let placement = Placement::Affinity("node-1".into());
    let mut b = input(&settings, &placement);
    b.name = "runner-abc-buildkit-[id]";
    b.pull_secret = Some("basecred");
    let pod = builder_pod(&b);
    insta::assert_yaml_snapshot!(pod);
    credentials_only_in_the_pusher(&pod);
    let inits: Vec<&str> = pod
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(inits, ["context", "buildkit"]);
    let mut cached = settings.clone();
    cached.cache = true;
    let b = input(&cached, &placement);
    let args = buildkit_args(&b);
    assert!(args.contains(&"type=docker,name=registry.ci.svc.cluster.local:5000/actions/acme-lint-action:[tag],dest=/workspace/image.tar".to_owned()), "{args:?}");
    assert!(args.contains(&"type=registry,ref=registry.ci.svc.cluster.local:5000/actions/acme-lint-action/cache:buildcache,mode=max".to_owned()), "{args:?}");
}

#[test]
fn digests_from_termination_messages() {
    let d = format!("sha256:{}", "0f".repeat(32));
    assert_eq!(digest_from_message(&format!("{d}\n")), Some(d.clone()));
    assert_eq!(
        digest_from_message(&format!("127.0.0.1:5556/a/b@{d}\n")),
        Some(d.clone())
    );
    assert_eq!(digest_from_message("error pushing image"), None);
    assert_eq!(digest_from_message("r/a@sha256:short"), None);
    assert_eq!(containers(Builder::BuildKit), ("buildkit", "context"));
    assert_eq!(containers(Builder::Kaniko), ("kaniko", "kaniko"));
}
