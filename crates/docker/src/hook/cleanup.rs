//! `cleanup_job`: remove this runner's containers and the job network, whatever the state.

use super::State;
use crate::engine::connect;
use crate::error::Error;
use crate::names::Owner;
use crate::network::remove_runner_objects;
use crate::settings::Settings;
use hooklib::joblog::Group;

pub(super) async fn cleanup_job(settings: &Settings, state: State) -> Result<(), Error> {
    let group = Group::start("Removing job containers");
    let owner = Owner {
        runner: settings.runner_name.clone(),
        job: state.job_id.clone(),
    };
    let docker = connect(&settings.docker_host).await?;
    let mut containers: Vec<String> = state.container.iter().cloned().collect();
    containers.extend(state.services.iter().cloned());
    let networks: Vec<String> = match (&state.network, state.network_created) {
        (Some(n), true) => vec![n.clone()],
        _ => Vec::new(),
    };
    let removed = remove_runner_objects(&docker, &owner, None, &containers, &networks).await?;
    tracing::info!(
        "removed {} container(s) and {} network(s)",
        removed.containers,
        removed.networks
    );
    group.end();
    Ok(())
}
