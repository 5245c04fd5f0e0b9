//! The Kubernetes hook's settings, read once from the environment at the binary edge.

/// Everything the Kubernetes hook takes from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `ACTIONS_RUNNER_POD_NAME`: the runner pod; prefix of every object name.
    pub runner_pod: String,
    /// `ACTIONS_RUNNER_KUBERNETES_NAMESPACE`.
    pub namespace: Option<String>,
}

/// A required setting is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A required variable is unset or empty.
    #[error("{0} is not set: the Kubernetes hook needs it ({1})")]
    Missing(&'static str, &'static str),
}

impl Settings {
    /// Reads the settings through `lookup` (the binary passes `|k| std::env::var(k).ok()`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        Ok(Self {
            runner_pod: get("ACTIONS_RUNNER_POD_NAME").ok_or(SettingsError::Missing(
                "ACTIONS_RUNNER_POD_NAME",
                "the runner pod's name prefixes and labels every object the hook creates",
            ))?,
            namespace: get("ACTIONS_RUNNER_KUBERNETES_NAMESPACE"),
        })
    }
}
