//! Tar streams of host folders (symlinks and modes kept) and the admission of archives coming
//! back (see `admit`), on blocking threads, connected to the async side by channels of chunks.

use crate::admit;
use bytes::Bytes;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Size of the chunks sent over exec stdin.
pub const CHUNK: usize = 64 * 1024;
/// A tar record: archives are padded to it, so a reader stops at the end marker by itself even
/// when stdin cannot be closed (`v4.channel.k8s.io`).
pub const RECORD: u64 = 10240;

/// One folder to put into an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The folder on the host.
    pub dir: PathBuf,
    /// Its name in the archive (`_temp`, `repo/repo`); empty for the archive root.
    pub name: String,
    /// Paths (relative to `dir`) left out.
    pub exclude: Vec<PathBuf>,
}

/// What an archive held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Entries (files, folders, links).
    pub entries: u64,
    /// Bytes of file content.
    pub content_bytes: u64,
    /// Bytes of the archive itself.
    pub archive_bytes: u64,
}

/// Sends every write as a chunk down a channel (blocking; for `spawn_blocking` threads).
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
    written: u64,
}

impl ChannelWriter {
    fn flush_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the exec stream went away")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        self.written += n as u64;
        if self.buf.len() >= CHUNK {
            self.flush_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The mode an entry gets in the pod: the group has the owner's rights. Entries belong to the
/// group [`FS_GROUP`](crate::pod::FS_GROUP), the pods' `fsGroup` and so a supplementary group
/// of all their containers: a job container running as a user other than the archiver's can
/// still read (and write) what the hook brought in, e.g. the step script, 0600 on the runner.
pub fn pod_mode(mode: u32) -> u32 {
    mode | ((mode & 0o700) >> 3)
}

/// Appends `path` (a folder, file or link, never followed) as `archived`, with [`pod_mode`].
fn append_entry(
    builder: &mut tar::Builder<impl Write>,
    path: &Path,
    meta: &std::fs::Metadata,
    archived: &Path,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header.set_mode(pod_mode(meta.permissions().mode() & 0o7777));
    header.set_gid(crate::pod::FS_GROUP as u64);
    let kind = meta.file_type();
    if kind.is_dir() {
        header.set_size(0);
        builder.append_data(&mut header, archived, std::io::empty())
    } else if kind.is_file() {
        // Exactly the size in the header, even if the file grows meanwhile.
        let file = std::fs::File::open(path)?.take(meta.len());
        builder.append_data(&mut header, archived, file)
    } else if kind.is_symlink() {
        header.set_size(0);
        builder.append_link(&mut header, archived, std::fs::read_link(path)?)
    } else {
        // FIFOs, sockets, devices: as the builder stores them.
        builder.append_path_with_name(path, archived)
    }
}

fn append_tree(
    builder: &mut tar::Builder<impl Write>,
    root: &Path,
    rel: &Path,
    name: &Path,
    exclude: &[PathBuf],
    counts: &mut Counts,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let rel_child = rel.join(entry.file_name());
        if exclude.contains(&rel_child) {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        let archived = name.join(&rel_child);
        counts.entries += 1;
        // Symlinks are archived as links, not followed.
        append_entry(builder, &path, &meta, &archived)?;
        if meta.is_dir() {
            append_tree(builder, root, &rel_child, name, exclude, counts)?;
        } else if meta.is_file() {
            counts.content_bytes += meta.len();
        }
    }
    Ok(())
}

/// Writes one archive of `sources` into `out`, padded to a whole record.
pub fn write_archive(sources: &[Source], out: impl Write) -> std::io::Result<(Counts, u64)> {
    let mut counter = CountingWriter { inner: out, n: 0 };
    let mut counts = Counts::default();
    {
        let mut builder = tar::Builder::new(&mut counter);
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Complete);
        for s in sources {
            let name = Path::new(&s.name);
            if !s.name.is_empty() {
                // The folder itself (and any missing parents) so modes and empty trees survive.
                let mut prefix = PathBuf::new();
                for part in name.components() {
                    prefix.push(part);
                    append_entry(&mut builder, &s.dir, &std::fs::metadata(&s.dir)?, &prefix)?;
                    counts.entries += 1;
                }
            }
            if s.dir.is_dir() {
                append_tree(
                    &mut builder,
                    &s.dir,
                    Path::new(""),
                    name,
                    &s.exclude,
                    &mut counts,
                )?;
            }
        }
        builder.finish()?;
    }
    let written = counter.n;
    let pad = (RECORD - written % RECORD) % RECORD;
    counter.write_all(&vec![0u8; pad as usize])?;
    counts.archive_bytes = counter.n;
    Ok((counts, counter.n))
}

struct CountingWriter<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Packs `sources` on a blocking thread; the archive arrives as chunks on the returned
/// receiver (a packing error arrives as an `Err` chunk), the counts from the handle.
pub fn pack(
    sources: Vec<Source>,
) -> (
    mpsc::Receiver<std::io::Result<Bytes>>,
    tokio::task::JoinHandle<std::io::Result<Counts>>,
) {
    let (tx, rx) = mpsc::channel(16);
    let handle = tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
            written: 0,
        };
        let result = write_archive(&sources, &mut w).and_then(|(c, _)| {
            w.flush_buf()?;
            Ok(c)
        });
        if let Err(e) = &result {
            let _ = tx.blocking_send(Err(std::io::Error::new(e.kind(), e.to_string())));
        }
        tracing::trace!(bytes = w.written, "archive packed");
        result
    });
    (rx, handle)
}

/// A blocking reader over a channel of chunks.
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Bytes of padding read after an archive's end marker before the reader gives up (a tar
/// writer pads to one record; more is a misbehaving sender, not something to drain forever).
const MAX_TRAILER: u64 = 1 << 20;

/// Admits an archive arriving as chunks into `dest` on a blocking thread, through
/// [`admit::admit`]: only regular files and folders under `root`, modes masked, links never
/// created nor followed, within `limits`. Each refused entry is handed to `on_refused`.
/// Returns the sender to feed and the handle giving what was admitted.
pub fn unpack(
    dest: PathBuf,
    root: PathBuf,
    limits: admit::Limits,
    mut on_refused: impl FnMut(&admit::Refusal) + Send + 'static,
) -> (
    mpsc::Sender<std::io::Result<Bytes>>,
    tokio::task::JoinHandle<Result<admit::Admitted, admit::AdmitError>>,
) {
    let (tx, rx) = mpsc::channel(16);
    let handle = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader {
            rx,
            current: Bytes::new(),
        };
        std::fs::create_dir_all(&dest)?;
        let admitted = admit::admit(&mut reader, &dest, &root, limits, &mut on_refused)?;
        // Drain the padding so the sender never blocks on a reader that stopped.
        let trailer = std::io::copy(
            &mut (&mut reader).take(MAX_TRAILER + 1),
            &mut std::io::sink(),
        )?;
        if trailer > MAX_TRAILER {
            return Err(std::io::Error::other(format!(
                "more than {MAX_TRAILER} bytes follow the end of the archive"
            ))
            .into());
        }
        Ok(admitted)
    });
    (tx, handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_keeps_links_modes_and_padding() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("a/b")).unwrap();
        std::fs::write(src.path().join("a/b/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(
            src.path().join("a/b/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("b/run.sh", src.path().join("a/link")).unwrap();
        std::fs::create_dir_all(src.path().join("skip/me")).unwrap();
        let mut out = Vec::new();
        let (counts, written) = write_archive(
            &[Source {
                dir: src.path().to_owned(),
                name: "w/x".into(),
                exclude: vec!["skip".into()],
            }],
            &mut out,
        )
        .unwrap();
        assert_eq!(written % RECORD, 0);
        assert_eq!(written, out.len() as u64);
        // w, w/x, a, a/b, a/b/run.sh, a/link
        assert_eq!(counts.entries, 6);
        assert_eq!(counts.content_bytes, 18);
        let dest = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("tar")
            .args(["xf", "-", "-C"])
            .arg(dest.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(&out)?;
                c.wait()
            })
            .unwrap();
        assert!(status.success());
        // The group gets the owner's rights (the pods' fsGroup).
        let run = dest.path().join("w/x/a/b/run.sh");
        assert_eq!(
            std::fs::metadata(&run).unwrap().permissions().mode() & 0o777,
            0o775
        );
        assert_eq!(
            std::fs::read_link(dest.path().join("w/x/a/link")).unwrap(),
            Path::new("b/run.sh")
        );
        assert!(!dest.path().join("w/x/skip").exists());
    }

    #[tokio::test]
    async fn pack_then_unpack_through_channels() {
        let src = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::write(src.path().join(format!("f{i}")), vec![b'x'; 10_000 * i]).unwrap();
        }
        let (mut rx, packed) = pack(vec![Source {
            dir: src.path().to_owned(),
            name: "out".into(),
            exclude: vec![],
        }]);
        let dest = tempfile::tempdir().unwrap();
        let (tx, unpacked) = unpack(
            dest.path().to_owned(),
            "out".into(),
            admit::Limits::FILE_COMMANDS,
            |r| panic!("refused {r}"),
        );
        while let Some(chunk) = rx.recv().await {
            tx.send(chunk).await.unwrap();
        }
        drop(tx);
        let counts = packed.await.unwrap().unwrap();
        // The folder and its 50 files.
        assert_eq!(counts.entries, 51);
        let admitted = unpacked.await.unwrap().unwrap();
        assert_eq!(admitted.entries, 51);
        assert_eq!(admitted.bytes, counts.content_bytes);
        assert_eq!(
            std::fs::read(dest.path().join("out/f49")).unwrap().len(),
            490_000
        );
    }
}
