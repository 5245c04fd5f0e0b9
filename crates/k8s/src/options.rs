//! A service's docker `createOptions` (`options:` in the workflow) in Kubernetes terms.
//!
//! The health options become a readinessProbe, so the job only starts once the service answers;
//! every other option has no pod equivalent and is reported back so it can be warned about
//! (use the pod template's `$<service>` container for resources and the like).

use k8s_openapi::api::core::v1::{ExecAction, Probe};

/// What `createOptions` means for a pod container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerOptions {
    /// From `--health-cmd` and friends.
    pub readiness: Option<Probe>,
    /// Options the hook cannot honour, as written (`--cpus 2`, `--network=host`).
    pub ignored: Vec<String>,
}

/// `createOptions` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// The string does not follow the docker CLI grammar (`hooklib::create_options`).
    #[error(transparent)]
    Grammar(#[from] hooklib::create_options::GrammarError),
    /// A duration docker would not accept.
    #[error("container option {option}: {value:?} is not a duration (examples: 10s, 1m30s, 500ms)")]
    Duration {
        /// The option.
        option: String,
        /// Its value.
        value: String,
    },
    /// A count docker would not accept.
    #[error("container option --health-retries: {0:?} is not a whole number")]
    Retries(String),
}

const HEALTH_OPTIONS: [&str; 5] = [
    "health-cmd",
    "health-interval",
    "health-timeout",
    "health-retries",
    "health-start-period",
];

/// Reads a docker `createOptions` string (hooklib's grammar: a flag unknown to `docker run` is an
/// error, as it would be under docker).
pub fn parse(create_options: Option<&str>) -> Result<ContainerOptions, OptionsError> {
    let mut health: [Option<String>; 5] = Default::default();
    let mut no_healthcheck = false;
    let mut ignored = Vec::new();
    for flag in hooklib::create_options::parse(create_options)? {
        if let Some(slot) = HEALTH_OPTIONS.iter().position(|h| *h == flag.long) {
            health[slot] = flag.value;
        } else if flag.long == "no-healthcheck" {
            no_healthcheck = flag.value_or_true() != "false";
        } else {
            ignored.push(flag.as_written());
        }
    }
    let [cmd, interval, timeout, retries, start_period] = health;
    let readiness = match cmd {
        Some(cmd) if !no_healthcheck && !cmd.trim().is_empty() && cmd != "NONE" => {
            let secs = |opt: &str, v: Option<String>, default: i32| -> Result<i32, OptionsError> {
                match v {
                    None => Ok(default),
                    Some(v) => match duration_millis(&v) {
                        Some(0) => Ok(default),
                        // Kubernetes counts whole seconds: round up, at least 1.
                        Some(ms) => Ok(i32::try_from(ms.div_ceil(1000)).unwrap_or(i32::MAX).max(1)),
                        None => Err(OptionsError::Duration {
                            option: opt.to_owned(),
                            value: v,
                        }),
                    },
                }
            };
            let failure_threshold = match retries {
                None => 3,
                Some(r) => match r.trim().parse::<i32>() {
                    Ok(0) => 3,
                    Ok(n) if n > 0 => n,
                    _ => return Err(OptionsError::Retries(r)),
                },
            };
            let start = match start_period {
                None => 0,
                Some(v) => match duration_millis(&v) {
                    Some(ms) => i32::try_from(ms / 1000).unwrap_or(i32::MAX),
                    None => {
                        return Err(OptionsError::Duration {
                            option: "--health-start-period".into(),
                            value: v,
                        });
                    }
                },
            };
            Some(Probe {
                exec: Some(ExecAction {
                    command: Some(vec!["/bin/sh".into(), "-c".into(), cmd]),
                }),
                period_seconds: Some(secs("--health-interval", interval, 30)?),
                timeout_seconds: Some(secs("--health-timeout", timeout, 30)?),
                failure_threshold: Some(failure_threshold),
                success_threshold: Some(1),
                initial_delay_seconds: (start > 0).then_some(start),
                ..Probe::default()
            })
        }
        _ => None,
    };
    Ok(ContainerOptions { readiness, ignored })
}

/// A Go duration (`hooklib::create_options::go_duration`) in whole milliseconds, rounded up.
pub fn duration_millis(text: &str) -> Option<u64> {
    hooklib::create_options::go_duration(text)
        .map(|d| u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hooklib::create_options::GrammarError;

    #[test]
    fn health_options_become_a_probe() {
        let o = parse(Some(
            r#"--health-cmd "redis-cli ping" --health-interval 10s --health-timeout=5s --health-retries 5 --health-start-period 1m --cpus 1 --rm --network=host"#,
        ))
        .unwrap();
        let p = o.readiness.unwrap();
        assert_eq!(
            p.exec.unwrap().command.unwrap(),
            ["/bin/sh", "-c", "redis-cli ping"]
        );
        assert_eq!(p.period_seconds, Some(10));
        assert_eq!(p.timeout_seconds, Some(5));
        assert_eq!(p.failure_threshold, Some(5));
        assert_eq!(p.initial_delay_seconds, Some(60));
        assert_eq!(o.ignored, ["--cpus 1", "--rm", "--network=host"]);
    }

    #[test]
    fn defaults_and_rounding() {
        let o = parse(Some("--health-cmd true --health-interval 500ms")).unwrap();
        let p = o.readiness.unwrap();
        assert_eq!(p.period_seconds, Some(1));
        assert_eq!(p.timeout_seconds, Some(30));
        assert_eq!(p.failure_threshold, Some(3));
        assert_eq!(p.initial_delay_seconds, None);
        assert!(o.ignored.is_empty());
        assert_eq!(parse(None).unwrap(), ContainerOptions::default());
        assert_eq!(
            parse(Some("--health-cmd true --no-healthcheck"))
                .unwrap()
                .readiness,
            None
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse(Some("--health-cmd")),
            Err(OptionsError::Grammar(GrammarError::MissingValue(_)))
        ));
        assert!(matches!(
            parse(Some("--health-cmd x --health-interval soon")),
            Err(OptionsError::Duration { .. })
        ));
        assert!(matches!(
            parse(Some("--health-cmd 'x")),
            Err(OptionsError::Grammar(GrammarError::Quoting(_)))
        ));
        // A flag docker does not have is an error (docker would refuse it too), never a guess
        // about whether the next word is its value.
        assert!(matches!(
            parse(Some("--frobnicate 1 --health-cmd x")),
            Err(OptionsError::Grammar(GrammarError::Unknown(_)))
        ));
        assert!(matches!(
            parse(Some("--health-cmd x --health-retries -1")),
            Err(OptionsError::Retries(_))
        ));
    }

    #[test]
    fn durations_round_up_to_milliseconds() {
        assert_eq!(duration_millis("1m30s"), Some(90_000));
        assert_eq!(duration_millis("10us"), Some(1));
        assert_eq!(duration_millis("10"), None);
    }
}
