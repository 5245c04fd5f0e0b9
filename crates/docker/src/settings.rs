//! The docker hook's settings, read once from the environment at the binary edge.

/// Everything the docker hook takes from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `RUNNER_NAME`: identifies this runner's containers and networks (labels).
    pub runner_name: String,
    /// `ACTIONS_RUNNER_NETWORK_DRIVER`: an existing network (e.g. `host`) to use instead of
    /// creating one per job.
    pub network: Option<String>,
    /// `GITHUB_WORKSPACE` (host path).
    pub workspace: Option<String>,
    /// `RUNNER_TEMP` (host path).
    pub runner_temp: Option<String>,
}

/// A required setting is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A required variable is unset or empty.
    #[error("{0} is not set: the docker hook needs it ({1})")]
    Missing(&'static str, &'static str),
}

impl Settings {
    /// Reads the settings through `lookup` (the binary passes `|k| std::env::var(k).ok()`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        Ok(Self {
            runner_name: get("RUNNER_NAME").ok_or(SettingsError::Missing(
                "RUNNER_NAME",
                "it labels this runner's containers and networks",
            ))?,
            network: get("ACTIONS_RUNNER_NETWORK_DRIVER"),
            workspace: get("GITHUB_WORKSPACE"),
            runner_temp: get("RUNNER_TEMP"),
        })
    }
}
