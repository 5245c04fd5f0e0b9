//! The exec driver against a real websocket peer that misbehaves on purpose (kubesim cannot go
//! silent while keeping the connection open): a status ends the command, a close without one is
//! an error, a silent peer trips the heartbeat deadline, a peer that only answers pings is fine.

use crate::exec::{self, Command, ExecError, Sink};
use crate::settings::Heartbeat;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Answers the upgrade with the v5 subprotocol.
#[allow(clippy::result_large_err)] // the shape tungstenite's callback requires
fn v5(_: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    resp.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("v5.channel.k8s.io"),
    );
    Ok(resp)
}

/// An "API server" on 127.0.0.1 that upgrades one exec request (v5) and hands the websocket
/// to `behave`.
async fn server<F, Fut>(behave: F) -> (kube::Client, tokio::task::JoinHandle<()>)
where
    F: FnOnce(Ws) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_hdr_async(tcp, v5).await.unwrap();
        behave(ws).await;
    });
    let mut config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    config.default_retry = false;
    (kube::Client::try_from(config).unwrap(), task)
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = vec![channel];
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

const FAST: Heartbeat = Heartbeat {
    period: Duration::from_millis(50),
    deadline: Duration::from_millis(400),
};

async fn run(client: &kube::Client) -> (Result<i32, ExecError>, String, String) {
    let cmd = Command {
        namespace: "ns",
        pod: "pod",
        container: "job",
        argv: vec!["sh".into()],
    };
    let mut out = Sink::capture(1024);
    let mut err = Sink::capture(1024);
    let r = exec::run(client, FAST, &cmd, None, &mut out, &mut err).await;
    (r, out.text(), err.text())
}

#[tokio::test]
async fn output_and_exit_code_from_the_status() {
    let (client, task) = server(|mut ws| async move {
        ws.send(frame(1, b"")).await.unwrap();
        ws.send(frame(1, b"out")).await.unwrap();
        ws.send(frame(2, b"err")).await.unwrap();
        let status = br#"{"metadata":{},"status":"Failure","reason":"NonZeroExitCode","message":"exit code 7","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}"#;
        ws.send(frame(3, status)).await.unwrap();
        ws.close(None).await.unwrap();
    })
    .await;
    let (r, out, err) = run(&client).await;
    assert_eq!((r.unwrap(), out.as_str(), err.as_str()), (7, "out", "err"));
    task.await.unwrap();
}

#[tokio::test]
async fn a_close_without_status_is_a_failure() {
    let (client, task) = server(|mut ws| async move {
        ws.send(frame(1, b"partial")).await.unwrap();
        ws.close(None).await.unwrap();
    })
    .await;
    let (r, out, _) = run(&client).await;
    assert!(matches!(r, Err(ExecError::NoStatus(_))), "{r:?}");
    assert_eq!(out, "partial");
    task.await.unwrap();
}

#[tokio::test]
async fn a_silent_peer_trips_the_deadline() {
    let (client, task) = server(|ws| async move {
        // Never reads, so never answers a ping, and never writes.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(ws);
    })
    .await;
    let (r, _, _) = run(&client).await;
    let e = r.unwrap_err();
    assert!(matches!(e, ExecError::Silent(..)), "{e:?}");
    assert!(
        e.to_string()
            .contains("ACTIONS_RUNNER_HEARTBEAT_DEADLINE_MS"),
        "{e}"
    );
    task.abort();
}

#[tokio::test]
async fn answered_pings_keep_a_quiet_command_alive() {
    let (client, task) = server(|ws| async move {
        let (mut tx, mut rx) = ws.split();
        // Reading answers the pings (tungstenite queues a pong for each); no data for longer
        // than the deadline, then the status.
        let reader = tokio::spawn(async move {
            let mut pings = 0;
            while let Some(Ok(m)) = rx.next().await {
                if m.is_ping() {
                    pings += 1;
                }
            }
            pings
        });
        tokio::time::sleep(Duration::from_millis(1000)).await;
        tx.send(frame(3, br#"{"metadata":{},"status":"Success"}"#))
            .await
            .unwrap();
        let _ = tx.close().await;
        let pings = reader.await.unwrap();
        assert!(pings >= 5, "pings every period: {pings}");
    })
    .await;
    let (r, _, _) = run(&client).await;
    assert_eq!(r.unwrap(), 0);
    task.await.unwrap();
}
