//! A stand-in for the GitHub Actions runner's side of the container-hook protocol, used by
//! `cargo xtask demo`: a runner-style `_work` tree, a pre-created empty response file per
//! command, one JSON line on the hook's stdin (`bash -e index.sh`, cwd = the workspace), the
//! `state` carried from response to command, script files and file-command files written where
//! the runner writes them (all of it `testenv::runner`), and the job log printed the way a user
//! reads it.

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use testenv::runner::{
    ALL_FILE_COMMANDS, FileCommands, JOB_FILE_COMMANDS, STEP_FILE_COMMANDS, WorkTree,
    call_inherited, input_line, response_file,
};

/// The runner: paths of a runner install and the state of one job.
#[derive(Debug)]
pub struct Runner {
    hook: PathBuf,
    tree: WorkTree,
    env: Vec<(String, String)>,
    state: Option<Value>,
    /// Each hook call's command and wall time, in order.
    pub timings: Vec<(String, Duration)>,
}

/// What a step left behind.
#[derive(Debug, Default)]
pub struct StepResult {
    /// The hook's exit code.
    pub code: i32,
    /// `name=value` lines the step wrote to `GITHUB_OUTPUT`.
    pub outputs: BTreeMap<String, String>,
}

impl Runner {
    /// A runner installed under `root` (created), running `repo`, whose hook is `hook`
    /// (an `index.sh`), with `env` added to the hook's environment.
    pub fn new(
        hook: &Path,
        root: &Path,
        repo: &str,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        let tree = WorkTree::create(root, repo)
            .with_context(|| format!("creating the runner tree in {}", root.display()))?;
        std::fs::write(
            tree.temp().join("_github_workflow/event.json"),
            json!({"ref": "refs/heads/main", "repository": {"full_name": format!("acme/{repo}")}})
                .to_string(),
        )?;
        std::fs::write(tree.workspace().join("README.md"), format!("# {repo}\n"))?;
        Ok(Self {
            hook: hook.to_owned(),
            tree,
            env,
            state: None,
            timings: Vec::new(),
        })
    }

    /// `GITHUB_WORKSPACE` on the host.
    pub fn workspace(&self) -> PathBuf {
        self.tree.workspace()
    }

    /// `_work/_actions` on the host (where the runner downloads actions).
    pub fn actions_dir(&self) -> PathBuf {
        self.tree.actions()
    }

    /// A job or service container as the runner describes it.
    pub fn container(
        &self,
        image: &str,
        options: Option<&str>,
        env: &[(&str, &str)],
        ports: &[&str],
        job: bool,
    ) -> Value {
        let mut environment: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut spec = testenv::runner::container(image);
        if job {
            environment.insert("HOME".into(), "/github/home".into());
            let t = self.tree.temp();
            spec["systemMountVolumes"] = json!([
                WorkTree::mount(&self.tree.work(), "/__w", false),
                WorkTree::mount(&self.tree.externals(), "/__e", true),
                WorkTree::mount(&t, "/__w/_temp", false),
                WorkTree::mount(&self.actions_dir(), "/__w/_actions", false),
                WorkTree::mount(&t.join("_github_home"), "/github/home", false),
                WorkTree::mount(&t.join("_github_workflow"), "/github/workflow", false),
            ]);
            spec["workingDirectory"] = json!(self.tree.container_workspace());
        }
        spec["createOptions"] = json!(options);
        spec["environmentVariables"] = json!(environment);
        spec["portMappings"] = json!(ports);
        spec
    }

    /// `prepare_job`; returns the response.
    pub fn prepare_job(
        &mut self,
        container: Option<Value>,
        services: Vec<Value>,
    ) -> anyhow::Result<Value> {
        let (code, response) = self.call(
            "prepare_job",
            json!({"container": container, "services": services}),
        )?;
        if code != 0 {
            bail!("prepare_job failed (exit code {code})");
        }
        let response = response.context("prepare_job wrote no response")?;
        if container_is_set(&response) && response.get("isAlpine").is_none() {
            bail!(
                "prepare_job response lacks isAlpine, which the runner requires with a job container"
            );
        }
        Ok(response)
    }

    /// A `run:` step: the script goes to `_temp/<guid>.sh`, file-command files are created,
    /// and `run_script_step` is called with bash-less `sh -e` (busybox images have no bash).
    pub fn script_step(
        &mut self,
        name: &str,
        script: &str,
        env: &[(&str, &str)],
        prepend_path: &[&str],
    ) -> anyhow::Result<StepResult> {
        println!("##[group]Run {name}");
        for line in script.lines() {
            println!("  {line}");
        }
        println!("##[endgroup]");
        let script = self.tree.write_script(script)?;
        let files =
            self.tree
                .create_file_commands(&script.id, JOB_FILE_COMMANDS, &ALL_FILE_COMMANDS)?;
        let mut environment = files.vars.clone();
        let workspace = self.tree.container_workspace();
        environment.insert("GITHUB_WORKSPACE".into(), json!(workspace));
        environment.insert(
            "GITHUB_EVENT_PATH".into(),
            json!("/github/workflow/event.json"),
        );
        environment.insert("HOME".into(), json!("/github/home"));
        environment.insert("CI".into(), json!("true"));
        for (k, v) in env {
            environment.insert((*k).to_owned(), json!(v));
        }
        let args = script.args(Value::Object(environment), json!(prepend_path), &workspace);
        let (code, _) = self.call("run_script_step", args)?;
        self.finish_step(code, &files)
    }

    /// A container action from `image`, or from `dockerfile` (a host path under `_actions`).
    pub fn container_step(
        &mut self,
        name: &str,
        image: Option<&str>,
        dockerfile: Option<&Path>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<StepResult> {
        println!("##[group]Run {name}");
        println!("  with: {}", args.join(" "));
        println!("##[endgroup]");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let files = self
            .tree
            .create_file_commands(&id, STEP_FILE_COMMANDS, &ALL_FILE_COMMANDS)?;
        let mut environment = files.vars.clone();
        environment.insert("GITHUB_WORKSPACE".into(), json!("/github/workspace"));
        environment.insert("HOME".into(), json!("/github/home"));
        for (k, v) in env {
            environment.insert((*k).to_owned(), json!(v));
        }
        let t = self.tree.temp();
        let mut spec = testenv::runner::container("");
        spec["image"] = json!(image);
        spec["dockerfile"] = json!(dockerfile);
        spec["entryPointArgs"] = json!(args);
        spec["workingDirectory"] = json!("/github/workspace");
        spec["environmentVariables"] = Value::Object(environment);
        spec["systemMountVolumes"] = json!([
            WorkTree::mount(&t, "/github/runner_temp", false),
            WorkTree::mount(&t.join("_github_home"), "/github/home", false),
            WorkTree::mount(&t.join("_github_workflow"), "/github/workflow", false),
            WorkTree::mount(&self.tree.file_commands(), "/github/file_commands", false),
            WorkTree::mount(&self.workspace(), "/github/workspace", false),
        ]);
        let (code, _) = self.call("run_container_step", spec)?;
        self.finish_step(code, &files)
    }

    /// `cleanup_job`.
    pub fn cleanup_job(&mut self) -> anyhow::Result<()> {
        let (code, _) = self.call("cleanup_job", json!({}))?;
        if code != 0 {
            bail!("cleanup_job failed (exit code {code})");
        }
        Ok(())
    }

    fn finish_step(&self, code: i32, files: &FileCommands) -> anyhow::Result<StepResult> {
        let outputs = files
            .read("set_output")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if code != 0 {
            println!("##[error]Process completed with exit code {code}.");
        }
        Ok(StepResult { code, outputs })
    }

    /// One hook invocation exactly as the runner makes it.
    fn call(&mut self, command: &str, args: Value) -> anyhow::Result<(i32, Option<Value>)> {
        let mut cmd = self.tree.command("bash");
        cmd.arg("-e")
            .arg(&self.hook)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let response = response_file(&self.tree.responses(), command)?;
        let line = input_line(command, &response, &args, self.state.as_ref());
        let run = call_inherited(cmd, response, line.as_bytes())
            .with_context(|| format!("running {}", self.hook.display()))?;
        self.timings.push((command.to_owned(), run.elapsed));
        let (code, text) = (run.code, run.response);
        let response = if code == 0 && !text.trim().is_empty() {
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("{command} wrote an invalid response: {text}"))?;
            if let Some(state) = v.get("state").filter(|s| !s.is_null()) {
                self.state = Some(state.clone());
            }
            Some(v)
        } else {
            None
        };
        Ok((code, response))
    }
}

fn container_is_set(response: &Value) -> bool {
    response
        .pointer("/context/container")
        .is_some_and(|c| !c.is_null())
}
