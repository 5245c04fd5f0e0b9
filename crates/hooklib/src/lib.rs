//! # hooklib — the GitHub Actions runner's container-hook protocol
//!
//! When `ACTIONS_RUNNER_CONTAINER_HOOKS` is set, the runner does not run job containers itself:
//! it starts a *hook* for each of four commands (`prepare_job`, `run_script_step`,
//! `run_container_step`, `cleanup_job`), writes one JSON line on its stdin, and reads the hook's
//! answer from a response file it created beforehand. This crate is that protocol and nothing
//! else:
//!
//! - [`Input`] / [`Request`] and the per-command arguments ([`PrepareJobArgs`],
//!   [`RunScriptStepArgs`], [`ContainerSpec`]), with the runner's exact JSON names (the wire
//!   types);
//! - [`PrepareJob`] and [`Container`]: what a hook receives — the wire types with the runner's
//!   quirks undone (arguments repaired, ports parsed, each container named once);
//! - [`read_input`]: one validated input from stdin, with a precise [`InputError`];
//! - [`PrepareJobResponse`] and [`write_response`] (atomic, one document);
//! - [`repair_entry_point_args`]: undo the runner's splitting of `args:`;
//! - the [`Hook`] trait and [`run`], the whole invocation: stdin → your hook → response file →
//!   an [`Outcome`] whose [`Outcome::exit_code`] is the process exit code (a step's own code is
//!   data and passes through; a hook failure prints one `::error::` line and exits 1);
//! - [`Cancel`]: the runner's SIGINT/SIGTERM as a cancellation request the hook honours;
//! - [`policy`]: the administrator's allowed images (job, services, steps) as glob patterns on
//!   normalised references;
//! - [`Secret`]: credentials that never print;
//! - [`settings`]: a hook's settings read from the lookup the binary passes in, one rule for
//!   blank values, booleans and seconds, one error shape;
//! - [`logging`]: `tracing` to stderr; stdout belongs to the step;
//! - [`joblog`]: the hook's own lines in the job log (`::group::`, `::warning::`, `::error::`),
//!   escaped by one rule;
//! - [`create_options`]: the docker CLI grammar of a container's `createOptions`, one flag
//!   table for both hooks;
//! - [`ports`]: the one grammar of a `ports:` string, parsed into a [`ports::PortMapping`];
//! - [`is_alpine`]: what `/etc/os-release` of a job container says, by one rule for both hooks.
//!
//! ## A minimal hook
//!
//! ```
//! use hooklib::{
//!     Container, ContainerInfo, Hook, JobContext, PrepareJob, PrepareJobResponse,
//!     RunScriptStepArgs, StepOutcome,
//! };
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("{0}")]
//! struct MyError(String);
//!
//! #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
//! struct MyState {
//!     container: Option<String>,
//! }
//!
//! struct EchoHook;
//!
//! impl Hook for EchoHook {
//!     type State = MyState;
//!     type Error = MyError;
//!
//!     async fn prepare_job(
//!         &self,
//!         args: PrepareJob,
//!     ) -> Result<PrepareJobResponse<MyState>, MyError> {
//!         let image = args.container.and_then(|c| c.image).unwrap_or_default();
//!         Ok(PrepareJobResponse {
//!             state: MyState { container: Some(image.clone()) },
//!             context: JobContext {
//!                 container: Some(ContainerInfo { id: image, network: "none".into() }),
//!                 services: vec![],
//!             },
//!             is_alpine: false,
//!         })
//!     }
//!
//!     async fn run_script_step(
//!         &self,
//!         args: RunScriptStepArgs,
//!         _state: MyState,
//!     ) -> Result<StepOutcome<MyState>, MyError> {
//!         // A real hook would run args.entry_point in the job container and return its code.
//!         Ok(StepOutcome::exited(if args.entry_point == "false" { 1 } else { 0 }))
//!     }
//!
//!     async fn run_container_step(
//!         &self,
//!         _args: Container,
//!         _state: MyState,
//!     ) -> Result<StepOutcome<MyState>, MyError> {
//!         Err(MyError("container steps are not supported by this hook".into()))
//!     }
//!
//!     async fn cleanup_job(&self, _state: MyState) -> Result<(), MyError> {
//!         Ok(())
//!     }
//! }
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let response = dir.path().join("r.json");
//! # std::fs::write(&response, "").unwrap();
//! # let line = format!(
//! #     r#"{{"command":"prepare_job","responseFile":{:?},"state":null,"args":{{"container":{{"image":"alpine:3"}},"services":[]}}}}"#,
//! #     response
//! # );
//! # let stdin = std::io::Cursor::new(line);
//! // In main: read the environment into settings, build the hook, then
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let outcome = rt.block_on(hooklib::run(&EchoHook, stdin));
//! assert_eq!(outcome.exit_code(), 0);
//! # let written = std::fs::read_to_string(&response).unwrap();
//! # assert!(written.contains(r#""isAlpine":false"#));
//! // std::process::exit(outcome.exit_code().into());
//! ```

// Architecture invariants enforced by the compiler: no environment reads below the binaries
// (clippy.toml lists the methods) and stdout belongs to the step.
#![deny(clippy::disallowed_methods, clippy::print_stdout)]
#![warn(missing_docs)]

mod args;
pub mod cancel;
mod container;
pub mod cost;
pub mod create_options;
mod hook;
pub mod image_ref;
mod input;
pub mod joblog;
pub mod logging;
mod os_release;
pub mod policy;
pub mod ports;
mod read;
mod response;
mod secret;
pub mod settings;

pub use args::{ArgsError, repair_entry_point_args};
pub use cancel::Cancel;
pub use container::{Container, PrepareJob, SpecError};
pub use hook::{
    Hook, Outcome, StateError, StepOutcome, dispatch, error_line, main_with, report_failure, run,
};
pub use image_ref::ImageRef;
pub use input::{
    Command, ContainerSpec, Input, Mount, PrepareJobArgs, Registry, Request, RunScriptStepArgs,
};
pub use os_release::is_alpine;
pub use policy::{ImagePolicy, ImageRole};
pub use read::{InputError, parse_input, read_input};
pub use response::{
    ContainerInfo, JobContext, PrepareJobResponse, ResponseError, ServiceInfo, StateResponse,
    write_response,
};
pub use secret::Secret;
