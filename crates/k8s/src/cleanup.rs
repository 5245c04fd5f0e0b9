//! `cleanup_job`: delete this runner's pods and secrets by label (owner references are the
//! second net), plus the job pod named in the state; copes with a null or partial state.

use crate::error::Error;
use crate::joblog::{self, Group};
use crate::pod::runner_selector;
use crate::{K8sHook, State};

pub async fn cleanup_job(hook: &K8sHook, state: State) -> Result<(), Error> {
    let group = Group::start("Cleaning up the job's pods");
    let cluster = hook.cluster().await?;
    let selector = runner_selector(&hook.settings.runner_pod);
    let (by_label, by_name) = tokio::join!(cluster.delete_labelled(&selector), async {
        match &state.job_pod {
            Some(pod) => cluster.delete_pod(pod).await,
            None => Ok(()),
        }
    });
    let (pods, secrets) = by_label?;
    by_name?;
    joblog::info(&format!(
        "deleted {pods} pod(s) and {secrets} secret(s) labelled {selector}"
    ));
    group.end();
    Ok(())
}
