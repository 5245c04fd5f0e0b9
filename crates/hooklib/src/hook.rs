//! The [`Hook`] trait and the [`run`] entry point shared by every hook binary.

use crate::cancel::Cancel;
use crate::container::{Container, PrepareJob};
use crate::input::{Input, Request, RunScriptStepArgs};
use crate::read::read_input;
use crate::response::{PrepareJobResponse, StateResponse, write_response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::error::Error;
use std::io::Read;

/// The end of a step: its exit code (data, not an error) and optionally a new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome<S> {
    /// The step's own exit code; it becomes the hook's exit code.
    pub exit_code: i32,
    /// A new state to hand back on later commands; `None` keeps the current one.
    pub state: Option<S>,
}

impl<S> StepOutcome<S> {
    /// A step that ended with `exit_code` and leaves the state as it was.
    pub fn exited(exit_code: i32) -> Self {
        Self {
            exit_code,
            state: None,
        }
    }
}

/// A container hook: one async method per runner command.
///
/// The arguments are the runner's with its quirks undone ([`PrepareJob`], [`Container`]): a
/// container the runner described badly is refused before the hook is called.
///
/// Implement it and call [`run`] from `main`. Errors are failures of the hook itself (an API
/// call failed, bad input); a step that exits non-zero is *not* an error but a
/// [`StepOutcome`] with that exit code.
#[allow(async_fn_in_trait)]
pub trait Hook {
    /// What the hook remembers between commands (serialized into the response's `state`).
    /// `Default` is what `cleanup_job` gets when `prepare_job` failed before writing a state.
    type State: Serialize + DeserializeOwned + Default;
    /// The hook's error type.
    type Error: Error + Send + Sync + 'static;

    /// Create the job container and services.
    async fn prepare_job(
        &self,
        args: PrepareJob,
    ) -> Result<PrepareJobResponse<Self::State>, Self::Error>;

    /// Run a script step in the job container.
    async fn run_script_step(
        &self,
        args: RunScriptStepArgs,
        state: Self::State,
    ) -> Result<StepOutcome<Self::State>, Self::Error>;

    /// Run a container step.
    async fn run_container_step(
        &self,
        args: Container,
        state: Self::State,
    ) -> Result<StepOutcome<Self::State>, Self::Error>;

    /// Remove everything the job created. Must cope with a default or partial state.
    async fn cleanup_job(&self, state: Self::State) -> Result<(), Self::Error>;
}

/// How a hook invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The command succeeded (a step exited 0).
    Success,
    /// The step ran and exited with this non-zero code.
    StepFailed(i32),
    /// The hook itself failed; an `::error::` line was printed.
    HookFailed,
}

impl Outcome {
    /// The process exit code: 0, the step's own code (1–255), or 1 for a hook failure.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Success => 0,
            // A code outside 1..=255 (a negative docker code, say) still has to fail the step.
            Self::StepFailed(code) => u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1),
            Self::HookFailed => 1,
        }
    }
}

impl From<Outcome> for std::process::ExitCode {
    fn from(o: Outcome) -> Self {
        std::process::ExitCode::from(o.exit_code())
    }
}

/// Formats an error and its causes as one `::error::` workflow command line.
///
/// Causes are joined with `: `, and the characters the runner treats specially in a workflow
/// command's data (`%`, CR, LF) are escaped, so the whole message lands in one annotation.
pub fn error_line(err: &(dyn Error + 'static)) -> String {
    crate::joblog::error_line(&crate::joblog::with_causes(err))
}

/// Reports a hook failure: one `::error::` line on stderr (the runner parses workflow commands
/// on both streams; stdout stays the step's own) and the details at debug level.
pub fn report_failure(err: &(dyn Error + 'static)) {
    tracing::debug!(error = ?err, "hook failed");
    eprintln!("{}", error_line(err));
}

/// The whole life of one hook invocation: read the input from `stdin`, dispatch it to `hook`,
/// write the response file, and say how it ended.
///
/// A failure of the hook prints one `::error::` line and yields [`Outcome::HookFailed`]; the
/// response file is left as the runner created it.
pub async fn run<H: Hook>(hook: &H, stdin: impl Read) -> Outcome {
    let input = match read_input(stdin) {
        Ok(input) => input,
        Err(e) => {
            report_failure(&e);
            return Outcome::HookFailed;
        }
    };
    match dispatch(hook, input).await {
        Ok(outcome) => outcome,
        Err(e) => {
            report_failure(e.as_ref());
            Outcome::HookFailed
        }
    }
}

/// Runs one already-parsed input. See [`run`].
pub async fn dispatch<H: Hook>(
    hook: &H,
    input: Input,
) -> Result<Outcome, Box<dyn Error + Send + Sync>> {
    let command = input.request.command();
    tracing::debug!(%command, "hook command");
    let state = || decode_state::<H::State>(&input.state, command.as_str());
    match input.request.clone() {
        Request::PrepareJob(args) => {
            let response = hook.prepare_job(PrepareJob::from_args(args)?).await?;
            write_response(&input.response_file, &response)?;
            Ok(Outcome::Success)
        }
        Request::RunScriptStep(args) => {
            let outcome = hook.run_script_step(args, state()?).await?;
            finish_step(&input, outcome)
        }
        Request::RunContainerStep(args) => {
            let outcome = hook
                .run_container_step(Container::step(args)?, state()?)
                .await?;
            finish_step(&input, outcome)
        }
        Request::CleanupJob => {
            // cleanup_job must run even after a failed prepare_job: an unreadable state is
            // replaced by the default rather than stopping the cleanup.
            let state = state().unwrap_or_else(|e| {
                tracing::warn!("{e}; cleaning up by labels only");
                H::State::default()
            });
            hook.cleanup_job(state).await?;
            Ok(Outcome::Success)
        }
    }
}

fn finish_step<S: Serialize>(
    input: &Input,
    outcome: StepOutcome<S>,
) -> Result<Outcome, Box<dyn Error + Send + Sync>> {
    if let Some(state) = &outcome.state {
        write_response(&input.response_file, &StateResponse { state })?;
    }
    Ok(match outcome.exit_code {
        0 => Outcome::Success,
        code => Outcome::StepFailed(code),
    })
}

/// The state handed back by the runner is not what this hook wrote.
#[derive(Debug, thiserror::Error)]
#[error(
    "the state passed to {command} is not one this hook wrote ({source}); was prepare_job run by another hook?"
)]
pub struct StateError {
    command: &'static str,
    source: serde_json::Error,
}

fn decode_state<S: DeserializeOwned + Default>(
    state: &Option<serde_json::Value>,
    command: &'static str,
) -> Result<S, StateError> {
    match state {
        None => Ok(S::default()),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|source| StateError { command, source })
        }
    }
}

/// Everything a hook binary's `main` does after parsing its flags: install logging, read and
/// validate the input on stdin (all of it first, so the runner's write never meets a closed pipe),
/// build the hook from settings (an error there is reported like any hook failure), run the
/// command on a Tokio runtime, and turn the outcome into the process exit code.
///
/// The hook is built with a [`Cancel`] that the first SIGINT/SIGTERM triggers (see
/// [`crate::cancel`]): the hook stops its step and returns, and the process exits 130/143 with
/// one `::error::` line, whatever the hook returned.
pub fn main_with<H, E>(
    log: &crate::logging::LogSettings,
    make_hook: impl FnOnce(Cancel) -> Result<H, E>,
) -> std::process::ExitCode
where
    H: Hook,
    E: Error + 'static,
{
    crate::logging::init_logging(log);
    let fail = |e: &(dyn Error + 'static)| {
        report_failure(e);
        Outcome::HookFailed.into()
    };
    let input = match read_input(std::io::stdin().lock()) {
        Ok(input) => input,
        Err(e) => return fail(&e),
    };
    let cancel = Cancel::new();
    let hook = match make_hook(cancel.clone()) {
        Ok(hook) => hook,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let result = runtime.block_on(async {
        crate::cancel::install_signal_handlers(&cancel)?;
        Ok::<_, std::io::Error>(dispatch(&hook, input).await)
    });
    if cancel.is_cancelled() {
        // The hook stopped the step because of the signal: whatever it returned, the step was
        // cancelled, and that is the one line the job log gets.
        if let Ok(Err(e)) = &result {
            tracing::debug!(error = %e, "hook returned after cancellation");
        }
        runtime.shutdown_background();
        crate::cancel::exit_cancelled(&cancel);
    }
    let outcome = match result {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => {
            report_failure(e.as_ref());
            Outcome::HookFailed
        }
        Err(e) => {
            report_failure(&e);
            Outcome::HookFailed
        }
    };
    // Do not wait for background tasks (e.g. a watch still open) at exit.
    runtime.shutdown_background();
    outcome.into()
}
