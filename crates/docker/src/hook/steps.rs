//! `run_script_step` (an exec in the job container) and `run_container_step` (a container from
//! an image or a Dockerfile, run to completion and removed).
//!
//! Steps of one job may run at once (the runner's background steps): each invocation keeps
//! everything it needs in memory and in its own exec or container (a random tag, a random
//! container name), so concurrent steps share no file and no name.

use super::{State, exit_code};
use crate::body::{BodyInput, container_body, ensure_runner_temp, path_from_env, script_exec};
use crate::engine::connect;
use crate::error::{Error, engine};
use crate::exec::{self, unless_cancelled};
use crate::images;
use crate::names::{Owner, Role, container_name, new_job_id};
use crate::network::{remove_container, short};
use crate::options::CreateOptions;
use crate::policy;
use crate::settings::{DockerHost, Settings};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use hooklib::joblog::Group;
use hooklib::{Cancel, Container, RunScriptStepArgs, StepOutcome};
use std::path::PathBuf;

pub(super) async fn run_script_step(
    settings: &Settings,
    args: RunScriptStepArgs,
    state: State,
    cancel: &Cancel,
) -> Result<StepOutcome<State>, Error> {
    let container = state.container.clone().ok_or(Error::NoJobContainer)?;
    let what = "the script step";
    let docker = unless_cancelled(cancel, what, connect(&settings.docker_host)).await?;
    let path = match &state.container_path {
        Some(p) => p.clone(),
        None => {
            let info = unless_cancelled(cancel, what, async {
                docker
                    .inspect_container(&container, None)
                    .await
                    .map_err(engine("inspect the job container"))
            })
            .await?;
            path_from_env(info.config.as_ref().and_then(|c| c.env.as_deref()))
        }
    };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let config = script_exec(&args, &path, &tag);
    let code = exec::exec(&docker, &container, config, &tag, what, cancel).await?;
    Ok(StepOutcome::exited(exit_code(code)))
}

/// The engine's unix socket, if that is how it is reached.
pub(super) fn socket_path(host: &DockerHost) -> Option<&str> {
    match host {
        DockerHost::Unix(p) => Some(p.as_str()),
        DockerHost::Tcp(_) => None,
    }
}

/// A container's `options:`, read (seccomp profiles loaded) and checked against the
/// administrator's privilege policy, which may also withhold the docker socket from `spec`.
pub(super) fn container_options(
    settings: &Settings,
    what: &str,
    spec: &mut Container,
) -> Result<CreateOptions, Error> {
    let options = CreateOptions::parse(spec.create_options.as_deref())
        .and_then(|mut o| o.load_seccomp_profiles().map(|()| o))
        .map_err(|source| Error::Options {
            what: what.to_owned(),
            source,
        })?;
    apply_privilege_policy(settings, what, spec, &options)?;
    Ok(options)
}

/// Applies the administrator's privilege policy to one container's spec and options: refuses
/// what it forbids and withholds the docker socket. Nothing to do when the policy is off.
fn apply_privilege_policy(
    settings: &Settings,
    what: &str,
    spec: &mut Container,
    options: &CreateOptions,
) -> Result<(), Error> {
    if !settings.refuse_privileged {
        return Ok(());
    }
    let work = settings.work_dir.as_deref();
    policy::check_options(options, work)
        .and_then(|()| policy::check_user_mounts(&spec.user_mount_volumes, work))
        .map_err(|source| Error::Refused {
            what: what.to_owned(),
            source,
        })?;
    if policy::withhold_docker_socket(spec, socket_path(&settings.docker_host)) {
        tracing::info!(
            "{what}: the docker socket is not mounted (privileged options are refused on this runner)"
        );
    }
    Ok(())
}

pub(super) async fn run_container_step(
    settings: &Settings,
    mut args: Container,
    state: State,
    cancel: &Cancel,
) -> Result<StepOutcome<State>, Error> {
    let owner = Owner {
        runner: settings.runner_name.clone(),
        job: state.job_id.clone(),
    };
    let image = args.image().map(str::to_owned);
    let dockerfile = args.dockerfile().map(str::to_owned);
    let what = match (&image, &dockerfile) {
        (Some(i), _) => format!("the container step ({i})"),
        (_, Some(d)) => format!("the container step ({d})"),
        _ => return Err(Error::MissingImage("the container step".to_owned())),
    };
    // Everything that can be refused is refused before the engine is asked for anything.
    settings
        .images
        .check_step(&what, image.as_deref(), dockerfile.as_deref())?;
    let mut options = container_options(settings, &what, &mut args)?;
    let runner_temp = settings.runner_temp.as_ref().and_then(|p| p.to_str());
    if ensure_runner_temp(&mut args, runner_temp) {
        tracing::debug!("{what}: mounted the runner's _temp at /github/runner_temp");
    }
    let platform = options.platform.take();
    let docker = unless_cancelled(cancel, &what, connect(&settings.docker_host)).await?;

    let image = match image {
        Some(image) => {
            let group = Group::start(&format!("Pulling {image}"));
            unless_cancelled(
                cancel,
                &what,
                images::pull(&docker, &image, args.registry.as_ref(), platform.as_deref()),
            )
            .await?;
            group.end();
            image
        }
        None => {
            let dockerfile = dockerfile.unwrap_or_default();
            let group = Group::start(&format!("Building {dockerfile}"));
            let path = PathBuf::from(&dockerfile);
            let packed = tokio::task::spawn_blocking(move || buildctx::pack(&path))
                .await
                .map_err(|source| Error::BuildTask {
                    dockerfile: dockerfile.clone(),
                    source,
                })??;
            let build = images::build(&docker, &dockerfile, packed, &owner, platform.as_deref());
            let built = unless_cancelled(cancel, &what, build).await?;
            group.end();
            built
        }
    };

    let network = state
        .network
        .clone()
        .or_else(|| settings.network.clone())
        .unwrap_or_else(|| "bridge".to_owned());
    let body = container_body(BodyInput {
        role: Role::Step,
        spec: &args,
        image: &image,
        options: &options,
        network: &network,
        alias: None,
        owner: &owner,
        cost_labels: &settings.cost_labels,
    })
    .map_err(|source| Error::Body {
        what: what.clone(),
        source,
    })?;
    let job = owner.job.clone().unwrap_or_else(|| "nojob".to_owned());
    let name = container_name(&owner, &job, &format!("step-{}", &new_job_id()[..6]));
    let mut create = CreateContainerOptionsBuilder::default().name(&name);
    if let Some(p) = &platform {
        create = create.platform(p);
    }
    // A create still in flight when the signal comes may leave a (labelled, never started)
    // container behind: cleanup_job removes it with the rest of this runner's objects.
    let created = unless_cancelled(cancel, &what, async {
        docker
            .create_container(Some(create.build()), body)
            .await
            .map_err(engine(format!("create {what}")))
    })
    .await?;
    tracing::debug!("created {what} as {}", short(&created.id));
    let result = exec::run_container(&docker, &created.id, &what, cancel).await;
    if let Err(e) = remove_container(&docker, &created.id).await {
        tracing::warn!("{e}");
    }
    Ok(StepOutcome::exited(exit_code(result?)))
}
