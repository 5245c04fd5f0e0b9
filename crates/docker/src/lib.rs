//! The docker hook: runs a GitHub Actions job's containers on a Docker Engine through bollard
//! (never through the docker CLI).
//!
//! The public surface is small: [`Settings`] (read once from the environment at the binary
//! edge), [`DockerHook`] (implements [`hooklib::Hook`]), its [`State`] and its [`Error`].
//! Everything sent to the engine is built by pure functions (`body`, `options`, `ports`,
//! `context`) and snapshot-tested; the effectful layer (`images`, `exec`, `network`, `health`,
//! `hook`) is thin.

// Architecture invariants enforced by the compiler: no environment reads below the binaries
// (clippy.toml lists the methods) and stdout belongs to the step.
#![deny(clippy::disallowed_methods, clippy::print_stdout)]

mod body;
mod engine;
mod error;
mod exec;
mod health;
mod hook;
mod images;
mod names;
mod network;
mod options;
mod policy;
mod ports;
mod settings;

pub use error::Error;
pub use hook::{DockerHook, State};
pub use names::{JOB_LABEL, ROLE_LABEL, RUNNER_LABEL};
pub use settings::{
    COST_LABELS, DEFAULT_HEALTH_TIMEOUT, DockerHost, REFUSE_PRIVILEGED, Settings, SettingsError,
};
