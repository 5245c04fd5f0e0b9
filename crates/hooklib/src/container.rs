//! What a hook receives: the runner's wire arguments ([`ContainerSpec`], [`PrepareJobArgs`])
//! with the runner's quirks undone, so no hook repeats a rule.
//!
//! - `entryPointArgs` arrive split on single spaces with their quotes kept: [`Container::args`]
//!   holds them as the workflow meant them ([`crate::repair_entry_point_args`]);
//! - `portMappings` arrive as docker CLI strings: [`Container::ports`] holds them parsed and
//!   validated ([`PortMapping`]); which of them a hook can honour is the hook's decision;
//! - a bad value is refused here, before the hook creates anything, with the container named by
//!   its role, position and image ([`SpecError`]). (Each hook names containers in its own
//!   messages by what the job can see of them: the docker network alias, the pod's container.)

use crate::input::{ContainerSpec, Mount, PrepareJobArgs, Registry};
use crate::ports::{PortError, PortMapping};
use crate::{ArgsError, repair_entry_point_args};
use std::collections::BTreeMap;

/// A container as a hook works with it: the job container, a service, or a container step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Container {
    /// Image reference; `None` for a Dockerfile action.
    pub image: Option<String>,
    /// Container steps only: absolute host path of the action's Dockerfile.
    pub dockerfile: Option<String>,
    /// The arguments, repaired: `args: "Hello world"` is one argument.
    pub args: Vec<String>,
    /// Entrypoint override.
    pub entry_point: Option<String>,
    /// Working directory inside the container.
    pub working_directory: Option<String>,
    /// The workflow's `options:` string, docker CLI syntax (read with
    /// [`crate::create_options::parse`]; each hook decides which flags it honours).
    pub create_options: Option<String>,
    /// Registry credentials, when the workflow gave some.
    pub registry: Option<Registry>,
    /// Environment for the container; values are already container paths.
    pub environment_variables: BTreeMap<String, String>,
    /// The `ports:`, parsed and validated.
    pub ports: Vec<PortMapping>,
    /// Mounts the runner wants.
    pub system_mount_volumes: Vec<Mount>,
    /// The workflow's `volumes:`.
    pub user_mount_volumes: Vec<Mount>,
}

/// `prepare_job` as a hook receives it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrepareJob {
    /// The job container; `None` for a services-only job.
    pub container: Option<Container>,
    /// The service containers, in workflow order (the response matches them by position).
    pub services: Vec<Container>,
}

/// A container the runner described cannot be run as given. The container is named
/// `the job container (<image>)`, `service #<n> (<image>)` (from 1) or
/// `the container step (<image or Dockerfile>)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `entryPointArgs` have unbalanced quotes.
    #[error("{what}: {source}")]
    Args {
        /// Which container.
        what: String,
        /// The arguments that cannot be split.
        #[source]
        source: ArgsError,
    },
    /// A `ports:` entry is not a port mapping.
    #[error("{what}: {source}")]
    Port {
        /// Which container.
        what: String,
        /// The bad entry.
        #[source]
        source: PortError,
    },
}

fn named(kind: &str, spec: &ContainerSpec) -> String {
    let shown = [&spec.image, &spec.dockerfile]
        .into_iter()
        .flatten()
        .map(|s| s.trim())
        .find(|s| !s.is_empty());
    match shown {
        Some(s) => format!("{kind} ({s})"),
        None => format!("{kind} (no image)"),
    }
}

impl Container {
    /// The container `spec` of a job, named `what` in an error.
    pub fn from_spec(what: String, spec: ContainerSpec) -> Result<Self, SpecError> {
        let args = match repair_entry_point_args(&spec.entry_point_args) {
            Ok(args) => args,
            Err(source) => return Err(SpecError::Args { what, source }),
        };
        let ports = match spec
            .port_mappings
            .iter()
            .map(|p| PortMapping::parse(p))
            .collect()
        {
            Ok(ports) => ports,
            Err(source) => return Err(SpecError::Port { what, source }),
        };
        Ok(Self {
            image: spec.image,
            dockerfile: spec.dockerfile,
            args,
            entry_point: spec.entry_point,
            working_directory: spec.working_directory,
            create_options: spec.create_options,
            registry: spec.registry,
            environment_variables: spec.environment_variables,
            ports,
            system_mount_volumes: spec.system_mount_volumes,
            user_mount_volumes: spec.user_mount_volumes,
        })
    }

    /// A `run_container_step`'s container.
    pub fn step(spec: ContainerSpec) -> Result<Self, SpecError> {
        Self::from_spec(named("the container step", &spec), spec)
    }

    /// The image, when one is given (a blank reference is none).
    pub fn image(&self) -> Option<&str> {
        self.image
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
    }

    /// The Dockerfile, when one is given (a blank path is none).
    pub fn dockerfile(&self) -> Option<&str> {
        self.dockerfile
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
    }

    /// The entrypoint override, when one is given (an empty one is none).
    pub fn entry_point(&self) -> Option<&str> {
        self.entry_point.as_deref().filter(|e| !e.is_empty())
    }
}

impl PrepareJob {
    /// `prepare_job`'s arguments with every container checked.
    pub fn from_args(args: PrepareJobArgs) -> Result<Self, SpecError> {
        let container = args
            .container
            .map(|spec| Container::from_spec(named("the job container", &spec), spec))
            .transpose()?;
        let services = args
            .services
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                Container::from_spec(named(&format!("service #{}", i + 1), &spec), spec)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            container,
            services,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: &str, args: &[&str], ports: &[&str]) -> ContainerSpec {
        ContainerSpec {
            image: Some(image.to_owned()),
            entry_point_args: args.iter().map(|s| (*s).to_owned()).collect(),
            port_mappings: ports.iter().map(|s| (*s).to_owned()).collect(),
            ..ContainerSpec::default()
        }
    }

    #[test]
    fn args_are_repaired_and_ports_parsed() {
        let c = Container::step(spec(
            "alpine:3",
            &["\"Hello", "world\"", "-v"],
            &["8080:80"],
        ))
        .unwrap();
        assert_eq!(c.args, ["Hello world", "-v"]);
        assert_eq!(c.ports, [PortMapping::parse("8080:80").unwrap()]);
        assert_eq!(c.image(), Some("alpine:3"));
    }

    #[test]
    fn blank_values_are_none() {
        let job = PrepareJob::from_args(PrepareJobArgs {
            container: Some(spec(" ", &[], &[])),
            services: vec![spec("redis:7", &[], &[])],
        })
        .unwrap();
        let c = job.container.unwrap();
        assert_eq!(
            (c.image(), c.dockerfile(), c.entry_point()),
            (None, None, None)
        );
        assert_eq!(job.services[0].image(), Some("redis:7"));
    }

    #[test]
    fn a_bad_value_names_its_container() {
        let bad_port = PrepareJob::from_args(PrepareJobArgs {
            container: Some(spec("node:22", &[], &["80"])),
            services: vec![
                spec("postgres:16", &[], &[]),
                spec("redis:7", &[], &["6379/icmp"]),
            ],
        })
        .unwrap_err();
        assert_eq!(
            bad_port.to_string(),
            "service #2 (redis:7): invalid port mapping \"6379/icmp\": unknown protocol \"icmp\""
        );
        let bad_job = PrepareJob::from_args(PrepareJobArgs {
            container: Some(spec(" ", &["'"], &[])),
            services: vec![],
        })
        .unwrap_err();
        assert!(
            bad_job
                .to_string()
                .starts_with("the job container (no image): "),
            "{bad_job}"
        );
        let dockerfile = ContainerSpec {
            dockerfile: Some("/w/_actions/o/r/v1/Dockerfile".into()),
            port_mappings: vec!["x".into()],
            ..ContainerSpec::default()
        };
        let bad_step = Container::step(dockerfile).unwrap_err();
        assert!(
            bad_step
                .to_string()
                .starts_with("the container step (/w/_actions/o/r/v1/Dockerfile): "),
            "{bad_step}"
        );
        let bad_args = Container::step(spec("alpine:3", &["\"unbalanced"], &[])).unwrap_err();
        assert!(
            bad_args
                .to_string()
                .starts_with("the container step (alpine:3): cannot split the container arguments"),
            "{bad_args}"
        );
    }
}
