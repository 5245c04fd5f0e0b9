//! `cargo xtask bench kaniko [--quick] [--iterations N] [--payload-mib M]`: Dockerfile actions
//! through the release `k8s-hook` on kubesim, whose kubelet performs the Kaniko builder pod
//! with the Docker Engine and pushes to the password-protected test registry.
//!
//! Per iteration, a fresh action (a new nonce, so a new tag and a real build):
//! 1. first run: registry miss → Kaniko pod, context over attach, build, push, step by digest;
//! 2. second run of the unchanged action: registry hit → no build, step by digest;
//! 3. baseline: the same image by digest as a plain `docker://` container step.
//!
//! Goal: second / first ≤ 0.1 for a representative action (an image layer of `M` MiB of
//! incompressible data, default 256, built by a `RUN`); the minimal action (a script on
//! busybox) is reported too. Medians over the iterations.

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kubesim::testing::Sim;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testenv::TestEnv;
use testenv::runner::WorkTree;

const RUNNER: &str = "runner-bench";
const SECRET: &str = "regcred";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut iterations = 3usize;
    let mut payload_mib = 256u32;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => iterations = 1,
            "--iterations" => {
                iterations = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .context("--iterations needs a number > 0")?;
            }
            "--payload-mib" => {
                payload_mib = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .context("--payload-mib needs a number")?;
            }
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask bench kaniko [--quick] [--iterations N] [--payload-mib M]"
            ),
        }
    }
    let hook = crate::bench_k8s::build_hook()?;
    let rt = tokio::runtime::Runtime::new()?;
    let env = rt
        .block_on(testenv::ensure())
        .context("bringing up the test environment (cargo xtask testenv up)")?;
    let sim = rt
        .block_on(Sim::start(kubesim::SimConfig::default()))
        .context("starting kubesim")?;
    let result = (|| {
        let bench = Bench::new(&rt, &sim, &env, hook)?;
        let mut lines = Vec::new();
        for (label, mib) in [
            (
                format!("action with a {payload_mib} MiB layer"),
                payload_mib,
            ),
            ("minimal action (script on busybox)".to_owned(), 0),
        ] {
            let mut firsts = Vec::new();
            let mut seconds = Vec::new();
            let mut plains = Vec::new();
            for i in 0..iterations {
                let (f, s, p) = bench.iteration(mib)?;
                eprintln!(
                    "{label} #{}: first {:.2} s, second {:.2} s, plain image step {:.2} s",
                    i + 1,
                    f.as_secs_f64(),
                    s.as_secs_f64(),
                    p.as_secs_f64()
                );
                firsts.push(f);
                seconds.push(s);
                plains.push(p);
            }
            lines.push((label, median(firsts), median(seconds), median(plains)));
        }
        Ok::<_, anyhow::Error>(lines)
    })();
    rt.block_on(sim.shutdown());
    let lines = result?;
    println!(
        "\n== Dockerfile actions on kubesim (Kaniko emulated by the engine; medians of {iterations})"
    );
    println!(
        "{:<40} {:>10} {:>10} {:>8} {:>6}  {:>12} {:>8}",
        "action", "first", "second", "ratio", "goal", "plain step", "2nd/plain"
    );
    for (label, f, s, p) in &lines {
        let ratio = s.as_secs_f64() / f.as_secs_f64();
        println!(
            "{label:<40} {:>9.2}s {:>9.2}s {ratio:>8.3} {:>6}  {:>11.2}s {:>8.2}",
            f.as_secs_f64(),
            s.as_secs_f64(),
            "≤ 0.1",
            p.as_secs_f64(),
            s.as_secs_f64() / p.as_secs_f64()
        );
    }
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Bench<'a> {
    env: &'a TestEnv,
    hook: PathBuf,
    ns: String,
    kubeconfig: PathBuf,
    tree: WorkTree,
    pulled: std::cell::RefCell<Vec<String>>,
}

impl<'a> Bench<'a> {
    fn new(
        rt: &tokio::runtime::Runtime,
        sim: &Sim,
        env: &'a TestEnv,
        hook: PathBuf,
    ) -> anyhow::Result<Self> {
        let ns = sim.create_namespace()?;
        rt.block_on(sim.create_runner_pod(&ns, RUNNER))?;
        let client = rt.block_on(async {
            let kc = kube::config::Kubeconfig::read_from(sim.kubeconfig_path())?;
            let cfg = kube::Config::from_custom_kubeconfig(
                kc,
                &kube::config::KubeConfigOptions::default(),
            )
            .await?;
            Ok::<_, anyhow::Error>(kube::Client::try_from(cfg)?)
        })?;
        let pull_registry = env.auth_registry.replace("127.0.0.1", "localhost");
        let secret: Secret = serde_json::from_value(testenv::registry_secret(
            SECRET,
            &env.auth_user,
            &env.auth_password,
            &[&env.auth_registry, &pull_registry],
        ))?;
        let api: Api<Secret> = Api::namespaced(client, &ns);
        rt.block_on(api.create(&PostParams::default(), &secret))?;
        let tree = WorkTree::in_temp_dir("bench-kaniko-", "repo")?;
        std::fs::write(tree.temp().join("_github_workflow/event.json"), "{}")?;
        Ok(Self {
            env,
            hook,
            ns,
            kubeconfig: sim.kubeconfig_path().to_owned(),
            tree,
            pulled: Default::default(),
        })
    }

    /// A fresh action; returns its Dockerfile.
    fn action(&self, payload_mib: u32) -> anyhow::Result<PathBuf> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let dir = self
            .tree
            .actions()
            .join("bench")
            .join(format!("a{}", &nonce[..8]))
            .join("v1");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("nonce"), &nonce)?;
        let script = dir.join("entrypoint.sh");
        std::fs::write(&script, "#!/bin/sh\necho \"action ran: $*\"\n")?;
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let payload = if payload_mib > 0 {
            format!(
                "RUN dd if=/dev/urandom of=/payload bs=1048576 count={payload_mib} 2>/dev/null\n"
            )
        } else {
            String::new()
        };
        std::fs::write(
            dir.join("Dockerfile"),
            format!(
                "FROM {}\nCOPY nonce /nonce\n{payload}COPY entrypoint.sh /entrypoint.sh\nENTRYPOINT [\"/entrypoint.sh\"]\n",
                self.env.image(testenv::Image::Busybox)
            ),
        )?;
        Ok(dir.join("Dockerfile"))
    }

    fn call(&self, spec: Value) -> anyhow::Result<(Duration, String)> {
        let vars: [(&str, String); 6] = [
            ("ACTIONS_RUNNER_POD_NAME", RUNNER.into()),
            ("ACTIONS_RUNNER_KUBERNETES_NAMESPACE", self.ns.clone()),
            ("KUBECONFIG", self.kubeconfig.display().to_string()),
            (
                "ACTIONS_RUNNER_IMAGE",
                self.env.image(testenv::Image::Runner),
            ),
            (
                "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST_PUSH",
                format!("{}/bench", self.env.auth_registry),
            ),
            (
                "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST_PULL",
                format!(
                    "{}/bench",
                    self.env.auth_registry.replace("127.0.0.1", "localhost")
                ),
            ),
        ];
        let mut cmd = self
            .tree
            .clean_command(&self.hook, std::env::var_os("PATH").unwrap_or_default());
        cmd.envs(vars).env(
            "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_SECRET_NAME",
            SECRET,
        );
        let run = testenv::runner::start(
            cmd,
            &self.tree.responses(),
            "run_container_step",
            &spec,
            None,
        )?
        .finish();
        ensure!(run.code == 0, "the hook failed:\n{}", run.stderr);
        ensure!(
            run.stdout.contains("action ran:"),
            "the action did not run:\n{}",
            run.stderr
        );
        Ok((run.elapsed, run.stderr))
    }

    fn step_spec(image: Option<&str>, dockerfile: Option<&Path>) -> Value {
        let mut spec = testenv::runner::container("");
        spec["image"] = json!(image);
        spec["dockerfile"] = json!(dockerfile);
        spec["entryPointArgs"] = json!(["bench"]);
        spec["workingDirectory"] = json!("/github/workspace");
        spec["environmentVariables"] = json!({"GITHUB_WORKSPACE": "/github/workspace"});
        spec
    }

    /// First run, second run, plain image step.
    fn iteration(&self, payload_mib: u32) -> anyhow::Result<(Duration, Duration, Duration)> {
        let dockerfile = self.action(payload_mib)?;
        let (first, log) = self.call(Self::step_spec(None, Some(&dockerfile)))?;
        ensure!(
            log.contains("built and pushed"),
            "the first run did not build:\n{log}"
        );
        let image = log
            .lines()
            .find_map(|l| l.split("Starting container step pod ").nth(1))
            .and_then(|l| {
                l.rsplit_once('(')
                    .map(|(_, i)| i.trim_end_matches(')').to_owned())
            })
            .context("no step image in the log")?;
        self.pulled.borrow_mut().push(image.clone());
        let (second, log) = self.call(Self::step_spec(None, Some(&dockerfile)))?;
        ensure!(
            log.contains("skipping the build"),
            "the second run did not skip the build:\n{log}"
        );
        let (plain, _) = self.call(Self::step_spec(Some(&image), None))?;
        Ok((first, second, plain))
    }
}

impl Drop for Bench<'_> {
    fn drop(&mut self) {
        for image in self.pulled.borrow().iter() {
            for _ in 0..40 {
                match Command::new("docker").args(["rmi", image]).output() {
                    Ok(o)
                        if o.status.success()
                            || String::from_utf8_lossy(&o.stderr).contains("No such image") =>
                    {
                        break;
                    }
                    Err(_) => break,
                    _ => std::thread::sleep(Duration::from_millis(250)),
                }
            }
        }
    }
}
