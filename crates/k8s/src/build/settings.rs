//! Settings of Dockerfile-action builds (ADR 0034), read once at the binary edge through the
//! same lookup as the rest of [`crate::Settings`].

use crate::settings::SettingsError;
use hooklib::settings::{SettingError, Vars};
use std::time::Duration;

/// Where built images go (push and pull), e.g. `ghcr.io/acme`.
pub const REGISTRY_HOST: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST";
/// The `kubernetes.io/dockerconfigjson` secret used for the push and the pull.
pub const REGISTRY_SECRET_NAME: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_SECRET_NAME";
/// The host the builder pushes to (resolved inside the cluster).
pub const REGISTRY_HOST_PUSH: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST_PUSH";
/// The host the kubelet pulls from.
pub const REGISTRY_HOST_PULL: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST_PULL";
/// Registry hosts spoken to over plain HTTP (comma-separated).
pub const REGISTRY_INSECURE: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_INSECURE";
/// `kaniko` (default) or `buildkit`.
pub const BUILDER: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER";
/// The builder image.
pub const BUILDER_IMAGE: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_IMAGE";
/// Extra builder arguments (shell-split).
pub const BUILDER_EXTRA_ARGS: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_EXTRA_ARGS";
/// How long one build may take, in seconds.
pub const BUILD_TIMEOUT_SECONDS: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILD_TIMEOUT_SECONDS";
/// `true`: layer caching in the registry.
pub const BUILD_CACHE: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILD_CACHE";
/// The repository of cached layers (default `<push host>/cache`).
pub const BUILD_CACHE_REPO: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILD_CACHE_REPO";
/// A registry mirror for base images (Kaniko `--registry-mirror`).
pub const REGISTRY_MIRROR: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_MIRROR";
/// The image of the pusher container (crane).
pub const PUSHER_IMAGE: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_PUSHER_IMAGE";
/// An optional dockerconfigjson secret with base-image pull credentials, mounted into the
/// builder (the only credentials a Dockerfile's `RUN` lines can read).
pub const BUILDER_PULL_SECRET_NAME: &str =
    "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_PULL_SECRET_NAME";

/// Default Kaniko image: the maintained fork of osscontainertools (the original
/// `GoogleContainerTools/kaniko` was archived in June 2025), pinned by version.
pub const DEFAULT_KANIKO_IMAGE: &str = "docker.io/martizih/kaniko:v1.27.6";
/// Default BuildKit image (rootless), pinned by version.
pub const DEFAULT_BUILDKIT_IMAGE: &str = "docker.io/moby/buildkit:v0.29.0-rootless";
/// Default pusher image: crane of go-containerregistry (distroless, runs as nonroot), pinned.
pub const DEFAULT_PUSHER_IMAGE: &str = "gcr.io/go-containerregistry/crane:v0.20.6";
/// Default build timeout.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Which builder runs Dockerfile builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Builder {
    /// Kaniko: no privilege, no capability, no seccomp or AppArmor relaxation.
    #[default]
    Kaniko,
    /// BuildKit rootless: needs seccomp and AppArmor `Unconfined`.
    BuildKit,
}

impl Builder {
    /// Its name in logs and pod names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kaniko => "kaniko",
            Self::BuildKit => "buildkit",
        }
    }

    /// Its default image.
    pub fn default_image(self) -> &'static str {
        match self {
            Self::Kaniko => DEFAULT_KANIKO_IMAGE,
            Self::BuildKit => DEFAULT_BUILDKIT_IMAGE,
        }
    }
}

/// Everything about Dockerfile-action builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSettings {
    /// [`REGISTRY_HOST`]: `host[:port][/path]` where built images go.
    pub registry_host: Option<String>,
    /// [`REGISTRY_HOST_PUSH`]: overrides the host for the push.
    pub push_host: Option<String>,
    /// [`REGISTRY_HOST_PULL`]: overrides the host for the pull.
    pub pull_host: Option<String>,
    /// [`REGISTRY_SECRET_NAME`]: the dockerconfigjson secret (anonymous access without it).
    pub secret_name: Option<String>,
    /// [`REGISTRY_INSECURE`]: hosts spoken to over plain HTTP (loopback always is).
    pub insecure_registries: Vec<String>,
    /// [`BUILDER`].
    pub builder: Builder,
    /// [`BUILDER_IMAGE`] (default per builder).
    pub image: String,
    /// [`BUILDER_EXTRA_ARGS`]: appended to the builder's arguments.
    pub extra_args: Vec<String>,
    /// [`BUILD_TIMEOUT_SECONDS`].
    pub timeout: Duration,
    /// [`BUILD_CACHE`].
    pub cache: bool,
    /// [`BUILD_CACHE_REPO`].
    pub cache_repo: Option<String>,
    /// [`REGISTRY_MIRROR`].
    pub registry_mirror: Option<String>,
    /// [`PUSHER_IMAGE`].
    pub pusher_image: String,
    /// [`BUILDER_PULL_SECRET_NAME`]: base-image pull credentials for the builder.
    pub pull_secret_name: Option<String>,
}

impl Default for BuildSettings {
    fn default() -> Self {
        Self {
            registry_host: None,
            push_host: None,
            pull_host: None,
            secret_name: None,
            insecure_registries: Vec::new(),
            builder: Builder::Kaniko,
            image: DEFAULT_KANIKO_IMAGE.into(),
            extra_args: Vec::new(),
            timeout: DEFAULT_BUILD_TIMEOUT,
            cache: false,
            cache_repo: None,
            registry_mirror: None,
            pusher_image: DEFAULT_PUSHER_IMAGE.into(),
            pull_secret_name: None,
        }
    }
}

/// Where a build goes, once the configuration is known to be complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host[:port][/path]` the builder pushes to.
    pub push: String,
    /// `host[:port][/path]` the kubelet pulls from.
    pub pull: String,
    /// The dockerconfigjson secret, when there is one.
    pub secret: Option<String>,
}

/// The one-line error of a Dockerfile action without a registry.
pub const NOT_CONFIGURED: &str = "this step uses a Dockerfile action: the Kubernetes hook builds its image inside the cluster (Kaniko, no privileged pod) and must push it to a registry the kubelet can pull from, but none is configured. Set ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST (e.g. ghcr.io/acme or registry.ci.svc.cluster.local:5000/actions; or both ..._REGISTRY_HOST_PUSH and ..._REGISTRY_HOST_PULL when the builder and the kubelet reach the registry under different names) and, for a registry that needs credentials, ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_SECRET_NAME (an existing kubernetes.io/dockerconfigjson secret in the runner's namespace)";

fn host(var: &'static str, value: String) -> Result<String, SettingsError> {
    let v = value.trim().trim_end_matches('/').to_owned();
    let invalid = |expected| {
        SettingsError::from(SettingError::Invalid {
            var,
            value: value.clone(),
            expected,
        })
    };
    if v.contains("://") {
        return Err(invalid(
            "host[:port][/path] without a scheme (plain-HTTP registries are listed in ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_INSECURE)",
        ));
    }
    if v.is_empty()
        || v.starts_with('/')
        || v.contains("//")
        || v.chars().any(|c| c.is_whitespace() || c == '@')
        || v.split('/').skip(1).any(|p| p != p.to_ascii_lowercase())
    {
        return Err(invalid(
            "host[:port][/path], e.g. ghcr.io/acme (lower-case path, no tag)",
        ));
    }
    Ok(v)
}

impl BuildSettings {
    /// Reads the build settings through `lookup` (empty values count as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let vars = Vars::new(lookup);
        let get = |k: &str| vars.get(k);
        let host_of = |var: &'static str| get(var).map(|v| host(var, v)).transpose();
        let builder = vars.parsed(BUILDER, Builder::Kaniko, "kaniko or buildkit", |v| match v
            .to_ascii_lowercase()
            .as_str()
        {
            "kaniko" => Some(Builder::Kaniko),
            "buildkit" => Some(Builder::BuildKit),
            _ => None,
        })?;
        let timeout = vars.positive_secs(BUILD_TIMEOUT_SECONDS, DEFAULT_BUILD_TIMEOUT)?;
        let cache = vars.boolean(BUILD_CACHE, false)?;
        let extra_args = vars.parsed(
            BUILDER_EXTRA_ARGS,
            Vec::new(),
            "arguments in shell syntax with balanced quotes",
            shlex::split,
        )?;
        let insecure_registries = get(REGISTRY_INSECURE)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| host(REGISTRY_INSECURE, h.to_owned()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            registry_host: host_of(REGISTRY_HOST)?,
            push_host: host_of(REGISTRY_HOST_PUSH)?,
            pull_host: host_of(REGISTRY_HOST_PULL)?,
            secret_name: get(REGISTRY_SECRET_NAME).map(|s| s.trim().to_owned()),
            insecure_registries,
            builder,
            image: get(BUILDER_IMAGE)
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|| builder.default_image().into()),
            extra_args,
            timeout,
            cache,
            cache_repo: host_of(BUILD_CACHE_REPO)?,
            registry_mirror: host_of(REGISTRY_MIRROR)?,
            pusher_image: get(PUSHER_IMAGE)
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|| DEFAULT_PUSHER_IMAGE.into()),
            pull_secret_name: get(BUILDER_PULL_SECRET_NAME).map(|s| s.trim().to_owned()),
        })
    }

    /// The push and pull hosts and the secret, or the error saying what to set.
    pub fn target(&self) -> Result<Target, &'static str> {
        let push = self
            .push_host
            .clone()
            .or_else(|| self.registry_host.clone());
        let pull = self
            .pull_host
            .clone()
            .or_else(|| self.registry_host.clone());
        match (push, pull) {
            (Some(push), Some(pull)) => Ok(Target {
                push,
                pull,
                secret: self.secret_name.clone(),
            }),
            _ => Err(NOT_CONFIGURED),
        }
    }

    /// What of the builder's configuration can change the image: part of the tag.
    pub fn fingerprint(&self) -> String {
        let mut parts = vec![self.builder.name().to_owned(), self.image.clone()];
        parts.extend(self.extra_args.iter().cloned());
        parts.join("\u{0}")
    }

    /// Whether `registry` (a host, with port when it has one) is spoken to over plain HTTP:
    /// loopback addresses and the configured insecure registries.
    pub fn is_plain_http(&self, registry: &str) -> bool {
        is_loopback(registry)
            || self.insecure_registries.iter().any(|h| {
                h.eq_ignore_ascii_case(registry) || registry_of(h).eq_ignore_ascii_case(registry)
            })
    }
}

/// The registry part (`host[:port]`) of `host[:port][/path]`.
pub fn registry_of(host: &str) -> &str {
    host.split('/').next().unwrap_or(host)
}

/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<BuildSettings, SettingsError> {
        BuildSettings::from_lookup(hooklib::settings::lookup_from(vars))
    }

    #[test]
    fn defaults_and_not_configured() {
        let s = parse(&[]).unwrap();
        assert_eq!(s, BuildSettings::default());
        assert_eq!(s.target().unwrap_err(), NOT_CONFIGURED);
        assert!(NOT_CONFIGURED.contains(REGISTRY_HOST));
        assert!(NOT_CONFIGURED.contains(REGISTRY_SECRET_NAME));
        // A push host alone is not enough: the pull needs one too.
        let s = parse(&[(REGISTRY_HOST_PUSH, "registry:5000")]).unwrap();
        assert!(s.target().is_err());
    }

    #[test]
    fn hosts_push_pull_override() {
        let s = parse(&[
            (REGISTRY_HOST, "ghcr.io/acme/"),
            (REGISTRY_SECRET_NAME, "regcred"),
            (REGISTRY_HOST_PULL, "localhost:30500/acme"),
        ])
        .unwrap();
        assert_eq!(
            s.target().unwrap(),
            Target {
                push: "ghcr.io/acme".into(),
                pull: "localhost:30500/acme".into(),
                secret: Some("regcred".into())
            }
        );
    }

    #[test]
    fn everything() {
        let s = parse(&[
            (REGISTRY_HOST, "registry.ci.svc.cluster.local:5000/actions"),
            (BUILDER, "BuildKit"),
            (BUILD_TIMEOUT_SECONDS, "90"),
            (BUILD_CACHE, "true"),
            (BUILD_CACHE_REPO, "registry.ci.svc.cluster.local:5000/cache"),
            (REGISTRY_MIRROR, "mirror.gcr.io"),
            (
                REGISTRY_INSECURE,
                "registry.ci.svc.cluster.local:5000, other:80",
            ),
            (BUILDER_EXTRA_ARGS, "--build-arg 'A=b c' --target=final"),
            (PUSHER_IMAGE, "mirror.local/crane:1"),
            (BUILDER_PULL_SECRET_NAME, " basecred "),
        ])
        .unwrap();
        assert_eq!(s.pusher_image, "mirror.local/crane:1");
        assert_eq!(s.pull_secret_name.as_deref(), Some("basecred"));
        assert_eq!(s.builder, Builder::BuildKit);
        assert_eq!(s.image, DEFAULT_BUILDKIT_IMAGE);
        assert_eq!(s.timeout, Duration::from_secs(90));
        assert!(s.cache);
        assert_eq!(s.extra_args, ["--build-arg", "A=b c", "--target=final"]);
        assert!(s.is_plain_http("registry.ci.svc.cluster.local:5000"));
        assert!(s.is_plain_http("other:80"));
        // Host names compare without case (references are lower-cased; a setting may not be).
        assert!(s.is_plain_http("REGISTRY.ci.svc.cluster.local:5000"));
        assert!(!s.is_plain_http("ghcr.io"));
        assert_ne!(s.fingerprint(), BuildSettings::default().fingerprint());
    }

    #[test]
    fn bad_values() {
        for (var, value, needle) in [
            (BUILDER, "docker", "kaniko or buildkit"),
            (BUILD_TIMEOUT_SECONDS, "0", "seconds"),
            (BUILD_CACHE, "yes", "true or false"),
            (BUILDER_EXTRA_ARGS, "--a 'b", "balanced quotes"),
            (REGISTRY_HOST, "https://ghcr.io/acme", "without a scheme"),
            (REGISTRY_HOST_PUSH, "ghcr.io/Acme", "lower-case"),
            (REGISTRY_HOST_PULL, "ghcr.io/a:1@x", "host[:port]"),
        ] {
            let e = parse(&[(var, value)]).unwrap_err().to_string();
            assert!(e.contains(var) && e.contains(needle), "{e}");
        }
    }

    #[test]
    fn loopback() {
        for h in [
            "localhost",
            "localhost:5556",
            "127.0.0.1:5556",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "ghcr.io",
            "10.0.0.1:5000",
            "localhost.example:1",
            "[fe80::1]:5000",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
        assert_eq!(registry_of("ghcr.io/acme/x"), "ghcr.io");
    }
}
