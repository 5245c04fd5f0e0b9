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
    /// `DOCKER_HOST`: where the engine listens (default the local socket).
    pub docker_host: DockerHost,
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
        let invalid = |why| SettingsError::Invalid("DOCKER_HOST", host.clone(), why);
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
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        Ok(Self {
            runner_name: get("RUNNER_NAME").ok_or(SettingsError::Missing(
                "RUNNER_NAME",
                "it labels this runner's containers and networks",
            ))?,
            network: get("ACTIONS_RUNNER_NETWORK_DRIVER"),
            docker_host: DockerHost::parse(get("DOCKER_HOST"), get("DOCKER_TLS_VERIFY"))?,
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
            docker_host: DockerHost::default(),
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
