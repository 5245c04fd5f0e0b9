//! `pods/exec` and `pods/attach` over WebSocket, channel protocol v4/v5
//! (`k8s.io/apimachinery/pkg/util/httpstream/wsstream/conn.go`,
//! `k8s.io/kubelet/pkg/cri/streaming/remotecommand/{websocket,httpstream,exec}.go`):
//! - on open, an empty frame on the lowest writable channel (stdout, else stderr, else error);
//! - client frames `[0, data..]` are stdin, `[4, json]` resize, v5 `[255, 0]` closes stdin;
//! - server frames `[1, data..]` stdout, `[2, data..]` stderr, then `[3, Status JSON]` and close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{AppState, param};
use crate::faults::StreamDrop;
use crate::kubelet::runtime::{
    Chan, ContainerRuntime, ExecRequest, RuntimeError, Streams, TtySize,
};
use crate::status::ApiError;

const V5: &str = "v5.channel.k8s.io";
/// Output already available is sent in frames of up to this many bytes.
const COALESCE: usize = 256 * 1024;
const V4: &str = "v4.channel.k8s.io";

fn flag(q: &[(String, String)], k: &str) -> bool {
    matches!(param(q, k), Some("true" | "1" | "True"))
}

/// The Status written on channel 3 (as `v4WriteStatusFunc` marshals it: no kind/apiVersion).
pub(crate) fn exit_status(code: i64, cmd: &[String]) -> Value {
    if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {cmd:?}, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
        })
    }
}

fn internal_status(msg: &str) -> Value {
    json!({"metadata": {}, "status": "Failure", "message": format!("Internal error occurred: {msg}"),
        "reason": "InternalError", "details": {"causes": [{"message": msg}]}, "code": 500})
}

#[derive(Debug, Clone)]
struct Opts {
    exec: Option<Vec<String>>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

pub(super) async fn handle(
    state: AppState,
    ns: &str,
    name: &str,
    sub: &str,
    q: Vec<(String, String)>,
    req: Request,
) -> Response {
    match prepare(&state, ns, name, sub, &q, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn prepare(
    state: &AppState,
    ns: &str,
    name: &str,
    sub: &str,
    q: &[(String, String)],
    req: Request,
) -> Result<Response, ApiError> {
    let opts = Opts {
        exec: (sub == "exec").then(|| {
            q.iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect()
        }),
        stdin: flag(q, "stdin"),
        stdout: flag(q, "stdout"),
        stderr: flag(q, "stderr"),
        tty: flag(q, "tty"),
    };
    if opts.exec.as_ref().is_some_and(Vec::is_empty) {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    if !opts.stdin && !opts.stdout && !opts.stderr {
        return Err(ApiError::bad_request(
            "you must specify at least one of stdin, stdout, stderr",
        ));
    }
    let id = state
        .kubelet
        .container_target(ns, name, param(q, "container"), true)?;
    let (mut parts, _) = req.into_parts();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|_| ApiError::bad_request("Upgrade request required"))?;
    if !ws.requested_protocols().any(|p| p == V5 || p == V4) {
        return Err(ApiError::bad_request(
            "kubesim speaks only the v5.channel.k8s.io and v4.channel.k8s.io subprotocols",
        ));
    }
    let ws = ws.protocols([V5, V4]);
    let v5 = ws.selected_protocol().is_some_and(|p| p == V5);
    let rt = state.kubelet.runtime().clone();
    let drop_plan = state
        .faults
        .stream_drop(ns, opts.exec.as_deref().unwrap_or_default());
    Ok(ws
        .max_message_size(256 * 1024 * 1024)
        .on_upgrade(move |socket| pump(socket, rt, id, opts, v5, drop_plan)))
}

fn frame(ch: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(ch);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

async fn pump(
    socket: WebSocket,
    rt: Arc<dyn ContainerRuntime>,
    id: String,
    opts: Opts,
    v5: bool,
    drop_plan: Option<StreamDrop>,
) {
    let (mut tx, mut rx) = socket.split();
    let session = match &opts.exec {
        Some(cmd) => {
            rt.exec(
                &id,
                ExecRequest {
                    command: cmd.clone(),
                    stdin: opts.stdin,
                    stdout: opts.stdout,
                    stderr: opts.stderr,
                    tty: opts.tty,
                },
            )
            .await
        }
        None => {
            let streams = Streams {
                stdin: opts.stdin,
                stdout: opts.stdout,
                stderr: opts.stderr && !opts.tty,
            };
            rt.attach(&id, streams).await
        }
    };
    let mut session = match session {
        Ok(s) => s,
        Err(e) => {
            let what = if opts.exec.is_some() {
                "error executing command in container"
            } else {
                "error attaching to container"
            };
            let _ = tx
                .send(frame(
                    3,
                    internal_status(&format!("{what}: {e}"))
                        .to_string()
                        .as_bytes(),
                ))
                .await;
            let _ = tx
                .send(Message::Close(Some(CloseFrame {
                    code: 1000,
                    reason: "".into(),
                })))
                .await;
            return;
        }
    };
    // connection established
    let first = if opts.stdout {
        1
    } else if opts.stderr {
        2
    } else {
        3
    };
    if tx.send(frame(first, &[])).await.is_err() {
        return;
    }
    let exec_id = session.exec_id.clone();
    let mut input = session.input;
    let rt_in = rt.clone();
    let id_in = id.clone();
    let exec_in = exec_id.clone();
    let want_stdin = opts.stdin;
    let reader = tokio::spawn(async move {
        let mut open = want_stdin;
        while let Some(Ok(msg)) = rx.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            match data.first() {
                Some(0) if open => open = input.write_all(&data[1..]).await.is_ok(),
                Some(4) => {
                    if let Ok(sz) = serde_json::from_slice::<Value>(&data[1..]) {
                        let size = TtySize {
                            width: sz["Width"].as_u64().unwrap_or(80) as u16,
                            height: sz["Height"].as_u64().unwrap_or(24) as u16,
                        };
                        let _ = rt_in.resize(&id_in, exec_in.as_deref(), size).await;
                    }
                }
                Some(255) if v5 && data.get(1) == Some(&0) && open => {
                    let _ = input.flush().await;
                    let _ = input.shutdown().await;
                    open = false;
                }
                _ => {}
            }
        }
        // the client went away (or v4 closed its side): end the process's stdin
        if open {
            let _ = input.shutdown().await;
        }
    });
    let started = Instant::now();
    let mut sent: u64 = 0;
    let deadline = drop_plan
        .as_ref()
        .and_then(|d| d.after_millis)
        .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
    // an item read ahead while coalescing (Some(None) = the output ended)
    let mut held: Option<Option<Result<(Chan, Bytes), RuntimeError>>> = None;
    loop {
        let next = match held.take() {
            Some(item) => Ok(item),
            None => match deadline {
                Some(d) => tokio::time::timeout_at(d, session.output.next())
                    .await
                    .map_err(|_| ()),
                None => Ok(session.output.next().await),
            },
        };
        match next {
            Err(()) => {
                tracing::debug!(elapsed = ?started.elapsed(), "injected stream drop (time)");
                reader.abort();
                return; // dropping the socket halves closes the connection without a status
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::debug!("stream output error: {e}");
                break;
            }
            Ok(Some(Ok((chan, bytes)))) => {
                let ch = if chan == Chan::Stderr { 2 } else { 1 };
                if (ch == 1 && !opts.stdout) || (ch == 2 && !opts.stderr) {
                    continue;
                }
                // coalesce what is already available on the same channel into one frame
                let mut data = bytes;
                if data.len() < COALESCE {
                    let mut buf = bytes::BytesMut::from(&data[..]);
                    while buf.len() < COALESCE {
                        match session.output.next().now_or_never() {
                            Some(Some(Ok((c2, b2)))) if c2 == chan => buf.extend_from_slice(&b2),
                            Some(other) => {
                                held = Some(other);
                                break;
                            }
                            None => break,
                        }
                    }
                    data = buf.freeze();
                }
                let mut cut = false;
                if let Some(limit) = drop_plan.as_ref().and_then(|d| d.after_bytes) {
                    let left = limit.saturating_sub(sent);
                    if (data.len() as u64) >= left {
                        data = data.slice(..left as usize);
                        cut = true;
                    }
                }
                sent += data.len() as u64;
                if !data.is_empty() && tx.send(frame(ch, &data)).await.is_err() {
                    reader.abort();
                    return;
                }
                if cut {
                    tracing::debug!(sent, "injected stream drop (bytes)");
                    let _ = tx.flush().await;
                    reader.abort();
                    return;
                }
            }
        }
    }
    let status = match (&opts.exec, &exec_id) {
        (Some(cmd), Some(eid)) => match rt.exec_exit_code(eid).await {
            Ok(code) => exit_status(code, cmd),
            Err(e) => internal_status(&format!("error executing command in container: {e}")),
        },
        _ => json!({"metadata": {}, "status": "Success"}),
    };
    let _ = tx.send(frame(3, status.to_string().as_bytes())).await;
    let _ = tx
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_kubelet() {
        assert_eq!(
            exit_status(0, &[]),
            json!({"metadata": {}, "status": "Success"})
        );
        let s = exit_status(42, &["sh".into(), "-c".into(), "exit 42".into()]);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(
            s["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "42"})
        );
    }
}
