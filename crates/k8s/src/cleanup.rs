//! `cleanup_job`: delete this runner's pods and secrets by label (owner references are the
//! second net), plus the job pod named in the state; copes with a null or partial state.

use crate::State;
use crate::context::Ctx;
use crate::error::Error;
use crate::pod::runner_selector;
use hooklib::joblog::{self, Group};

pub async fn cleanup_job(ctx: &Ctx<'_>, state: State) -> Result<(), Error> {
    let group = Group::start("Cleaning up the job's pods");
    let cluster = ctx.cluster().await?;
    let selector = runner_selector(&ctx.settings.runner_pod);
    // By label first, so the count says what this cleanup removed; then the job pod named in
    // the state, in case a template changed its labels (a pod already gone is fine).
    let (pods, secrets) = cluster.delete_labelled(&selector).await?;
    if let Some(pod) = &state.job_pod {
        cluster.delete_pod(pod).await?;
    }
    joblog::info(&format!(
        "deleted {pods} pod(s) and {secrets} secret(s) labelled {selector}"
    ));
    group.end();
    Ok(())
}
