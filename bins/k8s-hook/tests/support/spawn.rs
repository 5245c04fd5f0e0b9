//! Starts the hook the runner's way without waiting for it, so a test can run several commands
//! at once (background steps), read a step's output while it runs, or signal the process
//! (`testenv::runner::Started`).

use super::{BIN, Run, Runner};
use serde_json::Value;
use std::ffi::OsString;
use std::path::PathBuf;
pub use testenv::runner::{FILE_COMMANDS, Started};
use testenv::runner::{FileCommands, Script};

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
    let argv = program.argv();
    let mut cmd = runner.clean_command(&argv[0], std::env::var_os("PATH").unwrap_or_default());
    cmd.args(&argv[1..]).envs(runner.env());
    testenv::runner::start(cmd, &runner.responses(), command, &args, state).unwrap()
}

/// A script step started the runner's way: the script in `_temp/<id>.sh`, fresh empty
/// file-command files, `sh -e` in the job container.
pub struct ScriptStep {
    pub id: String,
    script: Script,
    files: FileCommands,
    pub started: Started,
}

impl ScriptStep {
    pub fn start(runner: &Runner, program: &Program, state: &Value, script: &str) -> Self {
        let (script, files, args) = runner.script_files(script, &[], &[], "/__w/repo/repo");
        let started = start(runner, program, "run_script_step", args, Some(state));
        Self {
            id: script.id.clone(),
            script,
            files,
            started,
        }
    }

    /// Waits for the hook; returns its run and the content of the step's file commands (read
    /// as the runner reads them, once the hook has exited).
    pub fn finish(self) -> (Run, Vec<String>) {
        let run = self.started.finish();
        let files = FILE_COMMANDS
            .iter()
            .map(|(file, _)| self.files.read(file))
            .collect();
        self.script.remove();
        (run, files)
    }
}
