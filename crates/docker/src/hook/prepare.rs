//! `prepare_job`: network, images, job container and services, health, response.
//!
//! Everything that can be checked without the engine (options, ports, args, mounts) is checked
//! first, so bad input creates nothing. Independent work runs concurrently: removing this
//! runner's leftovers with pulling the images; creating and starting the containers; then
//! inspecting them, probing the job container's OS and waiting for health checks. A failure
//! after the first object was created removes what was created.

use super::State;
use crate::body::{BodyInput, container_body, path_from_env};
use crate::engine::connect;
use crate::error::{Error, engine};
use crate::exec::{capture, unless_cancelled};
use crate::health::{self, Watched};
use crate::images;
use crate::names::{self, Owner, Role, container_name, network_name, new_job_id};
use crate::network::{self, short};
use crate::ports::context_ports;
use crate::settings::Settings;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use futures::future::join_all;
use hooklib::joblog::Group;
use hooklib::{
    Cancel, Container, ContainerInfo, ImageRole, JobContext, PrepareJob, PrepareJobResponse,
    Registry, ServiceInfo,
};
use std::time::{Duration, Instant};

/// At most this much of `/etc/os-release` is read (real files are well under 1 KiB).
const OS_RELEASE_CAP: usize = 64 * 1024;
/// How long reading `/etc/os-release` may take.
const OS_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// One container to create.
#[derive(Debug)]
struct Planned {
    role: Role,
    name: String,
    what: String,
    /// `job`, or the service's alias.
    short: String,
    image: String,
    registry: Option<Registry>,
    platform: Option<String>,
    body: ContainerCreateBody,
}

/// What every container of a job shares.
struct Job<'a> {
    settings: &'a Settings,
    owner: &'a Owner,
    network: &'a str,
}

fn plan_one(
    job: &Job<'_>,
    role: Role,
    spec: &Container,
    what: String,
    name: String,
    alias: Option<&str>,
) -> Result<Planned, Error> {
    let (settings, owner, network) = (job.settings, job.owner, job.network);
    let image = spec
        .image
        .clone()
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| Error::MissingImage(what.clone()))?;
    let policy_role = match role {
        Role::Job => ImageRole::Job,
        Role::Service => ImageRole::Service,
        Role::Step => ImageRole::Step,
    };
    settings
        .images
        .check_container(policy_role, &what, &image)?;
    let mut spec = spec.clone();
    let mut options = super::steps::container_options(settings, &what, &mut spec)?;
    let spec = &spec;
    if alias.is_some() && !crate::body::network_has_aliases(network) {
        tracing::debug!("{what}: network {network} has no DNS aliases");
    }
    let body = container_body(BodyInput {
        role,
        spec,
        image: &image,
        options: &options,
        network,
        alias,
        owner,
        cost_labels: &settings.cost_labels,
    })
    .map_err(|source| Error::Body {
        what: what.clone(),
        source,
    })?;
    Ok(Planned {
        role,
        name,
        what,
        short: alias.unwrap_or("job").to_owned(),
        image,
        registry: spec.registry.clone(),
        platform: options.platform.take(),
        body,
    })
}

/// Every container of the job, validated and built, before anything is sent to the engine.
fn plan(
    settings: &Settings,
    args: &PrepareJob,
    owner: &Owner,
    job_id: &str,
    network: &str,
) -> Result<Vec<Planned>, Error> {
    let job = Job {
        settings,
        owner,
        network,
    };
    let mut plans = Vec::new();
    if let Some(c) = &args.container {
        let what = format!("the job container ({})", c.image().unwrap_or("no image"));
        let name = container_name(owner, job_id, "job");
        plans.push(plan_one(&job, Role::Job, c, what, name, None)?);
    }
    let aliases = names::service_aliases(
        args.services
            .iter()
            .map(|s| s.image.as_deref().unwrap_or("service")),
    );
    for (s, alias) in args.services.iter().zip(&aliases) {
        let what = format!("service {alias} ({})", s.image().unwrap_or("no image"));
        let name = container_name(owner, job_id, alias);
        plans.push(plan_one(&job, Role::Service, s, what, name, Some(alias))?);
    }
    Ok(plans)
}

/// Pulls every distinct image once, concurrently.
async fn pull_all(docker: &Docker, plans: &[Planned]) -> Result<(), Error> {
    let mut distinct: Vec<&Planned> = Vec::new();
    for p in plans {
        if !distinct
            .iter()
            .any(|d| d.image == p.image && d.platform == p.platform)
        {
            distinct.push(p);
        }
    }
    let results = join_all(
        distinct
            .iter()
            .map(|p| images::pull(docker, &p.image, p.registry.as_ref(), p.platform.as_deref())),
    )
    .await;
    collect(results).map(|_| ())
}

/// All `Ok` values, or every error.
fn collect<T>(results: Vec<Result<T, Error>>) -> Result<Vec<T>, Error> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(ok),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many(errors)),
    }
}

async fn create_and_start(docker: &Docker, p: &Planned) -> Result<String, Error> {
    let mut options = CreateContainerOptionsBuilder::default().name(&p.name);
    if let Some(platform) = &p.platform {
        options = options.platform(platform);
    }
    let created = docker
        .create_container(Some(options.build()), p.body.clone())
        .await
        .map_err(engine(format!("create {}", p.what)))?;
    for w in &created.warnings {
        tracing::warn!("{}: {w}", p.what);
    }
    docker
        .start_container(&created.id, None)
        .await
        .map_err(engine(format!("start {}", p.what)))?;
    tracing::info!("started {} as {}", p.what, short(&created.id));
    Ok(created.id)
}

/// A started container.
struct Up {
    id: String,
    info: ContainerInspectResponse,
    /// For the job container: whether it runs Alpine.
    alpine: Option<bool>,
}

/// Creates and starts one container, then inspects it (and, for the job container, reads its
/// `/etc/os-release`) concurrently.
///
/// Creating and starting are never interrupted (a request dropped half-way could create a
/// container after prepare_job removed what it created); what follows stops at cancellation.
async fn bring_up(docker: &Docker, p: &Planned, cancel: &Cancel) -> Result<Up, Error> {
    let id = create_and_start(docker, p).await?;
    let probe = async {
        match p.role {
            Role::Job => is_alpine(docker, &id).await.map(Some),
            _ => Ok(None),
        }
    };
    let both = async {
        let (info, alpine) = tokio::join!(inspect(docker, &id, &p.what), probe);
        Ok((info?, alpine?))
    };
    let (info, alpine) = unless_cancelled(cancel, "prepare_job", both).await?;
    Ok(Up { info, alpine, id })
}

/// Whether `/etc/os-release` says Alpine (one exec, at most [`OS_RELEASE_CAP`] bytes read for at
/// most [`OS_RELEASE_TIMEOUT`]: the job image decides what that file is). A container without
/// `cat`, or whose file cannot be read in time, is taken as not Alpine, with a warning.
async fn is_alpine(docker: &Docker, id: &str) -> Result<bool, Error> {
    let got = capture(
        docker,
        id,
        &["cat", "/etc/os-release"],
        OS_RELEASE_CAP,
        OS_RELEASE_TIMEOUT,
    )
    .await?;
    let alpine = hooklib::is_alpine(&String::from_utf8_lossy(&got.stdout));
    if got.timed_out {
        tracing::warn!(
            "reading /etc/os-release in the job container took longer than {}s; {}",
            OS_RELEASE_TIMEOUT.as_secs(),
            if alpine {
                "it says Alpine"
            } else {
                "assuming not Alpine"
            }
        );
    } else if got.truncated {
        tracing::warn!(
            "/etc/os-release in the job container is larger than {OS_RELEASE_CAP} bytes; read only its beginning"
        );
    } else if got.exit != Some(0) && !alpine {
        tracing::debug!(
            "reading /etc/os-release exited {:?}; assuming not Alpine",
            got.exit
        );
    }
    Ok(alpine)
}

async fn inspect(docker: &Docker, id: &str, what: &str) -> Result<ContainerInspectResponse, Error> {
    docker
        .inspect_container(id, None)
        .await
        .map_err(engine(format!("inspect {what}")))
}

pub(super) async fn prepare_job(
    settings: &Settings,
    args: PrepareJob,
    cancel: &Cancel,
) -> Result<PrepareJobResponse<State>, Error> {
    let started = Instant::now();
    let group = Group::start("Preparing job containers");
    let job_id = new_job_id();
    let owner = Owner {
        runner: settings.runner_name.clone(),
        job: Some(job_id.clone()),
    };
    let (network, network_created) = match &settings.network {
        Some(n) => (n.clone(), false),
        None => (network_name(&owner, &job_id), true),
    };
    let plans = plan(settings, &args, &owner, &job_id, &network)?;
    let docker = unless_cancelled(cancel, "prepare_job", connect(&settings.docker_host)).await?;

    // Cancelled or failed half-way: what was created is removed here.
    let outcome = run(
        settings,
        &docker,
        &plans,
        &owner,
        &network,
        network_created,
        cancel,
    )
    .await;
    let (response, images_secs, start_secs) = match outcome {
        Ok(v) => v,
        Err(e) => {
            let how = if matches!(e, Error::Cancelled(_)) {
                "was cancelled"
            } else {
                "failed"
            };
            tracing::warn!("prepare_job {how}; removing the containers and network it created");
            if let Err(clean) =
                network::remove_runner_objects(&docker, &owner, None, &[], &[]).await
            {
                tracing::warn!("could not remove them all: {clean}");
            }
            return Err(e);
        }
    };
    group.end();
    let parts: Vec<String> = plans
        .iter()
        .zip(
            response
                .state
                .container
                .iter()
                .chain(&response.state.services),
        )
        .map(|(p, id)| match p.role {
            Role::Job => format!("job container {} ({})", short(id), p.image),
            _ => format!("service {} ({})", p.short, p.image),
        })
        .collect();
    tracing::info!(
        "job ready in {:.1}s: {} on network {network} (images {:.1}s, start {:.1}s, ready {:.1}s)",
        started.elapsed().as_secs_f64(),
        if parts.is_empty() {
            "no containers".to_owned()
        } else {
            parts.join(", ")
        },
        images_secs,
        start_secs,
        (started.elapsed().as_secs_f64() - images_secs - start_secs).max(0.0),
    );
    Ok(response)
}

/// Everything after the input was validated. Returns the response and how long the images
/// (with the leftover removal and the network) and the container starts took.
async fn run(
    settings: &Settings,
    docker: &Docker,
    plans: &[Planned],
    owner: &Owner,
    network: &str,
    network_created: bool,
    cancel: &Cancel,
) -> Result<(PrepareJobResponse<State>, f64, f64), Error> {
    let t0 = Instant::now();
    // This runner's leftovers (never this job's), the images and the network are independent.
    let create_network = async {
        if network_created {
            network::create(docker, network, owner).await
        } else {
            Ok(())
        }
    };
    // A cancellation stops the pulls at once, but lets the leftover removal and the network
    // creation finish (so that the network exists, labelled, when it is removed below).
    let pulls = unless_cancelled(cancel, "prepare_job", pull_all(docker, plans));
    let (removed, pulled, created) = tokio::join!(
        network::remove_runner_objects(docker, owner, owner.job.as_deref(), &[], &[]),
        pulls,
        create_network
    );
    let removed = removed?;
    if removed != network::Removed::default() {
        tracing::info!(
            "removed {} leftover container(s) and {} network(s) of runner {}",
            removed.containers,
            removed.networks,
            owner.runner
        );
    }
    pulled?;
    created?;
    let images_secs = t0.elapsed().as_secs_f64();

    // Each container: create, start, then inspect it (and probe the job container's OS) while
    // the others are still starting.
    let started = collect(join_all(plans.iter().map(|p| bring_up(docker, p, cancel))).await)
        .map_err(|e| {
            if cancel.is_cancelled() {
                Error::Cancelled("prepare_job".into())
            } else {
                e
            }
        })?;
    let start_secs = t0.elapsed().as_secs_f64() - images_secs;
    let watched: Vec<Watched> = plans
        .iter()
        .zip(&started)
        .map(|(p, up)| Watched {
            id: up.id.clone(),
            what: p.what.clone(),
        })
        .collect();
    unless_cancelled(
        cancel,
        "prepare_job",
        health::wait_all(docker, &watched, settings.health_timeout),
    )
    .await?;
    let is_alpine = started.iter().any(|up| up.alpine == Some(true));
    let ids: Vec<String> = started.iter().map(|up| up.id.clone()).collect();
    let inspected: Vec<ContainerInspectResponse> = started.into_iter().map(|up| up.info).collect();

    let mut state = State {
        network: Some(network.to_owned()),
        job_id: owner.job.clone(),
        network_created,
        ..Default::default()
    };
    let mut context = JobContext::default();
    for ((p, id), info) in plans.iter().zip(&ids).zip(&inspected) {
        match p.role {
            Role::Job => {
                state.container = Some(id.clone());
                state.container_path = Some(path_from_env(
                    info.config.as_ref().and_then(|c| c.env.as_deref()),
                ));
                context.container = Some(ContainerInfo {
                    id: id.clone(),
                    network: network.to_owned(),
                });
            }
            _ => {
                state.services.push(id.clone());
                context.services.push(ServiceInfo {
                    id: id.clone(),
                    network: network.to_owned(),
                    ports: context_ports(
                        info.network_settings
                            .as_ref()
                            .and_then(|n| n.ports.as_ref()),
                    ),
                });
            }
        }
    }
    Ok((
        PrepareJobResponse {
            state,
            context,
            is_alpine,
        },
        images_secs,
        start_secs,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_caught_before_the_engine() {
        let owner = Owner {
            runner: "r".into(),
            job: Some("j".into()),
        };
        let args = PrepareJob::from_args(hooklib::PrepareJobArgs {
            container: None,
            services: vec![hooklib::ContainerSpec {
                image: Some("redis:7".into()),
                create_options: Some("--frobnicate".into()),
                ..Default::default()
            }],
        })
        .unwrap();
        let settings = Settings::new("r");
        let err = plan(&settings, &args, &owner, "j", "net")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("service redis (redis:7): unsupported container option `--frobnicate`"),
            "{err}"
        );
        let args = PrepareJob::from_args(hooklib::PrepareJobArgs {
            container: Some(hooklib::ContainerSpec::default()),
            services: vec![],
        })
        .unwrap();
        let err = plan(&settings, &args, &owner, "j", "net")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "the job container (no image) has no image");
    }
}
