//! The job network, and removal of this runner's containers and networks (only objects
//! labelled with this runner's name; never another runner's).

use crate::body::network_body;
use crate::error::{Error, engine, is_not_found};
use crate::names::{JOB_LABEL, Owner};
use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::future::join_all;

/// Creates the job's bridge network.
pub(crate) async fn create(docker: &Docker, name: &str, owner: &Owner) -> Result<(), Error> {
    docker
        .create_network(network_body(name, owner))
        .await
        .map_err(engine(format!("create the job network {name}")))?;
    Ok(())
}

/// Removes a container (and its anonymous volumes); one already gone is fine.
pub(crate) async fn remove_container(docker: &Docker, id: &str) -> Result<(), Error> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        // "removal already in progress": someone (our own auto-remove, a parallel cleanup) is on it.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(e) => Err(engine(format!("remove container {}", short(id)))(e)),
    }
}

/// Removes a network; one already gone is fine.
pub(crate) async fn remove_network(docker: &Docker, name: &str) -> Result<(), Error> {
    match docker.remove_network(name).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(engine(format!("remove network {name}"))(e)),
    }
}

/// What a removal pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Removed {
    pub containers: usize,
    pub networks: usize,
}

/// Removes every container and network labelled with this runner (except those of job
/// `keep_job`), plus `extra_containers` and `extra_networks` (ids/names from a state, in case
/// their labels were lost). Containers go first (a network with endpoints cannot be removed).
/// All removals run concurrently; the first failure is reported after every removal was tried.
pub(crate) async fn remove_runner_objects(
    docker: &Docker,
    owner: &Owner,
    keep_job: Option<&str>,
    extra_containers: &[String],
    extra_networks: &[String],
) -> Result<Removed, Error> {
    let kept = |labels: &Option<std::collections::HashMap<String, String>>| {
        keep_job.is_some()
            && labels
                .as_ref()
                .and_then(|l| l.get(JOB_LABEL))
                .map(String::as_str)
                == keep_job
    };
    let filter = owner.runner_filter();
    let listed = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filter)
                .build(),
        ))
        .await
        .map_err(engine("list this runner's containers"))?;
    let mut ids: Vec<String> = listed
        .into_iter()
        .filter(|c| !kept(&c.labels))
        .filter_map(|c| c.id)
        .collect();
    for id in extra_containers {
        if !ids
            .iter()
            .any(|i| i.starts_with(id.as_str()) || id.starts_with(i.as_str()))
        {
            ids.push(id.clone());
        }
    }
    let results = join_all(ids.iter().map(|id| remove_container(docker, id))).await;
    let containers = results.iter().filter(|r| r.is_ok()).count();
    let mut first_error = results.into_iter().find_map(Result::err);

    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filter)
                .build(),
        ))
        .await
        .map_err(engine("list this runner's networks"))?;
    let mut names: Vec<String> = networks
        .into_iter()
        .filter(|n| !kept(&n.labels))
        .filter_map(|n| n.name)
        .collect();
    for n in extra_networks {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let results = join_all(names.iter().map(|n| remove_network(docker, n))).await;
    let removed_networks = results.iter().filter(|r| r.is_ok()).count();
    if first_error.is_none() {
        first_error = results.into_iter().find_map(Result::err);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(Removed {
            containers,
            networks: removed_networks,
        }),
    }
}

/// The first 12 characters of a container id.
pub(crate) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
