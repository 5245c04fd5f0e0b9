//! Detached script steps: the POSIX `sh` programs that start a step in the background of the job
//! container and follow its output from a byte offset, the program that stops it, and the
//! parser of what the follower sends back. Pure: the effects are in `script_run.rs`.
//!
//! A step lives in `<base>/<id>/` (the first writable of [`BASES`]): `out` and `err` (the
//! step's stdout and stderr, kept apart), `pid` (`<pid> group|tree <start time>`), `exit` (the
//! exit code, written in one `write` when the step ends), `follower` (the PID of the newest
//! follower; older ones stop) and each follower's `dd` statistics (`.o<pid>`, `.e<pid>`: their
//! first line says whether the last copy moved anything, so a follower that keeps finding data
//! does not sleep). Starting is idempotent: only the exec whose `mkdir <id>` succeeds
//! starts the step, so a retried start never runs it twice.
//!
//! A follower writes the step's stdout on its stdout and the step's stderr on its stderr, each
//! from the offset the hook asks for, and frames the stderr stream with two tags that start with
//! a NUL byte and carry a per-step nonce, so no step output can be taken for them:
//! `\0k8s-hook-step-follow <nonce> started|following\n` first (the step runs), and when the step
//! has ended and both files have been sent to their end,
//! `\0k8s-hook-step-end <nonce> exit <code> <stdout bytes> <stderr bytes>\n`
//! (or `… lost <reason>\n` when the step can no longer end normally).

/// Where step directories are made, in order of preference: on the work volume (it survives a
/// restart of the job container), else in the container's own `/tmp`.
pub const BASES: [&str; 2] = ["/__w/.k8s-hook-steps", "/tmp/.k8s-hook-steps"];

/// `$0` of the follower in the job container (visible in `ps`; kubesim's stream-drop knob
/// matches it in tests).
pub const FOLLOWER: &str = "k8s-hook-step-follow";
/// `$0` of the program that stops a step.
pub const STOPPER: &str = "k8s-hook-step-stop";
/// `$0` of the shell that waits for a detached step and writes its exit code.
pub const WAITER: &str = "k8s-hook-step";

/// Starts the step unless it was started, then follows it.
///
/// `$1` id, `$2` the step script, `$3` nonce, `$4` `start` or `follow`, `$5` stdout offset,
/// `$6` stderr offset, then the candidate bases.
const FOLLOW: &str = r#"id=$1 s=$2 n=$3 mode=$4 oo=$5 eo=$6; shift 6; bases="$*"
tag() { printf '\000k8s-hook-step-%s %s %s\n' "$1" "$n" "$2" >&2; }
lost() { tag end "lost $*"; exit 0; }
nap() { sleep "$w" 2>/dev/null || { w=1; sleep 1; }; }
slower() { case $w in 0.005) w=0.01;; 0.01) w=0.02;; 0.02) w=0.05;; 0.05) w=0.1;; 0.1) w=0.2;; esac; }
stat() { l=; read -r l 2>/dev/null <"/proc/$1/stat" || return 1; set -- ${l##*") "}; st=$1; shift 19; t=$1; }
size() { set -- $(ls -ln "$1"); echo "$5"; }
send() {
  dd bs=131072 <&3 2>"$d/.o$$" && dd bs=131072 <&4 >&2 2>"$d/.e$$"
}
moved() {
  a= b=; read -r a _ 2>/dev/null <"$d/.o$$"; read -r b _ 2>/dev/null <"$d/.e$$"
  [ "$a$b" != 0+00+0 ]
}
alive() {
  if stat "$p"; then case $st in Z*|X*) return 1;; esac; [ "$ts" = 0 ] || [ "$t" = "$ts" ]; return; fi
  [ -d /proc/self ] && return 1
  kill -0 "$p" 2>/dev/null
}
d= started=following w=0.01
for b in "$@"; do [ -d "$b/$id" ] && { d=$b/$id; break; }; done
if [ -z "$d" ] && [ "$mode" = start ]; then
  for b in "$@"; do
    mkdir -p "$b" 2>/dev/null && [ -w "$b" ] || continue
    if mkdir "$b/$id" 2>/dev/null; then
      d=$b/$id
      for f in "$b"/*; do [ "$f" != "$d" ] && { [ -f "$f/exit" ] || [ ! -f "$f/out" ]; } && rm -rf "$f"; done
      true >"$d/out" && true >"$d/err" || lost "cannot create the step's log files in $d"
      if command -v setsid >/dev/null 2>&1; then g=group; set -- setsid; else g=tree; set --; fi
      "$@" sh -c 'sh -e "$1" >>"$2/out" 2>>"$2/err" </dev/null; echo $? >"$2/exit"' @WAITER@ "$s" "$d" </dev/null >/dev/null 2>&1 &
      stat $! || t=0
      echo "$! $g $t" >"$d/pid"
      started=started
    elif [ -d "$b/$id" ]; then d=$b/$id
    fi
    break
  done
fi
[ -n "$d" ] || lost "the step's directory $id is in none of $bases"
i=0; while [ ! -e "$d/err" ]; do i=$((i+1)); [ $i -gt 150 ] && lost "the step's log files never appeared in $d"; nap; slower; done
exec 3<"$d/out" 4<"$d/err"
if [ "$oo" -gt 0 ]; then dd bs=1 skip="$oo" count=0 <&3 2>/dev/null || lost "cannot seek the step's stdout to byte $oo"; fi
if [ "$eo" -gt 0 ]; then dd bs=1 skip="$eo" count=0 <&4 2>/dev/null || lost "cannot seek the step's stderr to byte $eo"; fi
echo $$ >"$d/follower"
tag follow "$started"
w=0.005 i=0
while :; do
  if [ -s "$d/exit" ]; then
    send || exit 0
    read -r c <"$d/exit"
    [ "$started" = started ] && wait
    tag end "exit $c $(size "$d/out") $(size "$d/err")"
    exit 0
  fi
  f=; read -r f 2>/dev/null <"$d/follower"; [ "$f" = $$ ] || exit 0
  send || exit 0
  if moved; then w=0.005; continue; fi
  if read -r p g ts 2>/dev/null <"$d/pid"; then
    alive || { [ -s "$d/exit" ] && continue; lost "the step's process $p ended without an exit status (the container was restarted or the process was killed)"; }
  else
    i=$((i+1)); [ $i -gt 150 ] && lost "the step did not start in $d"
  fi
  nap; slower
done
"#;

/// Stops a step: TERM to its process group (or its process tree without `setsid`), KILL to
/// what is left after 2 s. Without a group the tree (the step's processes and every descendant,
/// even one whose parent died) is looked at again while waiting and, frozen with STOP, just
/// before the KILL: a step shell that ignores TERM may fork after the TERM, and those children
/// must not outlive the stop. A step that has not started yet never will (its directory is taken
/// with an exit code of 130). `$1` id, then the candidate bases.
const STOP: &str = r#"id=$1; shift
nap() { sleep "$1" 2>/dev/null || sleep 1; }
stat() { l=; read -r l 2>/dev/null <"/proc/$1/stat" || return 1; set -- ${l##*") "}; st=$1 pp=$2 pg=$3; }
live() { for x in "$@"; do stat "$x" && case $st in Z*|X*) ;; *) echo "$x";; esac; done; }
pids() { for f in /proc/[0-9]*/stat; do x=${f#/proc/}; echo "${x%/stat}"; done; }
members() { for x in $(pids); do stat "$x" && [ "$pg" = "$p" ] && case $st in Z*|X*) ;; *) echo "$x";; esac; done; }
tree() {
  all=; for x in $(pids); do stat "$x" && all="$all$x:$pp "; done
  seen=" $(echo $*) "
  while [ $# -gt 0 ]; do
    c=$1; shift
    for e in $all; do
      [ "${e#*:}" = "$c" ] || continue
      case $seen in *" ${e%%:*} "*) ;; *) seen="$seen${e%%:*} "; set -- "$@" "${e%%:*}";; esac
    done
  done
  live $seen
}
d=
for b in "$@"; do [ -d "$b/$id" ] && { d=$b/$id; break; }; done
if [ -z "$d" ]; then
  for b in "$@"; do
    mkdir -p "$b" 2>/dev/null && [ -w "$b" ] || continue
    mkdir "$b/$id" 2>/dev/null && { true >"$b/$id/out"; true >"$b/$id/err"; echo 130 >"$b/$id/exit"; echo "not started"; exit 0; }
    d=$b/$id; break
  done
fi
[ -n "$d" ] || { echo "no step directory"; exit 0; }
i=0
until read -r p g ts 2>/dev/null <"$d/pid"; do
  [ -s "$d/exit" ] && { echo "already ended"; exit 0; }
  i=$((i+1)); [ $i -gt 100 ] && { echo "no pid"; exit 0; }; nap 0.02
done
if [ "$g" = group ]; then
  kill -TERM -"$p" 2>/dev/null || { echo "already ended"; exit 0; }
  i=0; while [ -n "$(members)" ]; do
    i=$((i+1)); [ $i -gt 20 ] && { kill -KILL -"$p" 2>/dev/null; echo "killed group $p"; exit 0; }; nap 0.1
  done
  echo "terminated group $p"
else
  t=$(tree "$p"); [ -n "$t" ] || { echo "already ended"; exit 0; }
  first=$t
  kill -TERM $t 2>/dev/null
  i=0; while t=$(tree $t); [ -n "$t" ]; do
    i=$((i+1)); [ $i -gt 20 ] && { kill -STOP $t 2>/dev/null; kill -KILL $(tree $t) 2>/dev/null; echo "killed $first"; exit 0; }; nap 0.1
  done
  echo "terminated $first"
fi
"#;

/// Runs the step attached to the exec (resuming off): records the step shell's PID, so that a
/// cancellation can stop its process tree, then becomes the step. `$1` id, `$2` the step
/// script, then the candidate bases.
const ATTACHED: &str = r#"id=$1 s=$2; shift 2
for b in "$@"; do mkdir -p "$b/$id" 2>/dev/null && echo "$$ tree" >"$b/$id/pid" 2>/dev/null && break; done
exec sh -e "$s"
"#;

/// The argv of `program` with these arguments and candidate bases.
fn sh(
    program: &str,
    argv0: &str,
    args: impl IntoIterator<Item = String>,
    bases: &[&str],
) -> Vec<String> {
    let mut argv = vec!["sh".into(), "-c".into(), program.into(), argv0.into()];
    argv.extend(args);
    argv.extend(bases.iter().map(|b| (*b).to_owned()));
    argv
}

/// Whether a follower may start the step or only follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Start it unless its directory exists (nothing confirmed it started yet).
    Start,
    /// A follower confirmed the step started: never start it again.
    Follow,
}

/// Where a step is and what to ask of its follower.
#[derive(Debug, Clone, Copy)]
pub struct Follow<'a> {
    /// The step's id (its directory's name).
    pub id: &'a str,
    /// The step script's path in the pod.
    pub script: &'a str,
    /// The nonce of the tags.
    pub nonce: &'a str,
    /// Start or only follow.
    pub mode: Mode,
    /// Bytes of stdout already received.
    pub out: u64,
    /// Bytes of stderr already received.
    pub err: u64,
}

/// The argv of a follower.
pub fn follow_argv(f: &Follow<'_>) -> Vec<String> {
    follow_argv_in(f, &BASES)
}

pub(crate) fn follow_argv_in(f: &Follow<'_>, bases: &[&str]) -> Vec<String> {
    let mode = match f.mode {
        Mode::Start => "start",
        Mode::Follow => "follow",
    };
    let args = [f.id, f.script, f.nonce, mode].map(str::to_owned);
    let offsets = [f.out.to_string(), f.err.to_string()];
    let program = FOLLOW.replace("@WAITER@", WAITER);
    sh(&program, FOLLOWER, args.into_iter().chain(offsets), bases)
}

/// The argv that stops step `id`; it prints one line saying what it did.
pub fn stop_argv(id: &str) -> Vec<String> {
    stop_argv_in(id, &BASES)
}

pub(crate) fn stop_argv_in(id: &str, bases: &[&str]) -> Vec<String> {
    sh(STOP, STOPPER, [id.to_owned()], bases)
}

/// The argv of an attached step (no resuming).
pub fn attached_argv(id: &str, script: &str) -> Vec<String> {
    attached_argv_in(id, script, &BASES)
}

pub(crate) fn attached_argv_in(id: &str, script: &str, bases: &[&str]) -> Vec<String> {
    sh(ATTACHED, WAITER, [id.to_owned(), script.to_owned()], bases)
}

/// How a step ended, as its follower reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The step exited with `code` after writing `out` bytes to stdout and `err` to stderr.
    Exit {
        /// The exit code.
        code: i32,
        /// Total bytes of stdout.
        out: u64,
        /// Total bytes of stderr.
        err: u64,
    },
    /// The step can no longer end normally (its process vanished, its files are gone).
    Lost(String),
}

fn marker(kind: &str, nonce: &str) -> Vec<u8> {
    format!("\0k8s-hook-step-{kind} {nonce} ").into_bytes()
}

/// The longest a tag line may be.
const MAX_TAG: usize = 4096;

#[derive(Debug)]
enum State {
    /// Before the `follow` tag: anything else is the follower's own complaint.
    Header(Vec<u8>),
    /// Step stderr; `held` may be the start of the end tag.
    Body { held: Vec<u8> },
    /// Inside the end tag.
    Tail(Vec<u8>),
    /// The end tag is complete.
    Done(End),
}

/// Splits one follower's stderr stream into the step's stderr and the tags.
#[derive(Debug)]
pub struct Scanner {
    header: Vec<u8>,
    end: Vec<u8>,
    state: State,
    following: Option<String>,
    junk: Vec<u8>,
}

impl Scanner {
    /// A scanner for a follower started with `nonce`.
    pub fn new(nonce: &str) -> Self {
        Self {
            header: marker("follow", nonce),
            end: marker("end", nonce),
            state: State::Header(Vec::new()),
            following: None,
            junk: Vec::new(),
        }
    }

    /// Feeds a chunk of the follower's stderr; appends the step's stderr bytes to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut data = data.to_vec();
        loop {
            match &mut self.state {
                State::Header(buf) => {
                    buf.extend_from_slice(&data);
                    let Some(nl) = buf.iter().position(|b| *b == b'\n') else {
                        if buf.len() > MAX_TAG {
                            let b = std::mem::take(buf);
                            self.keep_junk(&b);
                        }
                        return;
                    };
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    let rest = std::mem::take(buf);
                    let line = &line[..line.len() - 1];
                    if let Some(word) = line.strip_prefix(self.header.as_slice()) {
                        self.following = Some(String::from_utf8_lossy(word).into_owned());
                        self.state = State::Body { held: Vec::new() };
                    } else if let Some(tag) = line.strip_prefix(self.end.as_slice()) {
                        self.state = State::Done(parse_end(tag));
                        return;
                    } else {
                        self.keep_junk(line);
                    }
                    data = rest;
                }
                State::Body { held } => {
                    let mut cur = std::mem::take(held);
                    cur.extend_from_slice(&data);
                    if let Some(at) = find(&cur, &self.end) {
                        out.extend_from_slice(&cur[..at]);
                        let rest = cur[at + self.end.len()..].to_vec();
                        self.state = State::Tail(Vec::new());
                        data = rest;
                        continue;
                    }
                    let keep = partial_suffix(&cur, &self.end);
                    out.extend_from_slice(&cur[..cur.len() - keep]);
                    *held = cur[cur.len() - keep..].to_vec();
                    return;
                }
                State::Tail(buf) => {
                    buf.extend_from_slice(&data);
                    if let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                        let end = parse_end(&buf[..nl]);
                        self.state = State::Done(end);
                    } else if buf.len() > MAX_TAG {
                        self.state = State::Done(End::Lost("an unreadable end tag".into()));
                    }
                    return;
                }
                State::Done(_) => return,
            }
        }
    }

    fn keep_junk(&mut self, line: &[u8]) {
        let room = MAX_TAG.saturating_sub(self.junk.len());
        if !self.junk.is_empty() && room > 0 {
            self.junk.push(b' ');
        }
        self.junk
            .extend_from_slice(&line[..line.len().min(room.saturating_sub(1))]);
    }

    /// The `follow` tag's word (`started` or `following`), once it arrived: the step runs.
    pub fn following(&self) -> Option<&str> {
        self.following.as_deref()
    }

    /// The end tag, once complete.
    pub fn end(&self) -> Option<&End> {
        match &self.state {
            State::Done(end) => Some(end),
            _ => None,
        }
    }

    /// What the follower printed before its first tag (its own error messages), trimmed.
    pub fn complaint(&self) -> String {
        let mut all = self.junk.clone();
        if let State::Header(buf) = &self.state {
            all.extend_from_slice(buf);
        }
        String::from_utf8_lossy(&all)
            .replace('\0', "")
            .trim()
            .to_owned()
    }
}

fn parse_end(tag: &[u8]) -> End {
    let text = String::from_utf8_lossy(tag);
    let mut words = text.split_whitespace();
    match words.next() {
        Some("exit") => {
            let nums: Vec<Option<i64>> = words.map(|w| w.parse().ok()).collect();
            match nums.as_slice() {
                [Some(code), Some(out), Some(err)] => End::Exit {
                    code: i32::try_from(*code).unwrap_or(i32::MAX),
                    out: u64::try_from(*out).unwrap_or(0),
                    err: u64::try_from(*err).unwrap_or(0),
                },
                _ => End::Lost(format!("an unreadable exit status ({})", text.trim())),
            }
        }
        Some("lost") => End::Lost(text.trim().trim_start_matches("lost").trim().to_owned()),
        _ => End::Lost(format!("an unreadable end tag ({})", text.trim())),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(i) = hay[from..].iter().position(|b| *b == first) {
        let at = from + i;
        if hay[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The length of the longest suffix of `hay` that is a proper prefix of `needle`.
fn partial_suffix(hay: &[u8], needle: &[u8]) -> usize {
    let first = needle[0];
    let start = hay.len().saturating_sub(needle.len() - 1);
    (start..hay.len())
        .find(|&i| hay[i] == first && needle.starts_with(&hay[i..]))
        .map_or(0, |i| hay.len() - i)
}
