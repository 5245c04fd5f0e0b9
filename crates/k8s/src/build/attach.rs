//! Delivering the build context: a gzipped tar written to a builder container's stdin through
//! `pods/attach` (`v5.channel.k8s.io`, which can close stdin, else `v4`, where closing the
//! connection ends the stdin of a `stdinOnce` container).
//!
//! The archive is streamed: `buildctx` packs and gzips it on a blocking thread into a bounded
//! channel of [`FRAME`]-sized chunks that the websocket drains, so a large action never sits in
//! the runner's memory (at most [`QUEUED`] frames are in flight).

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
pub const FRAME: usize = 64 * 1024;
/// Frames queued between the packer and the websocket.
pub const QUEUED: usize = 4;
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

/// A `Write` that cuts what it is given into [`FRAME`]-sized chunks on a bounded channel (from
/// a blocking thread). A closed channel (the receiver gave up) is a broken pipe.
#[derive(Debug)]
pub struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    /// A writer feeding `tx`.
    pub fn new(tx: tokio::sync::mpsc::Sender<Bytes>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(FRAME),
        }
    }

    fn ship(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(FRAME)));
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the builder stopped reading the context",
            )
        })
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(FRAME - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == FRAME {
            self.ship()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.ship()
    }
}

/// Packs the build context of `dockerfile` as a gzipped tar into a channel of frames, on a
/// blocking thread; the handle gives the digest of what was packed (to compare with the
/// digest the image was named after) and how many gzipped bytes were produced.
pub fn context_stream(
    dockerfile: std::path::PathBuf,
) -> (
    tokio::sync::mpsc::Receiver<Bytes>,
    tokio::task::JoinHandle<Result<buildctx::Packed, buildctx::Error>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUED);
    let task = tokio::task::spawn_blocking(move || {
        let gz = GzEncoder::new(ChunkWriter::new(tx), Compression::fast());
        let (packed, gz) = buildctx::pack_into(&dockerfile, gz)?;
        let finish = |e: std::io::Error| buildctx::Error::Context {
            path: dockerfile.display().to_string(),
            source: e,
        };
        let mut writer = gz.finish().map_err(finish)?;
        writer.flush().map_err(finish)?;
        Ok(packed)
    });
    (rx, task)
}

/// Writes what arrives on `data` to the stdin of `container` in `pod`, then ends that stdin.
/// Returns the number of bytes sent.
pub async fn send_stdin(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &str,
    mut data: tokio::sync::mpsc::Receiver<Bytes>,
) -> Result<u64, AttachError> {
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
    let mut sent = 0u64;
    let send = async {
        while let Some(data) = data.recv().await {
            for chunk in data.chunks(FRAME) {
                let mut frame = Vec::with_capacity(chunk.len() + 1);
                frame.push(STDIN);
                frame.extend_from_slice(chunk);
                tx.send(Message::Binary(frame.into()))
                    .await
                    .map_err(|e| broke(&e))?;
                sent += chunk.len() as u64;
            }
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
        _ => Ok(sent),
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

    /// xorshift64 bytes: gzip cannot shrink them.
    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[tokio::test]
    async fn the_context_streams_in_bounded_frames_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let df = dir.path().join("Dockerfile");
        std::fs::write(&df, "FROM scratch\n").unwrap();
        // Incompressible content larger than the queue.
        let big = noise(FRAME * QUEUED * 3);
        std::fs::write(dir.path().join("big"), &big).unwrap();
        let (mut rx, task) = context_stream(df.clone());
        let mut gz = Vec::new();
        let mut frames = 0;
        while let Some(chunk) = rx.recv().await {
            assert!(chunk.len() <= FRAME);
            frames += 1;
            gz.extend_from_slice(&chunk);
        }
        let packed = task.await.unwrap().unwrap();
        assert!(frames > QUEUED, "{frames}");
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut tar)
            .unwrap();
        let whole = buildctx::pack(&df).unwrap();
        assert_eq!(tar, whole.tar);
        assert_eq!(packed.digest, whole.digest);
    }

    #[tokio::test]
    async fn a_reader_that_gives_up_stops_the_packer() {
        let dir = tempfile::tempdir().unwrap();
        let df = dir.path().join("Dockerfile");
        std::fs::write(&df, "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("noise"), noise(FRAME * 20)).unwrap();
        let (rx, task) = context_stream(df);
        drop(rx);
        let e = task.await.unwrap().unwrap_err().to_string();
        assert!(e.contains("stopped reading"), "{e}");
    }
}
