//! Snapshots of the builder pods and their arguments.

use super::*;
use crate::build::settings::{BuildSettings, Builder};

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
        settings,
        plain_http: true,
    }
}

#[test]
fn kaniko_pod_snapshot() {
    let settings = BuildSettings::default();
    let pod = builder_pod(&input(&settings, &Placement::Anywhere));
    insta::assert_yaml_snapshot!(pod);
    let c = &pod.spec.as_ref().unwrap().containers[0];
    // Nothing privileged about it.
    assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(false));
    assert!(c.security_context.as_ref().unwrap().capabilities.is_none());
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
    let pod = builder_pod(&b);
    let spec = pod.spec.unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("node-1"));
    assert!(spec.volumes.is_none(), "no secret, no volume");
    assert_eq!(
        spec.containers[0].image.as_deref(),
        Some("gcr.io/kaniko-project/executor:v1.24.0")
    );
    insta::assert_yaml_snapshot!(spec.containers[0].args);
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
    let pod = builder_pod(&b);
    insta::assert_yaml_snapshot!(pod);
    let mut cached = settings.clone();
    cached.cache = true;
    let mut b = input(&cached, &placement);
    b.plain_http = false;
    let args = buildkit_args(&b);
    assert!(args.contains(&"type=image,name=registry.ci.svc.cluster.local:5000/actions/acme-lint-action:[tag],push=true".to_owned()), "{args:?}");
    assert!(args.contains(&"type=registry,ref=registry.ci.svc.cluster.local:5000/actions/acme-lint-action/cache:buildcache,mode=max".to_owned()), "{args:?}");
}

#[test]
fn digests_from_termination_messages() {
    let d = format!("sha256:{}", "0f".repeat(32));
    assert_eq!(
        digest_from_message(Builder::Kaniko, &format!("{d}\n")),
        Some(d.clone())
    );
    assert_eq!(
        digest_from_message(Builder::Kaniko, "error building image"),
        None
    );
    let meta = serde_json::json!({
        "containerimage.descriptor": {"digest": d, "size": 1},
        "containerimage.digest": d,
        "image.name": "x",
    });
    assert_eq!(
        digest_from_message(Builder::BuildKit, &meta.to_string()),
        Some(d)
    );
    assert_eq!(digest_from_message(Builder::BuildKit, "{}"), None);
    assert_eq!(containers(Builder::BuildKit), ("buildkit", "context"));
}
