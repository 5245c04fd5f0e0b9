//! Delivering the build context: a gzipped tar written to a builder container's stdin through
//! `pods/attach` (`v5.channel.k8s.io`, which can close stdin, else `v4`, where closing the
//! connection ends the stdin of a `stdinOnce` container).

use crate::retry;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Client;
use kube::api::AttachParams;
use std::io::Write;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const STDIN: u8 = 0;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;
/// Bytes per stdin frame.
const FRAME: usize = 64 * 1024;
/// How long to wait for the server to acknowledge the end of the session.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The context could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The API server refused the attach.
    #[error("cannot attach to {pod}/{container} to send the build context: {source}")]
    Start {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// The API error.
        source: retry::ApiError,
    },
    /// The connection broke or the server reported a failure.
    #[error("sending the build context to {0} failed: {1}")]
    Stream(String, String),
}

/// Gzips a tar archive (what `--context=tar://stdin` and `tar -xzf -` read).
pub fn gzip(tar: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(tar.len() / 2), Compression::fast());
    enc.write_all(tar)?;
    enc.finish()
}

/// Writes `data` to the stdin of `container` in `pod`, then ends that stdin.
pub async fn send_stdin(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &str,
    data: Bytes,
) -> Result<(), AttachError> {
    let target = format!("{pod}/{container}");
    let params = AttachParams {
        container: Some(container.to_owned()),
        stdin: true,
        stdout: false,
        stderr: false,
        tty: false,
        ..AttachParams::default()
    };
    let url = <Pod as kube::Resource>::url_path(&(), Some(namespace));
    let connection = retry::api("attach", || async {
        let request = kube::core::Request::new(url.as_str())
            .attach(pod, &params)
            .map_err(kube::Error::BuildRequest)?;
        client.connect(request).await
    })
    .await
    .map_err(|source| AttachError::Start {
        pod: pod.to_owned(),
        container: container.to_owned(),
        source,
    })?;
    let can_close_stdin = connection.supports_stream_close();
    let (mut tx, mut rx) = connection.into_stream().split();
    let broke = |e: &dyn std::fmt::Display| AttachError::Stream(target.clone(), e.to_string());
    // A failure status may arrive while we write (e.g. the container is gone).
    let watch = async {
        while let Some(msg) = rx.next().await {
            match msg {
                Ok(Message::Binary(b)) if b.first() == Some(&STATUS) && b.len() > 1 => {
                    return match serde_json::from_slice::<Status>(&b[1..]) {
                        Ok(s) if s.status.as_deref() == Some("Success") => Ended::Closed,
                        Ok(s) => Ended::Failed(s.message.unwrap_or_default()),
                        Err(e) => Ended::Broken(format!("unreadable status: {e}")),
                    };
                }
                Ok(Message::Close(_)) => return Ended::Closed,
                Ok(_) => {}
                Err(e) => return Ended::Broken(e.to_string()),
            }
        }
        Ended::Closed
    };
    let send = async {
        for chunk in data.chunks(FRAME) {
            let mut frame = Vec::with_capacity(chunk.len() + 1);
            frame.push(STDIN);
            frame.extend_from_slice(chunk);
            tx.send(Message::Binary(frame.into()))
                .await
                .map_err(|e| broke(&e))?;
        }
        if can_close_stdin {
            tx.send(Message::Binary(vec![CLOSE, STDIN].into()))
                .await
                .map_err(|e| broke(&e))?;
        }
        // Ending the session ends a stdinOnce container's stdin (the only way under v4).
        tx.send(Message::Close(None)).await.map_err(|e| broke(&e))?;
        Ok::<_, AttachError>(())
    };
    let mut watch = std::pin::pin!(watch);
    tokio::select! {
        r = send => r?,
        ended = &mut watch => {
            return Err(broke(&match ended {
                Ended::Failed(m) | Ended::Broken(m) => m,
                Ended::Closed => "the server ended the session before the context was sent".into(),
            }));
        }
    }
    // Wait briefly for the server's side of the close. The data is sent: only a failure the
    // server reports counts, not how the connection goes down.
    match tokio::time::timeout(CLOSE_WAIT, watch).await {
        Ok(Ended::Failed(m)) => Err(broke(&m)),
        _ => Ok(()),
    }
}

/// How the server side of an attach session ended.
enum Ended {
    /// Closed, or a `Success` status.
    Closed,
    /// A failure status.
    Failed(String),
    /// The connection broke.
    Broken(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_round_trip() {
        let data = b"hello tar".repeat(1000);
        let gz = gzip(&data).unwrap();
        assert!(gz.len() < data.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
