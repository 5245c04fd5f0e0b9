//! Waiting for containers with a health check to become healthy, each bounded by its own
//! settings (start period + (interval + timeout) × retries + a margin) and all by an overall cap.
//! A failure names the container and shows its last health-check output.

use crate::error::{Error, engine, one_line};
use bollard::Docker;
use bollard::models::{ContainerInspectResponse, HealthConfig, HealthStatusEnum};
use futures::future::join_all;
use std::time::{Duration, Instant};

/// Added to a container's own health-check budget.
const MARGIN: Duration = Duration::from_secs(5);

/// A container to watch and how to name it in messages.
#[derive(Debug, Clone)]
pub(crate) struct Watched {
    pub id: String,
    pub what: String,
}

fn ns(v: Option<i64>, default: Duration) -> Duration {
    match v {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

/// How long a container may stay `starting` given its health-check settings (the engine's
/// defaults are 30 s interval, 30 s timeout, 3 retries, no start period).
pub(crate) fn budget(hc: &HealthConfig) -> Duration {
    let interval = ns(hc.interval, Duration::from_secs(30));
    let timeout = ns(hc.timeout, Duration::from_secs(30));
    let start = ns(hc.start_period, Duration::ZERO);
    let retries = match hc.retries {
        Some(r) if r > 0 => r as u32,
        _ => 3,
    };
    start + (interval + timeout) * retries + MARGIN
}

fn has_healthcheck(info: &ContainerInspectResponse) -> Option<HealthConfig> {
    let hc = info.config.as_ref()?.healthcheck.clone()?;
    match hc.test.as_deref() {
        Some([first, ..]) if first == "NONE" => None,
        None | Some([]) => None,
        _ => Some(hc),
    }
}

fn last_output(info: &ContainerInspectResponse) -> String {
    let last = info
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.log.as_ref())
        .and_then(|l| l.last());
    match last {
        Some(r) => {
            let mut out = one_line(r.output.as_deref().unwrap_or(""));
            if out.len() > 300 {
                let mut cut = 300;
                while !out.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.truncate(cut);
                out.push('…');
            }
            format!(
                "last check exited {} with output {out:?}",
                r.exit_code.unwrap_or(-1)
            )
        }
        None => "no health check has completed".to_owned(),
    }
}

async fn inspect(docker: &Docker, w: &Watched) -> Result<ContainerInspectResponse, Error> {
    docker
        .inspect_container(&w.id, None)
        .await
        .map_err(engine(format!("inspect {}", w.what)))
}

/// Waits for one container. Without a health check it only checks that it is still running.
async fn wait_one(docker: &Docker, w: &Watched, cap: Duration) -> Result<(), Error> {
    let started = Instant::now();
    let info = inspect(docker, w).await?;
    let Some(hc) = has_healthcheck(&info) else {
        let state = info.state.as_ref();
        if state.and_then(|s| s.running) == Some(false) {
            tracing::warn!(
                "{} is not running (exit code {}); it has no health check to wait for",
                w.what,
                state.and_then(|s| s.exit_code).unwrap_or(-1)
            );
        }
        return Ok(());
    };
    let limit = budget(&hc).min(cap);
    let poll = ns(hc.interval, Duration::from_secs(30))
        .div_f32(4.0)
        .clamp(Duration::from_millis(100), Duration::from_millis(500));
    tracing::info!(
        "waiting for {} to be healthy (up to {}s)",
        w.what,
        limit.as_secs()
    );
    let mut info = info;
    loop {
        let state = info.state.as_ref();
        if state.and_then(|s| s.running) == Some(false) {
            return Err(Error::Unhealthy {
                what: w.what.clone(),
                reason: format!(
                    "it exited with code {}; {}",
                    state.and_then(|s| s.exit_code).unwrap_or(-1),
                    last_output(&info)
                ),
            });
        }
        let health = state.and_then(|s| s.health.as_ref());
        match health.and_then(|h| h.status) {
            Some(HealthStatusEnum::HEALTHY) => {
                tracing::info!(
                    "{} is healthy after {:.1}s",
                    w.what,
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Some(HealthStatusEnum::UNHEALTHY) => {
                return Err(Error::Unhealthy {
                    what: w.what.clone(),
                    reason: format!(
                        "unhealthy after {} failed check(s); {}",
                        health.and_then(|h| h.failing_streak).unwrap_or(0),
                        last_output(&info)
                    ),
                });
            }
            _ => {}
        }
        if started.elapsed() >= limit {
            return Err(Error::Unhealthy {
                what: w.what.clone(),
                reason: format!(
                    "still starting after {}s; {}",
                    limit.as_secs(),
                    last_output(&info)
                ),
            });
        }
        tokio::time::sleep(poll).await;
        info = inspect(docker, w).await?;
    }
}

/// Waits for all containers concurrently; every failure is reported.
pub(crate) async fn wait_all(
    docker: &Docker,
    list: &[Watched],
    cap: Duration,
) -> Result<(), Error> {
    let results = join_all(list.iter().map(|w| wait_one(docker, w, cap))).await;
    let mut errors: Vec<Error> = results.into_iter().filter_map(Result::err).collect();
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_follow_the_containers_settings() {
        let s = 1_000_000_000i64;
        let hc = HealthConfig {
            interval: Some(2 * s),
            timeout: Some(s),
            retries: Some(20),
            start_period: Some(10 * s),
            ..Default::default()
        };
        assert_eq!(budget(&hc), Duration::from_secs(10 + 3 * 20) + MARGIN);
        // The engine's defaults.
        assert_eq!(
            budget(&HealthConfig::default()),
            Duration::from_secs(180) + MARGIN
        );
    }

    #[test]
    fn none_disables() {
        let info = ContainerInspectResponse {
            config: Some(bollard::models::ContainerConfig {
                healthcheck: Some(HealthConfig {
                    test: Some(vec!["NONE".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(has_healthcheck(&info).is_none());
        assert_eq!(last_output(&info), "no health check has completed");
    }
}
