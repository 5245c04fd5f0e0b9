//! Images: pulls (with credentials, retries and a compact progress log) and Dockerfile builds
//! (context packed by [`crate::context`], output streamed to the log).

use crate::error::{Error, one_line, reason};
use crate::names::{Owner, ROLE_LABEL, RUNNER_LABEL};
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{BuildInfo, CreateImageInfo};
use bollard::query_parameters::{BuildImageOptions, CreateImageOptionsBuilder};
use buildctx::BuildContext;
use futures::StreamExt;
use hooklib::{ImageRef, Registry};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

/// How many times a pull is tried before giving up on a transient error.
pub(crate) const PULL_ATTEMPTS: u32 = 3;

/// Splits a reference into `fromImage` and `tag` for the pull API ([`ImageRef`]'s rules).
/// Without a tag the engine would pull every tag, so `latest` is made explicit; a digest
/// reference is sent whole.
pub(crate) fn split_reference(image: &str) -> (String, Option<String>) {
    match ImageRef::parse(image) {
        Some(r) if r.digest().is_none() => {
            (r.name().to_owned(), r.tag_or_latest().map(str::to_owned))
        }
        _ => (image.to_owned(), None),
    }
}

/// Whether a pull error cannot go away by retrying (bad credentials, unknown image, bad name).
pub(crate) fn is_permanent(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "unauthorized",
        "authentication required",
        "denied",
        "forbidden",
        "not found",
        "manifest unknown",
        "name unknown",
        "invalid reference format",
        "no basic auth credentials",
        "repository does not exist",
    ]
    .iter()
    .any(|p| r.contains(p))
}

fn credentials(registry: Option<&Registry>) -> Option<DockerCredentials> {
    let r = registry?;
    if r.username.as_deref().unwrap_or("").is_empty() && r.password.is_none() {
        return None;
    }
    Some(DockerCredentials {
        username: r.username.clone(),
        password: r.password.as_ref().map(|p| p.expose().to_owned()),
        serveraddress: Some(r.server().to_owned()),
        ..Default::default()
    })
}

/// Human-readable byte count.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The longest a pull stays silent in the job log while bytes are arriving.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Condenses the pull stream: one line per layer when it is done, a byte count at least every
/// [`PROGRESS_EVERY`] while layers download, then a summary.
#[derive(Debug)]
struct PullProgress {
    sizes: BTreeMap<String, u64>,
    downloaded: BTreeMap<String, u64>,
    done: usize,
    cached: usize,
    started: Instant,
    last_line: Instant,
}

impl Default for PullProgress {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            sizes: BTreeMap::new(),
            downloaded: BTreeMap::new(),
            done: 0,
            cached: 0,
            started: now,
            last_line: now,
        }
    }
}

impl PullProgress {
    fn update(&mut self, image: &str, info: &CreateImageInfo) {
        let (Some(id), Some(status)) = (info.id.as_deref(), info.status.as_deref()) else {
            return;
        };
        if let Some(total) = info
            .progress_detail
            .as_ref()
            .and_then(|p| p.total)
            .filter(|t| *t > 0)
        {
            self.sizes.insert(id.to_owned(), total as u64);
        }
        match status {
            "Pull complete" => {
                self.done += 1;
                let size = self.sizes.get(id).copied().unwrap_or(0);
                tracing::info!("{image}: layer {id} pulled ({})", human(size));
                self.last_line = Instant::now();
            }
            "Already exists" => self.cached += 1,
            "Downloading" => {
                if let Some(current) = info.progress_detail.as_ref().and_then(|p| p.current) {
                    self.downloaded.insert(id.to_owned(), current.max(0) as u64);
                }
                if self.last_line.elapsed() >= PROGRESS_EVERY {
                    tracing::info!(
                        "{image}: {} of {} downloaded ({:.0}s)",
                        human(self.downloaded.values().sum()),
                        human(self.sizes.values().sum()),
                        self.started.elapsed().as_secs_f64()
                    );
                    self.last_line = Instant::now();
                }
            }
            _ => {}
        }
    }
}

/// Pulls `image` (with the job's credentials when given), up to [`PULL_ATTEMPTS`] times with
/// backoff for transient errors; a permanent error (bad credentials, unknown image) fails at
/// once. Progress is logged compactly.
pub(crate) async fn pull(
    docker: &Docker,
    image: &str,
    registry: Option<&Registry>,
    platform: Option<&str>,
) -> Result<(), Error> {
    let (from, tag) = split_reference(image);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let mut options = CreateImageOptionsBuilder::default().from_image(&from);
        if let Some(tag) = &tag {
            options = options.tag(tag);
        }
        if let Some(p) = platform {
            options = options.platform(p);
        }
        let mut stream = docker.create_image(Some(options.build()), None, credentials(registry));
        let mut progress = PullProgress::default();
        let mut failure = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => progress.update(image, &info),
                Err(e) => {
                    failure = Some(reason(&e));
                    break;
                }
            }
        }
        let Some(why) = failure else {
            let total: u64 = progress.sizes.values().sum();
            if progress.done == 0 {
                tracing::info!(
                    "{image} is up to date (checked in {:.1}s)",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            tracing::info!(
                "pulled {image}: {} new layer(s), {} cached, {} in {:.1}s",
                progress.done,
                progress.cached,
                human(total),
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        };
        if attempt >= PULL_ATTEMPTS || is_permanent(&why) {
            return Err(Error::Pull {
                image: image.to_owned(),
                attempts: attempt,
                reason: why,
            });
        }
        let backoff = Duration::from_secs(1 << (attempt - 1));
        tracing::warn!(
            "pulling {image} failed (attempt {attempt} of {PULL_ATTEMPTS}): {why}; retrying in {}s",
            backoff.as_secs()
        );
        tokio::time::sleep(backoff).await;
    }
}

/// Whether the engine has `image` locally.
pub(crate) async fn exists(docker: &Docker, image: &str) -> Result<bool, Error> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(e) if crate::error::is_not_found(&e) => Ok(false),
        Err(e) => Err(crate::error::engine(format!("inspect image {image}"))(e)),
    }
}

/// Builds the image of a Dockerfile action unless an image for the same context exists.
/// Returns the tag. Build output is streamed to stderr as it arrives.
pub(crate) async fn build(
    docker: &Docker,
    dockerfile: &str,
    context: BuildContext,
    owner: &Owner,
    platform: Option<&str>,
) -> Result<String, Error> {
    let tag = format!("container-hooks-action:{}", context.short_digest());
    if exists(docker, &tag).await? {
        tracing::info!(
            "the action's image {tag} is up to date (context unchanged); not rebuilding"
        );
        return Ok(tag);
    }
    tracing::info!(
        "building {tag} from {dockerfile} ({} files, {})",
        context.entries,
        human(context.tar.len() as u64)
    );
    let labels = HashMap::from([
        (RUNNER_LABEL.to_owned(), owner.runner.clone()),
        (ROLE_LABEL.to_owned(), "action-image".to_owned()),
    ]);
    let options = BuildImageOptions {
        dockerfile: context.dockerfile.clone(),
        t: Some(tag.clone()),
        rm: true,
        forcerm: true,
        labels: Some(labels),
        platform: platform.unwrap_or_default().to_owned(),
        ..Default::default()
    };
    let body = bollard::body_full(context.tar.into());
    let mut stream = docker.build_image(options, None, Some(body));
    let dockerfile = dockerfile.to_owned();
    while let Some(item) = stream.next().await {
        match item {
            Ok(BuildInfo {
                stream: Some(text), ..
            }) => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(text.as_bytes());
                let _ = err.flush();
            }
            Ok(BuildInfo {
                error_detail: Some(detail),
                ..
            }) => {
                return Err(Error::Build {
                    dockerfile,
                    reason: one_line(&detail.message.unwrap_or_default()),
                });
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Error::BuildRequest {
                    dockerfile,
                    source: e.into(),
                });
            }
        }
    }
    if !exists(docker, &tag).await? {
        return Err(Error::BuildProducedNothing { dockerfile });
    }
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_download_reports_progress_at_most_every_ten_seconds() {
        let info = |status: &str, current: i64, total: i64| CreateImageInfo {
            id: Some("layer1".into()),
            status: Some(status.into()),
            progress_detail: Some(bollard::models::ProgressDetail {
                current: Some(current),
                total: Some(total),
            }),
            ..Default::default()
        };
        let mut p = PullProgress::default();
        let quiet_since = p.last_line;
        p.update("img", &info("Downloading", 10, 100));
        assert_eq!(p.last_line, quiet_since, "no line before 10 s have passed");
        p.last_line -= PROGRESS_EVERY;
        p.update("img", &info("Downloading", 50, 100));
        assert!(
            p.last_line.elapsed() < PROGRESS_EVERY,
            "a progress line was due"
        );
        assert_eq!(p.downloaded["layer1"], 50);
        p.update("img", &info("Pull complete", 100, 100));
        assert_eq!(p.done, 1);
    }

    #[test]
    fn references() {
        let split = |image: &str| {
            let (from, tag) = split_reference(image);
            (from, tag.unwrap_or_default())
        };
        assert_eq!(split("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(split("postgres:16"), ("postgres".into(), "16".into()));
        assert_eq!(
            split("127.0.0.1:5555/hooktest/busybox:1"),
            ("127.0.0.1:5555/hooktest/busybox".into(), "1".into())
        );
        assert_eq!(
            split("127.0.0.1:5555/hooktest/busybox"),
            ("127.0.0.1:5555/hooktest/busybox".into(), "latest".into())
        );
        assert_eq!(
            split_reference("redis@sha256:abc"),
            ("redis@sha256:abc".into(), None)
        );
    }

    #[test]
    fn permanent_errors() {
        assert!(is_permanent(
            "Head \"http://127.0.0.1:5556/v2/x/manifests/1\": no basic auth credentials"
        ));
        assert!(is_permanent("unauthorized: authentication required"));
        assert!(is_permanent("manifest for x:1 not found: manifest unknown"));
        assert!(!is_permanent("net/http: TLS handshake timeout"));
        assert!(!is_permanent("connection refused"));
    }

    #[test]
    fn credentials_only_when_given() {
        assert!(credentials(None).is_none());
        let r = Registry {
            username: Some("u".into()),
            password: Some(hooklib::Secret::new("p")),
            server_url: Some(String::new()),
        };
        let c = credentials(Some(&r)).unwrap();
        assert_eq!(c.serveraddress.as_deref(), Some(Registry::DOCKER_HUB));
        assert_eq!(c.password.as_deref(), Some("p"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(10), "10 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
