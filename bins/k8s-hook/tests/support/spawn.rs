//! Starts the hook the runner's way without waiting for it, so a test can run several commands
//! at once (background steps), read a step's output while it runs, or signal the process.

use super::{BIN, Run, Runner};
use serde_json::{Value, json};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

/// A hook process that is running.
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
    /// The process id of what the runner started (the binary, or node for `index.js`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`INT`, `TERM`) to the process, as the runner does on cancellation.
    pub fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        self.signalled = Some(Instant::now());
    }

    /// Reads stdout up to and including the line `line`; panics if stdout ends first.
    pub fn wait_for_line(&mut self, line: &str) {
        loop {
            let mut next = String::new();
            let n = self.stdout.read_line(&mut next).unwrap();
            self.read.push_str(&next);
            assert!(n > 0, "stdout ended before {line:?}: {:?}", self.read);
            if next.trim_end_matches('\n') == line {
                return;
            }
        }
    }

    /// Waits for the process and collects what it did; `elapsed` counts from the start, or from
    /// the signal if one was sent.
    pub fn finish(mut self) -> Run {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        self.read.push_str(&rest);
        let status = self.child.wait().unwrap();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: self.read,
            stderr: self.stderr.join().unwrap(),
            response: std::fs::read_to_string(&self.response).unwrap_or_default(),
            elapsed: self.signalled.unwrap_or(self.start).elapsed(),
        };
        let _ = std::fs::remove_file(&self.response);
        run
    }
}

/// The program the runner starts: the binary itself, or a launcher.
#[derive(Debug, Clone)]
pub enum Program {
    /// The binary, directly.
    Binary,
    /// `node <index.js>`.
    Node(PathBuf),
}

impl Program {
    fn argv(&self) -> Vec<OsString> {
        match self {
            Self::Binary => vec![BIN.into()],
            Self::Node(js) => vec!["node".into(), js.into()],
        }
    }
}

/// Starts `command` with a fresh response file, one JSON line on stdin, cwd = the workspace and
/// the runner's environment.
pub fn start(
    runner: &Runner,
    program: &Program,
    command: &str,
    args: Value,
    state: Option<&Value>,
) -> Started {
    let response = runner
        .temp()
        .join("_runner_hook_responses")
        .join(format!("{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&response, "").unwrap();
    let line = json!({
        "command": command,
        "responseFile": response,
        "args": args,
        "state": state.cloned().unwrap_or(Value::Null),
    })
    .to_string();
    let argv = program.argv();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(runner.workspace())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in runner.env() {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
    drop(stdin);
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    Started {
        stdout: BufReader::new(child.stdout.take().unwrap()),
        child,
        read: String::new(),
        stderr,
        response,
        start,
        signalled: None,
    }
}

/// The runner's four file commands of a script step and their variables.
pub const FILE_COMMANDS: [(&str, &str); 4] = [
    ("set_output", "GITHUB_OUTPUT"),
    ("set_env", "GITHUB_ENV"),
    ("add_path", "GITHUB_PATH"),
    ("step_summary", "GITHUB_STEP_SUMMARY"),
];

/// A script step started the runner's way: the script in `_temp/<id>.sh`, fresh empty
/// file-command files, `sh -e` in the job container.
pub struct ScriptStep {
    pub id: String,
    pub started: Started,
}

impl ScriptStep {
    pub fn start(runner: &Runner, program: &Program, state: &Value, script: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        std::fs::write(runner.temp().join(format!("{id}.sh")), script).unwrap();
        let fc = runner.temp().join("_runner_file_commands");
        let mut vars = serde_json::Map::new();
        for (file, var) in FILE_COMMANDS {
            std::fs::write(fc.join(format!("{file}_{id}")), "").unwrap();
            vars.insert(
                var.into(),
                json!(format!("/__w/_temp/_runner_file_commands/{file}_{id}")),
            );
        }
        vars.insert("GITHUB_WORKSPACE".into(), json!("/__w/repo/repo"));
        vars.insert("CI".into(), json!("true"));
        let args = json!({
            "entryPoint": "sh",
            "entryPointArgs": ["-e", format!("/__w/_temp/{id}.sh")],
            "environmentVariables": vars,
            "prependPath": [],
            "workingDirectory": "/__w/repo/repo",
        });
        let started = start(runner, program, "run_script_step", args, Some(state));
        Self { id, started }
    }

    /// Waits for the hook; returns its run and the content of the step's file commands (read
    /// as the runner reads them, once the hook has exited).
    pub fn finish(self, runner: &Runner) -> (Run, Vec<String>) {
        let run = self.started.finish();
        let fc = runner.temp().join("_runner_file_commands");
        let files = FILE_COMMANDS
            .iter()
            .map(|(file, _)| {
                std::fs::read_to_string(fc.join(format!("{file}_{}", self.id))).unwrap_or_default()
            })
            .collect();
        let _ = std::fs::remove_file(runner.temp().join(format!("{}.sh", self.id)));
        (run, files)
    }
}
