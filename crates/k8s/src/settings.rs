//! The Kubernetes hook's settings, read once from the environment at the binary edge.

use crate::admit::Limits;
use hooklib::settings::{SettingError, Vars};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default `ACTIONS_RUNNER_IMAGE`: the image of the `fs-init` init container.
pub const DEFAULT_RUNNER_IMAGE: &str = "ghcr.io/actions/actions-runner:latest";
/// Environment variable naming an optional JSON merge patch / RFC 6902 patch file applied last
/// to every pod the hook creates (a superset of the upstream hooks).
pub const TEMPLATE_PATCH_VAR: &str = "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE_PATCH";
/// Environment variable the launchers (`index.js`, `index.sh`) set to their own folder.
pub const LAUNCHER_DIR_VAR: &str = "CONTAINER_HOOKS_LAUNCHER_DIR";
/// The launcher folder of GitHub's volume-mode hook in the runner image (`/home/runner/k8s`,
/// hooks v0.7.0, ARC's `containerMode: kubernetes`): started from a folder of this name, the
/// hook defaults to volume mode with the claim `<ACTIONS_RUNNER_POD_NAME>-work`.
pub const VOLUME_MODE_FOLDER: &str = "k8s";

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
    /// Unset, it is `<runner pod>-work` when the launcher's folder ([`LAUNCHER_DIR_VAR`]) is
    /// named [`VOLUME_MODE_FOLDER`], else none (copy mode).
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
    /// The runner's `GITHUB_*` values named in [`hooklib::cost::COST_LABELS`] (variable → raw
    /// value), the source of the cost labels.
    pub github_context: BTreeMap<String, String>,
    /// [`COST_LABELS_VAR`] (default true): put the `arc-context-*` cost labels on the job's
    /// pods.
    pub cost_labels: bool,
    /// `ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_[WORKSPACE_]COPY_BACK_MAX_{BYTES,ENTRIES}`: caps on
    /// what copy mode brings back from pods.
    pub copy_back: CopyBack,
    /// `ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_IMAGES`, `…_ALLOWED_SERVICES`,
    /// `…_ALLOWED_STEP_IMAGES`: the administrator's allowed images (unset: any).
    pub images: hooklib::ImagePolicy,
}

/// Caps on the archives copied back to the runner (copy mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyBack {
    /// A step's file commands (default 1 GiB, 100 000 entries).
    pub file_commands: Limits,
    /// A container step's workspace (default 32 GiB, 1 000 000 entries).
    pub workspace: Limits,
}

impl Default for CopyBack {
    fn default() -> Self {
        Self {
            file_commands: Limits::FILE_COMMANDS,
            workspace: Limits::WORKSPACE,
        }
    }
}

/// A size: a whole number of bytes, or with a binary suffix `K`, `M`, `G`, `T` (`KiB`, `Ki`
/// and `KB` mean the same, powers of 1024).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit.trim_end_matches('B').trim_end_matches('I');
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// Environment variable turning the `arc-context-*` cost labels off (`false`).
pub use hooklib::cost::COST_LABELS_VAR;

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
    /// A variable is missing or has a value the hook cannot use.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// An allowed-images setting has a pattern that cannot be read.
    #[error(transparent)]
    Policy(#[from] hooklib::policy::PolicyError),
}

impl Settings {
    /// Reads the settings through `lookup` (the binary passes `|k| std::env::var(k).ok()`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let vars = Vars::new(&lookup);
        let get = |k: &str| vars.get(k);
        let path = |k: &str| get(k).map(PathBuf::from);
        let runner_pod = vars.required(
            "ACTIONS_RUNNER_POD_NAME",
            "the Kubernetes hook",
            "the runner pod's name prefixes and labels every object the hook creates",
        )?;
        let millis = |var: &'static str| {
            vars.parsed(var, None, "a whole number of milliseconds > 0", |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(|n| Some(Duration::from_millis(n)))
            })
        };
        let mut heartbeat = match millis("ACTIONS_RUNNER_HEARTBEAT_PERIOD_MS")? {
            Some(p) => Heartbeat::with_period(p),
            None => Heartbeat::default(),
        };
        if let Some(d) = millis("ACTIONS_RUNNER_HEARTBEAT_DEADLINE_MS")? {
            heartbeat.deadline = d;
        }
        let prepare_timeout = vars.positive_secs(
            "ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS",
            Duration::from_secs(600),
        )?;
        let resume_timeout = vars.parsed(
            RESUME_TIMEOUT_VAR,
            DEFAULT_RESUME_TIMEOUT,
            "a whole number of seconds (0 turns resuming off)",
            |v| v.parse::<u64>().ok().map(Duration::from_secs),
        )?;
        let boolean = |var: &'static str, default: bool| vars.boolean(var, default);
        let use_kube_scheduler = boolean("ACTIONS_RUNNER_USE_KUBE_SCHEDULER", false)?;
        let cost_labels = boolean(COST_LABELS_VAR, true)?;
        let github_context = hooklib::cost::COST_LABELS
            .iter()
            .filter_map(|(var, _)| Some(((*var).to_owned(), get(var)?)))
            .collect();
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
        // Each cap from the setting its `Limits` names, else its default.
        let expected = "a whole number > 0 (bytes may take a K, M, G or T suffix)";
        let limits = |default: Limits| -> Result<Limits, SettingsError> {
            let count = |v: &str| v.trim().parse::<u64>().ok().filter(|n| *n > 0);
            Ok(Limits {
                max_bytes: vars.parsed(
                    default.bytes_setting,
                    default.max_bytes,
                    expected,
                    |v| parse_size(v).filter(|n| *n > 0),
                )?,
                max_entries: vars.parsed(
                    default.entries_setting,
                    default.max_entries,
                    expected,
                    count,
                )?,
                ..default
            })
        };
        let copy_back = CopyBack {
            file_commands: limits(Limits::FILE_COMMANDS)?,
            workspace: limits(Limits::WORKSPACE)?,
        };
        // GitHub's `k8s` folder is volume mode with the claim <pod>-work (hooks v0.7.0).
        let claim_name = get("ACTIONS_RUNNER_CLAIM_NAME").or_else(|| {
            let dir = get(LAUNCHER_DIR_VAR)?;
            let folder = Path::new(dir.trim_end_matches('/')).file_name()?;
            (folder == VOLUME_MODE_FOLDER).then(|| format!("{runner_pod}-work"))
        });
        Ok(Self {
            runner_pod,
            namespace: get("ACTIONS_RUNNER_KUBERNETES_NAMESPACE"),
            cluster,
            template: path("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE"),
            template_patch: path(TEMPLATE_PATCH_VAR),
            prepare_timeout,
            runner_image: get("ACTIONS_RUNNER_IMAGE")
                .unwrap_or_else(|| DEFAULT_RUNNER_IMAGE.into()),
            claim_name,
            use_kube_scheduler,
            heartbeat,
            resume_timeout,
            github_workspace: path("GITHUB_WORKSPACE"),
            runner_workspace: path("RUNNER_WORKSPACE"),
            runner_temp: path("RUNNER_TEMP"),
            build: crate::build::BuildSettings::from_lookup(&lookup)?,
            github_context,
            cost_labels,
            copy_back,
            images: hooklib::ImagePolicy::from_lookup(get)?,
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
            copy_back: CopyBack::default(),
            images: hooklib::ImagePolicy::allow_all(),
            github_context: BTreeMap::new(),
            cost_labels: true,
        }
    }

    /// The cost labels for the job's pods: cleaned from [`Self::github_context`], none when
    /// [`COST_LABELS_VAR`] is false.
    pub fn pod_cost_labels(&self) -> BTreeMap<String, String> {
        if self.cost_labels {
            hooklib::cost::cost_labels(|k| self.github_context.get(k).cloned())
        } else {
            BTreeMap::new()
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

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_lookup(hooklib::settings::lookup_from(vars))
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
    fn cost_labels_from_the_runner_environment() {
        let vars = [
            ("ACTIONS_RUNNER_POD_NAME", "r"),
            ("GITHUB_REPOSITORY", "octo-org/shop"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_ACTOR", " "),
            ("GITHUB_TOKEN", "ghs_not_a_label"),
        ];
        let s = settings(&vars).unwrap();
        assert_eq!(
            s.github_context.keys().collect::<Vec<_>>(),
            ["GITHUB_REPOSITORY", "GITHUB_RUN_ATTEMPT"]
        );
        let labels = s.pod_cost_labels();
        assert_eq!(labels["arc-context-repository"], "octo-org_shop");
        assert_eq!(labels["arc-context-run-attempt"], "2");
        assert_eq!(labels.len(), 2);
        let off = settings(&[vars.as_slice(), &[(COST_LABELS_VAR, "FALSE")]].concat()).unwrap();
        assert!(!off.cost_labels && off.pod_cost_labels().is_empty());
        let e = settings(&[("ACTIONS_RUNNER_POD_NAME", "r"), (COST_LABELS_VAR, "no")]).unwrap_err();
        assert!(e.to_string().contains(COST_LABELS_VAR), "{e}");
    }

    #[test]
    fn the_k8s_folder_defaults_to_volume_mode() {
        let from = |dir: &str, claim: Option<&str>| {
            let mut vars = vec![
                ("ACTIONS_RUNNER_POD_NAME", "runner-1"),
                (LAUNCHER_DIR_VAR, dir),
            ];
            vars.extend(claim.map(|c| ("ACTIONS_RUNNER_CLAIM_NAME", c)));
            settings(&vars).unwrap().claim_name
        };
        let pod_work = Some("runner-1-work".to_owned());
        assert_eq!(from("/home/runner/k8s", None), pod_work);
        assert_eq!(from("/home/runner/k8s/", None), pod_work);
        assert_eq!(from("/opt/hooks/k8s", None), pod_work);
        // An explicit claim wins in every folder.
        assert_eq!(from("/home/runner/k8s", Some("mine")), Some("mine".into()));
        assert_eq!(
            from("/home/runner/k8s-novolume", Some("mine")),
            Some("mine".into())
        );
        // Every other folder is copy mode by default.
        for dir in [
            "/home/runner/k8s-novolume",
            "/home/runner/k8s-hook",
            "/k8s/x",
            "",
            "/",
        ] {
            assert_eq!(from(dir, None), None, "{dir:?}");
        }
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

    #[test]
    fn copy_back_caps() {
        let s = settings(&[
            ("ACTIONS_RUNNER_POD_NAME", "r"),
            (crate::admit::COPY_BACK_MAX_BYTES, "64M"),
            (crate::admit::COPY_BACK_MAX_ENTRIES, "500"),
            (crate::admit::WORKSPACE_COPY_BACK_MAX_BYTES, "2GiB"),
            (crate::admit::WORKSPACE_COPY_BACK_MAX_ENTRIES, "7"),
        ])
        .unwrap();
        assert_eq!(s.copy_back.file_commands.max_bytes, 64 << 20);
        assert_eq!(s.copy_back.file_commands.max_entries, 500);
        assert_eq!(s.copy_back.workspace.max_bytes, 2 << 30);
        assert_eq!(s.copy_back.workspace.max_entries, 7);
        for bad in ["0", "lots", "12X", "-1", "5MB5"] {
            let e = settings(&[
                ("ACTIONS_RUNNER_POD_NAME", "r"),
                (crate::admit::COPY_BACK_MAX_BYTES, bad),
            ])
            .unwrap_err();
            assert!(
                e.to_string().contains(crate::admit::COPY_BACK_MAX_BYTES),
                "{e}"
            );
        }
        let e = settings(&[
            ("ACTIONS_RUNNER_POD_NAME", "r"),
            (crate::admit::COPY_BACK_MAX_ENTRIES, "1K"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("1K"), "{e}");
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("1 KiB"), Some(1024));
        assert_eq!(parse_size("3g"), Some(3 << 30));
        assert_eq!(parse_size("99999999999T"), None);
    }
}
