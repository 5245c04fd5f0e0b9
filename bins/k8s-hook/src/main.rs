//! `k8s-hook`: the k8s container hook for the GitHub Actions runner.
//!
//! The runner starts it (through `index.sh`) with one JSON line on stdin; see the README.

use clap::Parser;
use hooklib::logging::LogSettings;
use std::process::ExitCode;

/// The folder the binary was started from when no launcher said (`index.js` and `index.sh` set
/// `CONTAINER_HOOKS_LAUNCHER_DIR` to their own folder): that of the path in argv[0], which a
/// launcher that only execs the binary next to it leaves there. The folder's name picks the
/// default volume mode (see `container_hooks_k8s::VOLUME_MODE_FOLDER`).
fn started_from() -> Option<String> {
    let argv0 = std::path::PathBuf::from(std::env::args_os().next()?);
    let dir = argv0.parent()?.to_str()?;
    (!dir.is_empty()).then(|| dir.to_owned())
}

/// The k8s container hook for the GitHub Actions runner.
///
/// Reads one command (prepare_job, run_script_step, run_container_step, cleanup_job) as a JSON
/// line on stdin, writes the response file the runner named, and exits with the step's exit
/// code. Point ACTIONS_RUNNER_CONTAINER_HOOKS at the index.js (or index.sh) next to this binary.
/// Started from a folder named `k8s` (GitHub's volume-mode hook folder in the runner image), the
/// hook defaults to volume mode with the claim <ACTIONS_RUNNER_POD_NAME>-work.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {}

fn main() -> ExitCode {
    Cli::parse();
    let started_from = started_from();
    let env = |k: &str| {
        std::env::var(k).ok().or_else(|| match k {
            container_hooks_k8s::LAUNCHER_DIR_VAR => started_from.clone(),
            _ => None,
        })
    };
    hooklib::main_with(&LogSettings::from_lookup(env), |cancel| {
        container_hooks_k8s::Settings::from_lookup(env)
            .map(|settings| container_hooks_k8s::K8sHook::new(settings, cancel))
    })
}
