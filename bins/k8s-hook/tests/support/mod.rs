//! Runs the real `k8s-hook` binary exactly as the runner does, against kubesim: a temp `_work`
//! tree, a pre-created empty response file, one JSON line on stdin, cwd = the workspace, the
//! runner's environment. Each [`Runner`] has its own namespace and runner pod in the shared
//! simulator of this test binary; its `Drop` deletes the namespace (and so every pod in it).

#![allow(dead_code)]

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubesim::testing::Sim;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use testenv::runner::{
    ALL_FILE_COMMANDS, FileCommands, JOB_FILE_COMMANDS, STEP_FILE_COMMANDS, Script,
};
pub use testenv::runner::{Run, WorkTree, container};

pub mod spawn;

/// A runner on a simulator of its own (dropped in this order: the runner, then the simulator).
pub struct OwnSim {
    pub runner: Runner,
    pub sim: Sim,
}

/// Volume mode: a runner on its own simulator whose claim `claim` is the runner's own `_work`,
/// the PVC created; with `name_it`, `ACTIONS_RUNNER_CLAIM_NAME` names it.
pub fn volume_mode(test: &str, claim: &str, name_it: bool) -> OwnSim {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    testenv();
    let tree = Runner::new_tree();
    let work = tree.work();
    let sim = rt()
        .block_on(Sim::start(kubesim::SimConfig {
            volumes: [(claim.to_owned(), work)].into(),
            ..Default::default()
        }))
        .unwrap();
    let ns = sim.create_namespace().unwrap();
    let mut runner = Runner::with_tree(&sim, test, ns, tree);
    if name_it {
        runner
            .extra_env
            .push(("ACTIONS_RUNNER_CLAIM_NAME".into(), claim.into()));
    }
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": claim},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(runner.client.clone(), &runner.ns);
    rt().block_on(pvcs.create(&kube::api::PostParams::default(), &pvc))
        .unwrap();
    OwnSim { runner, sim }
}

/// Waits until `check` holds (a precondition of the test, not a timed assertion).
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "never: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

pub const BIN: &str = env!("CARGO_BIN_EXE_k8s-hook");

/// One runtime for the tests' own async calls.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// The shared test environment (images in local registries).
pub fn testenv() -> testenv::TestEnv {
    static ENV: std::sync::OnceLock<testenv::TestEnv> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        rt().block_on(testenv::ensure())
            .expect("the shared test environment (crates/testenv)")
    })
    .clone()
}

/// The simulator shared by the tests of this binary.
pub fn sim() -> &'static Sim {
    testenv();
    rt().block_on(Sim::shared()).expect("kubesim")
}

/// A kube client for `kubeconfig`.
pub fn client_for(kubeconfig: &Path) -> kube::Client {
    rt().block_on(async {
        let kc = Kubeconfig::read_from(kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap();
        kube::Client::try_from(cfg).unwrap()
    })
}

/// A fake runner pod with its `_work` tree.
pub struct Runner {
    pub name: String,
    pub ns: String,
    /// The runner's folders (its paths through `Deref`: `runner.workspace()`, …).
    pub tree: WorkTree,
    pub extra_env: Vec<(String, String)>,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
}

impl Runner {
    /// The step pod of this runner once its action container runs.
    pub fn running_step_pod(&self) -> String {
        for _ in 0..600 {
            for p in self.pods() {
                let name = p.metadata.name.clone().unwrap_or_default();
                let running = p
                    .status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
                    .any(|c| {
                        c.name == "job" && c.state.as_ref().is_some_and(|s| s.running.is_some())
                    });
                if name.contains("-step-") && running {
                    return name;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("no running step pod in {}", self.ns);
    }

    /// Runs `argv` in the job container of `pod` (the test's own look, not the hook's);
    /// returns its stdout.
    pub fn job_exec(&self, pod: &str, argv: &[&str]) -> String {
        use tokio::io::AsyncReadExt as _;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        rt().block_on(async {
            let mut p = pods
                .exec(
                    pod,
                    argv.to_vec(),
                    &kube::api::AttachParams::default()
                        .container("job")
                        .stderr(false),
                )
                .await
                .unwrap();
            let mut out = Vec::new();
            if let Some(mut s) = p.stdout() {
                let _ = s.read_to_end(&mut out).await;
            }
            let _ = p.join().await;
            String::from_utf8_lossy(&out).into_owned()
        })
    }

    /// A runner in a fresh namespace of the shared simulator.
    pub fn new(test: &str) -> Self {
        let sim = sim();
        Self::on(sim, test, sim.create_namespace().unwrap())
    }

    /// A runner in namespace `ns` of `sim`.
    pub fn on(sim: &Sim, test: &str, ns: String) -> Self {
        Self::with_tree(sim, test, ns, Self::new_tree())
    }

    /// A fresh runner tree in a temporary folder.
    pub fn new_tree() -> WorkTree {
        WorkTree::in_temp_dir("k8shook-", "repo").unwrap()
    }

    /// A runner in namespace `ns` of `sim` with this tree.
    pub fn with_tree(sim: &Sim, test: &str, ns: String, tree: WorkTree) -> Self {
        let name = format!("runner-{test}");
        rt().block_on(sim.create_runner_pod(&ns, &name)).unwrap();
        std::fs::write(tree.workspace().join("README.md"), "# repo\n").unwrap();
        std::fs::write(
            tree.temp().join("_github_workflow/event.json"),
            r#"{"action":"test"}"#,
        )
        .unwrap();
        let kubeconfig = sim.kubeconfig_path().to_owned();
        let client = client_for(&kubeconfig);
        Self {
            name,
            ns,
            tree,
            extra_env: vec![("ACTIONS_RUNNER_HEARTBEAT_PERIOD_MS".into(), "1000".into())],
            kubeconfig,
            client,
        }
    }

    /// The runner's environment for the hook, but for the variables of its tree
    /// ([`WorkTree::hook_env`]), which the command sets.
    pub fn env(&self) -> Vec<(String, String)> {
        let env = testenv();
        let mut vars = vec![
            ("ACTIONS_RUNNER_POD_NAME".to_owned(), self.name.clone()),
            (
                "ACTIONS_RUNNER_KUBERNETES_NAMESPACE".to_owned(),
                self.ns.clone(),
            ),
            (
                "KUBECONFIG".to_owned(),
                self.kubeconfig.display().to_string(),
            ),
            (
                "ACTIONS_RUNNER_IMAGE".to_owned(),
                env.image(testenv::Image::Runner),
            ),
            (
                "ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS".to_owned(),
                "120".to_owned(),
            ),
        ];
        for (k, v) in &self.extra_env {
            vars.retain(|(x, _)| x != k);
            vars.push((k.clone(), v.clone()));
        }
        vars
    }

    /// Points the hook at a pod template `yaml` (written next to `_work`).
    pub fn use_template(&mut self, yaml: &str) {
        let template = self.root().join("template.yaml");
        std::fs::write(&template, yaml).unwrap();
        self.extra_env.push((
            "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE".into(),
            template.display().to_string(),
        ));
    }

    /// Runs one command through the binary, runner-style.
    pub fn call(&self, command: &str, args: Value, state: Option<&Value>) -> Run {
        spawn::start(self, &spawn::Program::Binary, command, args, state).finish()
    }

    /// `prepare_job` with this job container and services; returns the run and the state.
    pub fn prepare(&self, job: Option<Value>, services: Vec<Value>) -> (Run, Value) {
        let run = self.call(
            "prepare_job",
            json!({"container": job, "services": services}),
            None,
        );
        let state = if run.code == 0 {
            run.json()["state"].clone()
        } else {
            Value::Null
        };
        (run, state)
    }

    /// A script step as the runner sends it: the script in `_temp/<id>.sh`, run with `sh -e`,
    /// fresh GITHUB_OUTPUT / GITHUB_ENV files. Returns the run and the file commands' content.
    pub fn script(&self, state: &Value, script: &str, env: &[(&str, &str)]) -> StepRun {
        self.script_with(state, script, env, &[], "/__w/repo/repo")
    }

    pub fn script_with(
        &self,
        state: &Value,
        script: &str,
        env: &[(&str, &str)],
        prepend: &[&str],
        workdir: &str,
    ) -> StepRun {
        let (script, fc, args) = self.script_files(script, env, prepend, workdir);
        let run = self.call("run_script_step", args, Some(state));
        script.remove();
        StepRun::read(run, &fc)
    }

    /// A script step's files as the runner writes them (the script in `_temp/<id>.sh`, empty
    /// file-command files) and its `run_script_step` arguments (`sh -e`, the file commands',
    /// `GITHUB_WORKSPACE` and `CI` variables, then `env`).
    pub fn script_files(
        &self,
        script: &str,
        env: &[(&str, &str)],
        prepend: &[&str],
        workdir: &str,
    ) -> (Script, FileCommands, Value) {
        let script = self.write_script(script).unwrap();
        let fc = self
            .create_file_commands(&script.id, JOB_FILE_COMMANDS, &ALL_FILE_COMMANDS)
            .unwrap();
        let mut vars = fc.vars.clone();
        vars.insert("GITHUB_WORKSPACE".into(), json!("/__w/repo/repo"));
        vars.insert("CI".into(), json!("true"));
        for (k, v) in env {
            vars.insert((*k).into(), json!(v));
        }
        let args = script.args(Value::Object(vars), json!(prepend), workdir);
        (script, fc, args)
    }

    /// A container step as the runner sends it: fresh file-command files, the step env with
    /// GITHUB_OUTPUT / GITHUB_ENV pointing at /github/file_commands.
    pub fn container_step(
        &self,
        state: Option<&Value>,
        image: &str,
        entry_point: Option<&str>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> StepRun {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let fc = self
            .create_file_commands(&id, STEP_FILE_COMMANDS, &["set_output", "set_env"])
            .unwrap();
        let mut vars = fc.vars.clone();
        vars.insert("GITHUB_WORKSPACE".into(), json!("/github/workspace"));
        for (k, v) in env {
            vars.insert((*k).into(), json!(v));
        }
        let mut spec = container(image);
        spec["entryPoint"] = json!(entry_point);
        spec["entryPointArgs"] = json!(args);
        spec["workingDirectory"] = json!("/github/workspace");
        spec["environmentVariables"] = Value::Object(vars);
        StepRun::read(self.call("run_container_step", spec, state), &fc)
    }

    /// Pods of the namespace.
    pub fn pods(&self) -> Vec<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        rt().block_on(api.list(&ListParams::default()))
            .unwrap()
            .items
    }

    /// Pods and secrets labelled with this runner (excluding the runner pod itself).
    pub fn labelled(&self) -> (Vec<String>, Vec<String>) {
        let lp = ListParams::default().labels(&format!("runner-pod={}", self.name));
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        rt().block_on(async {
            let p = pods.list(&lp).await.unwrap().items;
            let s = secrets.list(&lp).await.unwrap().items;
            (
                p.into_iter().filter_map(|p| p.metadata.name).collect(),
                s.into_iter().filter_map(|s| s.metadata.name).collect(),
            )
        })
    }

    pub fn get_pod(&self, name: &str) -> Option<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        rt().block_on(api.get_opt(name)).unwrap()
    }
}

impl std::ops::Deref for Runner {
    type Target = WorkTree;

    fn deref(&self) -> &WorkTree {
        &self.tree
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let _ = rt().block_on(api.delete(&self.ns, &DeleteParams::default()));
    }
}

/// A script step's run and the file commands it wrote.
#[derive(Debug)]
pub struct StepRun {
    pub run: Run,
    pub output: String,
    pub env: String,
    pub path: String,
    pub summary: String,
}

impl StepRun {
    /// The run and what the step wrote to its file commands (files it did not have read "").
    pub fn read(run: Run, files: &FileCommands) -> Self {
        Self {
            output: files.read("set_output"),
            env: files.read("set_env"),
            path: files.read("add_path"),
            summary: files.read("step_summary"),
            run,
        }
    }
}
