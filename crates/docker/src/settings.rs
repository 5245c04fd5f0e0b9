//! The docker hook's settings, read once from the environment at the binary edge.

use std::time::Duration;

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
    /// `GITHUB_WORKSPACE` (host path).
    pub workspace: Option<String>,
    /// `RUNNER_TEMP` (host path).
    pub runner_temp: Option<String>,
    /// `ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS`: the overall cap on waiting for containers
    /// to become healthy in `prepare_job` (default 600 s). Each container is also bounded by
    /// its own health-check settings.
    pub health_timeout: Duration,
}

/// A required setting is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A required variable is unset or empty.
    #[error("{0} is not set: the docker hook needs it ({1})")]
    Missing(&'static str, &'static str),
    /// A variable has a value the hook cannot use.
    #[error("{0}={1:?} is invalid: {2}")]
    Invalid(&'static str, String, &'static str),
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
            health_timeout: match get("ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS") {
                None => DEFAULT_HEALTH_TIMEOUT,
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(secs) if secs > 0 => Duration::from_secs(secs),
                    _ => {
                        return Err(SettingsError::Invalid(
                            "ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS",
                            v,
                            "expected a positive number of seconds",
                        ));
                    }
                },
            },
        })
    }

    /// Settings for `runner_name` with every optional setting at its default (for tests and
    /// embedding).
    pub fn new(runner_name: impl Into<String>) -> Self {
        Self {
            runner_name: runner_name.into(),
            network: None,
            workspace: None,
            runner_temp: None,
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
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
}
