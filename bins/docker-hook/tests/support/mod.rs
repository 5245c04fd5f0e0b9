//! Runs the real `docker-hook` binary exactly as the runner does (`testenv::runner`): a temp
//! `_work` tree, a pre-created empty response file, one JSON line on stdin, cwd = the workspace, the runner's
//! environment with a RUNNER_NAME unique per test. Every Docker object the hook creates is
//! labelled with that name; [`Runner`]'s `Drop` removes them even when a test fails.
//! (Tests may use the docker CLI; the hook never does.)

#![allow(dead_code)]

use serde_json::{Value, json};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
pub use testenv::runner::{Run, Started, WorkTree, container};

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

/// A fake runner: a `_work` tree (its paths through `Deref`) and a unique RUNNER_NAME.
pub struct Runner {
    pub name: String,
    pub tree: WorkTree,
    pub extra_env: Vec<(String, String)>,
}

impl std::ops::Deref for Runner {
    type Target = WorkTree;

    fn deref(&self) -> &WorkTree {
        &self.tree
    }
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
        Self {
            name,
            tree: WorkTree::in_temp_dir("dhtest-", "repo").unwrap(),
            extra_env: Vec::new(),
        }
    }

    /// The job container's system mounts, as the runner sends them (the parts tests use).
    pub fn job_mounts(&self) -> Value {
        let t = self.temp();
        json!([
            WorkTree::mount(&self.work(), "/__w", false),
            WorkTree::mount(&t.join("_github_home"), "/github/home", false),
            WorkTree::mount(&t.join("_github_workflow"), "/github/workflow", false),
        ])
    }

    /// A container step's system mounts.
    pub fn step_mounts(&self) -> Value {
        let t = self.temp();
        json!([
            WorkTree::mount(&t, "/github/runner_temp", false),
            WorkTree::mount(&t.join("_github_home"), "/github/home", false),
            WorkTree::mount(&self.file_commands(), "/github/file_commands", false),
            WorkTree::mount(&self.workspace(), "/github/workspace", false),
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

    /// `prepare_job` with this job container (or `Value::Null`) and services.
    pub fn prepare(&self, job: Value, services: Vec<Value>) -> Run {
        self.call(
            "prepare_job",
            json!({"container": job, "services": services}),
            None,
        )
    }

    /// Starts the hook with one command, the runner's way, without waiting for it.
    pub fn start(&self, command: &str, args: Value, state: Option<&Value>) -> Started {
        let mut cmd = self.clean_command(BIN, std::env::var_os("PATH").unwrap_or_default());
        cmd.env("RUNNER_NAME", &self.name)
            .env("GITHUB_ACTIONS", "true")
            .env("CI", "true");
        for (k, v) in std::env::vars() {
            if k.starts_with("DOCKER_") {
                cmd.env(k, v);
            }
        }
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        testenv::runner::start(cmd, &self.responses(), command, &args, state).unwrap()
    }

    /// Runs the hook with one command.
    pub fn call(&self, command: &str, args: Value, state: Option<&Value>) -> Run {
        self.start(command, args, state).finish()
    }

    /// The `run_script_step` arguments for `sh -e <script>` (written to `_temp`).
    pub fn script_args(&self, script: &str, env: Value, prepend: Value) -> Value {
        let script = self.write_script(script).unwrap();
        script.args(env, prepend, "/__w/repo/repo")
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

/// An HTTP GET to 127.0.0.1:`port`; returns the body.
pub fn http_get(port: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

/// Polls `check` until it holds (bounded by `liveness`, then the test fails with `what`).
pub fn wait_until(what: &str, liveness: std::time::Duration, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < liveness, "never happened: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
