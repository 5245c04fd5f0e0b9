//! `cargo xtask bench docker [--quick]`: the docker hook against baselines measured in the same
//! run on the same engine, with images from the local test registry.
//!
//! 1. `run_script_step` running `true`: hook wall time / `docker exec <c> true` (goal ≤ 1.10).
//! 2. `prepare_job` (job container + 2 services): hook / the docker CLI calls GitHub's hook
//!    issues, as a shell script (goal ≤ 0.6).
//! 3. 1 GiB of step stdout: hook throughput / `docker exec <c> head -c 1G /dev/zero`
//!    throughput (goal ≥ 0.5), and the hook's peak RSS (goal ≤ 64 MiB).
//!
//! The hook is the release build, called the way the runner calls it (one JSON line on stdin,
//! a pre-created response file), without the `index.sh` launcher.

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use testenv::runner::WorkTree;
use testenv::{Image, TestEnv};

const LABEL: &str = "com.github.actions.container-hooks.runner";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut quick = false;
    for a in args {
        match a.as_str() {
            "--quick" => quick = true,
            other => bail!("unknown argument {other:?}; usage: cargo xtask bench docker [--quick]"),
        }
    }
    crate::cmd(
        "cargo",
        &["build", "--release", "--quiet", "-p", "docker-hook"],
    )?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let hook = std::fs::canonicalize(target.join("release/docker-hook"))
        .context("the release build of docker-hook")?;
    let env = tokio::runtime::Runtime::new()?
        .block_on(testenv::ensure())
        .context("bringing up the test environment (cargo xtask testenv up)")?;
    let bench = Bench::new(&hook)?;

    let (exec_iters, prepare_iters, stdout_runs) = if quick { (10, 2, 1) } else { (30, 5, 3) };
    let mut report = Vec::new();
    report.push(bench.script_step(&env, exec_iters)?);
    report.push(bench.prepare(&env, prepare_iters)?);
    report.extend(bench.stdout(&env, stdout_runs, 1 << 30)?);

    println!("\n== docker hook benchmarks (medians; baseline measured in the same run)");
    println!(
        "{:<44} {:>12} {:>12} {:>8} {:>10}",
        "benchmark", "hook", "baseline", "ratio", "goal"
    );
    for line in &report {
        println!("{line}");
    }
    Ok(())
}

/// One line of the report.
struct Line {
    name: String,
    hook: String,
    baseline: String,
    ratio: Option<f64>,
    goal: String,
    met: bool,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<44} {:>12} {:>12} {:>8} {:>10} {}",
            self.name,
            self.hook,
            self.baseline,
            self.ratio
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
            self.goal,
            if self.met { "ok" } else { "MISSED" }
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(secs: f64) -> String {
    format!("{:.1} ms", secs * 1000.0)
}

/// A fake runner driving the hook binary.
struct Bench {
    hook: PathBuf,
    name: String,
    tree: WorkTree,
}

impl Drop for Bench {
    fn drop(&mut self) {
        remove_labelled(&self.name);
    }
}

/// Removes the containers and networks labelled with runner `name` (docker CLI; bench only).
fn remove_labelled(name: &str) {
    let filter = format!("label={LABEL}={name}");
    let list = |args: &[&str]| -> Vec<String> {
        Command::new("docker")
            .args(args)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = list(&["ps", "-aq", "--filter", &filter]);
    if !containers.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(&containers)
            .output();
    }
    let networks = list(&["network", "ls", "-q", "--filter", &filter]);
    if !networks.is_empty() {
        let _ = Command::new("docker")
            .args(["network", "rm"])
            .args(&networks)
            .output();
    }
}

/// A hook call's outcome.
struct Call {
    code: i32,
    took: Duration,
    stdout_bytes: u64,
    peak_rss_kib: u64,
    response: String,
    stderr: String,
}

impl Bench {
    fn new(hook: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            hook: hook.to_owned(),
            name: format!("bench-{}", std::process::id()),
            tree: WorkTree::in_temp_dir("hooks-bench-", "repo")?,
        })
    }

    /// Calls the hook; stdout is read and counted (not kept) while the hook's peak RSS is
    /// sampled from /proc.
    fn call(&self, command: &str, args: Value, state: Option<&Value>) -> anyhow::Result<Call> {
        let mut cmd = self.tree.command(&self.hook);
        cmd.env("RUNNER_NAME", &self.name);
        let mut started =
            testenv::runner::start(cmd, &self.tree.responses(), command, &args, state)
                .context("starting the hook")?;
        let pid = started.pid();
        let done = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (done, peak) = (done.clone(), peak.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                        && let Some(kib) = status
                            .lines()
                            .find_map(|l| l.strip_prefix("VmHWM:"))
                            .and_then(|v| {
                                v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
                            })
                    {
                        peak.fetch_max(kib, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let bytes = started.count_stdout()?;
        let run = started.finish();
        done.store(true, Ordering::SeqCst);
        let _ = sampler.join();
        Ok(Call {
            code: run.code,
            took: run.elapsed,
            stdout_bytes: bytes,
            peak_rss_kib: peak.load(Ordering::SeqCst),
            response: run.response,
            stderr: run.stderr,
        })
    }

    fn ok(&self, command: &str, args: Value, state: Option<&Value>) -> anyhow::Result<Call> {
        let call = self.call(command, args, state)?;
        ensure!(
            call.code == 0,
            "{command} failed with {}: {}",
            call.code,
            call.stderr
        );
        Ok(call)
    }

    fn container(image: &str, entry: Option<(&str, &[&str])>, ports: &[&str]) -> Value {
        let mut spec = testenv::runner::container(image);
        spec["entryPoint"] = json!(entry.map(|e| e.0));
        spec["entryPointArgs"] = json!(entry.map(|e| e.1).unwrap_or(&[]));
        spec["environmentVariables"] = json!({"HOME": "/github/home"});
        spec["portMappings"] = json!(ports);
        spec
    }

    /// prepare_job with only a job container; returns the state.
    fn job(&self, env: &TestEnv) -> anyhow::Result<(Value, String)> {
        let call = self.ok(
            "prepare_job",
            json!({"container": Self::container(&env.image(Image::Busybox), None, &[]), "services": []}),
            None,
        )?;
        let resp: Value = serde_json::from_str(&call.response)?;
        let id = resp["context"]["container"]["id"]
            .as_str()
            .context("no job container id")?
            .to_owned();
        Ok((resp["state"].clone(), id))
    }

    fn script_step(&self, env: &TestEnv, iters: usize) -> anyhow::Result<Line> {
        eprintln!("bench: run_script_step `true` vs docker exec ({iters} each)");
        let (state, id) = self.job(env)?;
        let args = json!({
            "entryPoint": "true", "entryPointArgs": [], "environmentVariables": {"CI": "true"},
            "prependPath": [], "workingDirectory": "/"
        });
        let (mut hook, mut raw) = (Vec::new(), Vec::new());
        // Warm up both, then alternate so drift hits both equally.
        self.ok("run_script_step", args.clone(), Some(&state))?;
        docker_timed(&["exec", &id, "true"])?;
        for _ in 0..iters {
            hook.push(
                self.ok("run_script_step", args.clone(), Some(&state))?
                    .took
                    .as_secs_f64(),
            );
            raw.push(docker_timed(&["exec", &id, "true"])?.as_secs_f64());
        }
        self.ok("cleanup_job", json!({}), Some(&state))?;
        let (h, b) = (median(hook), median(raw));
        Ok(Line {
            name: "run_script_step `true` (wall time)".to_owned(),
            hook: ms(h),
            baseline: ms(b),
            ratio: Some(h / b),
            goal: "≤ 1.10".to_owned(),
            met: h / b <= 1.10,
        })
    }

    fn prepare(&self, env: &TestEnv, iters: usize) -> anyhow::Result<Line> {
        eprintln!(
            "bench: prepare_job (job + 2 services) vs GitHub's docker CLI sequence ({iters} each)"
        );
        let busybox = env.image(Image::Busybox);
        let sleep: &[&str] = &["600"];
        let args = json!({
            "container": Self::container(&busybox, None, &[]),
            "services": [
                Self::container(&busybox, Some(("sleep", sleep)), &["80"]),
                Self::container(&env.image(Image::AlpineLike), Some(("sleep", sleep)), &["80"]),
            ]
        });
        let script_path = self.tree.root().join("github-prepare.sh");
        std::fs::write(&script_path, GITHUB_PREPARE)?;
        let (mut hook, mut raw) = (Vec::new(), Vec::new());
        for i in 0..iters {
            let call = self.ok("prepare_job", args.clone(), None)?;
            hook.push(call.took.as_secs_f64());
            let state: Value = serde_json::from_str::<Value>(&call.response)?["state"].clone();
            self.ok("cleanup_job", json!({}), Some(&state))?;

            let label = format!("{LABEL}={}", self.name);
            let network = format!("bench-gh-{}-{i}", std::process::id());
            let started = Instant::now();
            let out = Command::new("bash")
                .arg(&script_path)
                .args([
                    label.as_str(),
                    network.as_str(),
                    busybox.as_str(),
                    busybox.as_str(),
                    env.image(Image::AlpineLike).as_str(),
                ])
                .output()?;
            raw.push(started.elapsed().as_secs_f64());
            ensure!(
                out.status.success(),
                "the baseline script failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            remove_labelled(&self.name);
        }
        let (h, b) = (median(hook), median(raw));
        Ok(Line {
            name: "prepare_job, job + 2 services (wall time)".to_owned(),
            hook: ms(h),
            baseline: ms(b),
            ratio: Some(h / b),
            goal: "≤ 0.60".to_owned(),
            met: h / b <= 0.6,
        })
    }

    fn stdout(&self, env: &TestEnv, runs: usize, bytes: u64) -> anyhow::Result<Vec<Line>> {
        eprintln!(
            "bench: {} MiB of step stdout vs docker exec ({runs} each)",
            bytes >> 20
        );
        let (state, id) = self.job(env)?;
        let count = bytes.to_string();
        let args = json!({
            "entryPoint": "head", "entryPointArgs": ["-c", count, "/dev/zero"],
            "environmentVariables": {}, "prependPath": [], "workingDirectory": "/"
        });
        let (mut hook, mut raw, mut rss) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let call = self.ok("run_script_step", args.clone(), Some(&state))?;
            ensure!(
                call.stdout_bytes == bytes,
                "the hook forwarded {} bytes, expected {bytes}",
                call.stdout_bytes
            );
            hook.push(bytes as f64 / call.took.as_secs_f64());
            rss.push(call.peak_rss_kib as f64);

            let started = Instant::now();
            let mut child = Command::new("docker")
                .args(["exec", &id, "head", "-c", &count, "/dev/zero"])
                .stdout(Stdio::piped())
                .spawn()?;
            let mut out = child.stdout.take().context("stdout")?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            loop {
                let n = out.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
            ensure!(child.wait()?.success(), "docker exec failed");
            ensure!(got == bytes, "docker exec forwarded {got} bytes");
            raw.push(bytes as f64 / started.elapsed().as_secs_f64());
        }
        self.ok("cleanup_job", json!({}), Some(&state))?;
        let (h, b) = (median(hook), median(raw));
        let peak = rss.into_iter().fold(0.0, f64::max) / 1024.0;
        let mib = |v: f64| format!("{:.0} MiB/s", v / (1 << 20) as f64);
        Ok(vec![
            Line {
                name: format!("{} MiB of step stdout (throughput)", bytes >> 20),
                hook: mib(h),
                baseline: mib(b),
                ratio: Some(h / b),
                goal: "≥ 0.50".to_owned(),
                met: h / b >= 0.5,
            },
            Line {
                name: "  hook peak RSS during it".to_owned(),
                hook: format!("{peak:.1} MiB"),
                baseline: "-".to_owned(),
                ratio: None,
                goal: "≤ 64 MiB".to_owned(),
                met: peak <= 64.0,
            },
        ])
    }
}

fn docker_timed(args: &[&str]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new("docker").args(args).output()?;
    let took = started.elapsed();
    ensure!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

/// The docker CLI calls GitHub's TypeScript hook makes in prepare_job for a job container and
/// two services without health checks (prune, network, pull/create/start each, alpine check,
/// ports, health inspect), in its order. Arguments: label, network, job image, service images.
const GITHUB_PREPARE: &str = r#"set -e
label="$1"; net="$2"; job_image="$3"; s1="$4"; s2="$5"
ids=$(docker ps --all --quiet --no-trunc --filter "label=$label")
if [ -n "$ids" ]; then docker rm --force $ids >/dev/null; fi
docker network prune --force --filter "label=$label" >/dev/null
docker network create --label "$label" "$net" >/dev/null
docker pull "$job_image" >/dev/null
job=$(docker create --label="$label" --network="$net" --name "$net-job" -e HOME --entrypoint tail "$job_image" -f /dev/null)
docker start "$job" >/dev/null
services=""
i=0
for image in "$s1" "$s2"; do
  i=$((i + 1))
  docker pull "$image" >/dev/null
  id=$(docker create --label="$label" --network="$net" --network-alias="svc$i" --name "$net-svc$i" -p 80 -e HOME --entrypoint sleep "$image" 600)
  docker start "$id" >/dev/null
  services="$services $id"
done
docker exec "$job" sh -c "[ \$(cat /etc/*release* | grep -i -e '^ID=*alpine*' -c) != 0 ] || exit 1" || true
for c in $job $services; do docker port "$c" >/dev/null || true; done
for c in $job $services; do docker inspect --format='{{if .Config.Healthcheck}}{{print .State.Health.Status}}{{end}}' "$c" >/dev/null; done
"#;
