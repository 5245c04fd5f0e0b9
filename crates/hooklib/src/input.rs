//! What the runner sends on stdin: the envelope and the arguments of each command.
//!
//! Field names follow the runner's JSON exactly (camelCase); map keys (environment variable
//! names) keep their case; `null` is accepted wherever the runner may send it and unknown fields
//! are ignored, so a newer runner does not break an older hook.

use crate::Secret;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One hook invocation, as read from stdin.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// The command and its arguments.
    pub request: Request,
    /// The file the runner pre-created for the response (`responseFile`).
    pub response_file: PathBuf,
    /// The last non-null `state` a response returned; `None` for `prepare_job`.
    pub state: Option<serde_json::Value>,
}

/// A command with its typed arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `prepare_job`: create the job container and the services.
    PrepareJob(PrepareJobArgs),
    /// `run_script_step`: run a `run:` step or a JavaScript action in the job container.
    RunScriptStep(RunScriptStepArgs),
    /// `run_container_step`: run a container action (an image or a Dockerfile).
    RunContainerStep(ContainerSpec),
    /// `cleanup_job`: remove everything the job created.
    CleanupJob,
}

impl Request {
    /// The command's name as the runner spells it.
    pub fn command(&self) -> Command {
        match self {
            Self::PrepareJob(_) => Command::PrepareJob,
            Self::RunScriptStep(_) => Command::RunScriptStep,
            Self::RunContainerStep(_) => Command::RunContainerStep,
            Self::CleanupJob => Command::CleanupJob,
        }
    }
}

/// The four commands of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// `prepare_job`
    PrepareJob,
    /// `run_script_step`
    RunScriptStep,
    /// `run_container_step`
    RunContainerStep,
    /// `cleanup_job`
    CleanupJob,
}

impl Command {
    /// Every command, in the order a job calls them.
    pub const ALL: [Command; 4] = [
        Self::PrepareJob,
        Self::RunScriptStep,
        Self::RunContainerStep,
        Self::CleanupJob,
    ];

    /// The runner's name for the command, e.g. `prepare_job`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrepareJob => "prepare_job",
            Self::RunScriptStep => "run_script_step",
            Self::RunContainerStep => "run_container_step",
            Self::CleanupJob => "cleanup_job",
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `args` of `prepare_job`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepareJobArgs {
    /// The job container; `None` for a services-only job.
    #[serde(default)]
    pub container: Option<ContainerSpec>,
    /// The service containers, in workflow order. They carry no name: the response is matched
    /// to them by position.
    #[serde(default, deserialize_with = "null_as_default")]
    pub services: Vec<ContainerSpec>,
}

/// A container as the runner describes it: the job container, a service, or a container step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// Image reference; `None` for a Dockerfile action.
    #[serde(default)]
    pub image: Option<String>,
    /// Container steps only: absolute host path of the action's Dockerfile.
    #[serde(default)]
    pub dockerfile: Option<String>,
    /// Arguments as the runner split them (on single spaces, quotes kept): see
    /// [`crate::repair_entry_point_args`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub entry_point_args: Vec<String>,
    /// Entrypoint override.
    #[serde(default)]
    pub entry_point: Option<String>,
    /// Working directory inside the container.
    #[serde(default)]
    pub working_directory: Option<String>,
    /// The workflow's `options:` string, docker CLI syntax.
    #[serde(default)]
    pub create_options: Option<String>,
    /// Registry credentials, when the workflow gave some.
    #[serde(default)]
    pub registry: Option<Registry>,
    /// Environment for the container; values are already container paths.
    #[serde(default, deserialize_with = "null_as_default")]
    pub environment_variables: BTreeMap<String, String>,
    /// Raw `ports:` strings: `"80"`, `"8080:80"`, `"8080:80/udp"`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub port_mappings: Vec<String>,
    /// Mounts the runner wants.
    #[serde(default, deserialize_with = "null_as_default")]
    pub system_mount_volumes: Vec<Mount>,
    /// The workflow's `volumes:`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub user_mount_volumes: Vec<Mount>,
}

/// Registry credentials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password or token; never printed.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Registry host parsed from the image; empty (or absent) for Docker Hub.
    #[serde(default)]
    pub server_url: Option<String>,
}

impl Registry {
    /// Docker Hub's credential key, used when `serverUrl` is empty.
    pub const DOCKER_HUB: &'static str = "https://index.docker.io/v1/";

    /// The server to authenticate against: `serverUrl`, or Docker Hub when it is empty.
    pub fn server(&self) -> &str {
        match self.server_url.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => s,
            _ => Self::DOCKER_HUB,
        }
    }
}

/// A volume the runner wants mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// What the user wrote, for user mounts.
    #[serde(default)]
    pub user_provided_value: Option<String>,
    /// Host path (absolute) or a volume name; `None` for an anonymous volume.
    #[serde(default)]
    pub source_volume_path: Option<String>,
    /// Path inside the container.
    pub target_volume_path: String,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// `args` of `run_script_step`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunScriptStepArgs {
    /// The program: `sh`, `bash`, a custom shell or node's container path.
    pub entry_point: String,
    /// Its arguments; empty strings are kept.
    #[serde(default, deserialize_with = "null_as_default")]
    pub entry_point_args: Vec<String>,
    /// The whole step environment (container paths). `PATH` is not in it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub environment_variables: BTreeMap<String, String>,
    /// Entries to put in front of the container's `PATH`, in order. Old runners send one string.
    #[serde(default, deserialize_with = "prepend_path")]
    pub prepend_path: Vec<String>,
    /// Working directory (container path).
    #[serde(default)]
    pub working_directory: String,
}

impl RunScriptStepArgs {
    /// `PATH` for the step: `prependPath` entries, then the container's own `path`.
    pub fn path_with(&self, container_path: &str) -> String {
        self.prepend_path
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(container_path))
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(":")
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn prepend_path<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) if s.is_empty() => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}
