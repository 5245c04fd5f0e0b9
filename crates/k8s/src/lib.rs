//! The Kubernetes hook: runs a GitHub Actions job's containers on a Kubernetes cluster as pods.
//!
//! `prepare_job` creates the job pod (job container, services, an `fs-init` init container for
//! the runner's `externals`) and, in copy mode, streams the runner's `_work` into it;
//! `run_script_step` runs each step detached in the job container and follows its output over
//! exec, resuming across dropped connections; `run_container_step` runs an action image in
//! its own pod; `cleanup_job` deletes everything labelled with the runner pod. See
//! `docs/k8s.md`.

// Architecture invariants enforced by the compiler: no environment reads below the binaries
// (clippy.toml lists the methods) and stdout belongs to the step.
#![deny(clippy::disallowed_methods, clippy::print_stdout)]

mod admit;
mod build;
mod cleanup;
mod client;
mod container_step;
mod context;
mod copy;
mod detached;
mod error;
mod events;
mod exec;
mod fate;
mod mounts;
mod names;
mod objects;
mod options;
mod pod;
mod policy;
mod prepare;
mod rbac;
mod retry;
mod script;
mod script_run;
mod script_step;
mod secrets;
mod settings;
mod step_files;
mod steplog;
mod tarball;
mod template;
mod wait;

#[cfg(test)]
mod assess_tests;
#[cfg(test)]
mod detached_tests;
#[cfg(test)]
mod exec_tests;
#[cfg(test)]
mod snapshot_tests;

pub use admit::Limits as CopyBackLimits;
pub use build::{BuildError, BuildSettings, Builder};
pub use error::Error;
pub use rbac::{
    BUILD_REQUIRED as BUILD_PERMISSIONS, OPTIONAL as OPTIONAL_PERMISSIONS, Permission,
    REQUIRED as REQUIRED_PERMISSIONS,
};
pub use settings::{
    COST_LABELS_VAR, ClusterSource, CopyBack, DEFAULT_RESUME_TIMEOUT, Heartbeat, LAUNCHER_DIR_VAR,
    RESUME_TIMEOUT_VAR, Settings, SettingsError, TEMPLATE_PATCH_VAR, VOLUME_MODE_FOLDER,
};

use context::Ctx;
use hooklib::{
    Cancel, Container, Hook, PrepareJob, PrepareJobResponse, RunScriptStepArgs, StepOutcome,
};

/// What the Kubernetes hook remembers between commands.
///
/// `jobPod` is the upstream hook's field, so a state written by either hook is understood.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The job pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_pod: Option<String>,
    /// Whether the job pod has a job container (where the workspace lives in copy mode).
    #[serde(default)]
    pub job_container: bool,
}

/// The Kubernetes hook.
#[derive(Debug)]
pub struct K8sHook {
    settings: Settings,
    cancel: Cancel,
}

impl K8sHook {
    /// A hook with these settings, stopping what it runs when `cancel` fires (the runner's
    /// SIGINT/SIGTERM, see [`hooklib::main_with`]). Each command gets its own context (and at
    /// most one connection to the cluster).
    pub fn new(settings: Settings, cancel: Cancel) -> Self {
        Self { settings, cancel }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The cancellation request of this invocation.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }
}

impl Hook for K8sHook {
    type State = State;
    type Error = Error;

    async fn prepare_job(&self, args: PrepareJob) -> Result<PrepareJobResponse<State>, Error> {
        policy::check_job(&self.settings.images, &args)?;
        prepare::prepare_job(&Ctx::new(&self.settings, &self.cancel), args).await
    }

    async fn run_script_step(
        &self,
        args: RunScriptStepArgs,
        state: State,
    ) -> Result<StepOutcome<State>, Error> {
        script_step::run_script_step(&Ctx::new(&self.settings, &self.cancel), args, state).await
    }

    async fn run_container_step(
        &self,
        args: Container,
        state: State,
    ) -> Result<StepOutcome<State>, Error> {
        policy::check_step(&self.settings.images, &args)?;
        container_step::run_container_step(&Ctx::new(&self.settings, &self.cancel), args, state)
            .await
    }

    async fn cleanup_job(&self, state: State) -> Result<(), Error> {
        cleanup::cleanup_job(&Ctx::new(&self.settings, &self.cancel), state).await
    }
}
