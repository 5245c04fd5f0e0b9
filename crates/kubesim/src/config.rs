//! Settings of one simulator (built by tests directly or read from a YAML file by the binary).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::faults::FaultConfig;

/// One denied (verb, resource, subresource) combination; `*` matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DenyRule {
    /// RBAC verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`) or `*`
    pub verb: String,
    /// API group ("" = core), default `*`
    #[serde(default = "star")]
    pub group: String,
    /// resource (`pods`, `secrets`) or `*`
    pub resource: String,
    /// subresource (`exec`, `log`, `attach`, `status`); absent = only the main resource; `*` = any
    #[serde(default)]
    pub subresource: Option<String>,
    /// namespace; absent = every namespace
    #[serde(default)]
    pub namespace: Option<String>,
}

fn star() -> String {
    "*".into()
}

/// Whether a rule's word (verb, group, resource) selects a request's: `*` selects any.
pub(crate) fn selects(rule: &str, value: &str) -> bool {
    rule == "*" || rule == value
}

/// Whether a rule's subresource selects a request's: absent selects only the main resource.
pub(crate) fn selects_sub(rule: Option<&str>, sub: &str) -> bool {
    rule.map_or(sub.is_empty(), |r| selects(r, sub))
}

impl DenyRule {
    /// Whether the rule denies this request.
    pub fn matches(&self, verb: &str, group: &str, resource: &str, sub: &str, ns: &str) -> bool {
        selects(&self.verb, verb)
            && selects(&self.group, group)
            && selects(&self.resource, resource)
            && selects_sub(self.subresource.as_deref(), sub)
            && self.namespace.as_deref().is_none_or(|n| n == ns)
    }
}

/// Live-editable authorization rules (everything allowed except the deny rules).
#[derive(Debug, Clone, Default)]
pub struct Authz(Arc<Mutex<Vec<DenyRule>>>);

impl Authz {
    /// Start with rules.
    pub fn new(rules: Vec<DenyRule>) -> Self {
        Self(Arc::new(Mutex::new(rules)))
    }
    /// Replace the rules.
    pub fn set(&self, rules: Vec<DenyRule>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = rules;
    }
    /// Current rules.
    pub fn get(&self) -> Vec<DenyRule> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// Add one rule.
    pub fn deny(&self, rule: DenyRule) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(rule);
    }
    /// Remove a rule added earlier (every equal copy).
    pub fn remove(&self, rule: &DenyRule) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|r| r != rule);
    }
    /// Whether the request is allowed.
    pub fn allowed(&self, verb: &str, group: &str, resource: &str, sub: &str, ns: &str) -> bool {
        !self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|r| r.matches(verb, group, resource, sub, ns))
    }
}

/// Everything a simulator needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimConfig {
    /// Bearer token clients must send; generated when absent.
    #[serde(default)]
    pub token: Option<String>,
    /// Image of the sandbox ("pause") container; must already be in the local engine.
    #[serde(default = "default_sandbox")]
    pub sandbox_image: String,
    /// Where pod volume directories live; a fresh temporary directory when absent.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Where to write the kubeconfig; `<state dir>/kubeconfig` when absent.
    #[serde(default)]
    pub kubeconfig_path: Option<PathBuf>,
    /// Namespace the kubeconfig's context uses.
    #[serde(default = "default_ns")]
    pub default_namespace: String,
    /// The user name in 403 messages and SelfSubjectAccessReview answers.
    #[serde(default = "default_user")]
    pub user: String,
    /// Initial fault knobs.
    #[serde(default)]
    pub faults: FaultConfig,
    /// Initial deny rules.
    #[serde(default)]
    pub deny: Vec<DenyRule>,
    /// PersistentVolumeClaim name (`namespace/name` or `name` for any namespace) -> host dir
    /// it is bound to.
    #[serde(default)]
    pub volumes: BTreeMap<String, PathBuf>,
    /// Directory for PVCs not listed in `volumes` (a subdirectory per claim); `<state dir>/pv` when absent.
    #[serde(default)]
    pub dynamic_volume_root: Option<PathBuf>,
    /// How many watch events are kept for resumption.
    #[serde(default = "default_history")]
    pub watch_history: usize,
    /// Port to listen on (127.0.0.1); 0 = a free one.
    #[serde(default)]
    pub port: u16,
    /// Images whose containers are emulated builders (Kaniko, BuildKit): see `kubelet::builder`.
    #[serde(default)]
    pub builders: crate::kubelet::builder::BuilderImages,
}

fn default_sandbox() -> String {
    "hooktest/busybox:1".into()
}
fn default_ns() -> String {
    "default".into()
}
fn default_user() -> String {
    "system:serviceaccount:default:kubesim-runner".into()
}
fn default_history() -> usize {
    10_000
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// unreadable
    #[error("reading {path}: {source}")]
    Read {
        /// the file
        path: PathBuf,
        /// why
        source: std::io::Error,
    },
    /// not a SimConfig
    #[error("parsing {path}: {source}")]
    Parse {
        /// the file
        path: PathBuf,
        /// why
        source: serde_yaml_ng::Error,
    },
}

impl SimConfig {
    /// Read a YAML (or JSON) config file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            token: None,
            sandbox_image: default_sandbox(),
            state_dir: None,
            kubeconfig_path: None,
            default_namespace: default_ns(),
            user: default_user(),
            faults: FaultConfig::default(),
            deny: Vec::new(),
            volumes: BTreeMap::new(),
            dynamic_volume_root: None,
            watch_history: default_history(),
            port: 0,
            builders: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_rule_matching() {
        let a = Authz::new(vec![DenyRule {
            verb: "create".into(),
            group: "*".into(),
            resource: "pods".into(),
            subresource: Some("exec".into()),
            namespace: None,
        }]);
        assert!(!a.allowed("create", "", "pods", "exec", "x"));
        assert!(a.allowed("create", "", "pods", "", "x"));
        assert!(a.allowed("get", "", "pods", "exec", "x"));
    }

    #[test]
    fn config_yaml() {
        let c: SimConfig = serde_yaml_ng::from_str(
            "deny: [{verb: list, resource: secrets}]\nfaults: {pullFailures: [{image: '*bad*'}]}\n",
        )
        .unwrap();
        assert_eq!(c.deny[0].group, "*");
        assert_eq!(c.sandbox_image, "hooktest/busybox:1");
    }
}
