//! Running a script step in the job container and following it to its end.
//!
//! Detached (the default): the step starts in the background of the job container (see
//! `detached.rs`) and a follower exec streams its stdout and stderr. When that stream breaks
//! (websocket closed, heartbeat deadline, API errors), the hook reconnects with backoff and
//! continues from the bytes it has written — nothing lost, nothing twice, the step never started
//! again — until the step's end tag arrives with its exit code. It gives up when the pod is
//! gone, or when no follower got through for the resume timeout. If the job container dies
//! under the step (OOM kill, eviction), the step ends with exit code 137 and an `::error::`
//! line saying why.
//!
//! Attached (resume timeout 0): the step runs in the foreground of one exec, as before the
//! detached runner; a dropped stream fails it.
//!
//! Either way, a cancellation stops the step's processes in the pod over a fresh exec.

use crate::detached::{self, End, Follow, Mode, Scanner};
use crate::error::Error;
use crate::exec::{self, ExecError, Sink};
use crate::fate::{self, Verdict, verdict};
use crate::names::JOB_CONTAINER;
use crate::objects::Cluster;
use crate::retry;
use crate::settings::RESUME_TIMEOUT_VAR;
use hooklib::Cancel;
use hooklib::joblog;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// How long stopping a cancelled step may take (TERM, 2 s, KILL, over a fresh exec), so the hook
/// exits well within the runner's 7.5 s before SIGTERM.
const STOP_WITHIN: Duration = Duration::from_millis(4500);

/// Followers that end with a status but without the step's end, in a row, before giving up.
const BARE_EXITS: u32 = 4;

/// How long one look at the job pod may take.
const LOOK_WITHIN: Duration = Duration::from_secs(10);

/// The longest pause between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A script step that cannot be followed to its end.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The step's process vanished, or its files did.
    #[error("the step in {pod} can no longer be followed: {reason}; its result is unknown")]
    Lost {
        /// The pod.
        pod: String,
        /// What the follower found.
        reason: String,
    },
    /// The job pod was deleted under the step.
    #[error("the job pod {pod} went away while the step ran ({why}): the step's result is unknown")]
    PodGone {
        /// The pod.
        pod: String,
        /// Deleted, being deleted.
        why: String,
    },
    /// No follower got through for the whole resume timeout.
    #[error(
        "the step's output stream from {pod} broke and could not be resumed within {secs} s ({var}): {last}"
    )]
    Unreachable {
        /// The pod.
        pod: String,
        /// The resume timeout.
        secs: u64,
        /// Its setting.
        var: &'static str,
        /// The last failure.
        last: String,
    },
    /// The follower kept ending without the step's end.
    #[error("the step's follower in {pod} keeps ending before the step does: {last}")]
    Follower {
        /// The pod.
        pod: String,
        /// The last failure.
        last: String,
    },
    /// The end tag's byte counts are not what arrived.
    #[error(
        "the step in {pod} ended, but {got} of its {total} bytes of {stream} arrived: its output is incomplete"
    )]
    Incomplete {
        /// The pod.
        pod: String,
        /// stdout or stderr.
        stream: &'static str,
        /// Bytes written.
        got: u64,
        /// Bytes the step wrote.
        total: u64,
    },
}

/// The step to run.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The cluster.
    pub cluster: &'a Cluster,
    /// The job pod.
    pub pod: &'a str,
    /// The step's id (unique per step).
    pub id: &'a str,
    /// The step script's path in the job container.
    pub script: &'a str,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Exited(i32),
    /// The job container died under it (exit code 137, the reason is in the job log).
    Killed,
}

impl Ended {
    /// The step's exit code.
    pub fn code(self) -> i32 {
        match self {
            Self::Exited(code) => code,
            Self::Killed => 137,
        }
    }
}

/// Runs the step; `resume` is the resume timeout (zero: attached).
pub async fn run(t: Target<'_>, resume: Duration, cancel: &Cancel) -> Result<Ended, Error> {
    if resume.is_zero() {
        attached(t, cancel).await.map(Ended::Exited)
    } else {
        follow(t, resume, cancel).await
    }
}

async fn attached(t: Target<'_>, cancel: &Cancel) -> Result<i32, Error> {
    let cmd = command(t, detached::attached_argv(t.id, t.script));
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let mut out = Sink::Writer(&mut stdout);
    let mut err = Sink::Writer(&mut stderr);
    let done = tokio::select! {
        r = exec::run(&t.cluster.client, t.cluster.heartbeat, &cmd, None, &mut out, &mut err) => Some(r),
        () = cancel.cancelled() => None,
    };
    match done {
        Some(r) => Ok(r?),
        None => {
            // What the step printed before the signal still reaches the log.
            let _ = stdout.flush().await;
            let _ = stderr.flush().await;
            Err(stop(t).await)
        }
    }
}

fn command(t: Target<'_>, argv: Vec<String>) -> exec::Command<'_> {
    exec::Command {
        namespace: &t.cluster.namespace,
        pod: t.pod,
        container: JOB_CONTAINER,
        argv,
    }
}

/// Stops the step's processes in the pod (bounded by [`STOP_WITHIN`]); returns
/// [`Error::Cancelled`].
pub async fn stop(t: Target<'_>) -> Error {
    let cmd = command(t, detached::stop_argv(t.id));
    let stopping = exec::output(&t.cluster.client, t.cluster.heartbeat, &cmd, 4096);
    match tokio::time::timeout(STOP_WITHIN, stopping).await {
        Ok(Ok((_, said, _))) => tracing::info!(pod = t.pod, "cancelled step: {said}"),
        Ok(Err(e)) => tracing::warn!("cannot stop the cancelled step in {}: {e}", t.pod),
        Err(_) => tracing::warn!(
            "cannot stop the cancelled step in {} within {STOP_WITHIN:?}",
            t.pod
        ),
    }
    Error::Cancelled
}

/// What one follower exec brought.
struct Attempt {
    result: Result<i32, ExecError>,
    following: bool,
    end: Option<End>,
    complaint: String,
}

async fn follow(t: Target<'_>, budget: Duration, cancel: &Cancel) -> Result<Ended, Error> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let mut out = Counted::new(tokio::io::stdout());
    let mut err = Counted::new(tokio::io::stderr());
    let mut mode = Mode::Start;
    let mut attempt = 0u32;
    let mut bare_exits = 0u32;
    let mut down_since: Option<Instant> = None;
    let fate = fate::watch(&t.cluster.pods, t.pod);
    tokio::pin!(fate);
    loop {
        let f = Follow {
            id: t.id,
            script: t.script,
            nonce: &nonce,
            mode,
            out: out.count,
            err: err.count,
        };
        let before = (out.count, err.count);
        let argv = detached::follow_argv(&f);
        let a = tokio::select! {
            a = follow_once(t, argv, &nonce, &mut out, &mut err) => a,
            () = cancel.cancelled() => {
                // What the step printed before the signal still reaches the log.
                let _ = out.flush().await;
                let _ = err.flush().await;
                return Err(stop(t).await);
            }
            v = &mut fate => {
                let _ = out.flush().await;
                let _ = err.flush().await;
                return judged(t, v);
            }
        };
        if a.following {
            mode = Mode::Follow;
        }
        match a.end {
            Some(End::Exit {
                code,
                out: total_out,
                err: total_err,
            }) => {
                for (stream, got, total) in [
                    ("stdout", out.count, total_out),
                    ("stderr", err.count, total_err),
                ] {
                    if got != total {
                        return Err(StepError::Incomplete {
                            pod: t.pod.into(),
                            stream,
                            got,
                            total,
                        }
                        .into());
                    }
                }
                return Ok(Ended::Exited(code));
            }
            Some(End::Lost(reason)) => {
                let verdict = tokio::select! {
                    v = verdict_now(t, true) => v,
                    () = cancel.cancelled() => return Err(stop(t).await),
                };
                return match verdict {
                    Verdict::Killed(why) => killed(&why),
                    Verdict::Gone(why) => Err(gone(t, why)),
                    Verdict::Alive => Err(StepError::Lost {
                        pod: t.pod.into(),
                        reason,
                    }
                    .into()),
                };
            }
            None => {}
        }
        let last = match &a.result {
            Ok(code) => format!("the follower exited with {code}"),
            Err(e) => e.to_string(),
        };
        let last = if a.complaint.is_empty() {
            last
        } else {
            format!("{last} ({})", a.complaint)
        };
        let bare = match a.result {
            // The runner's end of stdout/stderr is gone: nobody to follow for.
            Err(e @ ExecError::Output(..)) => return Err(e.into()),
            // Refused before anything ran (RBAC, no such pod, no shell): fail as before.
            Err(e @ (ExecError::Start { .. } | ExecError::Failed(..)))
                if attempt == 0 && !a.following =>
            {
                return Err(e.into());
            }
            Ok(_) | Err(ExecError::Failed(..)) => true,
            Err(_) => false,
        };
        let verdict = tokio::select! {
            v = verdict_now(t, false) => v,
            () = cancel.cancelled() => return Err(stop(t).await),
        };
        match verdict {
            Verdict::Killed(why) => return killed(&why),
            Verdict::Gone(why) => return Err(gone(t, why)),
            Verdict::Alive => {}
        }
        if bare {
            bare_exits += 1;
            if bare_exits >= BARE_EXITS {
                return Err(StepError::Follower {
                    pod: t.pod.into(),
                    last,
                }
                .into());
            }
        }
        let progress = a.following || (out.count, err.count) != before;
        if progress {
            down_since = Some(Instant::now());
        }
        let since = *down_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= budget {
            return Err(StepError::Unreachable {
                pod: t.pod.into(),
                secs: budget.as_secs(),
                var: RESUME_TIMEOUT_VAR,
                last,
            }
            .into());
        }
        attempt += 1;
        let pause = retry::DEFAULT.backoff(attempt).min(MAX_BACKOFF);
        joblog::info(&format!(
            "k8s-hook: the step's output stream broke ({last}); resuming at byte {} of stdout and {} of stderr",
            out.count, err.count
        ));
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = cancel.cancelled() => return Err(stop(t).await),
            v = &mut fate => return judged(t, v),
        }
    }
}

async fn follow_once(
    t: Target<'_>,
    argv: Vec<String>,
    nonce: &str,
    out: &mut Counted<tokio::io::Stdout>,
    err: &mut Counted<tokio::io::Stderr>,
) -> Attempt {
    let cmd = command(t, argv);
    let (tx, mut rx) = mpsc::channel::<std::io::Result<bytes::Bytes>>(16);
    let mut scanner = Scanner::new(nonce);
    let drive = async {
        let mut o = Sink::Writer(&mut *out);
        let mut e = Sink::Channel(tx);
        exec::run(
            &t.cluster.client,
            t.cluster.heartbeat,
            &cmd,
            None,
            &mut o,
            &mut e,
        )
        .await
    };
    let consume = async {
        let mut buf = Vec::new();
        while let Some(Ok(chunk)) = rx.recv().await {
            buf.clear();
            scanner.feed(&chunk, &mut buf);
            if !buf.is_empty() && err.write_all(&buf).await.is_err() {
                // Dropping the receiver fails the exec's next write: an output error.
                return;
            }
        }
    };
    let (result, ()) = tokio::join!(drive, consume);
    let _ = out.flush().await;
    let _ = err.flush().await;
    Attempt {
        result,
        following: scanner.following().is_some(),
        end: scanner.end().cloned(),
        complaint: scanner.complaint(),
    }
}

/// The end of a step whose pod the watch judged.
fn judged(t: Target<'_>, v: Verdict) -> Result<Ended, Error> {
    match v {
        Verdict::Killed(why) => killed(&why),
        Verdict::Gone(why) => Err(gone(t, why)),
        Verdict::Alive => Err(StepError::Lost {
            pod: t.pod.into(),
            reason: "the pod watch ended".into(),
        }
        .into()),
    }
}

fn killed(why: &str) -> Result<Ended, Error> {
    joblog::error(&format!("{why}: the step is reported with exit code 137"));
    Ok(Ended::Killed)
}

fn gone(t: Target<'_>, why: String) -> Error {
    StepError::PodGone {
        pod: t.pod.into(),
        why,
    }
    .into()
}

/// One look at the job pod (no retries: a failure counts as "nothing known", and the next
/// reconnect looks again).
async fn verdict_now(t: Target<'_>, lost: bool) -> Verdict {
    let get = tokio::time::timeout(LOOK_WITHIN, t.cluster.pods.get_opt(t.pod));
    match get.await {
        Ok(Ok(pod)) => verdict(pod.as_ref(), t.pod, lost),
        Ok(Err(e)) => {
            tracing::debug!("cannot look at the job pod: {e}");
            Verdict::Alive
        }
        Err(_) => Verdict::Alive,
    }
}

/// A writer that counts the bytes it accepted.
struct Counted<W> {
    inner: W,
    count: u64,
}

impl<W> Counted<W> {
    fn new(inner: W) -> Self {
        Self { inner, count: 0 }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counted<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.count += n as u64;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counted_counts_what_was_accepted() {
        let mut c = Counted::new(Vec::new());
        c.write_all(b"hello").await.unwrap();
        c.write_all(b" world").await.unwrap();
        assert_eq!(
            (c.count, c.inner.as_slice()),
            (11, b"hello world".as_slice())
        );
    }
}
