//! The runner's side of the container-hook protocol, for the tests, the benchmarks and the demo:
//! a runner-style `_work` tree ([`WorkTree`]), the runner's description of a container
//! ([`container`]), the file-command files of a step ([`FileCommands`]), and one hook invocation
//! the way the runner makes it ([`start`]: a pre-created empty response file, one JSON line on
//! stdin, then [`Started::finish`] into a [`Run`]).
//!
//! Files and processes only: nothing here needs a Docker Engine, so the pure tier (the
//! protocol tests of both binaries) uses it too.
//!
//! ```no_run
//! # fn demo(hook: &std::path::Path) -> std::io::Result<()> {
//! let tree = testenv::runner::WorkTree::in_temp_dir("demo-", "repo")?;
//! let cmd = tree.clean_command(hook, "/usr/bin:/bin");
//! let args = serde_json::json!({});
//! let run = testenv::runner::start(cmd, &tree.responses(), "cleanup_job", &args, None)?.finish();
//! assert_eq!(run.code, 0);
//! # Ok(()) }
//! ```

mod started;

pub use started::{
    Run, Started, call_inherited, input_line, response_file, start, start_with_stdin,
};

use serde_json::{Map, Value, json};
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The runner's four file commands of a step: the file's prefix and the variable naming it.
pub const FILE_COMMANDS: [(&str, &str); 4] = [
    ("set_output", "GITHUB_OUTPUT"),
    ("set_env", "GITHUB_ENV"),
    ("add_path", "GITHUB_PATH"),
    ("step_summary", "GITHUB_STEP_SUMMARY"),
];

/// The prefixes of all four file commands.
pub const ALL_FILE_COMMANDS: [&str; 4] = ["set_output", "set_env", "add_path", "step_summary"];

/// Where a script step's file commands are, seen from the job container.
pub const JOB_FILE_COMMANDS: &str = "/__w/_temp/_runner_file_commands";
/// Where a container step's file commands are, seen from the step's container.
pub const STEP_FILE_COMMANDS: &str = "/github/file_commands";

/// A runner install's folders: `<root>/_work` with the runner's layout below it
/// (`<repo>/<repo>` the workspace, `_temp` with the hook responses, file commands, `_github_home`
/// and `_github_workflow`, `_actions`, `_tool`) and `<root>/externals/node20/bin`.
#[derive(Debug)]
pub struct WorkTree {
    root: PathBuf,
    repo: String,
    /// The temporary folder this tree lives in, removed on drop ([`WorkTree::in_temp_dir`]).
    _dir: Option<tempfile::TempDir>,
}

impl WorkTree {
    /// Creates the tree under `root` (created if missing) for repository `repo`.
    pub fn create(root: &Path, repo: &str) -> io::Result<Self> {
        Self::build(root.to_owned(), repo, None)
    }

    /// Creates the tree in a fresh temporary folder named `<prefix>…`, removed on drop.
    pub fn in_temp_dir(prefix: &str, repo: &str) -> io::Result<Self> {
        Self::in_dir(tempfile::Builder::new().prefix(prefix).tempdir()?, repo)
    }

    /// Creates the tree in `dir`, which it then owns (and removes on drop).
    pub fn in_dir(dir: tempfile::TempDir, repo: &str) -> io::Result<Self> {
        Self::build(dir.path().to_owned(), repo, Some(dir))
    }

    fn build(root: PathBuf, repo: &str, dir: Option<tempfile::TempDir>) -> io::Result<Self> {
        let tree = Self {
            root,
            repo: repo.to_owned(),
            _dir: dir,
        };
        let temp = tree.temp();
        for dir in [
            tree.workspace(),
            tree.responses(),
            tree.file_commands(),
            temp.join("_github_home"),
            temp.join("_github_workflow"),
            tree.actions(),
            tree.work().join("_tool"),
            tree.externals().join("node20/bin"),
        ] {
            std::fs::create_dir_all(&dir)?;
        }
        Ok(tree)
    }

    /// The runner's own folder (holding `_work` and `externals`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `_work`.
    pub fn work(&self) -> PathBuf {
        self.root.join("_work")
    }

    /// `RUNNER_WORKSPACE`: `_work/<repo>`.
    pub fn runner_workspace(&self) -> PathBuf {
        self.work().join(&self.repo)
    }

    /// `GITHUB_WORKSPACE` on the host: `_work/<repo>/<repo>`.
    pub fn workspace(&self) -> PathBuf {
        self.runner_workspace().join(&self.repo)
    }

    /// The workspace seen from the job container: `/__w/<repo>/<repo>`.
    pub fn container_workspace(&self) -> String {
        format!("/__w/{0}/{0}", self.repo)
    }

    /// `RUNNER_TEMP`: `_work/_temp`.
    pub fn temp(&self) -> PathBuf {
        self.work().join("_temp")
    }

    /// Where the runner pre-creates the response files: `_work/_temp/_runner_hook_responses`.
    pub fn responses(&self) -> PathBuf {
        self.temp().join("_runner_hook_responses")
    }

    /// Where the runner creates the file-command files: `_work/_temp/_runner_file_commands`.
    pub fn file_commands(&self) -> PathBuf {
        self.temp().join("_runner_file_commands")
    }

    /// Where the runner downloads actions: `_work/_actions`.
    pub fn actions(&self) -> PathBuf {
        self.work().join("_actions")
    }

    /// The runner's `externals` (mounted at `/__e`).
    pub fn externals(&self) -> PathBuf {
        self.root.join("externals")
    }

    /// The variables the runner sets for the hook that name this tree.
    pub fn hook_env(&self) -> [(&'static str, PathBuf); 3] {
        [
            ("GITHUB_WORKSPACE", self.workspace()),
            ("RUNNER_WORKSPACE", self.runner_workspace()),
            ("RUNNER_TEMP", self.temp()),
        ]
    }

    /// `program` as the runner starts a hook: cwd = the workspace, the process's environment
    /// plus [`WorkTree::hook_env`].
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.workspace()).envs(self.hook_env());
        cmd
    }

    /// [`WorkTree::command`] with an environment of `PATH` = `path` and [`WorkTree::hook_env`]
    /// only (the caller reads its own `PATH`: this library reads no environment variable).
    pub fn clean_command(&self, program: impl AsRef<OsStr>, path: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.workspace())
            .env_clear()
            .env("PATH", path)
            .envs(self.hook_env());
        cmd
    }

    /// Writes a step's script where the runner writes it (`_temp/<id>.sh`).
    pub fn write_script(&self, body: &str) -> io::Result<Script> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let host = self.temp().join(format!("{id}.sh"));
        std::fs::write(&host, body)?;
        Ok(Script { id, host })
    }

    /// Creates the empty file-command files `files` (prefixes of [`FILE_COMMANDS`]) of a step,
    /// which sees `_runner_file_commands` at `container_dir`.
    pub fn create_file_commands(
        &self,
        id: &str,
        container_dir: &str,
        files: &[&'static str],
    ) -> io::Result<FileCommands> {
        let mut vars = Map::new();
        for (file, var) in FILE_COMMANDS.iter().filter(|(f, _)| files.contains(f)) {
            std::fs::write(self.file_commands().join(format!("{file}_{id}")), "")?;
            vars.insert(
                (*var).to_owned(),
                json!(format!("{container_dir}/{file}_{id}")),
            );
        }
        Ok(FileCommands {
            dir: self.file_commands(),
            id: id.to_owned(),
            vars,
        })
    }

    /// A `systemMountVolumes` entry as the runner writes it.
    pub fn mount(host: &Path, target: &str, read_only: bool) -> Value {
        json!({"userProvidedValue": null, "sourceVolumePath": host, "targetVolumePath": target,
               "readOnly": read_only})
    }
}

/// A step's script in `_temp`.
#[derive(Debug)]
pub struct Script {
    /// The runner's id of the step (also in its file-command files' names).
    pub id: String,
    /// The script on the host.
    pub host: PathBuf,
}

impl Script {
    /// The script seen from the job container: `/__w/_temp/<id>.sh`.
    pub fn container_path(&self) -> String {
        format!("/__w/_temp/{}.sh", self.id)
    }

    /// The `run_script_step` arguments of `sh -e <script>` (busybox images have no bash).
    pub fn args(&self, env: Value, prepend_path: Value, workdir: &str) -> Value {
        json!({
            "entryPoint": "sh",
            "entryPointArgs": ["-e", self.container_path()],
            "environmentVariables": env,
            "prependPath": prepend_path,
            "workingDirectory": workdir,
        })
    }

    /// Removes the script (the runner does once the step ended).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.host);
    }
}

/// The file-command files of one step.
#[derive(Debug)]
pub struct FileCommands {
    dir: PathBuf,
    id: String,
    /// The variables naming the files (`GITHUB_OUTPUT`, …), as the step sees them.
    pub vars: Map<String, Value>,
}

impl FileCommands {
    /// What the step wrote to file command `file` (`set_output`, …); "" if nothing or none.
    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{file}_{}", self.id))).unwrap_or_default()
    }
}

/// A container (job, service or step) as the runner describes it: `image` and every other field
/// empty.
pub fn container(image: &str) -> Value {
    json!({
        "image": image, "dockerfile": null, "entryPointArgs": [], "entryPoint": null,
        "workingDirectory": null, "createOptions": null, "registry": null,
        "environmentVariables": {}, "portMappings": [], "systemMountVolumes": [],
        "userMountVolumes": []
    })
}

#[cfg(test)]
mod tests;
