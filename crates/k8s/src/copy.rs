//! Copies between the runner and pods, and between pods, as single tar streams over exec.
//!
//! Success is proven by the remote tar's exit status and by its listing: `tar xv` names every
//! entry it extracted, and that count must equal the entries packed. No hashing, no retry loop.

use crate::exec::{self, Command, ExecError, Sink};
use crate::settings::Heartbeat;
use crate::tarball::{self, Counts, Source};
use kube::Client;
use std::path::Path;
use std::time::{Duration, Instant};

/// A container to copy to or from.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The pod.
    pub pod: &'a str,
    /// The container.
    pub container: &'a str,
}

impl<'a> Endpoint<'a> {
    fn command(&self, argv: Vec<String>) -> Command<'a> {
        Command {
            namespace: self.namespace,
            pod: self.pod,
            container: self.container,
            argv,
        }
    }
}

/// A copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The exec failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The remote tar failed.
    #[error("copying {what}: tar in {pod} exited with code {code}: {stderr}")]
    Remote {
        /// What was copied.
        what: String,
        /// The pod/container.
        pod: String,
        /// tar's exit code.
        code: i32,
        /// tar's stderr.
        stderr: String,
    },
    /// The remote tar did not extract everything.
    #[error("copying {what}: {pod} extracted {got} of {want} entries")]
    Incomplete {
        /// What was copied.
        what: String,
        /// The pod/container.
        pod: String,
        /// Entries sent.
        want: u64,
        /// Entries listed by the remote tar.
        got: u64,
    },
    /// Packing or unpacking on the runner failed.
    #[error("copying {0}: {1}")]
    Local(String, std::io::Error),
}

/// What a copy moved.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CopyReport {
    /// Entries (files, folders, links).
    pub entries: u64,
    /// Bytes of file content (host side; 0 when unknown).
    pub content_bytes: u64,
    /// Bytes of the tar stream (host side; 0 when unknown).
    pub archive_bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        write!(f, "{} entries", self.entries)?;
        if self.archive_bytes >= 1_000_000 {
            let mb = self.archive_bytes as f64 / 1e6;
            write!(f, ", {mb:.1} MB ({:.0} MB/s)", mb / secs.max(1e-6))?;
        } else if self.archive_bytes > 0 {
            write!(f, ", {} KB", self.archive_bytes.div_ceil(1000))?;
        }
        write!(f, " in {secs:.2} s")
    }
}

fn sh(script: &str, args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        "sh".to_owned(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv
}

/// Streams host folders into `dest` in the container as one tar.
pub async fn to_pod(
    client: &Client,
    heartbeat: Heartbeat,
    to: Endpoint<'_>,
    what: &str,
    sources: Vec<Source>,
    dest: &str,
) -> Result<CopyReport, CopyError> {
    let start = Instant::now();
    let (rx, packed) = tarball::pack(sources);
    let cmd = to.command(sh(r#"mkdir -p "$1" && exec tar xvf - -C "$1""#, &[dest]));
    let mut out = Sink::Lines(0);
    let mut err = Sink::capture(4096);
    let result = exec::run(client, heartbeat, &cmd, Some(rx), &mut out, &mut err).await;
    let counts: Counts = match packed.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(CopyError::Local(what.to_owned(), e)),
        Err(e) => return Err(CopyError::Local(what.to_owned(), std::io::Error::other(e))),
    };
    let code = result?;
    let pod = format!("{}/{}", to.pod, to.container);
    if code != 0 {
        return Err(CopyError::Remote {
            what: what.to_owned(),
            pod,
            code,
            stderr: err.text(),
        });
    }
    if out.lines() != counts.entries {
        return Err(CopyError::Incomplete {
            what: what.to_owned(),
            pod,
            want: counts.entries,
            got: out.lines(),
        });
    }
    Ok(CopyReport {
        entries: counts.entries,
        content_bytes: counts.content_bytes,
        archive_bytes: counts.archive_bytes,
        elapsed: start.elapsed(),
    })
}

/// Copies `parent/name` from the container into the host folder `dest` (as `dest/name`).
pub async fn from_pod(
    client: &Client,
    heartbeat: Heartbeat,
    from: Endpoint<'_>,
    what: &str,
    parent: &str,
    name: &str,
    dest: &Path,
) -> Result<CopyReport, CopyError> {
    let start = Instant::now();
    let (tx, unpacked) = tarball::unpack(dest.to_owned());
    let cmd = from.command(vec![
        "tar".into(),
        "cf".into(),
        "-".into(),
        "-C".into(),
        parent.into(),
        name.into(),
    ]);
    let mut out = Sink::Channel(tx);
    let mut err = Sink::capture(4096);
    let result = exec::run(client, heartbeat, &cmd, None, &mut out, &mut err).await;
    drop(out);
    let unpacked = match unpacked.await {
        Ok(r) => r,
        Err(e) => Err(std::io::Error::other(e)),
    };
    let local = |e| CopyError::Local(what.to_owned(), e);
    let entries = match (result, unpacked) {
        (Ok(0), Ok(n)) => n,
        (Ok(0), Err(e)) => return Err(local(e)),
        (Ok(code), _) => {
            return Err(CopyError::Remote {
                what: what.to_owned(),
                pod: format!("{}/{}", from.pod, from.container),
                code,
                stderr: err.text(),
            });
        }
        // The unpacker stopped reading: its error is the cause.
        (Err(ExecError::Output(..)), Err(e)) => return Err(local(e)),
        (Err(e), _) => return Err(e.into()),
    };
    Ok(CopyReport {
        entries,
        elapsed: start.elapsed(),
        ..CopyReport::default()
    })
}

/// Pipes `parent/name` from one container into `dest` of another (as `dest/name`) without
/// touching the runner's disk.
#[allow(clippy::too_many_arguments)]
pub async fn between(
    client: &Client,
    heartbeat: Heartbeat,
    what: &str,
    from: Endpoint<'_>,
    parent: &str,
    name: &str,
    to: Endpoint<'_>,
    dest: &str,
) -> Result<CopyReport, CopyError> {
    let start = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let pack = from.command(vec![
        "tar".into(),
        "cf".into(),
        "-".into(),
        "-C".into(),
        parent.into(),
        name.into(),
    ]);
    let unpack = to.command(sh(r#"mkdir -p "$1" && exec tar xvf - -C "$1""#, &[dest]));
    let mut pack_out = Sink::Channel(tx);
    let mut pack_err = Sink::capture(4096);
    let mut unpack_out = Sink::Lines(0);
    let mut unpack_err = Sink::capture(4096);
    let (packed, unpacked) = tokio::join!(
        async {
            let r = exec::run(client, heartbeat, &pack, None, &mut pack_out, &mut pack_err).await;
            // End of the archive for the unpacking side.
            pack_out = Sink::Discard;
            r
        },
        exec::run(
            client,
            heartbeat,
            &unpack,
            Some(rx),
            &mut unpack_out,
            &mut unpack_err
        ),
    );
    let (pack_code, unpack_code) = match (packed, unpacked) {
        (Ok(p), Ok(u)) => (p, u),
        // The unpacking side stopped reading: its error is the cause.
        (_, Err(e)) | (Err(e), _) => return Err(e.into()),
    };
    for (code, ep, err) in [(pack_code, from, &pack_err), (unpack_code, to, &unpack_err)] {
        if code != 0 {
            return Err(CopyError::Remote {
                what: what.to_owned(),
                pod: format!("{}/{}", ep.pod, ep.container),
                code,
                stderr: err.text(),
            });
        }
    }
    Ok(CopyReport {
        entries: unpack_out.lines(),
        elapsed: start.elapsed(),
        ..CopyReport::default()
    })
}
