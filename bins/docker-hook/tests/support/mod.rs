//! Runs the real `docker-hook` binary exactly as the runner does: a temp `_work` tree, a
//! pre-created empty response file, one JSON line on stdin, cwd = the workspace, the runner's
//! environment with a RUNNER_NAME unique per test. Every Docker object the hook creates is
//! labelled with that name; [`Runner`]'s `Drop` removes them even when a test fails.
//! (Tests may use the docker CLI; the hook never does.)

#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const BIN: &str = env!("CARGO_BIN_EXE_docker-hook");
pub const RUNNER_LABEL: &str = container_hooks_docker::RUNNER_LABEL;

/// The shared test environment (images in local registries), made to exist once per process.
pub fn testenv() -> testenv::TestEnv {
    static ENV: std::sync::OnceLock<testenv::TestEnv> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(testenv::ensure())
            .expect("the shared test environment (crates/testenv)")
    })
    .clone()
}

/// One hook invocation's result.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The response file's content after the run ("" when the hook wrote nothing).
    pub response: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.response).unwrap_or_else(|e| {
            panic!("response is not JSON ({e}): {:?}\n{self:#?}", self.response)
        })
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "hook failed:\n{self:#?}");
        self
    }

    /// The `::error::` lines on stderr.
    pub fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("::error::"))
            .collect()
    }
}

/// A fake runner: a `_work` tree and a unique RUNNER_NAME.
pub struct Runner {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub extra_env: Vec<(String, String)>,
    calls: AtomicUsize,
}

impl Runner {
    pub fn new(test: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "dhtest-{test}-{}-{}-{nanos:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::Builder::new()
            .prefix("dhtest-work")
            .tempdir()
            .unwrap();
        for sub in [
            "repo/repo",
            "_temp/_runner_hook_responses",
            "_temp/_github_home",
            "_temp/_github_workflow",
            "_temp/_runner_file_commands",
            "_actions",
            "_tool",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Self {
            name,
            dir,
            extra_env: Vec::new(),
            calls: AtomicUsize::new(0),
        }
    }

    pub fn work(&self) -> &Path {
        self.dir.path()
    }

    pub fn workspace(&self) -> PathBuf {
        self.work().join("repo/repo")
    }

    pub fn temp(&self) -> PathBuf {
        self.work().join("_temp")
    }

    /// The job container's system mounts, as the runner sends them (the parts tests use).
    pub fn job_mounts(&self) -> Value {
        let w = self.work().display().to_string();
        json!([
            {"userProvidedValue": null, "sourceVolumePath": w, "targetVolumePath": "/__w", "readOnly": false},
            {"userProvidedValue": null, "sourceVolumePath": format!("{w}/_temp/_github_home"), "targetVolumePath": "/github/home", "readOnly": false},
            {"userProvidedValue": null, "sourceVolumePath": format!("{w}/_temp/_github_workflow"), "targetVolumePath": "/github/workflow", "readOnly": false}
        ])
    }

    /// A container step's system mounts.
    pub fn step_mounts(&self) -> Value {
        let w = self.work().display().to_string();
        json!([
            {"userProvidedValue": null, "sourceVolumePath": format!("{w}/_temp"), "targetVolumePath": "/github/runner_temp", "readOnly": false},
            {"userProvidedValue": null, "sourceVolumePath": format!("{w}/_temp/_github_home"), "targetVolumePath": "/github/home", "readOnly": false},
            {"userProvidedValue": null, "sourceVolumePath": format!("{w}/_temp/_runner_file_commands"), "targetVolumePath": "/github/file_commands", "readOnly": false},
            {"userProvidedValue": null, "sourceVolumePath": self.workspace().display().to_string(), "targetVolumePath": "/github/workspace", "readOnly": false}
        ])
    }

    /// `prepare_job` with a busybox job container (workdir `/__w/repo/repo`, no services);
    /// returns the response's JSON.
    pub fn prepare_busybox(&self) -> Value {
        let mut job = container(&testenv().image(testenv::Image::Busybox));
        job["systemMountVolumes"] = self.job_mounts();
        job["workingDirectory"] = json!("/__w/repo/repo");
        self.call(
            "prepare_job",
            json!({"container": job, "services": []}),
            None,
        )
        .ok()
        .json()
    }

    /// Writes a script into `_temp` and returns its container path (`/__w/_temp/<name>.sh`).
    pub fn script(&self, body: &str) -> String {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let file = format!("step-{n}.sh");
        std::fs::write(self.temp().join(&file), body).unwrap();
        format!("/__w/_temp/{file}")
    }

    /// Starts the hook with one command; stdout and stderr are piped. Returns the child and the
    /// response file.
    pub fn spawn(&self, command: &str, args: Value, state: Option<&Value>) -> (Child, PathBuf) {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let response = self
            .temp()
            .join(format!("_runner_hook_responses/{command}-{n}.json"));
        std::fs::write(&response, "").unwrap();
        let input = json!({
            "command": command,
            "responseFile": response,
            "args": args,
            "state": state,
        });
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .current_dir(self.workspace())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUNNER_NAME", &self.name)
            .env("GITHUB_WORKSPACE", self.workspace())
            .env("RUNNER_WORKSPACE", self.work().join("repo"))
            .env("RUNNER_TEMP", self.temp())
            .env("GITHUB_ACTIONS", "true")
            .env("CI", "true");
        for (k, v) in std::env::vars() {
            if k.starts_with("DOCKER_") {
                cmd.env(k, v);
            }
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{}\n", serde_json::to_string(&input).unwrap()).as_bytes())
            .unwrap();
        drop(stdin);
        (child, response)
    }

    /// Runs the hook with one command.
    pub fn call(&self, command: &str, args: Value, state: Option<&Value>) -> Run {
        let (child, response) = self.spawn(command, args, state);
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            response: std::fs::read_to_string(&response).unwrap_or_default(),
        }
    }

    /// The `run_script_step` arguments for `sh -e <script>` (written to `_temp`).
    pub fn script_args(&self, script: &str, env: Value, prepend: Value) -> Value {
        let path = self.script(script);
        json!({
            "entryPoint": "sh",
            "entryPointArgs": ["-e", path],
            "environmentVariables": env,
            "prependPath": prepend,
            "workingDirectory": "/__w/repo/repo",
        })
    }

    /// `run_script_step` of `script` (written to `_temp`) with `sh -e`.
    pub fn script_step(&self, state: &Value, script: &str, env: Value, prepend: Value) -> Run {
        self.call(
            "run_script_step",
            self.script_args(script, env, prepend),
            Some(state),
        )
    }

    /// Ids of this runner's containers (all states).
    pub fn containers(&self) -> Vec<String> {
        docker_ids(&["ps", "-aq", "--no-trunc", "--filter", &self.filter()])
    }

    /// Ids of this runner's networks.
    pub fn networks(&self) -> Vec<String> {
        docker_ids(&["network", "ls", "-q", "--filter", &self.filter()])
    }

    /// Ids of the images labelled with this runner (Dockerfile actions' images).
    pub fn images(&self) -> Vec<String> {
        docker_ids(&["images", "-q", "--filter", &self.filter()])
    }

    /// Nothing of this runner's is left on the engine: no container, network or image.
    #[track_caller]
    pub fn assert_nothing_left(&self) {
        assert!(
            self.containers().is_empty(),
            "containers: {:?}",
            self.containers()
        );
        assert!(
            self.networks().is_empty(),
            "networks: {:?}",
            self.networks()
        );
        assert!(self.images().is_empty(), "images: {:?}", self.images());
    }

    fn filter(&self) -> String {
        format!("label={RUNNER_LABEL}={}", self.name)
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let filter = self.filter();
        let containers = docker_ids(&["ps", "-aq", "--filter", &filter]);
        if !containers.is_empty() {
            let _ = docker(&[&["rm", "-f", "-v"][..], &as_refs(&containers)].concat());
        }
        let networks = docker_ids(&["network", "ls", "-q", "--filter", &filter]);
        if !networks.is_empty() {
            let _ = docker(&[&["network", "rm"][..], &as_refs(&networks)].concat());
        }
        let images = docker_ids(&["images", "-q", "--filter", &filter]);
        if !images.is_empty() {
            let _ = docker(&[&["rmi", "-f"][..], &as_refs(&images)].concat());
        }
    }
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs the docker CLI (tests only) and returns stdout.
pub fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn docker_ids(args: &[&str]) -> Vec<String> {
    docker(args)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `docker inspect -f <format> <id>`.
pub fn inspect(id: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, id])
        .unwrap_or_else(|e| panic!("docker inspect {id}: {e}"))
        .trim()
        .to_owned()
}

/// Splits a workflow `args:` string the way the runner does: on single spaces, quotes kept.
pub fn runner_split(args: &str) -> Vec<String> {
    args.split(' ').map(str::to_owned).collect()
}

/// A container spec as the runner sends it.
pub fn container(image: &str) -> Value {
    json!({
        "image": image, "dockerfile": null, "entryPointArgs": [], "entryPoint": null,
        "workingDirectory": null, "createOptions": null, "registry": null,
        "environmentVariables": {}, "portMappings": [], "systemMountVolumes": [], "userMountVolumes": []
    })
}

/// An HTTP GET to 127.0.0.1:`port`; returns the body.
pub fn http_get(port: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

/// Sends `signal` (`INT`, `TERM`) to a child process (tests may use the `kill` CLI).
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {}", child.id());
}

/// Waits for a child, failing the test (after killing it) if it is still running after
/// `liveness` — a generous bound that only catches a hang, never a timing assertion.
pub fn wait_bounded(mut child: Child, response: &Path, liveness: std::time::Duration) -> Run {
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > liveness {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the hook still ran {liveness:?} after the signal; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        response: std::fs::read_to_string(response).unwrap_or_default(),
    }
}

/// Polls `check` until it holds (bounded by `liveness`, then the test fails with `what`).
pub fn wait_until(what: &str, liveness: std::time::Duration, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < liveness, "never happened: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
