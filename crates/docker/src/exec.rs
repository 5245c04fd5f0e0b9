//! Running things and streaming their output: a script step's exec in the job container, and a
//! container step's container. stdout bytes go to our stdout and stderr bytes to our stderr as
//! they arrive (flushed, never buffered whole); the exit code is observed, never assumed.

use crate::error::{Error, engine, reason};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::query_parameters::{AttachContainerOptionsBuilder, WaitContainerOptionsBuilder};
use futures::{Stream, StreamExt};
use hooklib::Cancel;
use std::io::Write;
use std::time::Duration;

/// How long the processes of a cancelled step get between SIGTERM and SIGKILL.
pub(crate) const STOP_GRACE_SECS: u32 = 2;

/// Stops every process of the script step tagged `$1` (see [`crate::body::STEP_TAG`]) inside
/// the container: each process whose environment holds the tag, and the process group it
/// leads (a child that cleared its environment is still in the group). SIGTERM first, SIGKILL
/// to what is left after the grace period. Needs `sh`, `tr`, `grep` and `kill` in the image.
pub(crate) const STOP_SCRIPT: &str = r#"tag="$1"; me=$$
list() {
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$me" ] && continue
    if tr '\000' '\n' < "$d/environ" 2>/dev/null | grep -qxF "$tag"; then echo "$p"; fi
  done
}
running() {
  for p in $pids; do
    { read -r st < "/proc/$p/stat"; } 2>/dev/null || continue
    case "$st" in *") Z "*|*") X "*) ;; *) return 0 ;; esac
  done
  return 1
}
signal() { for p in $pids; do kill -s "$1" -- "-$p" 2>/dev/null; kill -s "$1" "$p" 2>/dev/null; done; }
pids=$(list)
[ -n "$pids" ] || exit 0
signal TERM
i=0
while [ "$i" -lt "$2" ] && running; do
  sleep 0.1 2>/dev/null || sleep 1
  i=$((i + 1))
done
pids=$(list)
[ -n "$pids" ] || exit 0
signal KILL
echo "killed $pids after the grace period" >&2
"#;

/// Frames of up to this size are read at once from the engine.
const OUTPUT_CAPACITY: usize = 256 * 1024;

/// Writes one frame of output where it belongs.
fn write_frame(frame: &LogOutput) -> std::io::Result<()> {
    match frame {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            let mut out = std::io::stdout().lock();
            out.write_all(message)?;
            out.flush()
        }
        LogOutput::StdErr { message } => {
            let mut err = std::io::stderr().lock();
            err.write_all(message)?;
            err.flush()
        }
        LogOutput::StdIn { .. } => Ok(()),
    }
}

/// Forwards an output stream to stdout/stderr until it ends.
async fn forward(
    mut output: impl Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
    what: &str,
) -> Result<(), Error> {
    while let Some(frame) = output.next().await {
        let frame = frame.map_err(engine(format!("stream the output of {what}")))?;
        write_frame(&frame).map_err(|source| Error::StepOutput {
            what: what.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// Runs `config` (tagged with `tag`) in `container`, streams its output, and returns its exit
/// code. On cancellation the tagged processes are stopped inside the container and
/// [`Error::Cancelled`] is returned.
pub(crate) async fn exec(
    docker: &Docker,
    container: &str,
    config: ExecConfig,
    tag: &str,
    what: &str,
    cancel: &Cancel,
) -> Result<i64, Error> {
    let run = run_exec(docker, container, config, what);
    tokio::select! {
        biased;
        () = cancel.cancelled() => {}
        result = run => return result,
    }
    stop_tagged(docker, container, tag, what).await;
    Err(Error::Cancelled(what.to_owned()))
}

/// Runs `work` unless `cancel` fires first (then `work` is dropped, which aborts its requests,
/// and [`Error::Cancelled`] is returned).
pub(crate) async fn unless_cancelled<T>(
    cancel: &Cancel,
    what: &str,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(Error::Cancelled(what.to_owned())),
        result = work => result,
    }
}

/// Stops the processes tagged `tag` in `container` (SIGTERM, SIGKILL after
/// [`STOP_GRACE_SECS`]). A failure is logged: the step's container is removed by
/// `cleanup_job` anyway.
pub(crate) async fn stop_tagged(docker: &Docker, container: &str, tag: &str, what: &str) {
    let marker = format!("{}={tag}", crate::body::STEP_TAG);
    let ticks = (STOP_GRACE_SECS * 10).to_string();
    let cmd = [
        "sh",
        "-c",
        STOP_SCRIPT,
        "sh",
        marker.as_str(),
        ticks.as_str(),
    ];
    // A start request that was in flight when the signal came may start the step just after
    // the first sweep: a second sweep catches it.
    for _ in 0..2 {
        match capture(docker, container, &cmd, 4096, Duration::from_secs(4)).await {
            Ok(c) if c.exit == Some(0) => {
                let note = String::from_utf8_lossy(&c.stderr);
                tracing::debug!("stopped {what} in the container {}", note.trim());
            }
            Ok(c) => tracing::warn!(
                "stopping {what} in the container: exit {:?}: {}",
                c.exit,
                String::from_utf8_lossy(&c.stderr).trim()
            ),
            Err(e) => tracing::warn!("stopping {what} in the container: {e}"),
        }
    }
}

async fn run_exec(
    docker: &Docker,
    container: &str,
    config: ExecConfig,
    what: &str,
) -> Result<i64, Error> {
    let created = docker
        .create_exec(container, config)
        .await
        .map_err(engine(format!("create the exec for {what}")))?;
    let start = StartExecOptions {
        detach: false,
        tty: false,
        output_capacity: Some(OUTPUT_CAPACITY),
    };
    match docker
        .start_exec(&created.id, Some(start))
        .await
        .map_err(engine(format!("start {what}")))?
    {
        StartExecResults::Attached { output, .. } => forward(output, what).await?,
        StartExecResults::Detached => {}
    }
    exit_code(docker, &created.id, what).await
}

/// Reads an exec's exit code. The output stream can end a moment before the engine records the
/// code, so a still-running exec is polled briefly; no code at all is an error, never success.
async fn exit_code(docker: &Docker, exec_id: &str, what: &str) -> Result<i64, Error> {
    let mut delay = Duration::from_millis(2);
    for _ in 0..40 {
        let info = docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| Error::StatusLost(format!("{what} ({})", reason(&e))))?;
        if let (Some(false), Some(code)) = (info.running, info.exit_code) {
            return Ok(code);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
    Err(Error::StatusLost(format!(
        "{what} (the engine still reports it running after its output ended)"
    )))
}

/// What a bounded [`capture`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Captured {
    /// The exit code; `None` when the output was cut at the cap or the time ran out (the
    /// command may still be running).
    pub exit: Option<i64>,
    /// Up to the cap of stdout.
    pub stdout: Vec<u8>,
    /// Up to the cap of stderr.
    pub stderr: Vec<u8>,
    /// Whether stdout or stderr went over the cap.
    pub truncated: bool,
    /// Whether the time ran out.
    pub timed_out: bool,
}

/// Runs `cmd` in `container` (a small probe, e.g. reading `/etc/os-release`) and collects at
/// most `cap` bytes of each stream within `timeout`: whatever the image does, the hook reads
/// a bounded amount for a bounded time.
pub(crate) async fn capture(
    docker: &Docker,
    container: &str,
    cmd: &[&str],
    cap: usize,
    timeout: Duration,
) -> Result<Captured, Error> {
    let what = cmd.first().copied().unwrap_or_default().to_owned();
    let config = ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
        ..Default::default()
    };
    let mut got = Captured::default();
    let read = async {
        let created = docker
            .create_exec(container, config)
            .await
            .map_err(engine(format!("create the exec for {what}")))?;
        if let StartExecResults::Attached { mut output, .. } = docker
            .start_exec(&created.id, None)
            .await
            .map_err(engine(format!("start {what}")))?
        {
            while let Some(frame) = output.next().await {
                let (buf, message) = match frame.map_err(engine(format!("read {what}")))? {
                    LogOutput::StdOut { message } => (&mut got.stdout, message),
                    LogOutput::StdErr { message } => (&mut got.stderr, message),
                    _ => continue,
                };
                let room = cap.saturating_sub(buf.len());
                buf.extend_from_slice(&message[..message.len().min(room)]);
                if message.len() > room {
                    got.truncated = true;
                    return Ok(None);
                }
            }
        }
        Ok::<_, Error>(Some(created.id))
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(Some(id))) => got.exit = Some(exit_code(docker, &id, &what).await?),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => got.timed_out = true,
    }
    Ok(got)
}

/// Starts a created container, streams its output until it exits, and returns its exit code
/// (a non-zero code is data: bollard reports it as an error, which is turned back into a code).
/// On cancellation the container is stopped (SIGTERM, SIGKILL after [`STOP_GRACE_SECS`]) and
/// [`Error::Cancelled`] is returned; the caller removes it.
pub(crate) async fn run_container(
    docker: &Docker,
    id: &str,
    what: &str,
    cancel: &Cancel,
) -> Result<i64, Error> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => {}
        result = attach_and_wait(docker, id, what) => return result,
    }
    let stop = bollard::query_parameters::StopContainerOptionsBuilder::default()
        .t(STOP_GRACE_SECS as i32)
        .build();
    match docker.stop_container(id, Some(stop)).await {
        Ok(()) => tracing::info!("stopped {what}"),
        Err(e) => tracing::warn!("stopping {what}: {}", reason(&e)),
    }
    Err(Error::Cancelled(what.to_owned()))
}

async fn attach_and_wait(docker: &Docker, id: &str, what: &str) -> Result<i64, Error> {
    let attach = AttachContainerOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .stream(true)
        .logs(true)
        .build();
    let attached = docker
        .attach_container(id, Some(attach))
        .await
        .map_err(engine(format!("attach to {what}")))?;
    docker
        .start_container(id, None)
        .await
        .map_err(engine(format!("start {what}")))?;
    forward(attached.output, what).await?;
    let wait = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let mut waits = docker.wait_container(id, Some(wait));
    match waits.next().await {
        Some(Ok(r)) => Ok(r.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(Error::StatusLost(format!("{what} ({})", reason(&e)))),
        None => Err(Error::StatusLost(what.to_owned())),
    }
}
