//! `cargo xtask demo [--k8s]`: a sample workflow job through the real hook binaries, driven the
//! way the runner drives them (see `runner.rs`), printing the job log and each phase's time.

use crate::runner::Runner;
use anyhow::{Context as _, ensure};
use std::path::{Path, PathBuf};
use testenv::{Image, TestEnv};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let k8s = args.iter().any(|a| a == "--k8s");
    preflight()?;
    let binary = if k8s { "k8s-hook" } else { "docker-hook" };
    crate::cmd("cargo", &["build", "--quiet", "-p", binary])?;
    let rt = tokio::runtime::Runtime::new()?;
    let env = rt
        .block_on(testenv::ensure())
        .context("bringing up the test environment (cargo xtask testenv up)")?;
    let root = tempfile::Builder::new().prefix("hooks-demo-").tempdir()?;
    let hook = install(root.path(), binary)?;
    let (hook_env, cluster) = if k8s {
        println!(
            "== Starting kubesim (a Kubernetes API simulator whose pods are Docker containers)"
        );
        let cluster = rt.block_on(crate::demo_k8s::Cluster::start(&env))?;
        (cluster.runner_env(), Some(cluster))
    } else {
        let name = format!("demo-{}", std::process::id());
        (vec![("RUNNER_NAME".to_owned(), name)], None)
    };
    let mut runner = Runner::new(&hook, &root.path().join("runner"), "webshop", hook_env)?;
    let result = job(&mut runner, &env);
    if let Some(cluster) = &cluster {
        println!(
            "\npods before cleanup: {:?}",
            rt.block_on(cluster.job_pods())?
        );
    }
    // cleanup_job runs even when an earlier step failed, as the runner does.
    println!("\n== Post job cleanup");
    let mut cleanup = runner.cleanup_job();
    if let Some(cluster) = &cluster {
        let left = rt.block_on(cluster.job_pods())?;
        println!("pods after cleanup: {left:?}");
        if !left.is_empty() && cleanup.is_ok() {
            cleanup = Err(anyhow::anyhow!("cleanup_job left pods behind: {left:?}"));
        }
    }
    summary(&runner);
    if let Some(cluster) = cluster {
        rt.block_on(cluster.stop());
    }
    result.and(cleanup)
}

fn preflight() -> anyhow::Result<()> {
    for (path, package) in [
        ("/bin/busybox", "busybox-static"),
        ("/usr/bin/docker-registry", "docker-registry"),
        ("/usr/bin/htpasswd", "apache2-utils"),
    ] {
        ensure!(
            Path::new(path).exists(),
            "{path} is missing: install it with `apt-get install {package}` (the demo builds its images from it)"
        );
    }
    let docker = std::process::Command::new("docker").arg("info").output();
    ensure!(
        docker.is_ok_and(|o| o.status.success()),
        "no Docker Engine answers on this machine: start it (e.g. `service docker start`) and retry"
    );
    Ok(())
}

/// Copies the debug build of `binary` with its `index.sh` into `dir/<binary>/`.
fn install(dir: &Path, binary: &str) -> anyhow::Result<PathBuf> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let hook_dir = dir.join(binary);
    std::fs::create_dir_all(&hook_dir)?;
    std::fs::copy(target.join("debug").join(binary), hook_dir.join(binary))?;
    crate::dist::write_launcher(&hook_dir, binary)?;
    Ok(hook_dir.join("index.sh"))
}

fn job(runner: &mut Runner, env: &TestEnv) -> anyhow::Result<()> {
    println!("== Initialize containers");
    let job = runner.container(
        &env.image(Image::Busybox),
        Some("--cpus 1"),
        &[("NODE_ENV", "test")],
        &[],
        true,
    );
    let service = runner.container(
        &env.image(Image::Healthy),
        Some("--health-cmd \"test -f /tmp/ready\" --health-interval 1s --health-retries 10"),
        &[],
        &["8080"],
        false,
    );
    let response = runner.prepare_job(Some(job), vec![service])?;
    println!("context: {}", response["context"]);

    println!("\n== Step 1");
    let step = runner.script_step(
        "show the job container",
        "echo \"workdir: $(pwd)\"\necho \"PATH: $PATH\"\necho \"NODE_ENV=$NODE_ENV, price: $PRICE\"\ncat /etc/os-release | head -1",
        &[("PRICE", "$5 and ${NOT_EXPANDED}")],
        &["/__w/_tool/demo/bin"],
    )?;
    ensure!(step.code == 0, "step 1 failed");

    println!("\n== Step 2");
    let step = runner.script_step(
        "set an output",
        "echo \"greeting=hello from $(hostname)\" >> \"$GITHUB_OUTPUT\"",
        &[],
        &[],
    )?;
    ensure!(step.code == 0, "step 2 failed");
    let greeting = step
        .outputs
        .get("greeting")
        .context("step 2 set no output `greeting`")?
        .clone();
    println!("output greeting = {greeting}");

    println!("\n== Step 3");
    let step = runner.script_step(
        "use the output",
        "echo \"step 2 said: $GREETING\"",
        &[("GREETING", &greeting)],
        &[],
    )?;
    ensure!(step.code == 0, "step 3 failed");

    println!("\n== Step 4");
    let step = runner.script_step(
        "a failing step (continue-on-error)",
        "echo about to fail\nexit 3",
        &[],
        &[],
    )?;
    ensure!(step.code == 3, "step 4 should exit 3, got {}", step.code);

    println!("\n== Step 5");
    let step = runner.container_step(
        "container action from an image",
        Some(&env.image(Image::Busybox)),
        None,
        &[
            "sh",
            "-c",
            "'echo",
            "\"Hello",
            "Mona",
            "the",
            "Octocat\";",
            "echo",
            "answer=42",
            ">>",
            "$GITHUB_OUTPUT'",
        ],
        &[],
    )?;
    ensure!(step.code == 0, "step 5 failed");
    ensure!(
        step.outputs.get("answer").map(String::as_str) == Some("42"),
        "step 5 output lost: {:?}",
        step.outputs
    );
    println!("output answer = 42");

    println!("\n== Step 6");
    let action = write_dockerfile_action(runner, env)?;
    let step = runner.container_step(
        "Dockerfile action acme/hello-action@v1",
        None,
        Some(&action),
        &["\"Mona", "Lisa\""],
        &[("INPUT_WHO", "world")],
    )?;
    ensure!(step.code == 0, "step 6 failed");
    ensure!(
        step.outputs.get("greeted").map(String::as_str) == Some("Mona Lisa"),
        "step 6 output lost: {:?}",
        step.outputs
    );
    println!("output greeted = Mona Lisa");
    Ok(())
}

fn write_dockerfile_action(runner: &Runner, env: &TestEnv) -> anyhow::Result<PathBuf> {
    let dir = runner.actions_dir().join("acme/hello-action/v1");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY entrypoint.sh /entrypoint.sh\nENTRYPOINT [\"/entrypoint.sh\"]\n",
            env.image(Image::Busybox)
        ),
    )?;
    let script = dir.join("entrypoint.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"hello $1 (INPUT_WHO=$INPUT_WHO) from a Dockerfile action\"\necho \"greeted=$1\" >> \"$GITHUB_OUTPUT\"\n",
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(dir.join(".dockerignore"), "*.md\n")?;
    std::fs::write(dir.join("README.md"), "ignored by .dockerignore\n")?;
    Ok(dir.join("Dockerfile"))
}

fn summary(runner: &Runner) {
    println!("\n== Hook calls");
    let mut total = 0.0;
    for (command, took) in &runner.timings {
        total += took.as_secs_f64();
        println!("{command:<20} {:>7.2} s", took.as_secs_f64());
    }
    println!("{:<20} {total:>7.2} s", "total");
}
