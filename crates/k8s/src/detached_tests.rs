//! The detached-step programs under real shells: `/bin/sh` (dash on Debian) and `busybox sh`
//! with busybox's own tools (when busybox is installed), each with and without `setsid`; and
//! the tag scanner on every split of its input.

use crate::detached::{self, End, Follow, Mode, Scanner};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A shell and its tools: a folder put alone on `PATH`.
struct Shell {
    name: String,
    bin: tempfile::TempDir,
}

fn toolbox(name: &str, links: &[(&str, &Path)]) -> Shell {
    let bin = tempfile::tempdir().unwrap();
    for (n, target) in links {
        symlink(target, bin.path().join(n)).unwrap();
    }
    Shell {
        name: name.into(),
        bin,
    }
}

/// Every shell available here, each with and without `setsid`.
fn shells() -> Vec<Shell> {
    let mut out = Vec::new();
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    let tools = ["dd", "ls", "mkdir", "rm", "sleep"];
    let which = |t: &str| {
        ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(t))
            .find(|p| p.exists())
    };
    for with_setsid in [true, false] {
        let mut links: Vec<(&str, PathBuf)> = vec![("sh", sh.clone())];
        for t in tools {
            links.push((
                t,
                which(t).unwrap_or_else(|| panic!("{t} is not installed")),
            ));
        }
        if with_setsid && let Some(s) = which("setsid") {
            links.push(("setsid", s));
        }
        let refs: Vec<(&str, &Path)> = links.iter().map(|(n, p)| (*n, p.as_path())).collect();
        out.push(toolbox(
            &format!("{} (setsid: {with_setsid})", sh.display()),
            &refs,
        ));
    }
    if let Some(bb) = which("busybox") {
        let list = Command::new(&bb).arg("--list").output().unwrap();
        let applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        for with_setsid in [true, false] {
            let links: Vec<(&str, &Path)> = applets
                .iter()
                .filter(|a| with_setsid || a.as_str() != "setsid")
                .map(|a| (a.as_str(), bb.as_path()))
                .collect();
            out.push(toolbox(&format!("busybox (setsid: {with_setsid})"), &links));
        }
    } else {
        eprintln!("busybox is not installed: testing /bin/sh only");
    }
    out
}

impl Shell {
    fn command(&self, argv: &[String]) -> Command {
        let mut c = Command::new(self.bin.path().join(&argv[0]));
        c.args(&argv[1..])
            .env_clear()
            .env("PATH", self.bin.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, argv: &[String]) -> Outcome {
        let out = self.command(argv).output().unwrap();
        Outcome::of(&out.stdout, &out.stderr, NONCE)
    }
}

const NONCE: &str = "n0nce";

/// A follower's output, split.
#[derive(Debug)]
struct Outcome {
    out: Vec<u8>,
    err: Vec<u8>,
    following: Option<String>,
    end: Option<End>,
    complaint: String,
}

impl Outcome {
    fn of(stdout: &[u8], stderr: &[u8], nonce: &str) -> Self {
        let mut s = Scanner::new(nonce);
        let mut err = Vec::new();
        s.feed(stderr, &mut err);
        Self {
            out: stdout.to_vec(),
            err,
            following: s.following().map(str::to_owned),
            end: s.end().cloned(),
            complaint: s.complaint(),
        }
    }
}

struct Step {
    base: tempfile::TempDir,
    id: String,
    script: PathBuf,
}

impl Step {
    fn new(body: &str) -> Self {
        let base = tempfile::tempdir().unwrap();
        let script = base.path().join("step.sh");
        std::fs::write(&script, body).unwrap();
        // The first base cannot be made (a file is in the way): the second is used.
        std::fs::write(base.path().join("file"), "").unwrap();
        Self {
            base,
            id: "s1".into(),
            script,
        }
    }

    fn write(&self, body: &str) {
        std::fs::write(&self.script, body).unwrap();
    }

    fn bases(&self) -> Vec<String> {
        ["file/steps", "steps"]
            .map(|b| self.base.path().join(b).display().to_string())
            .to_vec()
    }

    fn follow(&self, mode: Mode, out: u64, err: u64) -> Vec<String> {
        let script = self.script.display().to_string();
        let f = Follow {
            id: &self.id,
            script: &script,
            nonce: NONCE,
            mode,
            out,
            err,
        };
        detached::follow_argv_in(&f, &self.base_refs())
    }

    fn base_refs(&self) -> Vec<&'static str> {
        // Leaked: a few short strings per test.
        self.bases()
            .into_iter()
            .map(|b| &*Box::leak(b.into_boxed_str()))
            .collect()
    }

    fn stop(&self) -> Vec<String> {
        detached::stop_argv_in(&self.id, &self.base_refs())
    }

    fn dir(&self) -> PathBuf {
        self.base.path().join("steps").join(&self.id)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.base.path().join(name)
    }
}

#[test]
fn a_step_runs_once_and_its_streams_and_exit_code_come_back() {
    for shell in shells() {
        let step = Step::new("");
        let counter = step.path("runs");
        step.write(&format!(
            "echo run >> '{}'\necho out1\necho err1 >&2\nprintf 'nul\\000err2' >&2\necho out2\nexit 3\n",
            counter.display()
        ));
        let first = shell.run(&step.follow(Mode::Start, 0, 0));
        let ctx = format!("{}: {first:?}", shell.name);
        assert_eq!(first.following.as_deref(), Some("started"), "{ctx}");
        assert_eq!(
            first.complaint, "",
            "the follower says nothing of its own: {ctx}"
        );
        assert_eq!(first.out, b"out1\nout2\n", "{ctx}");
        assert_eq!(first.err, b"err1\nnul\0err2", "{ctx}");
        assert_eq!(
            first.end,
            Some(End::Exit {
                code: 3,
                out: 10,
                err: 13
            }),
            "{ctx}"
        );
        // A later follower (a resume) from offsets gets the rest and the same end, and a start
        // never runs the step again.
        for mode in [Mode::Start, Mode::Follow] {
            let again = shell.run(&step.follow(mode, 5, 5));
            let ctx = format!("{}: {again:?}", shell.name);
            assert_eq!(again.following.as_deref(), Some("following"), "{ctx}");
            assert_eq!(again.out, b"out2\n", "{ctx}");
            assert_eq!(again.err, b"nul\0err2", "{ctx}");
            assert_eq!(again.end, first.end, "{ctx}");
        }
        assert_eq!(
            std::fs::read_to_string(&counter).unwrap(),
            "run\n",
            "{}",
            shell.name
        );
    }
}

/// Reads the follower's stdout until `want` bytes arrived, then kills it (a dropped stream).
fn read_then_drop(mut child: Child, want: usize) -> Vec<u8> {
    use std::io::Read;
    let mut stdout = child.stdout.take().unwrap();
    let mut got = vec![0u8; want];
    stdout.read_exact(&mut got).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    got
}

#[test]
fn a_follower_killed_mid_stream_is_resumed_from_its_offset() {
    for shell in shells() {
        let step = Step::new(
            "i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done\nsleep 0.3\necho tail\nexit 7\n",
        );
        let mut got = Vec::new();
        let child = shell
            .command(&step.follow(Mode::Start, 0, 0))
            .spawn()
            .unwrap();
        got.extend(read_then_drop(child, 1000));
        let child = shell
            .command(&step.follow(Mode::Follow, got.len() as u64, 0))
            .spawn()
            .unwrap();
        got.extend(read_then_drop(child, 7777));
        let last = shell.run(&step.follow(Mode::Follow, got.len() as u64, 0));
        got.extend(&last.out);
        let mut want = String::new();
        for i in 0..3000 {
            want.push_str(&format!("line {i}\n"));
        }
        want.push_str("tail\n");
        assert_eq!(
            String::from_utf8_lossy(&got),
            want,
            "{}: {last:?}",
            shell.name
        );
        assert_eq!(
            last.end,
            Some(End::Exit {
                code: 7,
                out: want.len() as u64,
                err: 0
            }),
            "{}",
            shell.name
        );
    }
}

#[test]
fn a_vanished_step_is_lost_not_restarted() {
    for shell in shells() {
        // Following a step whose directory does not exist never starts it.
        let step = Step::new("echo ran > /dev/null\n");
        let r = shell.run(&step.follow(Mode::Follow, 0, 0));
        assert!(
            matches!(&r.end, Some(End::Lost(why)) if why.contains("in none of")),
            "{}: {r:?}",
            shell.name
        );
        assert!(!step.dir().exists());
        // A step whose process died without an exit status (a restarted container).
        std::fs::create_dir_all(step.dir()).unwrap();
        for f in ["out", "err"] {
            std::fs::write(step.dir().join(f), "").unwrap();
        }
        std::fs::write(step.dir().join("pid"), "999999999 group 0\n").unwrap();
        let r = shell.run(&step.follow(Mode::Start, 0, 0));
        assert_eq!(r.following.as_deref(), Some("following"), "{}", shell.name);
        assert!(
            matches!(&r.end, Some(End::Lost(why)) if why.contains("without an exit status")),
            "{}: {r:?}",
            shell.name
        );
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .map(|(_, r)| !r.starts_with('Z') && !r.starts_with('X'))
        })
        .unwrap_or(false)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(20), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every process whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            }) && alive(*pid)
        })
        .collect()
}

/// Starts `script` (its `{marker}` replaced) under a follower, stops it once `running` holds,
/// and asserts the stop ended it: nothing with `needle` in its command line survives, the
/// follower ends, and the marker the script would write late is never written.
fn stop_while_running(shell: &Shell, script: &str, running: impl FnMut() -> bool, needle: &str) {
    let step = Step::new("");
    let marker = step.path("marker");
    step.write(&script.replace("{marker}", &marker.display().to_string()));
    let follower = shell
        .command(&step.follow(Mode::Start, 0, 0))
        .spawn()
        .unwrap();
    wait_for("the step running", running);
    let stopped = shell.run(&step.stop());
    let said = String::from_utf8_lossy(&stopped.out).into_owned();
    assert!(
        said.starts_with("terminated") || said.starts_with("killed"),
        "{}: {stopped:?}",
        shell.name
    );
    wait_for("every step process gone", || {
        processes_with(needle).is_empty()
    });
    let out = follower.wait_with_output().unwrap();
    let r = Outcome::of(&out.stdout, &out.stderr, NONCE);
    assert!(
        r.end.is_some(),
        "{}: the follower ends too: {r:?}",
        shell.name
    );
    assert!(!marker.exists(), "{}", shell.name);
}

#[test]
fn stop_ends_the_whole_step_and_a_step_stopped_before_it_started_never_starts() {
    for shell in shells() {
        // A step whose children outlive a TERM to the shell alone; a unique sleep to find it.
        let secs = 40 + (std::process::id() % 1000);
        let needle = format!("sleep {secs}.123");
        stop_while_running(
            &shell,
            &format!("trap '' TERM\nsh -c '{needle}' &\n{needle} && echo late > '{{marker}}'\n"),
            || processes_with(&needle).len() >= 2,
            &needle,
        );

        // Stopped before any follower started it: it never starts.
        let step = Step::new("");
        let marker = step.path("marker");
        step.write(&format!("echo ran > '{}'\n", marker.display()));
        let stopped = shell.run(&step.stop());
        assert_eq!(stopped.out, b"not started\n", "{}", shell.name);
        let r = shell.run(&step.follow(Mode::Start, 0, 0));
        assert!(
            matches!(r.end, Some(End::Exit { code: 130, .. })),
            "{}: {r:?}",
            shell.name
        );
        assert!(!marker.exists(), "{}", shell.name);
    }
}

#[test]
fn what_a_step_forks_after_the_term_is_stopped_too() {
    for shell in shells() {
        // The shell and its children ignore TERM; the first sleep ends by itself within the
        // stop's 2 s grace, and only then does the shell fork the second: a child born after
        // the stop looked at the tree.
        let secs = 40 + (std::process::id() % 1000);
        let first = format!("sleep 1.5{secs}");
        let second = format!("sleep {secs}.654");
        stop_while_running(
            &shell,
            &format!("trap '' TERM\n{first}\n{second} && echo late > '{{marker}}'\n"),
            || !processes_with(&first).is_empty(),
            &second,
        );
    }
}

#[test]
fn attached_records_the_step_shell_for_stop() {
    for shell in shells() {
        let step = Step::new("echo attached; exit 4\n");
        let argv = detached::attached_argv_in(
            &step.id,
            &step.script.display().to_string(),
            &step.base_refs(),
        );
        let out = shell.command(&argv).output().unwrap();
        assert_eq!(
            (out.status.code(), out.stdout.as_slice()),
            (Some(4), b"attached\n".as_slice()),
            "{}",
            shell.name
        );
        let pid = std::fs::read_to_string(step.dir().join("pid")).unwrap();
        assert!(pid.ends_with(" tree\n"), "{pid:?}");
    }
}

#[test]
fn the_scanner_finds_the_tags_at_every_split() {
    let stream: &[u8] =
        b"\0k8s-hook-step-follow N started\nerr \0 k8s\n\0k8s-hook-step-endish\0\0k8s-hook-step-end N exit 7 10 27\n";
    let want_err: &[u8] = b"err \0 k8s\n\0k8s-hook-step-endish\0";
    for a in 0..stream.len() {
        for b in a..stream.len() {
            let mut s = Scanner::new("N");
            let mut err = Vec::new();
            for part in [&stream[..a], &stream[a..b], &stream[b..]] {
                s.feed(part, &mut err);
            }
            assert_eq!(err, want_err, "split at {a}, {b}");
            assert_eq!(s.following(), Some("started"));
            assert_eq!(
                s.end(),
                Some(&End::Exit {
                    code: 7,
                    out: 10,
                    err: 27
                })
            );
        }
    }
}

#[test]
fn the_scanner_keeps_complaints_and_lost_tags() {
    let mut s = Scanner::new("N");
    let mut err = Vec::new();
    s.feed(b"sh: dd: not found\n", &mut err);
    s.feed(b"\0k8s-hook-step-end N lost cannot seek\n", &mut err);
    assert!(err.is_empty());
    assert_eq!(s.following(), None);
    assert_eq!(s.end(), Some(&End::Lost("cannot seek".into())));
    assert_eq!(s.complaint(), "sh: dd: not found");
    // Another nonce's tags are step output.
    let mut s = Scanner::new("N");
    let mut err = Vec::new();
    s.feed(
        b"\0k8s-hook-step-follow N following\n\0k8s-hook-step-end M exit 0 0 0\n",
        &mut err,
    );
    assert_eq!(err, b"\0k8s-hook-step-end M exit 0 0 0\n");
    assert_eq!(s.end(), None);
    // A partial marker at the end is held back until it is resolved.
    let mut s = Scanner::new("N");
    let mut err = Vec::new();
    s.feed(b"\0k8s-hook-step-follow N following\nabc\0k8s", &mut err);
    assert_eq!(err, b"abc");
    s.feed(b"!", &mut err);
    assert_eq!(err, b"abc\0k8s!");
}

#[test]
fn snapshot_of_the_programs() {
    let f = Follow {
        id: "0123abcd",
        script: "/__w/_temp/k8s-hook-0123abcd.sh",
        nonce: "feedbeef",
        mode: Mode::Start,
        out: 0,
        err: 42,
    };
    let show = |argv: Vec<String>| argv.join("\n--- next argument ---\n");
    insta::assert_snapshot!("follow", show(detached::follow_argv(&f)));
    insta::assert_snapshot!("stop", show(detached::stop_argv("0123abcd")));
    insta::assert_snapshot!(
        "attached",
        show(detached::attached_argv("0123abcd", f.script))
    );
}
