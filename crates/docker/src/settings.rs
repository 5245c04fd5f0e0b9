//! The docker hook's settings, read once from the environment at the binary edge.

use hooklib::ImagePolicy;
use hooklib::settings::{SettingError, Vars};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The setting that refuses privileged `createOptions` and host binds outside `_work`.
pub const REFUSE_PRIVILEGED: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_DOCKER_REFUSE_PRIVILEGED";
/// The setting that turns the cost labels off.
pub use hooklib::cost::COST_LABELS_VAR as COST_LABELS;

/// The default overall cap on waiting for containers to become healthy.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(600);

/// Everything the docker hook takes from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `RUNNER_NAME`: identifies this runner's containers and networks (labels).
    pub runner_name: String,
    /// `ACTIONS_RUNNER_NETWORK_DRIVER`: an existing network (e.g. `host`) to use instead of
    /// creating one per job.
    pub network: Option<String>,
    /// `DOCKER_HOST`: where the engine listens (default the local socket).
    pub docker_host: DockerHost,
    /// `ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS`: the overall cap on waiting for containers
    /// to become healthy in `prepare_job` (default 600 s). Each container is also bounded by
    /// its own health-check settings.
    pub health_timeout: Duration,
    /// `ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_IMAGES`, `…_ALLOWED_SERVICES`,
    /// `…_ALLOWED_STEP_IMAGES`: the administrator's allowed images (unset: any).
    pub images: ImagePolicy,
    /// `ACTIONS_RUNNER_CONTAINER_HOOKS_DOCKER_REFUSE_PRIVILEGED`: refuse privileged
    /// `createOptions`, host binds outside `_work`, and withhold the docker socket (default
    /// false: today's behaviour).
    pub refuse_privileged: bool,
    /// The runner's `_work` on the host: the parent of `RUNNER_TEMP` (else of
    /// `RUNNER_WORKSPACE`). Host binds must stay inside it when privileged options are refused.
    pub work_dir: Option<PathBuf>,
    /// `RUNNER_TEMP`: the runner's `_work/_temp`, mounted at `/github/runner_temp` in container
    /// steps.
    pub runner_temp: Option<PathBuf>,
    /// The cost labels (`arc-context-*`, [`hooklib::cost`]) put on every job, service and step container, from
    /// the runner's `GITHUB_*` environment; empty when `ACTIONS_RUNNER_CONTAINER_HOOKS_COST_LABELS`
    /// is false.
    pub cost_labels: BTreeMap<String, String>,
}

/// A required setting is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A variable is missing or has a value the hook cannot use.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// An allowed-images pattern is invalid.
    #[error(transparent)]
    Policy(#[from] hooklib::policy::PolicyError),
}

/// Where the Docker Engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerHost {
    /// A unix socket (`unix:///var/run/docker.sock`, the default).
    Unix(String),
    /// Plain HTTP over TCP (`tcp://host:2375`).
    Tcp(String),
}

impl Default for DockerHost {
    fn default() -> Self {
        Self::Unix("/var/run/docker.sock".to_owned())
    }
}

impl DockerHost {
    /// Parses `DOCKER_HOST` (and refuses `DOCKER_TLS_VERIFY`, which this hook cannot honour).
    fn parse(host: Option<String>, tls_verify: Option<String>) -> Result<Self, SettingsError> {
        let Some(host) = host else {
            return Ok(Self::default());
        };
        let invalid = |expected| {
            SettingsError::from(SettingError::Invalid {
                var: "DOCKER_HOST",
                value: host.clone(),
                expected,
            })
        };
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Self::Unix(path.to_owned()));
        }
        let addr = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
            .ok_or_else(|| invalid("expected unix:///path/to/docker.sock or tcp://host:port"))?;
        if tls_verify.is_some_and(|v| v != "0") {
            return Err(invalid(
                "DOCKER_TLS_VERIFY is set, but this hook speaks plain HTTP to a tcp:// engine; use the unix socket",
            ));
        }
        Ok(Self::Tcp(addr.to_owned()))
    }
}

impl Settings {
    /// Reads the settings through `lookup` (the binary passes `|k| std::env::var(k).ok()`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let vars = Vars::new(lookup);
        let get = |k: &str| vars.get(k);
        let runner_temp = get("RUNNER_TEMP").map(PathBuf::from);
        let work_dir = runner_temp
            .clone()
            .or_else(|| get("RUNNER_WORKSPACE").map(PathBuf::from))
            .and_then(|p| p.parent().map(PathBuf::from))
            .filter(|p| p.is_absolute() && p.parent().is_some());
        let cost_labels = if vars.boolean(COST_LABELS, true)? {
            hooklib::cost::cost_labels(get)
        } else {
            BTreeMap::new()
        };
        Ok(Self {
            images: ImagePolicy::from_lookup(get)?,
            refuse_privileged: vars.boolean(REFUSE_PRIVILEGED, false)?,
            work_dir,
            runner_temp,
            cost_labels,
            runner_name: vars.required(
                "RUNNER_NAME",
                "the docker hook",
                "it labels this runner's containers and networks",
            )?,
            network: get("ACTIONS_RUNNER_NETWORK_DRIVER"),
            docker_host: DockerHost::parse(get("DOCKER_HOST"), get("DOCKER_TLS_VERIFY"))?,
            health_timeout: vars.positive_secs(
                "ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS",
                DEFAULT_HEALTH_TIMEOUT,
            )?,
        })
    }

    /// Settings for `runner_name` with every optional setting at its default (for tests and
    /// embedding).
    pub fn new(runner_name: impl Into<String>) -> Self {
        Self {
            runner_name: runner_name.into(),
            network: None,
            docker_host: DockerHost::default(),
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
            images: ImagePolicy::allow_all(),
            refuse_privileged: false,
            work_dir: None,
            runner_temp: None,
            cost_labels: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn from(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_lookup(hooklib::settings::lookup_from(vars))
    }

    #[test]
    fn reads_the_environment() {
        let s = from(&[
            ("RUNNER_NAME", "r1"),
            ("ACTIONS_RUNNER_NETWORK_DRIVER", "host"),
            ("ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS", "30"),
        ])
        .unwrap();
        assert_eq!(s.runner_name, "r1");
        assert_eq!(s.network.as_deref(), Some("host"));
        assert_eq!(s.health_timeout, Duration::from_secs(30));
        assert_eq!(from(&[("RUNNER_NAME", "r1")]).unwrap(), Settings::new("r1"));
    }

    #[test]
    fn errors_name_the_variable() {
        let e = from(&[]).unwrap_err().to_string();
        assert!(e.starts_with("RUNNER_NAME is not set"), "{e}");
        let e = from(&[
            ("RUNNER_NAME", "r1"),
            ("ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS", "soon"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS=\"soon\""),
            "{e}"
        );
    }

    #[test]
    fn policy_work_dir_and_cost_labels() {
        let s = from(&[
            ("RUNNER_NAME", "r1"),
            ("RUNNER_TEMP", "/home/runner/_work/_temp"),
            (
                "ACTIONS_RUNNER_CONTAINER_HOOKS_DOCKER_REFUSE_PRIVILEGED",
                "TRUE",
            ),
            (
                "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_IMAGES",
                "node:*, alpine",
            ),
            ("GITHUB_REPOSITORY", "octo/shop"),
            ("GITHUB_RUN_ATTEMPT", "2"),
        ])
        .unwrap();
        assert!(s.refuse_privileged);
        assert_eq!(s.work_dir.as_deref(), Some(Path::new("/home/runner/_work")));
        assert_eq!(
            s.runner_temp.as_deref(),
            Some(Path::new("/home/runner/_work/_temp"))
        );
        assert!(s.images.job.allows("node:22") && !s.images.job.allows("evil"));
        assert!(s.images.services.allows("evil"));
        assert_eq!(s.cost_labels["arc-context-repository"], "octo_shop");
        assert_eq!(s.cost_labels["arc-context-run-attempt"], "2");
        let s = from(&[
            ("RUNNER_NAME", "r1"),
            ("RUNNER_WORKSPACE", "/w/_work/shop"),
            ("GITHUB_REPOSITORY", "octo/shop"),
            ("ACTIONS_RUNNER_CONTAINER_HOOKS_COST_LABELS", "false"),
        ])
        .unwrap();
        assert!(!s.refuse_privileged);
        assert_eq!(s.work_dir.as_deref(), Some(Path::new("/w/_work")));
        assert!(s.cost_labels.is_empty());
        for (k, v) in [
            (
                "ACTIONS_RUNNER_CONTAINER_HOOKS_DOCKER_REFUSE_PRIVILEGED",
                "yes",
            ),
            ("ACTIONS_RUNNER_CONTAINER_HOOKS_COST_LABELS", "off"),
            ("ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_STEP_IMAGES", "[x"),
        ] {
            let e = from(&[("RUNNER_NAME", "r1"), (k, v)])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("{k}=\"{v}\" is invalid")), "{e}");
        }
    }

    #[test]
    fn docker_host_table() {
        let host = |vars: &[(&str, &str)]| {
            let mut all = vec![("RUNNER_NAME", "r1")];
            all.extend_from_slice(vars);
            from(&all).map(|s| s.docker_host)
        };
        assert_eq!(host(&[]).unwrap(), DockerHost::default());
        assert_eq!(
            host(&[("DOCKER_HOST", "unix:///run/user/1000/docker.sock")]).unwrap(),
            DockerHost::Unix("/run/user/1000/docker.sock".into())
        );
        assert_eq!(
            host(&[("DOCKER_HOST", "tcp://127.0.0.1:2375")]).unwrap(),
            DockerHost::Tcp("127.0.0.1:2375".into())
        );
        let e = host(&[("DOCKER_HOST", "ssh://me@box")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("DOCKER_HOST=\"ssh://me@box\" is invalid"),
            "{e}"
        );
        let e = host(&[("DOCKER_HOST", "tcp://h:2376"), ("DOCKER_TLS_VERIFY", "1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("DOCKER_TLS_VERIFY"), "{e}");
    }
}
