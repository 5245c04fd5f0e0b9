//! `run_script_step` (an exec in the job container) and `run_container_step` (a container from
//! an image or a Dockerfile, run to completion and removed).

use super::{State, exit_code};
use crate::body::{BodyInput, container_body, path_from_env, script_exec};
use crate::engine::connect;
use crate::error::{Error, engine};
use crate::exec;
use crate::images;
use crate::log::Group;
use crate::names::{Owner, Role, container_name, new_job_id};
use crate::network::{remove_container, short};
use crate::options::CreateOptions;
use crate::settings::Settings;
use bollard::query_parameters::CreateContainerOptionsBuilder;
use hooklib::{ContainerSpec, RunScriptStepArgs, StepOutcome};
use std::path::PathBuf;

pub(super) async fn run_script_step(
    settings: &Settings,
    args: RunScriptStepArgs,
    state: State,
) -> Result<StepOutcome<State>, Error> {
    let container = state.container.clone().ok_or(Error::NoJobContainer)?;
    let docker = connect(&settings.docker_host).await?;
    let path = match &state.container_path {
        Some(p) => p.clone(),
        None => {
            let info = docker
                .inspect_container(&container, None)
                .await
                .map_err(engine("inspect the job container"))?;
            path_from_env(info.config.as_ref().and_then(|c| c.env.as_deref()))
        }
    };
    let config = script_exec(&args, &path);
    let code = exec::exec(&docker, &container, config, "the script step").await?;
    Ok(StepOutcome::exited(exit_code(code)))
}

pub(super) async fn run_container_step(
    settings: &Settings,
    args: ContainerSpec,
    state: State,
) -> Result<StepOutcome<State>, Error> {
    let owner = Owner {
        runner: settings.runner_name.clone(),
        job: state.job_id.clone(),
    };
    let what = match (&args.image, &args.dockerfile) {
        (Some(i), _) if !i.trim().is_empty() => format!("the container step ({i})"),
        (_, Some(d)) if !d.trim().is_empty() => format!("the container step ({d})"),
        _ => return Err(Error::MissingImage("the container step".to_owned())),
    };
    let mut options = CreateOptions::parse(args.create_options.as_deref())
        .and_then(|mut o| o.load_seccomp_profiles().map(|()| o))
        .map_err(|source| Error::Options {
            what: what.clone(),
            source,
        })?;
    let platform = options.platform.take();
    // Validate the arguments before pulling or building anything.
    hooklib::repair_entry_point_args(&args.entry_point_args).map_err(|e| Error::Body {
        what: what.clone(),
        source: e.into(),
    })?;
    let docker = connect(&settings.docker_host).await?;

    let image = match args.image.as_deref().filter(|i| !i.trim().is_empty()) {
        Some(image) => {
            let _group = Group::open(format!("Pulling {image}"));
            images::pull(&docker, image, args.registry.as_ref(), platform.as_deref()).await?;
            image.to_owned()
        }
        None => {
            let dockerfile = args.dockerfile.clone().unwrap_or_default();
            let _group = Group::open(format!("Building {dockerfile}"));
            let path = PathBuf::from(&dockerfile);
            let packed = tokio::task::spawn_blocking(move || buildctx::pack(&path))
                .await
                .map_err(|e| Error::Build {
                    dockerfile: dockerfile.clone(),
                    reason: e.to_string(),
                })??;
            images::build(&docker, &dockerfile, packed, &owner, platform.as_deref()).await?
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
    let created = docker
        .create_container(Some(create.build()), body)
        .await
        .map_err(engine(format!("create {what}")))?;
    tracing::debug!("created {what} as {}", short(&created.id));
    let result = exec::run_container(&docker, &created.id, &what).await;
    if let Err(e) = remove_container(&docker, &created.id).await {
        tracing::warn!("{e}");
    }
    Ok(StepOutcome::exited(exit_code(result?)))
}
