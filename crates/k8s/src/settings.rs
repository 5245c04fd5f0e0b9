//! The Kubernetes hook's settings, read once from the environment at the binary edge.

use std::path::PathBuf;
use std::time::Duration;

/// Default `ACTIONS_RUNNER_IMAGE`: the image of the `fs-init` init container.
pub const DEFAULT_RUNNER_IMAGE: &str = "ghcr.io/actions/actions-runner:latest";
/// Environment variable naming an optional JSON merge patch / RFC 6902 patch file applied last
/// to every pod the hook creates (a superset of the upstream hooks).
pub const TEMPLATE_PATCH_VAR: &str = "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE_PATCH";

/// The variable of [`Settings::resume_timeout`].
pub const RESUME_TIMEOUT_VAR: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_RESUME_TIMEOUT_SECONDS";
/// The default of [`Settings::resume_timeout`].
pub const DEFAULT_RESUME_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything the Kubernetes hook takes from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `ACTIONS_RUNNER_POD_NAME`: the runner pod; prefix of every object name.
    pub runner_pod: String,
    /// `ACTIONS_RUNNER_KUBERNETES_NAMESPACE`; else the kubeconfig / service-account namespace.
    pub namespace: Option<String>,
    /// How to reach the cluster.
    pub cluster: ClusterSource,
    /// `ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE`: a PodTemplate YAML merged into generated pods.
    pub template: Option<PathBuf>,
    /// [`TEMPLATE_PATCH_VAR`]: JSON merge patch (an object) or RFC 6902 patch (an array), JSON or
    /// YAML, applied to every generated pod after the template.
    pub template_patch: Option<PathBuf>,
    /// `ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS` (default 600): how long pods may take to run.
    pub prepare_timeout: Duration,
    /// `ACTIONS_RUNNER_IMAGE`: image of the `fs-init` init container providing `externals`.
    pub runner_image: String,
    /// `ACTIONS_RUNNER_CLAIM_NAME`: when set, shared-volume mode (the PVC holding `_work`).
    pub claim_name: Option<String>,
    /// `ACTIONS_RUNNER_USE_KUBE_SCHEDULER=true`: shared-volume mode uses node affinity instead
    /// of `nodeName`.
    pub use_kube_scheduler: bool,
    /// Exec websocket keepalive.
    pub heartbeat: Heartbeat,
    /// `ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_RESUME_TIMEOUT_SECONDS` (default 300): how long a
    /// script step's output may stay unreachable (its exec stream broken, reconnects failing)
    /// before the hook gives up on the step. Zero turns resuming off: the step runs attached to
    /// one exec stream and a dropped stream fails it.
    pub resume_timeout: Duration,
    /// `GITHUB_WORKSPACE` (host path).
    pub github_workspace: Option<PathBuf>,
    /// `RUNNER_WORKSPACE` (host path, `_work/<repo>`).
    pub runner_workspace: Option<PathBuf>,
    /// `RUNNER_TEMP` (host path, `_work/_temp`).
    pub runner_temp: Option<PathBuf>,
    /// `ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_*`: Dockerfile-action builds (registry, builder).
    pub build: crate::build::BuildSettings,
}

/// Where the cluster's address and credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSource {
    /// `KUBECONFIG` (the first file when it is a list).
    Kubeconfig(PathBuf),
    /// In-cluster service account: `KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT`.
    InCluster {
        /// API server host.
        host: String,
        /// API server port.
        port: String,
    },
    /// Neither was found; connecting fails with a clear message.
    None,
}

/// Exec websocket keepalive: a ping every `period`; no frame at all (pong or data) for
/// `deadline` fails the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// `ACTIONS_RUNNER_HEARTBEAT_PERIOD_MS` (default 5000).
    pub period: Duration,
    /// `ACTIONS_RUNNER_HEARTBEAT_DEADLINE_MS` (default period × 12 + 1000).
    pub deadline: Duration,
}

impl Heartbeat {
    /// The heartbeat for a ping period, with the default deadline.
    pub fn with_period(period: Duration) -> Self {
        Self {
            period,
            deadline: period * 12 + Duration::from_millis(1000),
        }
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::with_period(Duration::from_millis(5000))
    }
}

/// A required setting is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A required variable is unset or empty.
    #[error("{0} is not set: the Kubernetes hook needs it ({1})")]
    Missing(&'static str, &'static str),
    /// A variable has a value the hook cannot use.
    #[error("{var}={value:?} is invalid: {expected}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it should look like.
        expected: &'static str,
    },
}

impl Settings {
    /// Reads the settings through `lookup` (the binary passes `|k| std::env::var(k).ok()`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let path = |k: &str| get(k).map(PathBuf::from);
        let runner_pod = get("ACTIONS_RUNNER_POD_NAME").ok_or(SettingsError::Missing(
            "ACTIONS_RUNNER_POD_NAME",
            "the runner pod's name prefixes and labels every object the hook creates",
        ))?;
        let millis = |var: &'static str| -> Result<Option<Duration>, SettingsError> {
            get(var)
                .map(|v| match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Duration::from_millis(n)),
                    _ => Err(SettingsError::Invalid {
                        var,
                        value: v,
                        expected: "a whole number of milliseconds > 0",
                    }),
                })
                .transpose()
        };
        let mut heartbeat = match millis("ACTIONS_RUNNER_HEARTBEAT_PERIOD_MS")? {
            Some(p) => Heartbeat::with_period(p),
            None => Heartbeat::default(),
        };
        if let Some(d) = millis("ACTIONS_RUNNER_HEARTBEAT_DEADLINE_MS")? {
            heartbeat.deadline = d;
        }
        let prepare_timeout = match get("ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS") {
            None => Duration::from_secs(600),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => {
                    return Err(SettingsError::Invalid {
                        var: "ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS",
                        value: v,
                        expected: "a whole number of seconds > 0",
                    });
                }
            },
        };
        let resume_timeout = match get(RESUME_TIMEOUT_VAR) {
            None => DEFAULT_RESUME_TIMEOUT,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) => Duration::from_secs(n),
                Err(_) => {
                    return Err(SettingsError::Invalid {
                        var: RESUME_TIMEOUT_VAR,
                        value: v,
                        expected: "a whole number of seconds (0 turns resuming off)",
                    });
                }
            },
        };
        let use_kube_scheduler = match get("ACTIONS_RUNNER_USE_KUBE_SCHEDULER") {
            None => false,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(SettingsError::Invalid {
                        var: "ACTIONS_RUNNER_USE_KUBE_SCHEDULER",
                        value: v,
                        expected: "true or false",
                    });
                }
            },
        };
        let cluster = if let Some(k) = get("KUBECONFIG") {
            // KUBECONFIG may be a list; the first file names the cluster, as kubectl merges it.
            let first = k
                .split(':')
                .find(|p| !p.trim().is_empty())
                .map_or_else(|| PathBuf::from(&k), PathBuf::from);
            ClusterSource::Kubeconfig(first)
        } else if let Some(host) = get("KUBERNETES_SERVICE_HOST") {
            ClusterSource::InCluster {
                host,
                port: get("KUBERNETES_SERVICE_PORT").unwrap_or_else(|| "443".into()),
            }
        } else {
            ClusterSource::None
        };
        Ok(Self {
            runner_pod,
            namespace: get("ACTIONS_RUNNER_KUBERNETES_NAMESPACE"),
            cluster,
            template: path("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE"),
            template_patch: path(TEMPLATE_PATCH_VAR),
            prepare_timeout,
            runner_image: get("ACTIONS_RUNNER_IMAGE")
                .unwrap_or_else(|| DEFAULT_RUNNER_IMAGE.into()),
            claim_name: get("ACTIONS_RUNNER_CLAIM_NAME"),
            use_kube_scheduler,
            heartbeat,
            resume_timeout,
            github_workspace: path("GITHUB_WORKSPACE"),
            runner_workspace: path("RUNNER_WORKSPACE"),
            runner_temp: path("RUNNER_TEMP"),
            build: crate::build::BuildSettings::from_lookup(&lookup)?,
        })
    }

    /// Settings for `runner_pod` with every other value at its default (for tests and tools).
    pub fn new(runner_pod: impl Into<String>, cluster: ClusterSource) -> Self {
        Self {
            runner_pod: runner_pod.into(),
            namespace: None,
            cluster,
            template: None,
            template_patch: None,
            prepare_timeout: Duration::from_secs(600),
            runner_image: DEFAULT_RUNNER_IMAGE.into(),
            claim_name: None,
            use_kube_scheduler: false,
            heartbeat: Heartbeat::default(),
            resume_timeout: DEFAULT_RESUME_TIMEOUT,
            github_workspace: None,
            runner_workspace: None,
            runner_temp: None,
            build: crate::build::BuildSettings::default(),
        }
    }

    /// Whether `_work` is a shared PVC (volume mode) rather than copied into pods.
    pub fn volume_mode(&self) -> bool {
        self.claim_name.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let s = settings(&[("ACTIONS_RUNNER_POD_NAME", "runner-1")]).unwrap();
        assert_eq!(s, Settings::new("runner-1", ClusterSource::None));
        assert_eq!(s.heartbeat.deadline, Duration::from_millis(61_000));
        assert!(!s.volume_mode());
    }

    #[test]
    fn everything() {
        let s = settings(&[
            ("ACTIONS_RUNNER_POD_NAME", "r"),
            ("ACTIONS_RUNNER_KUBERNETES_NAMESPACE", "ci"),
            ("KUBECONFIG", "/a/config:/b/config"),
            ("ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS", "30"),
            ("ACTIONS_RUNNER_CLAIM_NAME", "r-work"),
            ("ACTIONS_RUNNER_USE_KUBE_SCHEDULER", "true"),
            ("ACTIONS_RUNNER_HEARTBEAT_PERIOD_MS", "100"),
            ("ACTIONS_RUNNER_IMAGE", "runner:1"),
            (TEMPLATE_PATCH_VAR, "/p.json"),
            (RESUME_TIMEOUT_VAR, "0"),
        ])
        .unwrap();
        assert_eq!(s.resume_timeout, Duration::ZERO);
        assert_eq!(s.namespace.as_deref(), Some("ci"));
        assert_eq!(s.cluster, ClusterSource::Kubeconfig("/a/config".into()));
        assert_eq!(s.prepare_timeout, Duration::from_secs(30));
        assert!(s.volume_mode() && s.use_kube_scheduler);
        assert_eq!(s.heartbeat.deadline, Duration::from_millis(2200));
        assert_eq!(s.runner_image, "runner:1");
        assert_eq!(s.template_patch, Some("/p.json".into()));
    }

    #[test]
    fn in_cluster_and_errors() {
        let s = settings(&[
            ("ACTIONS_RUNNER_POD_NAME", "r"),
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
        ])
        .unwrap();
        assert_eq!(
            s.cluster,
            ClusterSource::InCluster {
                host: "10.0.0.1".into(),
                port: "443".into()
            }
        );
        let e = settings(&[]).unwrap_err();
        assert!(e.to_string().contains("ACTIONS_RUNNER_POD_NAME"));
        let e = settings(&[
            ("ACTIONS_RUNNER_POD_NAME", "r"),
            ("ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS", "soon"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("\"soon\""), "{e}");
        let e =
            settings(&[("ACTIONS_RUNNER_POD_NAME", "r"), (RESUME_TIMEOUT_VAR, "5m")]).unwrap_err();
        assert!(e.to_string().contains(RESUME_TIMEOUT_VAR), "{e}");
    }
}
