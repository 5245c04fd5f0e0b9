//! A stand-in for the GitHub Actions runner's side of the container-hook protocol, used by
//! `cargo xtask demo`: a runner-style `_work` tree, a pre-created empty response file per
//! command, one JSON line on the hook's stdin (`bash -e index.sh`, cwd = the workspace), the
//! `state` carried from response to command, script files and file-command files written where
//! the runner writes them, and the job log printed the way a user reads it.

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The runner: paths of a runner install and the state of one job.
#[derive(Debug)]
pub struct Runner {
    hook: PathBuf,
    root: PathBuf,
    repo: String,
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
        let runner = Self {
            hook: hook.to_owned(),
            root: root.to_owned(),
            repo: repo.to_owned(),
            env,
            state: None,
            timings: Vec::new(),
        };
        for dir in [
            runner.workspace(),
            runner.temp().join("_runner_hook_responses"),
            runner.temp().join("_runner_file_commands"),
            runner.temp().join("_github_home"),
            runner.temp().join("_github_workflow"),
            runner.work().join("_actions"),
            runner.root.join("externals/node20/bin"),
        ] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(
            runner.temp().join("_github_workflow/event.json"),
            json!({"ref": "refs/heads/main", "repository": {"full_name": format!("acme/{repo}")}})
                .to_string(),
        )?;
        std::fs::write(runner.workspace().join("README.md"), format!("# {repo}\n"))?;
        Ok(runner)
    }

    fn work(&self) -> PathBuf {
        self.root.join("_work")
    }

    fn temp(&self) -> PathBuf {
        self.work().join("_temp")
    }

    /// `GITHUB_WORKSPACE` on the host.
    pub fn workspace(&self) -> PathBuf {
        self.work().join(&self.repo).join(&self.repo)
    }

    /// The container path of the workspace.
    pub fn container_workspace(&self) -> String {
        format!("/__w/{0}/{0}", self.repo)
    }

    /// `_work/_actions` on the host (where the runner downloads actions).
    pub fn actions_dir(&self) -> PathBuf {
        self.work().join("_actions")
    }

    fn mount(&self, host: &Path, target: &str, read_only: bool) -> Value {
        json!({"userProvidedValue": null, "sourceVolumePath": host, "targetVolumePath": target, "readOnly": read_only})
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
        let mut mounts = Vec::new();
        let mut workdir = Value::Null;
        if job {
            environment.insert("HOME".into(), "/github/home".into());
            let t = self.temp();
            mounts = vec![
                self.mount(&self.work(), "/__w", false),
                self.mount(&self.root.join("externals"), "/__e", true),
                self.mount(&t, "/__w/_temp", false),
                self.mount(&self.actions_dir(), "/__w/_actions", false),
                self.mount(&t.join("_github_home"), "/github/home", false),
                self.mount(&t.join("_github_workflow"), "/github/workflow", false),
            ];
            workdir = json!(self.container_workspace());
        }
        json!({"image": image, "dockerfile": null, "entryPointArgs": [], "entryPoint": null,
               "workingDirectory": workdir, "createOptions": options, "registry": null,
               "environmentVariables": environment, "portMappings": ports,
               "systemMountVolumes": mounts, "userMountVolumes": []})
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
        let id = uuid::Uuid::new_v4().simple().to_string();
        std::fs::write(self.temp().join(format!("{id}.sh")), script)?;
        let (files, mut environment) =
            self.file_commands(&id, "/__w/_temp/_runner_file_commands")?;
        environment.insert("GITHUB_WORKSPACE".into(), self.container_workspace());
        environment.insert(
            "GITHUB_EVENT_PATH".into(),
            "/github/workflow/event.json".into(),
        );
        environment.insert("HOME".into(), "/github/home".into());
        environment.insert("CI".into(), "true".into());
        for (k, v) in env {
            environment.insert((*k).to_owned(), (*v).to_owned());
        }
        let args = json!({"entryPoint": "sh", "entryPointArgs": ["-e", format!("/__w/_temp/{id}.sh")],
                          "environmentVariables": environment, "prependPath": prepend_path,
                          "workingDirectory": self.container_workspace()});
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
        let (files, mut environment) = self.file_commands(&id, "/github/file_commands")?;
        environment.insert("GITHUB_WORKSPACE".into(), "/github/workspace".into());
        environment.insert("HOME".into(), "/github/home".into());
        for (k, v) in env {
            environment.insert((*k).to_owned(), (*v).to_owned());
        }
        let t = self.temp();
        let mounts = vec![
            self.mount(&t, "/github/runner_temp", false),
            self.mount(&t.join("_github_home"), "/github/home", false),
            self.mount(&t.join("_github_workflow"), "/github/workflow", false),
            self.mount(
                &t.join("_runner_file_commands"),
                "/github/file_commands",
                false,
            ),
            self.mount(&self.workspace(), "/github/workspace", false),
        ];
        let spec = json!({"image": image, "dockerfile": dockerfile, "entryPointArgs": args,
                          "entryPoint": null, "workingDirectory": "/github/workspace",
                          "createOptions": null, "registry": null,
                          "environmentVariables": environment, "portMappings": [],
                          "systemMountVolumes": mounts, "userMountVolumes": []});
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

    fn file_commands(
        &self,
        id: &str,
        container_dir: &str,
    ) -> anyhow::Result<(Vec<PathBuf>, BTreeMap<String, String>)> {
        let dir = self.temp().join("_runner_file_commands");
        let mut files = Vec::new();
        let mut env = BTreeMap::new();
        for (var, prefix) in [
            ("GITHUB_OUTPUT", "set_output"),
            ("GITHUB_ENV", "set_env"),
            ("GITHUB_PATH", "add_path"),
            ("GITHUB_STEP_SUMMARY", "step_summary"),
        ] {
            let file = format!("{prefix}_{id}");
            std::fs::write(dir.join(&file), "")?;
            files.push(dir.join(&file));
            env.insert(var.to_owned(), format!("{container_dir}/{file}"));
        }
        Ok((files, env))
    }

    fn finish_step(&self, code: i32, files: &[PathBuf]) -> anyhow::Result<StepResult> {
        let text = std::fs::read_to_string(&files[0]).unwrap_or_default();
        let outputs = text
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
        let response_file = self
            .temp()
            .join("_runner_hook_responses")
            .join(format!("{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&response_file, "")?;
        let input = json!({"command": command, "responseFile": response_file, "args": args, "state": self.state});
        let started = Instant::now();
        let mut child = Command::new("bash")
            .arg("-e")
            .arg(&self.hook)
            .current_dir(self.workspace())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("GITHUB_WORKSPACE", self.workspace())
            .env("RUNNER_WORKSPACE", self.work().join(&self.repo))
            .env("RUNNER_TEMP", self.temp())
            .stdin(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.hook.display()))?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        writeln!(stdin, "{input}")?;
        drop(stdin);
        let status = child.wait()?;
        let elapsed = started.elapsed();
        self.timings.push((command.to_owned(), elapsed));
        let code = status.code().unwrap_or(1);
        let text = std::fs::read_to_string(&response_file).unwrap_or_default();
        std::fs::remove_file(&response_file).ok();
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
