//! Running a command in a container over the exec websocket (`v5.channel.k8s.io`, falling back
//! to `v4.channel.k8s.io`).
//!
//! kube's `AttachedProcess` pings every 60 s and cannot notice a peer that stopped answering;
//! this driver uses kube's request builder and websocket upgrade (`Client::connect`) with its own
//! loop so that the keepalive follows the heartbeat settings and a silent connection fails after
//! the deadline. stdout and stderr are drained as frames arrive, concurrently with stdin and the
//! status; the exit code comes from the status channel only: a stream that ends without a status
//! is an error, never a success.

use crate::retry;
use crate::settings::Heartbeat;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Client;
use kube::api::AttachParams;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;

/// How long to keep reading after the status for output the server still had in flight.
const DRAIN_AFTER_STATUS: Duration = Duration::from_secs(2);

/// Where a command's stdout or stderr goes.
pub enum Sink<'a> {
    /// Thrown away.
    Discard,
    /// Written through (the hook's own stdout / stderr).
    Writer(&'a mut (dyn AsyncWrite + Unpin + Send)),
    /// Sent down a channel (piped into another command or an unpacker).
    Channel(mpsc::Sender<std::io::Result<Bytes>>),
    /// Kept, up to a limit (error messages, small outputs).
    Capture(Vec<u8>, usize),
    /// Only its lines counted (`tar -v` listings).
    Lines(u64),
}

impl std::fmt::Debug for Sink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Discard => f.write_str("Discard"),
            Self::Writer(_) => f.write_str("Writer"),
            Self::Channel(_) => f.write_str("Channel"),
            Self::Capture(b, l) => write!(f, "Capture({} of {l} bytes)", b.len()),
            Self::Lines(n) => write!(f, "Lines({n})"),
        }
    }
}

impl Sink<'_> {
    /// A capture of at most `limit` bytes.
    pub fn capture(limit: usize) -> Self {
        Self::Capture(Vec::new(), limit)
    }

    /// The captured text (lossy UTF-8), trimmed.
    pub fn text(&self) -> String {
        match self {
            Self::Capture(b, _) => String::from_utf8_lossy(b).trim().to_owned(),
            _ => String::new(),
        }
    }

    /// The number of lines seen by [`Sink::Lines`].
    pub fn lines(&self) -> u64 {
        match self {
            Self::Lines(n) => *n,
            _ => 0,
        }
    }

    async fn write(&mut self, data: Bytes) -> std::io::Result<()> {
        match self {
            Self::Discard => Ok(()),
            Self::Writer(w) => w.write_all(&data).await,
            Self::Channel(tx) => tx.send(Ok(data)).await.map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader went away")
            }),
            Self::Capture(buf, limit) => {
                let room = limit.saturating_sub(buf.len());
                buf.extend_from_slice(&data[..data.len().min(room)]);
                Ok(())
            }
            Self::Lines(n) => {
                *n += data.iter().filter(|b| **b == b'\n').count() as u64;
                Ok(())
            }
        }
    }

    async fn finish(&mut self) {
        if let Self::Writer(w) = self {
            let _ = w.flush().await;
        }
    }
}

/// A command to run in a container.
#[derive(Debug, Clone)]
pub struct Command<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The pod.
    pub pod: &'a str,
    /// The container.
    pub container: &'a str,
    /// The program and its arguments.
    pub argv: Vec<String>,
}

/// The exec could not tell how the command ended.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The API server refused the exec.
    #[error("cannot exec in {pod}/{container}: {source}")]
    Start {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// The API error.
        source: retry::ApiError,
    },
    /// The websocket failed.
    #[error(
        "the exec connection to {0} broke ({1}): the command's result is unknown, so it is reported as a failure"
    )]
    Connection(String, String),
    /// The stream ended without a status.
    #[error(
        "the exec connection to {0} closed before the command's exit status arrived: the command's result is unknown, so it is reported as a failure"
    )]
    NoStatus(String),
    /// Nothing was heard for the heartbeat deadline.
    #[error(
        "the exec connection to {0} went silent: no answer to keepalive pings for {1:?} (ACTIONS_RUNNER_HEARTBEAT_DEADLINE_MS)"
    )]
    Silent(String, Duration),
    /// A failure status other than a non-zero exit code.
    #[error("the command in {0} failed: {1}")]
    Failed(String, String),
    /// The data for stdin could not be produced.
    #[error("cannot produce the input for {0}: {1}")]
    Stdin(String, std::io::Error),
    /// Output could not be written.
    #[error("cannot write the output of {0}: {1}")]
    Output(String, std::io::Error),
}

/// The exit code a status reports: 0 for `Success`, the `ExitCode` cause of a
/// `NonZeroExitCode` failure, or the failure's message.
pub fn exit_code(status: &Status) -> Result<i32, String> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.trim().parse::<i32>().ok());
        if let Some(code) = code {
            return Ok(code);
        }
    }
    let message = status.message.clone().unwrap_or_default();
    Err(match status.reason.as_deref() {
        Some(r) if !r.is_empty() && !message.contains(r) => format!("{message} ({r})"),
        _ if message.is_empty() => format!("{status:?}"),
        _ => message,
    })
}

/// Runs `cmd`, feeding `stdin` (each chunk in order; the channel's end is EOF) and draining
/// stdout / stderr into the sinks; returns the command's exit code.
pub async fn run(
    client: &Client,
    heartbeat: Heartbeat,
    cmd: &Command<'_>,
    stdin: Option<mpsc::Receiver<std::io::Result<Bytes>>>,
    stdout: &mut Sink<'_>,
    stderr: &mut Sink<'_>,
) -> Result<i32, ExecError> {
    let target = format!("{}/{}", cmd.pod, cmd.container);
    let params = AttachParams {
        container: Some(cmd.container.to_owned()),
        stdin: stdin.is_some(),
        stdout: true,
        stderr: true,
        tty: false,
        ..AttachParams::default()
    };
    let url = <Pod as kube::Resource>::url_path(&(), Some(cmd.namespace));
    let connection = retry::api("exec", || async {
        let request = kube::core::Request::new(url.as_str())
            .exec(cmd.pod, cmd.argv.iter().map(String::as_str), &params)
            .map_err(kube::Error::BuildRequest)?;
        client.connect(request).await
    })
    .await
    .map_err(|source| ExecError::Start {
        pod: cmd.pod.to_owned(),
        container: cmd.container.to_owned(),
        source,
    })?;
    let can_close_stdin = connection.supports_stream_close();
    let (mut tx, mut rx) = connection.into_stream().split();
    let mut stdin = stdin;
    let mut ping = tokio::time::interval(heartbeat.period);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    let mut last_heard = Instant::now();
    let broke = |e: &dyn std::fmt::Display| ExecError::Connection(target.clone(), e.to_string());
    let status = loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(data))) => {
                    last_heard = Instant::now();
                    match data.first() {
                        Some(&STDOUT) => stdout.write(data.slice(1..)).await
                            .map_err(|e| ExecError::Output(target.clone(), e))?,
                        Some(&STDERR) => stderr.write(data.slice(1..)).await
                            .map_err(|e| ExecError::Output(target.clone(), e))?,
                        Some(&STATUS) if data.len() > 1 => {
                            let status: Status = serde_json::from_slice(&data[1..])
                                .map_err(|e| broke(&format!("unreadable status: {e}")))?;
                            break status;
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    return Err(ExecError::NoStatus(target));
                }
                Some(Ok(_)) => last_heard = Instant::now(),
                Some(Err(e)) => return Err(broke(&e)),
            },
            chunk = recv(&mut stdin), if stdin.is_some() => match chunk {
                Some(Ok(data)) => {
                    let mut frame = Vec::with_capacity(data.len() + 1);
                    frame.push(STDIN);
                    frame.extend_from_slice(&data);
                    tx.send(Message::Binary(frame.into())).await.map_err(|e| broke(&e))?;
                }
                Some(Err(e)) => return Err(ExecError::Stdin(target, e)),
                None => {
                    stdin = None;
                    if can_close_stdin {
                        tx.send(Message::Binary(vec![CLOSE, STDIN].into()))
                            .await
                            .map_err(|e| broke(&e))?;
                    }
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > heartbeat.deadline {
                    return Err(ExecError::Silent(target, heartbeat.deadline));
                }
                tx.send(Message::Ping(Bytes::new())).await.map_err(|e| broke(&e))?;
            }
        }
    };
    // The server closes right after the status; take any output still in flight.
    let _ = tokio::time::timeout(DRAIN_AFTER_STATUS, async {
        while let Some(Ok(msg)) = rx.next().await {
            if let Message::Binary(data) = msg {
                match data.first() {
                    Some(&STDOUT) => stdout.write(data.slice(1..)).await?,
                    Some(&STDERR) => stderr.write(data.slice(1..)).await?,
                    _ => {}
                }
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    let _ = tx.close().await;
    stdout.finish().await;
    stderr.finish().await;
    exit_code(&status).map_err(|m| ExecError::Failed(target, m))
}

async fn recv(
    rx: &mut Option<mpsc::Receiver<std::io::Result<Bytes>>>,
) -> Option<std::io::Result<Bytes>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs a command that takes no input and returns its exit code and captured stdout (up to
/// `limit` bytes); a non-zero exit is reported with its stderr.
pub async fn output(
    client: &Client,
    heartbeat: Heartbeat,
    cmd: &Command<'_>,
    limit: usize,
) -> Result<(i32, String, String), ExecError> {
    let mut out = Sink::capture(limit);
    let mut err = Sink::capture(4096);
    let code = run(client, heartbeat, cmd, None, &mut out, &mut err).await?;
    Ok((code, out.text(), err.text()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    #[test]
    fn exit_codes_from_status() {
        let ok = Status {
            status: Some("Success".into()),
            ..Status::default()
        };
        assert_eq!(exit_code(&ok), Ok(0));
        let failed = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            message: Some("command terminated with non-zero exit code: exit code 3".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("3".into()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(exit_code(&failed), Ok(3));
        let internal = Status {
            status: Some("Failure".into()),
            reason: Some("InternalError".into()),
            message: Some("exec: \"nope\": executable file not found in $PATH".into()),
            ..Status::default()
        };
        assert_eq!(
            exit_code(&internal).unwrap_err(),
            "exec: \"nope\": executable file not found in $PATH (InternalError)"
        );
        // NonZeroExitCode without a readable cause is not a success either.
        let vague = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            message: Some("exit code ?".into()),
            ..Status::default()
        };
        assert!(exit_code(&vague).is_err());
    }

    #[tokio::test]
    async fn sinks() {
        let mut s = Sink::capture(5);
        s.write(Bytes::from_static(b"hello world")).await.unwrap();
        assert_eq!(s.text(), "hello");
        let mut l = Sink::Lines(0);
        l.write(Bytes::from_static(b"a\nb\n")).await.unwrap();
        l.write(Bytes::from_static(b"c\n")).await.unwrap();
        assert_eq!(l.lines(), 3);
    }
}
