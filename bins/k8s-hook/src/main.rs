//! `k8s-hook`: the k8s container hook for the GitHub Actions runner.
//!
//! The runner starts it (through `index.sh`) with one JSON line on stdin; see the README.

use clap::Parser;
use hooklib::logging::LogSettings;
use std::process::ExitCode;

/// The k8s container hook for the GitHub Actions runner.
///
/// Reads one command (prepare_job, run_script_step, run_container_step, cleanup_job) as a JSON
/// line on stdin, writes the response file the runner named, and exits with the step's exit
/// code. Point ACTIONS_RUNNER_CONTAINER_HOOKS at the index.sh next to this binary.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {}

fn main() -> ExitCode {
    Cli::parse();
    let env = |k: &str| std::env::var(k).ok();
    hooklib::main_with(&LogSettings::from_lookup(env), |cancel| {
        container_hooks_k8s::Settings::from_lookup(env)
            .map(|settings| container_hooks_k8s::K8sHook::new(settings, cancel))
    })
}
