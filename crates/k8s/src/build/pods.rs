//! Pure builders of the builder pods: Kaniko (the default; no privilege at all) and BuildKit
//! rootless (seccomp and AppArmor `Unconfined`).
//!
//! Credentials never enter a container that runs Dockerfile instructions. The builder runs as
//! an init container, builds **without pushing** into an image tarball on an emptyDir
//! (Kaniko `--no-push --tar-path`, BuildKit `--output type=docker,dest=`), and sees at most
//! the optional base-image pull secret. When it has finished, the pusher (crane, a trusted
//! image that runs no job code) pushes the tarball with the push secret, mounted in the pusher
//! only, and writes the pushed reference to its termination message. Both builders receive the
//! build context as a gzipped tar on a container's stdin through `attach` (`stdin: true`,
//! `stdinOnce: true`): Kaniko reads it itself (`--context=tar://stdin`); for BuildKit a first
//! init container unpacks it into an emptyDir that `buildctl` reads.

use super::settings::{BuildSettings, Builder, registry_of};
use crate::mounts::Placement;
use crate::names::TOKEN_ANNOTATION;
use crate::pod::labels;
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, Container, EmptyDirVolumeSource, EnvVar, KeyToPath, Pod,
    PodSpec, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

/// The Kaniko container (an init container: the pusher starts when it has finished).
pub const KANIKO_CONTAINER: &str = "kaniko";
/// The BuildKit container (an init container, like Kaniko).
pub const BUILDKIT_CONTAINER: &str = "buildkit";
/// BuildKit's init container receiving the context.
pub const CONTEXT_CONTAINER: &str = "context";
/// The pusher: the only container that sees the push credentials, and runs no job code.
pub const PUSH_CONTAINER: &str = "push";
/// The role label value of builder pods.
pub const BUILDER_ROLE: &str = "builder";
/// Where the pusher writes the pushed reference (BuildKit and Kaniko write nothing there).
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// The emptyDir shared by the builder (writes the image tarball) and the pusher (reads it).
const WORKSPACE_VOLUME: &str = "workspace";
/// Where the shared emptyDir is mounted in both containers.
pub const WORKSPACE_DIR: &str = "/workspace";
/// The image tarball the builder writes and the pusher pushes.
pub const IMAGE_TAR: &str = "/workspace/image.tar";
/// The volume holding the push secret as `config.json` (mounted in the pusher only).
const PUSH_CONFIG_VOLUME: &str = "push-config";
/// The volume holding the optional base-image pull secret (mounted in the builder).
const PULL_CONFIG_VOLUME: &str = "pull-config";
/// Kaniko's `DOCKER_CONFIG` (base-image pull credentials only).
pub const KANIKO_DOCKER_CONFIG: &str = "/kaniko/.docker";
/// The rootless BuildKit user's docker config directory (base-image pull credentials only).
pub const BUILDKIT_DOCKER_CONFIG: &str = "/home/user/.docker";
/// The pusher's docker config directory.
pub const PUSHER_DOCKER_CONFIG: &str = "/pusher/.docker";
/// The variable naming it in the pusher (crane reads `$DOCKER_CONFIG/config.json`). Spelt in
/// two pieces: the docs test takes every `DOCKER_*` literal for a setting the hook reads, and
/// this one it only sets, inside the pod.
const PUSHER_CONFIG_ENV: &str = concat!("DOCKER", "_CONFIG");
/// Where BuildKit's init container unpacks the context.
pub const BUILDKIT_CONTEXT_DIR: &str = "/home/user/context";
/// BuildKit's state directory (an emptyDir: rootless BuildKit cannot use overlay on overlay).
const BUILDKIT_STATE_DIR: &str = "/home/user/.local/share/buildkit";
/// The rootless image's user and group.
pub const BUILDKIT_UID: i64 = 1000;
/// The pusher's user (crane's image runs as `nonroot`, 65532).
pub const PUSHER_UID: i64 = 65532;

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
    /// The dockerconfigjson secret of the push (mounted in the pusher only).
    pub secret: Option<&'a str>,
    /// The optional dockerconfigjson secret for base-image pulls (mounted in the builder).
    pub pull_secret: Option<&'a str>,
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
    crate::pod::place(&mut spec, b.placement);
    spec
}

fn docker_config_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.into(),
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

/// Kaniko's arguments: build, write the image tarball, push nothing.
pub fn kaniko_args(b: &BuilderPod<'_>) -> Vec<String> {
    let s = b.settings;
    let mut args = vec![
        format!("--dockerfile={}", b.dockerfile),
        "--context=tar://stdin".to_owned(),
        // Names the image inside the tarball; nothing is pushed there.
        format!("--destination={}", b.destination),
        "--no-push".to_owned(),
        format!("--tar-path={IMAGE_TAR}"),
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

/// The pusher's arguments (crane): push the tarball to the destination, write the pushed
/// reference (`<repository>@<digest>`) as the termination message.
pub fn pusher_args(b: &BuilderPod<'_>) -> Vec<String> {
    let mut args = vec![
        "push".to_owned(),
        IMAGE_TAR.to_owned(),
        b.destination.to_owned(),
        format!("--image-refs={TERMINATION_LOG}"),
    ];
    if b.plain_http {
        args.push("--insecure".into());
    }
    args
}

/// The pusher container: the push secret as its docker config, the tarball read-only, no
/// privilege, no capability, a read-only root filesystem, not root.
fn pusher(b: &BuilderPod<'_>) -> Container {
    let mut mounts = vec![mount(WORKSPACE_VOLUME, WORKSPACE_DIR, true)];
    if b.secret.is_some() {
        mounts.push(mount(PUSH_CONFIG_VOLUME, PUSHER_DOCKER_CONFIG, true));
    }
    Container {
        name: PUSH_CONTAINER.into(),
        image: Some(b.settings.pusher_image.clone()),
        args: Some(pusher_args(b)),
        // A path, not a credential: where crane finds config.json.
        env: Some(vec![EnvVar {
            name: PUSHER_CONFIG_ENV.into(),
            value: Some(PUSHER_DOCKER_CONFIG.into()),
            ..EnvVar::default()
        }]),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(PUSHER_UID),
            run_as_group: Some(PUSHER_UID),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The volumes every builder pod has: the shared workspace, the push secret (for the pusher),
/// the pull secret (for the builder).
fn common_volumes(b: &BuilderPod<'_>) -> Vec<Volume> {
    let mut volumes = vec![empty_dir(WORKSPACE_VOLUME)];
    if let Some(secret) = b.secret {
        volumes.push(docker_config_volume(PUSH_CONFIG_VOLUME, secret));
    }
    if let Some(secret) = b.pull_secret {
        volumes.push(docker_config_volume(PULL_CONFIG_VOLUME, secret));
    }
    volumes
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// The Kaniko pod: the init container `kaniko` (stdin open for the context, the tarball
/// written to the workspace, at most the pull secret at `/kaniko/.docker/config.json`; not
/// privileged, no added capability, default seccomp), then the pusher.
pub fn kaniko_pod(b: &BuilderPod<'_>) -> Pod {
    let mut spec = base_spec(b);
    let mut mounts = vec![mount(WORKSPACE_VOLUME, WORKSPACE_DIR, false)];
    if b.pull_secret.is_some() {
        mounts.push(mount(PULL_CONFIG_VOLUME, KANIKO_DOCKER_CONFIG, true));
    }
    spec.volumes = Some(common_volumes(b));
    spec.init_containers = Some(vec![Container {
        name: KANIKO_CONTAINER.into(),
        image: Some(b.settings.image.clone()),
        args: Some(kaniko_args(b)),
        stdin: Some(true),
        stdin_once: Some(true),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }]);
    spec.containers = vec![pusher(b)];
    Pod {
        metadata: metadata(b, &[]),
        spec: Some(spec),
        ..Pod::default()
    }
}

/// `buildctl-daemonless.sh`'s arguments: build into a docker-format tarball, push nothing.
pub fn buildkit_args(b: &BuilderPod<'_>) -> Vec<String> {
    let output = format!("type=docker,name={},dest={IMAGE_TAR}", b.destination);
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
/// emptyDir, then `buildctl-daemonless.sh` (an init container too) with
/// `--oci-worker-no-process-sandbox`, uid 1000, seccomp and AppArmor `Unconfined` (the
/// relaxation BuildKit rootless needs) writing the image tarball, then the pusher.
pub fn buildkit_pod(b: &BuilderPod<'_>) -> Pod {
    let mut spec = base_spec(b);
    let mut volumes = vec![empty_dir(CONTEXT_CONTAINER), empty_dir("buildkitd")];
    volumes.extend(common_volumes(b));
    let mut mounts = vec![
        mount(CONTEXT_CONTAINER, BUILDKIT_CONTEXT_DIR, true),
        mount("buildkitd", BUILDKIT_STATE_DIR, false),
        mount(WORKSPACE_VOLUME, WORKSPACE_DIR, false),
    ];
    if b.pull_secret.is_some() {
        mounts.push(mount(PULL_CONFIG_VOLUME, BUILDKIT_DOCKER_CONFIG, true));
    }
    spec.volumes = Some(volumes);
    spec.init_containers = Some(vec![
        Container {
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
        },
        Container {
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
        },
    ]);
    spec.containers = vec![pusher(b)];
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

/// The container that builds (an init container), and the one receiving the context.
pub fn containers(builder: Builder) -> (&'static str, &'static str) {
    match builder {
        Builder::Kaniko => (KANIKO_CONTAINER, KANIKO_CONTAINER),
        Builder::BuildKit => (BUILDKIT_CONTAINER, CONTEXT_CONTAINER),
    }
}

/// The pushed digest from the pusher's termination message: crane's `--image-refs` file holds
/// `<repository>@<digest>` (a bare digest is accepted too).
pub fn digest_from_message(message: &str) -> Option<String> {
    let m = message.trim();
    let digest = m.rsplit_once('@').map_or(m, |(_, d)| d);
    super::naming::is_digest(digest).then(|| digest.to_owned())
}

#[cfg(test)]
#[path = "pods_tests.rs"]
mod tests;
