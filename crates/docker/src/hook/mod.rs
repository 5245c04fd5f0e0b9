//! The [`Hook`] implementation: one module per command.

mod cleanup;
mod prepare;
mod steps;

use crate::error::Error;
use crate::settings::Settings;
use hooklib::{
    Cancel, Container, Hook, PrepareJob, PrepareJobResponse, RunScriptStepArgs, StepOutcome,
};
use serde::{Deserialize, Serialize};

/// What the docker hook remembers between commands (the response's `state`).
///
/// Serialized as `{"network", "container", "services", "jobId", "networkCreated",
/// "containerPath"}`; the first three have the meaning GitHub's hook gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The job network (created by the hook, or `ACTIONS_RUNNER_NETWORK_DRIVER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    network: Option<String>,
    /// The job container's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container: Option<String>,
    /// The service containers' ids, in input order.
    #[serde(default)]
    services: Vec<String>,
    /// The id in this job's labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job_id: Option<String>,
    /// Whether the hook created `network` (and so removes it).
    #[serde(default)]
    network_created: bool,
    /// The job container's own `PATH`, so a script step needs no extra inspect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container_path: Option<String>,
}

/// The docker hook.
#[derive(Debug)]
pub struct DockerHook {
    settings: Settings,
    cancel: Cancel,
}

impl DockerHook {
    /// A hook with these settings that is never cancelled. Connects to the engine per command.
    pub fn new(settings: Settings) -> Self {
        Self::with_cancel(settings, Cancel::new())
    }

    /// A hook that stops its step where it runs when `cancel` fires (the runner's SIGINT /
    /// SIGTERM, handed over by [`hooklib::main_with`]).
    pub fn with_cancel(settings: Settings, cancel: Cancel) -> Self {
        Self { settings, cancel }
    }
}

impl Hook for DockerHook {
    type State = State;
    type Error = Error;

    async fn prepare_job(&self, args: PrepareJob) -> Result<PrepareJobResponse<State>, Error> {
        prepare::prepare_job(&self.settings, args, &self.cancel).await
    }

    async fn run_script_step(
        &self,
        args: RunScriptStepArgs,
        state: State,
    ) -> Result<StepOutcome<State>, Error> {
        steps::run_script_step(&self.settings, args, state, &self.cancel).await
    }

    async fn run_container_step(
        &self,
        args: Container,
        state: State,
    ) -> Result<StepOutcome<State>, Error> {
        steps::run_container_step(&self.settings, args, state, &self.cancel).await
    }

    async fn cleanup_job(&self, state: State) -> Result<(), Error> {
        cleanup::cleanup_job(&self.settings, state).await
    }
}

/// A step's exit code as the hook's: 0–255 as is, anything else 1 (still a failure).
fn exit_code(code: i64) -> i32 {
    i32::try_from(code)
        .ok()
        .filter(|c| (0..=255).contains(c))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_reads_githubs_shape() {
        let state = State {
            network: Some("n".into()),
            container: Some("c".into()),
            services: vec!["s".into()],
            job_id: Some("j".into()),
            network_created: true,
            container_path: Some("/bin".into()),
        };
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"network": "n", "container": "c", "services": ["s"], "jobId": "j", "networkCreated": true, "containerPath": "/bin"})
        );
        assert_eq!(serde_json::from_value::<State>(json).unwrap(), state);
        let github: State =
            serde_json::from_value(serde_json::json!({"network": "github_network_x"})).unwrap();
        assert_eq!(github.network.as_deref(), Some("github_network_x"));
        assert!(!github.network_created);
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(255), 255);
        assert_eq!(exit_code(256), 1);
        assert_eq!(exit_code(-1), 1);
    }
}
