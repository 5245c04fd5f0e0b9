//! A container step's log, followed live and resumed when the stream breaks (a dropped
//! connection, an API server restart, a 5xx): the follow reconnects with `timestamps=true` and
//! `sinceTime`, and [`Records`] skips what was already printed, so no line is lost or printed
//! twice. The log is output only: the step's exit code always comes from the container's
//! terminated state.

mod records;

pub use records::Records;

use crate::error::Error;
use crate::retry;
use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The first pause before a reconnect; it doubles up to [`MAX_PAUSE`] while nothing comes.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// What a follow did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Followed {
    /// Log records printed.
    pub records: u64,
    /// Times the stream was opened again after it broke.
    pub reconnects: u32,
    /// Lines that came without a timestamp (a resume cannot place them exactly).
    pub unstamped: u64,
}

/// Follows the log of `container` in pod `name` to its end, writing it to stdout byte for
/// byte. Returns when the container has ended and its log is complete; fails when the pod is
/// gone or the log cannot be opened at all (after the API retries).
pub async fn follow(pods: &Api<Pod>, name: &str, container: &str) -> Result<Followed, Error> {
    let mut records = Records::new();
    let mut done = Followed::default();
    let mut stdout = tokio::io::stdout();
    let mut out = Vec::new();
    let mut pause = FIRST_PAUSE;
    let written = Error::StepLogWrite;
    loop {
        let since = records.reconnect();
        let params = LogParams {
            container: Some(container.to_owned()),
            follow: true,
            timestamps: true,
            since_time: since,
            ..LogParams::default()
        };
        let stream =
            retry::api(format!("logs of {name}"), || pods.log_stream(name, &params)).await?;
        let mut reader = std::pin::pin!(stream);
        let ended = loop {
            let chunk = match reader.fill_buf().await {
                Ok(c) => c,
                Err(e) => break Err(e),
            };
            if chunk.is_empty() {
                break Ok(());
            }
            let n = chunk.len();
            records.feed(chunk, &mut out);
            reader.as_mut().consume_unpin(n);
            if !out.is_empty() {
                stdout.write_all(&out).await.map_err(written)?;
                out.clear();
                pause = FIRST_PAUSE;
            }
        };
        match ended {
            // A follow ends with the container; anything else was a cut.
            Ok(()) if container_ended(pods, name, container).await? => {
                records.finish(&mut out);
                stdout.write_all(&out).await.map_err(written)?;
                stdout.flush().await.map_err(written)?;
                done.records = records.printed();
                done.unstamped = records.unstamped();
                return Ok(done);
            }
            Ok(()) => tracing::debug!(pod = name, "the log stream ended early; resuming"),
            Err(e) => tracing::debug!(pod = name, error = %e, "the log stream broke; resuming"),
        }
        stdout.flush().await.map_err(written)?;
        done.reconnects += 1;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Whether `container` has terminated; an error when the pod is gone.
async fn container_ended(pods: &Api<Pod>, name: &str, container: &str) -> Result<bool, Error> {
    let pod = retry::api(format!("get pod {name}"), || pods.get_opt(name))
        .await?
        .ok_or_else(|| Error::StepPodGone {
            pod: name.to_owned(),
        })?;
    Ok(pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter(|c| c.name == container)
        .any(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some())))
}
