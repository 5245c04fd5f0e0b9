//! Copies between the runner and pods, and between pods, as single tar streams over exec.
//!
//! Success is proven by the remote tar's exit status and by its listing: `tar xv` names every
//! entry it extracted, and that count must equal the entries packed. No hashing, no retry loop.
//!
//! The `tar` on the pod side always runs in a trusted container (the job pod's
//! [`ARCHIVER_CONTAINER`](crate::pod::ARCHIVER_CONTAINER), a step pod's `fs-init` / `fs-sync`),
//! never in a job or action image: the callers pick the endpoint. What comes back to the runner
//! goes through [`admit`](crate::admit) (regular files and folders only, capped).

use crate::admit::{AdmitError, Limits, Refusal};
use crate::exec::{self, Command, ExecError, Sink};
use crate::settings::Heartbeat;
use crate::tarball::{self, Counts, Source};
use hooklib::joblog;
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

impl crate::objects::Cluster {
    /// The container `container` of pod `pod` in the hook's namespace.
    pub fn endpoint<'a>(&'a self, pod: &'a str, container: &'a str) -> Endpoint<'a> {
        Endpoint {
            namespace: &self.namespace,
            pod,
            container,
        }
    }
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
    /// The archive coming back could not be admitted (over a cap, unreadable).
    #[error("copying {what}: {source}")]
    Admission {
        /// What was copied.
        what: String,
        /// Why.
        source: AdmitError,
    },
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
    /// Entries refused on the way back (links, devices, paths outside the folder).
    pub refused: u64,
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
        if self.refused > 0 {
            write!(f, ", {} refused", self.refused)?;
        }
        write!(f, " in {secs:.2} s")
    }
}

/// The extracting side of a copy into a pod: `$1` is the destination folder, the other
/// arguments the archive's top-level names. The volume is shared with the job, which may have
/// planted links where the archive has folders; a tar extracting through such a link would write
/// into the archiver's own file system, so links to folders that resolve outside the destination
/// are removed first (links inside it are the job's business and stay). `umask 0` lets the
/// archive's modes (group = owner, for the pods' `fsGroup`) apply as they are.
pub const UNPACK_SCRIPT: &str = r#"mkdir -p "$1" && cd "$1" || exit 1
shift
for top in "$@"; do
  find "$top" -type l 2>/dev/null | while IFS= read -r l; do
    [ -d "$l" ] || continue
    case "$(readlink -f "$l")" in "$PWD"/*) ;; *) rm -f "$l" ;; esac
  done
done
umask 0
exec tar xvf -"#;

/// The arguments of [`UNPACK_SCRIPT`]: the destination, then the first component of each name
/// (`.` for an archive rooted at the destination).
fn unpack_args<'a>(dest: &'a str, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut args = vec![dest];
    for name in names {
        let top = name.split('/').find(|p| !p.is_empty()).unwrap_or(".");
        if !args[1..].contains(&top) {
            args.push(top);
        }
    }
    args
}

/// The packing side of a copy out of a pod: `$1` is the parent folder, `$2` the volume it must
/// stay in, `$3…` the names to archive (those that exist; none: an empty stream). A parent the
/// job turned into a link leading out of the volume (into the archiver's own file system) is
/// refused; a name is archived as it is (a link stays a link, which the admission on the runner
/// refuses), and a name whose folder is a link is replaced by that folder (archived as the link
/// it is, so refused and named in the job log, never followed).
pub const PACK_SCRIPT: &str = r#"cd "$1" || exit 1
case "$(pwd -P)/" in "$2"/*) ;; *)
  echo "$1 leads out of $2 (to $(pwd -P)): refusing to archive it" >&2
  exit 1 ;;
esac
shift 2
n=$# seen=
for f; do
  d=${f%/*}
  if [ "$d" != "$f" ] && [ -L "$d" ]; then
    case " $seen " in *" $d "*) ;; *) seen="$seen $d"; set -- "$@" "$d" ;; esac
  elif [ -e "$f" ] || [ -L "$f" ]; then
    set -- "$@" "$f"
  fi
done
shift "$n"
[ "$#" -gt 0 ] || exit 0
exec tar cf - "$@""#;

/// The [`PACK_SCRIPT`] command for `names` in `parent`; the volume is the first component of
/// `parent` (`/__w`).
fn pack_argv(parent: &str, names: &[&str]) -> Vec<String> {
    let volume = parent
        .split('/')
        .find(|p| !p.is_empty())
        .map_or_else(|| "/".to_owned(), |v| format!("/{v}"));
    let mut args = vec![parent, volume.as_str()];
    args.extend_from_slice(names);
    sh(PACK_SCRIPT, &args)
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
    let args = unpack_args(dest, sources.iter().map(|s| s.name.as_str()));
    let cmd = to.command(sh(UNPACK_SCRIPT, &args));
    let (rx, packed) = tarball::pack(sources);
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
        refused: 0,
    })
}

/// How many refused entries are named one by one in the job log; the rest are counted.
pub const NAMED_REFUSALS: u64 = 50;

/// Copies `parent/name` from the container into the host folder `dest` (as `dest/name`): `tar`
/// runs in `from` (a trusted container), the archive is admitted on the runner by
/// [`crate::admit::admit`] with `limits`. Each refused entry is one `::warning::` naming it
/// (the first [`NAMED_REFUSALS`], then one count); refusals never fail the copy, a cap or an
/// unreadable archive does.
#[allow(clippy::too_many_arguments)]
pub async fn from_pod(
    client: &Client,
    heartbeat: Heartbeat,
    from: Endpoint<'_>,
    what: &str,
    parent: &str,
    name: &str,
    dest: &Path,
    limits: Limits,
    only: &[String],
) -> Result<CopyReport, CopyError> {
    let start = Instant::now();
    let label = what.to_owned();
    let mut named = 0;
    let warn = move |r: &Refusal| {
        named += 1;
        if named <= NAMED_REFUSALS {
            joblog::warning(&format!("copying {label}: {r}"));
        }
    };
    let (tx, unpacked) = tarball::unpack(dest.to_owned(), name.into(), limits, warn);
    // `only`: these entries under `name` (a background step's own file commands), so files
    // other steps are still writing are never read.
    let names: Vec<&str> = if only.is_empty() {
        vec![name]
    } else {
        only.iter().map(String::as_str).collect()
    };
    let cmd = from.command(pack_argv(parent, &names));
    let mut out = Sink::Channel(tx);
    let mut err = Sink::capture(4096);
    let result = exec::run(client, heartbeat, &cmd, None, &mut out, &mut err).await;
    drop(out);
    let unpacked = match unpacked.await {
        Ok(r) => r,
        Err(e) => Err(AdmitError::Io(std::io::Error::other(e))),
    };
    let refused = |source| CopyError::Admission {
        what: what.to_owned(),
        source,
    };
    let admitted = match (result, unpacked) {
        (Ok(0), Ok(a)) => a,
        (Ok(0), Err(e)) => return Err(refused(e)),
        (Ok(code), _) => {
            return Err(CopyError::Remote {
                what: what.to_owned(),
                pod: format!("{}/{}", from.pod, from.container),
                code,
                stderr: err.text(),
            });
        }
        // The admission stopped reading: its error is the cause.
        (Err(ExecError::Output(..)), Err(e)) => return Err(refused(e)),
        (Err(e), _) => return Err(e.into()),
    };
    if admitted.refused > NAMED_REFUSALS {
        joblog::warning(&format!(
            "copying {what}: {} more entries were skipped",
            admitted.refused - NAMED_REFUSALS
        ));
    }
    Ok(CopyReport {
        entries: admitted.entries,
        content_bytes: admitted.bytes,
        refused: admitted.refused,
        elapsed: start.elapsed(),
        ..CopyReport::default()
    })
}

/// Removes `paths` in the container (`rm -f`; a missing file is fine). For files the hook put
/// into a pod for one step, e.g. the step script.
pub async fn remove(
    client: &Client,
    heartbeat: Heartbeat,
    at: Endpoint<'_>,
    paths: &[String],
) -> Result<(), CopyError> {
    let mut argv = vec!["rm".to_owned(), "-f".to_owned(), "--".to_owned()];
    argv.extend(paths.iter().cloned());
    let cmd = at.command(argv);
    let (code, _, err) = exec::output(client, heartbeat, &cmd, 4096).await?;
    if code != 0 {
        return Err(CopyError::Remote {
            what: format!("removing {}", paths.join(" ")),
            pod: format!("{}/{}", at.pod, at.container),
            code,
            stderr: err,
        });
    }
    Ok(())
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
    let pack = from.command(pack_argv(parent, &[name]));
    let unpack = to.command(sh(UNPACK_SCRIPT, &unpack_args(dest, [name])));
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

#[cfg(test)]
mod pack_tests {
    use super::PACK_SCRIPT;
    use std::path::Path;

    /// Runs [`PACK_SCRIPT`] under `shell` and lists the archive's entries (path, is a link).
    fn pack(shell: &[&str], parent: &Path, volume: &Path, names: &[&str]) -> Vec<(String, bool)> {
        let out = std::process::Command::new(shell[0])
            .args(&shell[1..])
            .args(["-c", PACK_SCRIPT, "sh"])
            .arg(parent)
            .arg(volume)
            .args(names)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut archive = tar::Archive::new(out.stdout.as_slice());
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                (path, e.header().entry_type().is_symlink())
            })
            .collect()
    }

    #[test]
    fn packs_the_names_that_exist_and_a_linked_folder_as_its_link() {
        let vol = tempfile::tempdir().unwrap();
        let vol = vol.path().canonicalize().unwrap();
        let parent = vol.join("_temp");
        std::fs::create_dir_all(parent.join("fc")).unwrap();
        std::fs::write(parent.join("fc/mine"), "x").unwrap();
        std::fs::write(parent.join("fc/other"), "y").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("mine"), "secret").unwrap();
        for shell in [&["dash"][..], &["busybox", "sh"][..]] {
            let entries = pack(shell, &parent, &vol, &["fc/mine", "fc/missing"]);
            assert_eq!(entries, [("fc/mine".to_owned(), false)], "{shell:?}");
            assert!(pack(shell, &parent, &vol, &["fc/missing"]).is_empty());
        }
        // The folder replaced by a link: the link itself, once, never what it leads to.
        std::fs::remove_dir_all(parent.join("fc")).unwrap();
        std::os::unix::fs::symlink(outside.path(), parent.join("fc")).unwrap();
        for shell in [&["dash"][..], &["busybox", "sh"][..]] {
            let entries = pack(shell, &parent, &vol, &["fc/mine", "fc/other"]);
            assert_eq!(entries, [("fc".to_owned(), true)], "{shell:?}");
        }
    }
}
