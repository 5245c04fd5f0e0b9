//! Pure builders of everything sent to the engine: container create bodies (job, service,
//! container step), the script step's exec, the job network. No I/O here.

use crate::names::{Owner, Role};
use crate::options::CreateOptions;
use crate::ports;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig, Mount as ApiMount, MountType,
    NetworkCreateRequest, NetworkingConfig,
};
use hooklib::{Container, Mount, RunScriptStepArgs};
use std::collections::{BTreeMap, HashMap};

/// The keep-alive command of a job container whose `entryPoint` is null.
pub(crate) const KEEP_ALIVE: [&str; 3] = ["tail", "-f", "/dev/null"];

/// `PATH` when the image does not set one (the engine's own default).
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A create body could not be built from the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// A mount has no target.
    #[error("a volume has an empty target path (source {0:?})")]
    EmptyMountTarget(String),
}

/// Everything a container create body depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyInput<'a> {
    pub role: Role,
    pub spec: &'a Container,
    /// The image to run (the spec's, or the tag of a Dockerfile build).
    pub image: &'a str,
    pub options: &'a CreateOptions,
    /// Network name or mode (`host`, a network we created, …).
    pub network: &'a str,
    /// The service's network alias.
    pub alias: Option<&'a str>,
    pub owner: &'a Owner,
    /// The cost labels (`arc-context-*`), possibly empty.
    pub cost_labels: &'a BTreeMap<String, String>,
}

/// Whether containers can have DNS aliases on `network` (only user-defined networks).
pub(crate) fn network_has_aliases(network: &str) -> bool {
    !matches!(network, "host" | "none" | "bridge" | "default") && !network.starts_with("container:")
}

/// The create body of a job, service or container-step container.
pub(crate) fn container_body(input: BodyInput<'_>) -> Result<ContainerCreateBody, BodyError> {
    let spec = input.spec;
    let args = spec.args.clone();
    let entry_point = spec.entry_point();
    let (entrypoint, cmd) = match (input.role, entry_point) {
        (Role::Job, None) => (
            Some(vec![KEEP_ALIVE[0].to_owned()]),
            Some(KEEP_ALIVE[1..].iter().map(|s| (*s).to_owned()).collect()),
        ),
        (_, Some(ep)) => (Some(vec![ep.to_owned()]), non_empty(args)),
        (_, None) => (None, non_empty(args)),
    };

    let mut env: BTreeMap<String, String> = spec
        .environment_variables
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in &input.options.env {
        env.insert(k.clone(), v.clone());
    }
    for k in ["GITHUB_ACTIONS", "CI"] {
        env.entry(k.to_owned()).or_insert_with(|| "true".to_owned());
    }

    let mut published = Vec::new();
    if input.role != Role::Step {
        for p in &spec.ports {
            published.extend(ports::published(p));
        }
    }
    if input.network == "host" {
        // The container shares the host's ports: nothing to publish.
        published.clear();
    }

    let mounts = mounts(
        spec.system_mount_volumes
            .iter()
            .chain(&spec.user_mount_volumes),
    )?;

    let aliases_ok = network_has_aliases(input.network);
    let host_networking = input.network == "host";
    let mut host = HostConfig {
        network_mode: Some(input.network.to_owned()),
        binds: non_empty(mounts.binds),
        mounts: non_empty(mounts.api),
        ..Default::default()
    };
    if !published.is_empty() && !host_networking {
        host.port_bindings = Some(ports::bindings(&published));
    }
    let networking_config = aliases_ok.then(|| {
        let aliases: Vec<String> = input.alias.map(str::to_owned).into_iter().collect();
        NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                input.network.to_owned(),
                EndpointSettings {
                    aliases: non_empty(aliases),
                    ..Default::default()
                },
            )])),
        }
    });

    let mut exposed: Vec<String> = published.iter().map(|p| p.container.clone()).collect();
    exposed.sort();
    exposed.dedup();

    let mut body = ContainerCreateBody {
        image: Some(input.image.to_owned()),
        entrypoint,
        cmd,
        env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: spec.working_directory.clone().filter(|w| !w.is_empty()),
        labels: Some(labels(input)),
        exposed_ports: non_empty(exposed),
        volumes: non_empty(mounts.anonymous),
        host_config: Some(host),
        networking_config,
        ..Default::default()
    };
    let mut options = input.options.clone();
    options.env.clear(); // already merged, in order, above
    if !aliases_ok {
        options.network_aliases.clear();
    }
    options.apply(&mut body);
    if input.role == Role::Job && entry_point.is_none() && input.options.entrypoint.is_some() {
        // `--entrypoint` replaces the keep-alive: its arguments would make no sense.
        body.cmd = None;
    }
    Ok(body)
}

/// The hook's own labels (runner, job, role) and the cost labels.
fn labels(input: BodyInput<'_>) -> HashMap<String, String> {
    let mut labels = input.owner.labels(input.role.as_str());
    for (k, v) in input.cost_labels {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    labels
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

#[derive(Debug, Default)]
struct Mounts {
    binds: Vec<String>,
    api: Vec<ApiMount>,
    anonymous: Vec<String>,
}

/// The runner's mounts: an absolute source is a bind mount, another source a named volume, no
/// source an anonymous volume. Binds use the `Binds` syntax (which creates a missing host
/// directory, as the runner expects) unless a path holds a `:`.
fn mounts<'a>(list: impl Iterator<Item = &'a Mount>) -> Result<Mounts, BodyError> {
    let mut out = Mounts::default();
    for m in list {
        let target = m.target_volume_path.trim();
        let source = m.source_volume_path.as_deref().map(str::trim).unwrap_or("");
        if target.is_empty() {
            return Err(BodyError::EmptyMountTarget(source.to_owned()));
        }
        if source.is_empty() {
            out.anonymous.push(target.to_owned());
        } else if source.contains(':') || target.contains(':') {
            out.api.push(ApiMount {
                target: Some(target.to_owned()),
                source: Some(source.to_owned()),
                typ: Some(if source.starts_with('/') {
                    MountType::BIND
                } else {
                    MountType::VOLUME
                }),
                read_only: Some(m.read_only),
                ..Default::default()
            });
        } else {
            let mode = if m.read_only { ":ro" } else { "" };
            out.binds.push(format!("{source}:{target}{mode}"));
        }
    }
    Ok(out)
}

/// The variable that tags every process of one script step (`<STEP_TAG>=<random id>`), so a
/// cancelled step's processes can be found inside the container (`docker exec` kills nothing
/// itself).
pub(crate) const STEP_TAG: &str = "CONTAINER_HOOKS_STEP";

/// The exec of a script step: the step env (values as data, never through a shell), `PATH` =
/// `prependPath` + the container's own PATH (or the step env's PATH when it has one), the
/// working directory, and the step's tag (`CONTAINER_HOOKS_STEP=<tag>`).
pub(crate) fn script_exec(args: &RunScriptStepArgs, container_path: &str, tag: &str) -> ExecConfig {
    let mut env: BTreeMap<&str, &str> = args
        .environment_variables
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let base = env.remove("PATH").unwrap_or(container_path);
    let path = args.path_with(base);
    let mut env: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !path.is_empty() {
        env.push(format!("PATH={path}"));
    }
    env.push(format!("{STEP_TAG}={tag}"));
    let cmd = std::iter::once(args.entry_point.clone())
        .chain(args.entry_point_args.iter().cloned())
        .collect();
    ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        attach_stdin: Some(false),
        tty: Some(false),
        env: Some(env),
        cmd: Some(cmd),
        working_dir: Some(args.working_directory.clone()).filter(|w| !w.is_empty()),
        ..Default::default()
    }
}

/// Where container actions see the runner's `_temp`.
pub(crate) const RUNNER_TEMP_TARGET: &str = "/github/runner_temp";

/// Makes sure a container step mounts the runner's `_temp` at `/github/runner_temp`, whether or
/// not this runner version sends that mount. The host path is `runner_temp` (`RUNNER_TEMP`), else
/// the parent of the runner's `/github/home` or `/github/workflow` mount
/// (`_temp/_github_home`). Returns whether a mount was added.
pub(crate) fn ensure_runner_temp(spec: &mut Container, runner_temp: Option<&str>) -> bool {
    let all = || {
        spec.system_mount_volumes
            .iter()
            .chain(&spec.user_mount_volumes)
    };
    if all().any(|m| m.target_volume_path.trim_end_matches('/') == RUNNER_TEMP_TARGET) {
        return false;
    }
    let derived = || {
        spec.system_mount_volumes
            .iter()
            .filter(|m| {
                matches!(
                    m.target_volume_path.as_str(),
                    "/github/home" | "/github/workflow"
                )
            })
            .find_map(|m| {
                let source = std::path::Path::new(m.source_volume_path.as_deref()?);
                Some(source.parent()?.to_str()?.to_owned())
            })
    };
    let Some(source) = runner_temp.map(str::to_owned).or_else(derived) else {
        return false;
    };
    spec.system_mount_volumes.push(Mount {
        user_provided_value: None,
        source_volume_path: Some(source),
        target_volume_path: RUNNER_TEMP_TARGET.to_owned(),
        read_only: false,
    });
    true
}

/// The bridge network of a job.
pub(crate) fn network_body(name: &str, owner: &Owner) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some("bridge".to_owned()),
        labels: Some(owner.labels("network")),
        ..Default::default()
    }
}

/// The container's `PATH` from its `Config.Env`, or the engine's default.
pub(crate) fn path_from_env(env: Option<&[String]>) -> String {
    env.into_iter()
        .flatten()
        .find_map(|e| e.strip_prefix("PATH="))
        .map(str::to_owned)
        .unwrap_or_else(|| DEFAULT_PATH.to_owned())
}

#[cfg(test)]
mod tests;
