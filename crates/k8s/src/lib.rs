//! The Kubernetes hook: runs a GitHub Actions job's containers on a Kubernetes cluster as pods.

mod settings;

pub use settings::{Settings, SettingsError};

use hooklib::{
    ContainerSpec, Hook, PrepareJobArgs, PrepareJobResponse, RunScriptStepArgs, StepOutcome,
};

/// Errors of the Kubernetes hook.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command has not been implemented yet.
    #[error("{0} is not implemented yet by k8s-hook")]
    NotImplemented(&'static str),
}

/// What the Kubernetes hook remembers between commands.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {}

/// The Kubernetes hook.
#[derive(Debug)]
pub struct K8sHook {
    #[allow(dead_code)]
    settings: Settings,
}

impl K8sHook {
    /// A hook with these settings. Connects to the cluster lazily, per command.
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }
}

impl Hook for K8sHook {
    type State = State;
    type Error = Error;

    async fn prepare_job(&self, _args: PrepareJobArgs) -> Result<PrepareJobResponse<State>, Error> {
        Err(Error::NotImplemented("prepare_job"))
    }

    async fn run_script_step(
        &self,
        _args: RunScriptStepArgs,
        _state: State,
    ) -> Result<StepOutcome<State>, Error> {
        Err(Error::NotImplemented("run_script_step"))
    }

    async fn run_container_step(
        &self,
        _args: ContainerSpec,
        _state: State,
    ) -> Result<StepOutcome<State>, Error> {
        Err(Error::NotImplemented("run_container_step"))
    }

    async fn cleanup_job(&self, _state: State) -> Result<(), Error> {
        Err(Error::NotImplemented("cleanup_job"))
    }
}
