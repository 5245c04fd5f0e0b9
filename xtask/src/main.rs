//! `cargo xtask`: the project's development tasks, in Rust instead of shell scripts.

mod bench_docker;
mod bench_k8s;
mod bench_kaniko;
mod ci;
mod demo;
mod demo_k8s;
mod dist;
mod kubesim;
mod runner;
mod testenv;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(about = "Development tasks for the container hooks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Everything CI checks: the test environment, fmt, clippy -D warnings, docs, all tests.
    Ci,
    /// A sample workflow job through the real hook binaries (docker; `--k8s` on kubesim).
    #[command(disable_help_flag = true)]
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Release archives of both hooks (binary, index.js, index.sh, LICENSE, README), the
    /// runner-image overlay container-hooks-overlay.tar.gz and SHA-256 sums in dist/.
    Dist,
    /// The shared test environment: `up`, `down`, `status`.
    #[command(disable_help_flag = true)]
    Testenv {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run kubesim standalone.
    #[command(disable_help_flag = true)]
    Kubesim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmarks: `docker`, `k8s`, `kaniko`, `kubesim`, or all when none is named.
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    std::env::set_current_dir(project_root())?;
    match cli.task {
        Task::Ci => ci::run(),
        Task::Demo { args } => demo::run(&args),
        Task::Dist => dist::run().map(|_| ()),
        Task::Testenv { args } => testenv::run(&args),
        Task::Kubesim { args } => kubesim::run(&args),
        Task::Bench { args } => {
            const ALL: [&str; 4] = ["docker", "k8s", "kaniko", "kubesim"];
            let (which, rest): (Vec<&str>, &[String]) = match args.first().map(String::as_str) {
                Some(name) if ALL.contains(&name) => (vec![name], &args[1..]),
                _ => (ALL.to_vec(), &args[..]),
            };
            for name in which {
                eprintln!("== bench {name}");
                match name {
                    "docker" => bench_docker::run(rest)?,
                    "k8s" => bench_k8s::run(rest)?,
                    "kaniko" => bench_kaniko::run(rest)?,
                    _ => cmd("cargo", &["bench", "-p", "kubesim", "--bench", "perf"])?,
                }
            }
            Ok(())
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_owned()
}

/// Runs a command, failing with its name when it fails.
pub fn cmd(program: &str, args: &[&str]) -> anyhow::Result<()> {
    cmd_env(program, args, &[])
}

/// [`cmd`] with extra environment variables.
pub fn cmd_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    eprintln!("$ {}{program} {}", shown.concat(), args.join(" "));
    let status = std::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .status()?;
    anyhow::ensure!(
        status.success(),
        "`{program} {}` failed: {status}",
        args.join(" ")
    );
    Ok(())
}
