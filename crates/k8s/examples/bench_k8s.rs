//! The Kubernetes hook's benchmarks on kubesim (run by `cargo xtask bench k8s`, which passes
//! the release binary): each figure is a ratio against a baseline measured in the same run, plus
//! absolute numbers.
//!
//! 1. prepare_job wall time minus kubesim's own pod-ready time (creation → Ready, observed in
//!    its store): the hook's overhead.
//! 2. Workspace copy (20k files, 200 MB): the hook's MB/s over raw
//!    `tar c | docker exec -i <job container> tar x` into the same emptyDir.
//! 3. 1 GiB of step stdout: the hook's MB/s with the step detached (the default: followed from
//!    a log file, resumable) over the same step attached to one exec (resuming off, as before
//!    the detached runner) and over raw `docker exec <c> dd`; the hook's peak RSS.
//! 4. A `true` step's whole `run_script_step`, detached and attached (median of N each).
//!
//! `bench_k8s --hook <k8s-hook> [--quick] [--iterations N]`

use anyhow::{Context, bail};
use kubesim::store::{EventType, Kind};
use kubesim::testing::Sim;
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testenv::runner::{WorkTree, container};

struct Opts {
    hook: PathBuf,
    quick: bool,
    iterations: usize,
}

fn opts() -> anyhow::Result<Opts> {
    let mut args = std::env::args().skip(1);
    let mut o = Opts {
        hook: PathBuf::new(),
        quick: false,
        iterations: 10,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--hook" => o.hook = args.next().context("--hook needs a path")?.into(),
            "--quick" => o.quick = true,
            "--iterations" => {
                o.iterations = args.next().context("--iterations needs N")?.parse()?
            }
            other => {
                bail!("unknown argument {other:?} (expected --hook PATH, --quick, --iterations N)")
            }
        }
    }
    if !o.hook.is_file() {
        bail!("--hook {} is not a file", o.hook.display());
    }
    Ok(o)
}

/// A runner: `_work` tree, namespace, runner pod, environment.
struct Bench {
    sim: Sim,
    ns: String,
    tree: WorkTree,
    hook: PathBuf,
    env: Vec<(String, String)>,
}

/// A hook call whose stdout was counted, not kept.
struct Run {
    run: testenv::runner::Run,
    stdout_bytes: u64,
    max_rss_kb: Option<u64>,
}

impl std::ops::Deref for Run {
    type Target = testenv::runner::Run;

    fn deref(&self) -> &Self::Target {
        &self.run
    }
}

impl Bench {
    fn call(&self, command: &str, args: Value, state: Option<&Value>) -> anyhow::Result<Run> {
        self.call_env(command, args, state, &[])
    }

    fn call_env(
        &self,
        command: &str,
        args: Value,
        state: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Run> {
        // /usr/bin/time reports the peak RSS of the hook process.
        let mut cmd = self.tree.clean_command(
            "/usr/bin/time",
            std::env::var_os("PATH").unwrap_or_default(),
        );
        cmd.args(["-f", "BENCH_MAXRSS_KB=%M"])
            .arg(&self.hook)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(extra.iter().copied());
        let mut started =
            testenv::runner::start(cmd, &self.tree.responses(), command, &args, state)
                .context("starting the hook under /usr/bin/time")?;
        let stdout_bytes = started.count_stdout()?;
        let run = started.finish();
        let max_rss_kb = run
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("BENCH_MAXRSS_KB="))
            .and_then(|v| v.trim().parse().ok());
        Ok(Run {
            run,
            stdout_bytes,
            max_rss_kb,
        })
    }

    fn prepare(&self) -> anyhow::Result<(Run, Value)> {
        let env = testenv_env()?;
        let mut job = container(&env.image(testenv::Image::Busybox));
        job["workingDirectory"] = json!("/__w/repo/repo");
        job["environmentVariables"] = json!({"HOME": "/github/home"});
        let run = self.call(
            "prepare_job",
            json!({"container": job, "services": []}),
            None,
        )?;
        if run.code != 0 {
            bail!("prepare_job failed:\n{}", run.stderr);
        }
        let state = serde_json::from_str::<Value>(&run.response)?["state"].clone();
        Ok((run, state))
    }

    fn cleanup(&self, state: &Value) -> anyhow::Result<()> {
        let run = self.call("cleanup_job", json!({}), Some(state))?;
        if run.code != 0 {
            bail!("cleanup_job failed:\n{}", run.stderr);
        }
        Ok(())
    }

    fn job_container(&self) -> anyhow::Result<String> {
        let out = Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                "label=io.kubernetes.container.name=job",
            ])
            .args([
                "--filter",
                &format!("label=io.kubernetes.pod.namespace={}", self.ns),
            ])
            .args([
                "--filter",
                "label=io.kubernetes.pod.name=runner-bench-workflow",
            ])
            .output()?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if id.is_empty() || id.contains('\n') {
            bail!("cannot find the job container's docker container ({id:?})");
        }
        Ok(id)
    }
}

fn count(r: &mut impl Read) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf)? {
            0 => return Ok(n),
            k => n += k as u64,
        }
    }
}

fn testenv_env() -> anyhow::Result<testenv::TestEnv> {
    static ENV: std::sync::OnceLock<testenv::TestEnv> = std::sync::OnceLock::new();
    if let Some(e) = ENV.get() {
        return Ok(e.clone());
    }
    let e = tokio::runtime::Runtime::new()?.block_on(testenv::ensure())?;
    Ok(ENV.get_or_init(|| e).clone())
}

fn setup(rt: &tokio::runtime::Runtime, hook: &Path) -> anyhow::Result<Bench> {
    let env = testenv_env()?;
    let sim = rt.block_on(Sim::start(kubesim::SimConfig::default()))?;
    let ns = sim.create_namespace()?;
    rt.block_on(sim.create_runner_pod(&ns, "runner-bench"))?;
    let tree = WorkTree::in_temp_dir("k8s-bench-", "repo")?;
    let vars = vec![
        ("ACTIONS_RUNNER_POD_NAME", "runner-bench".to_owned()),
        ("ACTIONS_RUNNER_KUBERNETES_NAMESPACE", ns.clone()),
        ("KUBECONFIG", sim.kubeconfig_path().display().to_string()),
        ("ACTIONS_RUNNER_IMAGE", env.image(testenv::Image::Runner)),
    ];
    Ok(Bench {
        sim,
        ns,
        tree,
        hook: hook.to_owned(),
        env: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    })
}

/// The instant the job pod was created and the instant kubesim marked it Ready, from its store.
fn watch_ready(bench: &Bench) -> std::sync::mpsc::Receiver<Duration> {
    let mut rx = bench.sim.store().subscribe();
    let ns = bench.ns.clone();
    let (tx, out) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(rt) = rt else { return };
        rt.block_on(async move {
            let mut created: Option<Instant> = None;
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                if ev.kind != Kind::Pod || ev.namespace != ns || ev.name != "runner-bench-workflow"
                {
                    continue;
                }
                match ev.etype {
                    EventType::Added => created = Some(Instant::now()),
                    EventType::Deleted => created = None,
                    EventType::Modified => {
                        let ready = ev.object["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True");
                        if ready
                            && let Some(c) = created.take()
                            && tx.send(c.elapsed()).is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
    });
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_prepare(bench: &Bench, iterations: usize) -> anyhow::Result<()> {
    let ready_times = watch_ready(bench);
    let (mut walls, mut readys, mut overheads) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iterations {
        let (run, state) = bench.prepare()?;
        let ready = ready_times
            .recv_timeout(Duration::from_secs(10))
            .context("kubesim never reported the job pod Ready")?;
        // `ready` is measured from creation to Ready; the hook's wall time contains it.
        let wall = run.elapsed.as_secs_f64() * 1000.0;
        let r = ready.as_secs_f64() * 1000.0;
        walls.push(wall);
        readys.push(r);
        overheads.push(wall - r);
        bench.cleanup(&state)?;
    }
    println!(
        "prepare_job: wall {:.0} ms, kubesim pod-ready {:.0} ms, hook overhead {:.0} ms (median of {iterations}; goal <= 150 ms; min {:.0} ms)",
        median(walls),
        median(readys),
        median(overheads.clone()),
        overheads.iter().copied().fold(f64::INFINITY, f64::min)
    );
    Ok(())
}

fn make_tree(root: &Path, files: usize, size: usize) -> anyhow::Result<()> {
    let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    for i in 0..files {
        let dir = root.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        std::fs::write(dir.join(format!("f{i}")), &data)?;
    }
    Ok(())
}

fn bench_copy(bench: &Bench, quick: bool) -> anyhow::Result<()> {
    let (files, size) = if quick {
        (2_000, 10_000)
    } else {
        (20_000, 10_000)
    };
    let tree = bench.tree.workspace().join("tree");
    make_tree(&tree, files, size)?;
    let (run, state) = bench.prepare()?;
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("workspace copied:"))
        .context("no copy summary in the hook's log")?
        .to_owned();
    // "... workspace copied: N entries, X MB (Y MB/s) in T s; ..."
    let part = line.split("workspace copied: ").nth(1).unwrap_or_default();
    // The number that starts the second piece of `part` split at `sep`.
    let number =
        |sep: &str| -> Option<f64> { part.split(sep).nth(1)?.split(' ').next()?.parse().ok() };
    let mb = number(", ").context("no MB in the copy summary")?;
    let secs = number(" in ").context("no time in the copy summary")?;
    let hook = mb / secs;
    let cid = bench.job_container()?;
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar cf - -C '{}' . | docker exec -i {cid} sh -c 'mkdir -p /__w/.raw && tar xf - -C /__w/.raw'",
            bench.tree.work().display()
        ))
        .status()?;
    let raw_secs = start.elapsed().as_secs_f64();
    if !status.success() {
        bail!("raw tar | docker exec failed");
    }
    let raw = mb / raw_secs;
    println!(
        "workspace copy ({files} files, {mb:.0} MB): hook {hook:.0} MB/s ({secs:.2} s), raw tar|docker exec {raw:.0} MB/s ({raw_secs:.2} s), ratio {:.2} (goal >= 0.8)",
        hook / raw
    );
    bench.cleanup(&state)?;
    std::fs::remove_dir_all(&tree)?;
    Ok(())
}

/// How a script step runs: detached (the default) or attached to one exec (resuming off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Detached,
    Attached,
}

impl Mode {
    fn env(self) -> [(&'static str, &'static str); 1] {
        let secs = match self {
            Self::Detached => "300",
            Self::Attached => "0",
        };
        [(container_hooks_k8s::RESUME_TIMEOUT_VAR, secs)]
    }
}

/// Runs `body` as a script step in `mode`.
fn step(bench: &Bench, state: &Value, body: &str, mode: Mode) -> anyhow::Result<Run> {
    let script = bench.tree.write_script(body)?;
    let args = script.args(json!({}), json!([]), "/__w/repo/repo");
    let run = bench.call_env("run_script_step", args, Some(state), &mode.env());
    script.remove();
    run
}

fn bench_stdout(bench: &Bench, quick: bool) -> anyhow::Result<()> {
    let mib: u64 = if quick { 128 } else { 1024 };
    let reps = if quick { 1 } else { 3 };
    let (_, state) = bench.prepare()?;
    let dd = format!("dd if=/dev/zero bs=1048576 count={mib} 2>/dev/null");
    let bytes = (mib << 20) as f64;
    let cid = bench.job_container()?;
    let (mut detached, mut attached, mut raw, mut rss) = (Vec::new(), Vec::new(), Vec::new(), 0);
    // Interleaved, so that a slow phase of the machine hits every variant alike.
    for _ in 0..reps {
        for (mode, out) in [
            (Mode::Attached, &mut attached),
            (Mode::Detached, &mut detached),
        ] {
            let run = step(bench, &state, &format!("{dd}\n"), mode)?;
            if run.code != 0 || run.stdout_bytes != mib << 20 {
                bail!(
                    "the {mode:?} step failed or lost output ({} of {} bytes):\n{}",
                    run.stdout_bytes,
                    mib << 20,
                    run.stderr
                );
            }
            out.push(bytes / 1e6 / run.elapsed.as_secs_f64());
            if mode == Mode::Detached {
                rss = rss.max(run.max_rss_kb.unwrap_or(0));
            }
        }
        let start = Instant::now();
        let mut child = Command::new("docker")
            .args(["exec", &cid, "sh", "-c", &dd])
            .stdout(Stdio::piped())
            .spawn()?;
        let got = count(&mut child.stdout.take().context("stdout")?)?;
        child.wait()?;
        if got != mib << 20 {
            bail!("raw docker exec delivered {got} bytes");
        }
        raw.push(bytes / 1e6 / start.elapsed().as_secs_f64());
    }
    let (d, a, r) = (median(detached), median(attached), median(raw));
    println!(
        "step stdout ({mib} MiB, whole run_script_step, median of {reps}): detached {d:.0} MB/s, attached {a:.0} MB/s (before), raw docker exec {r:.0} MB/s; detached/attached {:.2} (goal >= 0.8), detached/raw {:.2}, attached/raw {:.2}; hook peak RSS {:.1} MiB (goal <= 64 MiB)",
        d / a,
        d / r,
        a / r,
        rss as f64 / 1024.0
    );
    bench.cleanup(&state)?;
    Ok(())
}

fn bench_true(bench: &Bench, iterations: usize) -> anyhow::Result<()> {
    let (_, state) = bench.prepare()?;
    let (mut detached, mut attached) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        for (mode, out) in [
            (Mode::Attached, &mut attached),
            (Mode::Detached, &mut detached),
        ] {
            let run = step(bench, &state, "true\n", mode)?;
            if run.code != 0 {
                bail!("the {mode:?} `true` step failed:\n{}", run.stderr);
            }
            out.push(run.elapsed.as_secs_f64() * 1000.0);
        }
    }
    let (d, a) = (median(detached), median(attached));
    println!(
        "`true` step (whole run_script_step, median of {iterations}): detached {d:.0} ms, attached {a:.0} ms (before); attached/detached {:.2} (goal >= 0.8)",
        a / d
    );
    bench.cleanup(&state)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let o = opts()?;
    let rt = tokio::runtime::Runtime::new()?;
    let bench = setup(&rt, &o.hook)?;
    println!(
        "k8s hook benchmarks on kubesim ({})",
        if o.quick { "quick" } else { "full" }
    );
    bench_prepare(&bench, o.iterations)?;
    bench_copy(&bench, o.quick)?;
    bench_stdout(&bench, o.quick)?;
    bench_true(&bench, o.iterations)?;
    let Bench { sim, .. } = bench;
    rt.block_on(sim.shutdown());
    Ok(())
}
