//! One hook invocation the runner's way, and what it did.

use serde_json::{Value, json};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// One hook invocation's result.
#[derive(Debug)]
pub struct Run {
    /// The exit code (-1 when a signal killed the process).
    pub code: i32,
    /// Stdout, as far as it was kept ([`Started::count_stdout`] keeps none).
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
    /// The response file's content after the run ("" when the hook wrote nothing).
    pub response: String,
    /// From the start, or from the signal if one was sent, to the exit.
    pub elapsed: Duration,
}

impl Run {
    /// The response as JSON; panics (with the run) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.response).unwrap_or_else(|e| {
            panic!("response is not JSON ({e}): {:?}\n{self:#?}", self.response)
        })
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "hook failed:\n{self:#?}");
        self
    }

    /// The `::error::` lines (stderr's, then stdout's).
    pub fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .chain(self.stdout.lines())
            .filter(|l| l.starts_with("::error::"))
            .collect()
    }

    /// Asserts that the hook exited `code` with exactly one `::error::` line; returns it.
    #[track_caller]
    pub fn one_error(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "{self:#?}");
        let errors = self.errors();
        assert_eq!(errors.len(), 1, "{self:#?}");
        errors[0]
    }

    /// The `::warning::` lines on stderr.
    pub fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("::warning::"))
            .collect()
    }
}

/// The one line the runner writes on the hook's stdin (newline-terminated).
pub fn input_line(command: &str, response: &Path, args: &Value, state: Option<&Value>) -> String {
    let line = json!({
        "command": command,
        "responseFile": response,
        "args": args,
        "state": state.cloned().unwrap_or(Value::Null),
    });
    format!("{line}\n")
}

/// Starts `cmd` with `command` the runner's way: a fresh empty response file in `responses`,
/// one JSON line on stdin (then closed), stdout and stderr piped.
pub fn start(
    cmd: Command,
    responses: &Path,
    command: &str,
    args: &Value,
    state: Option<&Value>,
) -> io::Result<Started> {
    let response = response_file(responses, command)?;
    let line = input_line(command, &response, args, state);
    start_with_stdin(cmd, response, line.as_bytes())
}

/// [`start_with_stdin`] with stdout and stderr left as `cmd` has them (the demo shows the job
/// log as it comes), then waits: the [`Run`] has an empty stdout and stderr.
pub fn call_inherited(cmd: Command, response: PathBuf, stdin: &[u8]) -> io::Result<Run> {
    let (mut child, start) = spawn_with_stdin(cmd, stdin)?;
    let status = child.wait()?;
    let elapsed = start.elapsed();
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::new(),
        response: std::fs::read_to_string(&response).unwrap_or_default(),
        elapsed,
    };
    let _ = std::fs::remove_file(&response);
    Ok(run)
}

/// A fresh empty response file in `responses` for `command`, as the runner makes one before
/// each command.
pub fn response_file(responses: &Path, command: &str) -> io::Result<PathBuf> {
    let response = responses.join(format!("{command}-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&response, "")?;
    Ok(response)
}

/// Spawns `cmd` with `stdin` written to it and closed; returns it and when it started.
fn spawn_with_stdin(mut cmd: Command, stdin: &[u8]) -> io::Result<(Child, Instant)> {
    cmd.stdin(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let mut input = child.stdin.take().expect("stdin is piped");
    match input.write_all(stdin) {
        // A hook that exits without reading all of its input (a missing variable, `--version`)
        // is the run's to report, not the start's.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    drop(input);
    Ok((child, start))
}

/// Starts `cmd` with `stdin` as its whole input and `response` as the response file (which the
/// caller created), stdout and stderr piped.
pub fn start_with_stdin(mut cmd: Command, response: PathBuf, stdin: &[u8]) -> io::Result<Started> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let (mut child, start) = spawn_with_stdin(cmd, stdin)?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    Ok(Started {
        stdout: BufReader::new(child.stdout.take().expect("stdout is piped")),
        child,
        read: String::new(),
        stderr,
        response,
        start,
        signalled: None,
    })
}

/// A hook process that is running.
#[derive(Debug)]
pub struct Started {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// What was read from stdout so far.
    read: String,
    stderr: std::thread::JoinHandle<String>,
    response: PathBuf,
    start: Instant,
    /// When [`Started::signal`] was called, if it was.
    signalled: Option<Instant>,
}

impl Started {
    /// The process id of what was started (the binary, or node for `index.js`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The response file.
    pub fn response(&self) -> &Path {
        &self.response
    }

    /// Sends `signal` (`INT`, `TERM`) to the process, as the runner does on cancellation.
    #[track_caller]
    pub fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", self.child.id());
        self.signalled = Some(Instant::now());
    }

    /// Reads stdout up to and including the line `line`; panics if stdout ends first.
    #[track_caller]
    pub fn wait_for_line(&mut self, line: &str) {
        loop {
            let mut next = String::new();
            let n = self.stdout.read_line(&mut next).expect("reading stdout");
            self.read.push_str(&next);
            assert!(n > 0, "stdout ended before {line:?}: {:?}", self.read);
            if next.trim_end_matches('\n') == line {
                return;
            }
        }
    }

    /// Reads stdout to its end without keeping it; returns how many bytes it held.
    pub fn count_stdout(&mut self) -> io::Result<u64> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        loop {
            match self.stdout.read(&mut buf)? {
                0 => return Ok(n),
                k => n += k as u64,
            }
        }
    }

    /// Waits for the process and collects what it did; the response file is removed.
    pub fn finish(self) -> Run {
        self.wait(None)
    }

    /// [`Started::finish`], failing the test (after killing the process) if it still runs
    /// `liveness` after the start or the signal: a generous bound that only catches a hang.
    #[track_caller]
    pub fn finish_within(self, liveness: Duration) -> Run {
        self.wait(Some(liveness))
    }

    #[track_caller]
    fn wait(mut self, liveness: Option<Duration>) -> Run {
        let mut stdout = self.stdout;
        let mut read = self.read;
        let reader = std::thread::spawn(move || {
            let _ = stdout.read_to_string(&mut read);
            read
        });
        let from = self.signalled.unwrap_or(self.start);
        let status = match liveness {
            None => self.child.wait().expect("waiting for the hook"),
            Some(bound) => loop {
                if let Some(status) = self.child.try_wait().expect("waiting for the hook") {
                    break status;
                }
                if from.elapsed() > bound {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "the hook still ran {bound:?} after the start or the signal; stderr:\n{}",
                        self.stderr.join().unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            },
        };
        let elapsed = from.elapsed();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: reader.join().expect("stdout reader"),
            stderr: self.stderr.join().expect("stderr reader"),
            response: std::fs::read_to_string(&self.response).unwrap_or_default(),
            elapsed,
        };
        let _ = std::fs::remove_file(&self.response);
        run
    }
}
