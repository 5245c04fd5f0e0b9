//! The docker hook: runs a GitHub Actions job's containers on a Docker Engine through bollard.

mod settings;

pub use settings::{Settings, SettingsError};

use hooklib::{
    ContainerSpec, Hook, PrepareJobArgs, PrepareJobResponse, RunScriptStepArgs, StepOutcome,
};

/// Errors of the docker hook.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command has not been implemented yet.
    #[error("{0} is not implemented yet by docker-hook")]
    NotImplemented(&'static str),
}

/// What the docker hook remembers between commands.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {}

/// The docker hook.
#[derive(Debug)]
pub struct DockerHook {
    #[allow(dead_code)]
    settings: Settings,
}

impl DockerHook {
    /// A hook with these settings. Connects to the engine lazily, per command.
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }
}

impl Hook for DockerHook {
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
