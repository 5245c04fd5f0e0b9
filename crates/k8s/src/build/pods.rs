//! Pure builders of the builder pods: Kaniko (the default; no privilege at all) and BuildKit
//! rootless (seccomp and AppArmor `Unconfined`).
//!
//! Both receive the build context as a gzipped tar on a container's stdin through `attach`
//! (`stdin: true`, `stdinOnce: true`): Kaniko reads it itself (`--context=tar://stdin`); for
//! BuildKit an init container unpacks it into an emptyDir that `buildctl` reads. The pushed
//! digest comes back as the container's termination message (`/dev/termination-log`).

use super::settings::{BuildSettings, Builder, registry_of};
use crate::mounts::Placement;
use crate::names::TOKEN_ANNOTATION;
use crate::pod::labels;
use k8s_openapi::api::core::v1::{
    Affinity, AppArmorProfile, Container, EmptyDirVolumeSource, EnvVar, KeyToPath, NodeAffinity,
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, SeccompProfile,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

/// The Kaniko container.
pub const KANIKO_CONTAINER: &str = "kaniko";
/// The BuildKit container.
pub const BUILDKIT_CONTAINER: &str = "buildkit";
/// BuildKit's init container receiving the context.
pub const CONTEXT_CONTAINER: &str = "context";
/// The role label value of builder pods.
pub const BUILDER_ROLE: &str = "builder";
/// Where the digest (Kaniko) or the build metadata (BuildKit) is written.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// The volume holding the registry secret as `config.json`.
const DOCKER_CONFIG_VOLUME: &str = "docker-config";
/// Kaniko's `DOCKER_CONFIG`.
pub const KANIKO_DOCKER_CONFIG: &str = "/kaniko/.docker";
/// The rootless BuildKit user's docker config directory.
pub const BUILDKIT_DOCKER_CONFIG: &str = "/home/user/.docker";
/// Where BuildKit's init container unpacks the context.
pub const BUILDKIT_CONTEXT_DIR: &str = "/home/user/context";
/// BuildKit's state directory (an emptyDir: rootless BuildKit cannot use overlay on overlay).
const BUILDKIT_STATE_DIR: &str = "/home/user/.local/share/buildkit";
/// The rootless image's user and group.
pub const BUILDKIT_UID: i64 = 1000;

/// Everything a builder pod is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct BuilderPod<'a> {
    /// Pod name (`<runner>-kaniko-<id>`).
    pub name: &'a str,
    /// The runner pod (labels).
    pub runner_pod: &'a str,
    /// The creation token (annotation).
    pub token: &'a str,
    /// The job pod, or the runner pod when there is none.
    pub owner: Option<OwnerReference>,
    /// Where the pod runs (volume mode pins it like the job pod).
    pub placement: &'a Placement,
    /// `<push host>/<name>:<tag>`.
    pub destination: &'a str,
    /// The Dockerfile's path inside the context.
    pub dockerfile: &'a str,
    /// The dockerconfigjson secret.
    pub secret: Option<&'a str>,
    /// The builder settings (image, cache, mirror, extra args).
    pub settings: &'a BuildSettings,
    /// Whether the push registry speaks plain HTTP.
    pub plain_http: bool,
}

/// The builder pod for the configured builder.
pub fn builder_pod(b: &BuilderPod<'_>) -> Pod {
    match b.settings.builder {
        Builder::Kaniko => kaniko_pod(b),
        Builder::BuildKit => buildkit_pod(b),
    }
}

fn metadata(b: &BuilderPod<'_>, extra_annotations: &[(String, String)]) -> ObjectMeta {
    let mut annotations = BTreeMap::from([(TOKEN_ANNOTATION.to_owned(), b.token.to_owned())]);
    annotations.extend(extra_annotations.iter().cloned());
    ObjectMeta {
        name: Some(b.name.to_owned()),
        labels: Some(labels(b.runner_pod, BUILDER_ROLE)),
        annotations: Some(annotations),
        owner_references: b.owner.clone().map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

fn base_spec(b: &BuilderPod<'_>) -> PodSpec {
    let mut spec = PodSpec {
        restart_policy: Some("Never".into()),
        // The builder talks to registries, never to the API server.
        automount_service_account_token: Some(false),
        ..PodSpec::default()
    };
    match b.placement {
        Placement::NodeName(node) => spec.node_name = Some(node.clone()),
        Placement::Affinity(node) => {
            spec.affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_fields: Some(vec![NodeSelectorRequirement {
                                key: "metadata.name".into(),
                                operator: "In".into(),
                                values: Some(vec![node.clone()]),
                            }]),
                            ..NodeSelectorTerm::default()
                        }],
                    }),
                    ..NodeAffinity::default()
                }),
                ..Affinity::default()
            });
        }
        Placement::Anywhere => {}
    }
    spec
}

fn docker_config_volume(secret: &str) -> Volume {
    Volume {
        name: DOCKER_CONFIG_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_owned()),
            items: Some(vec![KeyToPath {
                key: crate::secrets::DOCKER_CONFIG_KEY.into(),
                path: "config.json".into(),
                ..KeyToPath::default()
            }]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// Kaniko's arguments.
pub fn kaniko_args(b: &BuilderPod<'_>) -> Vec<String> {
    let s = b.settings;
    let mut args = vec![
        format!("--dockerfile={}", b.dockerfile),
        "--context=tar://stdin".to_owned(),
        format!("--destination={}", b.destination),
        format!("--digest-file={TERMINATION_LOG}"),
    ];
    if s.cache {
        args.push("--cache=true".into());
        args.push(format!("--cache-repo={}", cache_repo(b)));
    }
    for host in &s.insecure_registries {
        args.push(format!("--insecure-registry={}", registry_of(host)));
    }
    if let Some(m) = &s.registry_mirror {
        args.push(format!("--registry-mirror={m}"));
    }
    args.extend(s.extra_args.iter().cloned());
    args
}

fn cache_repo(b: &BuilderPod<'_>) -> String {
    b.settings.cache_repo.clone().unwrap_or_else(|| {
        let repo = b
            .destination
            .rsplit_once(':')
            .map_or(b.destination, |(r, _)| r);
        format!("{repo}/cache")
    })
}

/// The Kaniko pod: one container, stdin open for the context, the secret at
/// `/kaniko/.docker/config.json`; not privileged, no added capability, default seccomp.
pub fn kaniko_pod(b: &BuilderPod<'_>) -> Pod {
    let mut spec = base_spec(b);
    let mut mounts = Vec::new();
    if let Some(secret) = b.secret {
        spec.volumes = Some(vec![docker_config_volume(secret)]);
        mounts.push(mount(DOCKER_CONFIG_VOLUME, KANIKO_DOCKER_CONFIG, true));
    }
    spec.containers = vec![Container {
        name: KANIKO_CONTAINER.into(),
        image: Some(b.settings.image.clone()),
        args: Some(kaniko_args(b)),
        stdin: Some(true),
        stdin_once: Some(true),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }];
    Pod {
        metadata: metadata(b, &[]),
        spec: Some(spec),
        ..Pod::default()
    }
}

/// `buildctl-daemonless.sh`'s arguments.
pub fn buildkit_args(b: &BuilderPod<'_>) -> Vec<String> {
    let mut output = format!("type=image,name={},push=true", b.destination);
    if b.plain_http {
        output.push_str(",registry.insecure=true");
    }
    let mut args: Vec<String> = [
        "build",
        "--frontend",
        "dockerfile.v0",
        "--local",
        &format!("context={BUILDKIT_CONTEXT_DIR}"),
        "--local",
        &format!("dockerfile={BUILDKIT_CONTEXT_DIR}"),
        "--opt",
        &format!("filename={}", b.dockerfile),
        "--output",
        &output,
        "--metadata-file",
        TERMINATION_LOG,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if b.settings.cache {
        let cache = format!("type=registry,ref={}:buildcache", cache_repo(b));
        args.extend([
            "--export-cache".to_owned(),
            format!("{cache},mode=max"),
            "--import-cache".to_owned(),
            cache,
        ]);
    }
    args.extend(b.settings.extra_args.iter().cloned());
    args
}

fn rootless_context(unconfined: bool) -> SecurityContext {
    SecurityContext {
        run_as_user: Some(BUILDKIT_UID),
        run_as_group: Some(BUILDKIT_UID),
        seccomp_profile: unconfined.then(|| SeccompProfile {
            type_: "Unconfined".into(),
            ..SeccompProfile::default()
        }),
        app_armor_profile: unconfined.then(|| AppArmorProfile {
            type_: "Unconfined".into(),
            ..AppArmorProfile::default()
        }),
        ..SecurityContext::default()
    }
}

/// The BuildKit rootless pod: an init container unpacking the context from its stdin into an
/// emptyDir, then `buildctl-daemonless.sh` with `--oci-worker-no-process-sandbox`, uid 1000,
/// seccomp and AppArmor `Unconfined` (the relaxation BuildKit rootless needs).
pub fn buildkit_pod(b: &BuilderPod<'_>) -> Pod {
    let mut spec = base_spec(b);
    let empty = |name: &str| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    };
    let mut volumes = vec![empty(CONTEXT_CONTAINER), empty("buildkitd")];
    let mut mounts = vec![
        mount(CONTEXT_CONTAINER, BUILDKIT_CONTEXT_DIR, true),
        mount("buildkitd", BUILDKIT_STATE_DIR, false),
    ];
    if let Some(secret) = b.secret {
        volumes.push(docker_config_volume(secret));
        mounts.push(mount(DOCKER_CONFIG_VOLUME, BUILDKIT_DOCKER_CONFIG, true));
    }
    spec.volumes = Some(volumes);
    spec.init_containers = Some(vec![Container {
        name: CONTEXT_CONTAINER.into(),
        image: Some(b.settings.image.clone()),
        command: Some(
            ["tar", "-xzf", "-", "-C", BUILDKIT_CONTEXT_DIR]
                .map(String::from)
                .to_vec(),
        ),
        stdin: Some(true),
        stdin_once: Some(true),
        volume_mounts: Some(vec![mount(CONTEXT_CONTAINER, BUILDKIT_CONTEXT_DIR, false)]),
        security_context: Some(rootless_context(false)),
        ..Container::default()
    }]);
    spec.containers = vec![Container {
        name: BUILDKIT_CONTAINER.into(),
        image: Some(b.settings.image.clone()),
        command: Some(vec!["buildctl-daemonless.sh".into()]),
        args: Some(buildkit_args(b)),
        env: Some(vec![EnvVar {
            name: "BUILDKITD_FLAGS".into(),
            value: Some("--oci-worker-no-process-sandbox".into()),
            ..EnvVar::default()
        }]),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        security_context: Some(rootless_context(true)),
        ..Container::default()
    }];
    // Clusters older than 1.30 read AppArmor from this annotation.
    let apparmor = (
        format!("container.apparmor.security.beta.kubernetes.io/{BUILDKIT_CONTAINER}"),
        "unconfined".to_owned(),
    );
    Pod {
        metadata: metadata(b, &[apparmor]),
        spec: Some(spec),
        ..Pod::default()
    }
}

/// The container whose end is the build's end, and the one receiving the context.
pub fn containers(builder: Builder) -> (&'static str, &'static str) {
    match builder {
        Builder::Kaniko => (KANIKO_CONTAINER, KANIKO_CONTAINER),
        Builder::BuildKit => (BUILDKIT_CONTAINER, CONTEXT_CONTAINER),
    }
}

/// The pushed digest from the builder's termination message: Kaniko writes the digest itself,
/// BuildKit its metadata JSON (`containerimage.digest`).
pub fn digest_from_message(builder: Builder, message: &str) -> Option<String> {
    let m = message.trim();
    let digest = match builder {
        Builder::Kaniko => m.to_owned(),
        Builder::BuildKit => serde_json::from_str::<serde_json::Value>(m)
            .ok()?
            .get("containerimage.digest")?
            .as_str()?
            .to_owned(),
    };
    super::naming::is_digest(&digest).then_some(digest)
}

#[cfg(test)]
#[path = "pods_tests.rs"]
mod tests;
