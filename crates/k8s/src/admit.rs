//! The admission policy for archives that come out of a pod onto the runner.
//!
//! Everything a job pod holds was written by the job, so an archive copied back from it is read
//! entry by entry with the `tar` crate's reader (never `Archive::unpack`, which recreates links)
//! and only what the runner expects is written:
//!
//! - regular files and directories under the expected root (`_runner_file_commands`,
//!   `repo/repo`), nothing else: symbolic links, hard links, devices, FIFOs, absolute paths and
//!   `..` components are skipped, each with one refusal naming it;
//! - modes masked to 0644 / 0755 (an executable bit is kept, setuid, setgid and sticky dropped);
//! - a file is created new (`O_CREAT|O_EXCL`, which never follows a link): whatever sits at its
//!   path on the runner (a link, a FIFO, a hard-linked file) is removed first, never written
//!   through; a directory on the path that is a link on the runner refuses the entry;
//! - a byte cap (declared sizes, so a sparse 10 GiB entry is refused before a byte is written)
//!   and an entry cap: exceeding one is an error of the copy, never a silent truncation.
//!
//! A refused entry never fails the step: it is reported and skipped. The function is blocking
//! (run it on a blocking thread).

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use tar::EntryType;

/// Caps on one copied-back archive, with the settings that change them (for the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sum of the entries' declared sizes.
    pub max_bytes: u64,
    /// Number of entries (admitted or refused).
    pub max_entries: u64,
    /// The setting that raises `max_bytes`.
    pub bytes_setting: &'static str,
    /// The setting that raises `max_entries`.
    pub entries_setting: &'static str,
}

/// `ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_COPY_BACK_MAX_BYTES`: the byte cap of a step's file
/// commands.
pub const COPY_BACK_MAX_BYTES: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_COPY_BACK_MAX_BYTES";
/// `ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_COPY_BACK_MAX_ENTRIES`: the entry cap of a step's file
/// commands.
pub const COPY_BACK_MAX_ENTRIES: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_COPY_BACK_MAX_ENTRIES";
/// `ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_WORKSPACE_COPY_BACK_MAX_BYTES`: the byte cap of a
/// container step's workspace copied back to the runner.
pub const WORKSPACE_COPY_BACK_MAX_BYTES: &str =
    "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_WORKSPACE_COPY_BACK_MAX_BYTES";
/// `ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_WORKSPACE_COPY_BACK_MAX_ENTRIES`: the entry cap of a
/// container step's workspace copied back to the runner.
pub const WORKSPACE_COPY_BACK_MAX_ENTRIES: &str =
    "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_WORKSPACE_COPY_BACK_MAX_ENTRIES";

impl Limits {
    /// A step's file commands: 1 GiB, 100 000 entries.
    pub const FILE_COMMANDS: Self = Self {
        max_bytes: 1 << 30,
        max_entries: 100_000,
        bytes_setting: COPY_BACK_MAX_BYTES,
        entries_setting: COPY_BACK_MAX_ENTRIES,
    };
    /// A container step's workspace: 32 GiB, 1 000 000 entries.
    pub const WORKSPACE: Self = Self {
        max_bytes: 32 << 30,
        max_entries: 1_000_000,
        bytes_setting: WORKSPACE_COPY_BACK_MAX_BYTES,
        entries_setting: WORKSPACE_COPY_BACK_MAX_ENTRIES,
    };
}

/// Why an entry was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A symbolic link.
    Symlink,
    /// A hard link.
    HardLink,
    /// A character or block device.
    Device,
    /// A FIFO.
    Fifo,
    /// Any other entry type (global headers, volume labels, ...).
    OtherType(u8),
    /// An absolute path.
    Absolute,
    /// A `..` component.
    ParentDir,
    /// An empty path.
    Empty,
    /// Outside the expected root.
    OutsideRoot,
    /// A folder on its path is a link (or not a folder) on the runner.
    LinkOnPath,
    /// A directory on the runner where the archive has a file, or the reverse.
    KindClash,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Symlink => f.write_str("a symbolic link"),
            Self::HardLink => f.write_str("a hard link"),
            Self::Device => f.write_str("a device"),
            Self::Fifo => f.write_str("a FIFO"),
            Self::OtherType(t) => write!(f, "an entry of tar type {:?}", char::from(*t)),
            Self::Absolute => f.write_str("an absolute path"),
            Self::ParentDir => f.write_str("a path with a `..` component"),
            Self::Empty => f.write_str("an empty path"),
            Self::OutsideRoot => f.write_str("outside the copied folder"),
            Self::LinkOnPath => {
                f.write_str("a folder on its path is a link or not a folder on the runner")
            }
            Self::KindClash => {
                f.write_str("a file and a folder of the same name (the runner's is kept)")
            }
        }
    }
}

/// A skipped entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The entry's path as the archive names it.
    pub path: String,
    /// Why.
    pub reason: Reason,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "skipped {:?}: {} (only regular files and folders are copied back)",
            self.path, self.reason
        )
    }
}

/// What was admitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admitted {
    /// Entries written (files and folders).
    pub entries: u64,
    /// Entries skipped.
    pub refused: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// The archive cannot be admitted at all.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// The declared sizes exceed the byte cap.
    #[error(
        "the archive holds more than {limit} bytes (entry {path:?} declares {size}); nothing more was written: raise {setting} if this is expected"
    )]
    TooLarge {
        /// The cap.
        limit: u64,
        /// The entry that crossed it.
        path: String,
        /// Its declared size.
        size: u64,
        /// The setting.
        setting: &'static str,
    },
    /// More entries than the entry cap.
    #[error(
        "the archive holds more than {limit} entries; nothing more was written: raise {setting} if this is expected"
    )]
    TooMany {
        /// The cap.
        limit: u64,
        /// The setting.
        setting: &'static str,
    },
    /// Reading the archive or writing on the runner failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads `archive` and writes the admitted entries under `dest` (where the archive's paths are
/// rooted); `root` is the relative folder every entry must be in (`_runner_file_commands`).
/// Each skipped entry is handed to `on_refused`.
pub fn admit(
    archive: impl Read,
    dest: &Path,
    root: &Path,
    limits: Limits,
    on_refused: &mut dyn FnMut(&Refusal),
) -> Result<Admitted, AdmitError> {
    let root = clean(root).map_err(|r| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid copy root {}: {r}", root.display()),
        )
    })?;
    // Headers, long names and padding on top of the declared sizes: the stream itself is
    // bounded too (a hostile archive cannot make the reader buffer without end).
    let stream_cap = limits
        .max_bytes
        .saturating_add(limits.max_entries.saturating_mul(3 * 512))
        .saturating_add(1 << 20);
    let mut reader = Capped {
        inner: archive,
        left: stream_cap,
        limits,
    };
    let mut archive = tar::Archive::new(&mut reader);
    let mut done = Admitted::default();
    let mut declared: u64 = 0;
    let mut seen: u64 = 0;
    for entry in archive.entries()? {
        let mut entry = entry?;
        seen += 1;
        if seen > limits.max_entries {
            return Err(AdmitError::TooMany {
                limit: limits.max_entries,
                setting: limits.entries_setting,
            });
        }
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let size = entry.size();
        declared = declared.saturating_add(size);
        if declared > limits.max_bytes {
            return Err(AdmitError::TooLarge {
                limit: limits.max_bytes,
                path: shown,
                size,
                setting: limits.bytes_setting,
            });
        }
        let mut refuse = |reason| {
            done.refused += 1;
            on_refused(&Refusal {
                path: shown.clone(),
                reason,
            });
        };
        let kind = entry.header().entry_type();
        let is_file = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => true,
            EntryType::Directory => false,
            other => {
                refuse(match other {
                    EntryType::Symlink => Reason::Symlink,
                    EntryType::Link => Reason::HardLink,
                    EntryType::Char | EntryType::Block => Reason::Device,
                    EntryType::Fifo => Reason::Fifo,
                    t => Reason::OtherType(t.as_byte()),
                });
                continue;
            }
        };
        let rel = match clean(Path::new(OsStr::from_bytes(&raw_path))) {
            Ok(rel) => rel,
            Err(reason) => {
                refuse(reason);
                continue;
            }
        };
        if !rel.starts_with(&root) {
            refuse(Reason::OutsideRoot);
            continue;
        }
        let mode = entry.header().mode().unwrap_or(0o644);
        let result = if is_file {
            write_file(dest, &rel, mode, &mut entry)
        } else {
            ensure_dirs(dest, &rel).map(|r| match r {
                Ok(()) => Placed::Written(0),
                Err(reason) => Placed::Refused(reason),
            })
        };
        match result {
            Ok(Placed::Written(n)) => {
                done.entries += 1;
                done.bytes += n;
            }
            Ok(Placed::Refused(reason)) => refuse(reason),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// Where an entry landed.
enum Placed {
    /// Written, with its content bytes.
    Written(u64),
    /// Skipped.
    Refused(Reason),
}

/// A relative path without `.` components; `..`, absolute and empty paths are refused.
fn clean(path: &Path) -> Result<PathBuf, Reason> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(Reason::ParentDir),
            Component::RootDir | Component::Prefix(_) => return Err(Reason::Absolute),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Reason::Empty);
    }
    Ok(out)
}

/// Makes every folder of `dest/rel` a real folder (created 0755 when missing); a link or a
/// non-folder on the way refuses.
fn ensure_dirs(dest: &Path, rel: &Path) -> io::Result<Result<(), Reason>> {
    let mut at = dest.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => return Ok(Err(Reason::LinkOnPath)),
            Ok(_) => return Ok(Err(Reason::LinkOnPath)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new().mode(0o755).create(&at)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(()))
}

/// Creates `dest/rel` anew with the entry's content and a masked mode.
fn write_file(dest: &Path, rel: &Path, mode: u32, data: &mut impl Read) -> io::Result<Placed> {
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty())
        && let Err(r) = ensure_dirs(dest, parent)?
    {
        return Ok(Placed::Refused(r));
    }
    let path = dest.join(rel);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_dir() => return Ok(Placed::Refused(Reason::KindClash)),
        // A link, FIFO, socket, device or (maybe hard-linked) file: replaced, never written
        // through.
        Ok(_) => fs::remove_file(&path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)?;
    let n = io::copy(data, &mut file)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    Ok(Placed::Written(n))
}

/// A reader that fails once more than its budget was read.
struct Capped<R> {
    inner: R,
    left: u64,
    limits: Limits,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other(format!(
                "the archive stream is larger than {} bytes allow: raise {} if this is expected",
                self.limits.max_bytes, self.limits.bytes_setting
            )));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
#[path = "admit_tests.rs"]
mod tests;
