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
use std::io::Write;
use std::time::Duration;

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
        write_frame(&frame).map_err(|e| Error::Engine {
            action: format!("write the output of {what}"),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// Runs `config` in `container`, streams its output, and returns its exit code.
pub(crate) async fn exec(
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

/// Runs `cmd` in `container` and collects its stdout (for small probes such as reading
/// `/etc/os-release`). Returns the exit code and the output.
pub(crate) async fn capture(
    docker: &Docker,
    container: &str,
    cmd: &[&str],
) -> Result<(i64, Vec<u8>), Error> {
    let what = cmd.join(" ");
    let config = ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
        ..Default::default()
    };
    let created = docker
        .create_exec(container, config)
        .await
        .map_err(engine(format!("create the exec for {what}")))?;
    let mut out = Vec::new();
    if let StartExecResults::Attached { mut output, .. } = docker
        .start_exec(&created.id, None)
        .await
        .map_err(engine(format!("start {what}")))?
    {
        while let Some(frame) = output.next().await {
            if let LogOutput::StdOut { message } = frame.map_err(engine(format!("read {what}")))? {
                out.extend_from_slice(&message);
            }
        }
    }
    Ok((exit_code(docker, &created.id, &what).await?, out))
}

/// Starts a created container, streams its output until it exits, and returns its exit code
/// (a non-zero code is data: bollard reports it as an error, which is turned back into a code).
pub(crate) async fn run_container(docker: &Docker, id: &str, what: &str) -> Result<i64, Error> {
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
