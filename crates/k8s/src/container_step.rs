//! `run_container_step`: the action image in its own pod, with the workspace and the runner's
//! `_temp` brought in (copy mode) or mounted (volume mode), its log streamed, its exit code
//! taken from the container's terminated state, its file commands (and workspace changes)
//! brought back, the pod deleted.

use crate::copy::{self, Endpoint};
use crate::error::Error;
use crate::joblog::{self, Group};
use crate::mounts::{Storage, WORK_MOUNT};
use crate::names::{self, FS_INIT_CONTAINER, FS_SYNC_CONTAINER, JOB_CONTAINER};
use crate::objects::{Cluster, owner_of};
use crate::pod::{self, PodContext, READY_MARKER};
use crate::script_step::{copy_file_commands_back, temp_source};
use crate::tarball::Source;
use crate::template::PodKind;
use crate::wait::{self, Goal};
use crate::{K8sHook, State, exec, retry};
use futures::AsyncBufReadExt;
use hooklib::{ContainerSpec, StepOutcome};
use kube::api::LogParams;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long the log stream may lag behind the container's end.
const LOG_GRACE: Duration = Duration::from_secs(10);

pub async fn run_container_step(
    hook: &K8sHook,
    args: ContainerSpec,
    state: State,
) -> Result<StepOutcome<State>, Error> {
    if let Some(dockerfile) = args.dockerfile.as_deref().filter(|_| args.image.is_none()) {
        return crate::build::run_dockerfile_step(
            hook,
            dockerfile,
            &args,
            &state,
            &hooklib::Cancel::new(),
        )
        .await
        .map(StepOutcome::exited);
    }
    let image = args
        .image
        .clone()
        .filter(|i| !i.trim().is_empty())
        .ok_or(crate::pod::BuildError::NoImage("container step".into()))?;
    run_image(hook, &image, &args, &state, &[])
        .await
        .map(StepOutcome::exited)
}

/// Runs `image` as a container step (also the path of images built from Dockerfiles, which
/// pass the registry secret in `pull_secrets`). Returns the action's exit code.
pub async fn run_image(
    hook: &K8sHook,
    image: &str,
    args: &ContainerSpec,
    state: &State,
    pull_secrets: &[String],
) -> Result<i32, Error> {
    let settings = &hook.settings;
    let layout = hook.layout()?;
    let custom = hook.customization()?;
    let cluster = hook.cluster().await?;
    let runner = retry::api(format!("get runner pod {}", settings.runner_pod), || {
        cluster.pods.get_opt(&settings.runner_pod)
    })
    .await?;
    let storage = match &settings.claim_name {
        None => Storage::Copy,
        Some(claim) => Storage::Volume {
            claim: claim.clone(),
            placement: placement(settings, runner.as_ref()),
        },
    };
    let token = uuid::Uuid::new_v4().to_string();
    let ctx = PodContext {
        runner_pod: settings.runner_pod.clone(),
        owner: runner.as_ref().and_then(owner_of),
        token: token.clone(),
        runner_image: settings.runner_image.clone(),
        storage: storage.clone(),
        layout: layout.clone(),
    };
    let name = names::step_pod(&settings.runner_pod, &names::random_id());
    let mut step_pod = pod::step_pod(&ctx, &name, image, args, pull_secrets)?;
    for w in custom.apply(&mut step_pod, PodKind::Step)? {
        joblog::warning(&w);
    }
    let group = Group::start(&format!("Starting container step pod {name} ({image})"));
    let created = cluster.create_pod(&step_pod, &token).await?;
    let result = drive(
        hook, &cluster, &name, created, &storage, &layout, state, group,
    )
    .await;
    if let Err(e) = cluster.delete_pod(&name).await {
        joblog::warning(&format!("could not delete step pod {name}: {e}"));
    }
    result
}

fn placement(
    settings: &crate::Settings,
    runner: Option<&k8s_openapi::api::core::v1::Pod>,
) -> crate::mounts::Placement {
    use crate::mounts::Placement;
    match runner
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.node_name.clone())
    {
        Some(n) if settings.use_kube_scheduler => Placement::Affinity(n),
        Some(n) => Placement::NodeName(n),
        None => Placement::Anywhere,
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    hook: &K8sHook,
    cluster: &Cluster,
    name: &str,
    created: k8s_openapi::api::core::v1::Pod,
    storage: &Storage,
    layout: &crate::mounts::Layout,
    state: &State,
    group: Group,
) -> Result<i32, Error> {
    let timeout = hook.settings.prepare_timeout;
    let mut rv = created.metadata.resource_version.clone();
    let copy_mode = matches!(storage, Storage::Copy);
    let ws_rel = layout.workspace_rel.clone().unwrap_or_default();
    if copy_mode {
        let (pod, _) = wait::until(
            &cluster.pods,
            name,
            rv.clone(),
            &Goal::InitRunning(FS_INIT_CONTAINER.into()),
            timeout,
            joblog::info,
        )
        .await?;
        rv = pod.metadata.resource_version.clone();
        copy_in(cluster, name, state, layout, &ws_rel).await?;
    }
    group.end();
    let (pod, _) = wait::until(
        &cluster.pods,
        name,
        rv,
        &Goal::Started(JOB_CONTAINER.into()),
        timeout,
        joblog::info,
    )
    .await?;
    // The action's log, live, while its end is watched for.
    let logs = async {
        let params = LogParams {
            container: Some(JOB_CONTAINER.into()),
            follow: true,
            ..LogParams::default()
        };
        let stream = retry::api(format!("logs of {name}"), || {
            cluster.pods.log_stream(name, &params)
        })
        .await?;
        let mut reader = std::pin::pin!(stream);
        let mut stdout = tokio::io::stdout();
        let failed =
            |e: std::io::Error| Error::Cluster(format!("reading the log of step pod {name}: {e}"));
        loop {
            let chunk = reader.fill_buf().await.map_err(failed)?;
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len();
            stdout.write_all(chunk).await.map_err(failed)?;
            reader.as_mut().consume_unpin(n);
        }
        stdout.flush().await.map_err(failed)?;
        Ok::<_, Error>(())
    };
    let terminated = Goal::Terminated(JOB_CONTAINER.into());
    let end = wait::until(
        &cluster.pods,
        name,
        pod.metadata.resource_version.clone(),
        &terminated,
        // The action may run as long as it likes.
        Duration::from_secs(60 * 60 * 24 * 7),
        joblog::info,
    );
    let mut logs = std::pin::pin!(logs);
    let mut logs_done = false;
    let mut end = std::pin::pin!(end);
    // The exit code is the truth: a broken log stream is warned about, not a failed step.
    let log_broke = |e: Error| {
        joblog::warning(&format!(
            "the log of step pod {name} broke ({e}); waiting for the step's end"
        ));
    };
    let code = tokio::select! {
        r = &mut end => r?.1,
        r = &mut logs => {
            logs_done = true;
            if let Err(e) = r {
                log_broke(e);
            }
            end.await?.1
        }
    };
    if !logs_done {
        match tokio::time::timeout(LOG_GRACE, logs).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log_broke(e),
            Err(_) => joblog::warning(&format!(
                "the log of step pod {name} did not end with its container"
            )),
        }
    }
    let code =
        code.ok_or_else(|| Error::Cluster(format!("step pod {name} reported no exit code")))?;
    if copy_mode {
        let group = Group::start("Copying the step's results back");
        copy_out(cluster, name, state, layout, &ws_rel).await?;
        group.end();
    }
    Ok(code)
}

async fn copy_in(
    cluster: &Cluster,
    name: &str,
    state: &State,
    layout: &crate::mounts::Layout,
    ws_rel: &str,
) -> Result<(), Error> {
    let ns = cluster.namespace.as_str();
    let init = Endpoint {
        namespace: ns,
        pod: name,
        container: FS_INIT_CONTAINER,
    };
    let temp = copy::to_pod(
        &cluster.client,
        cluster.heartbeat,
        init,
        "the runner's _temp",
        vec![temp_source(&layout.temp())],
        WORK_MOUNT,
    );
    // The workspace lives in the job pod when there is one, else on the runner.
    let workspace = async {
        match (&state.job_pod, state.job_container) {
            (Some(job_pod), true) => {
                copy::between(
                    &cluster.client,
                    cluster.heartbeat,
                    "the workspace",
                    Endpoint {
                        namespace: ns,
                        pod: job_pod,
                        container: JOB_CONTAINER,
                    },
                    WORK_MOUNT,
                    ws_rel,
                    init,
                    WORK_MOUNT,
                )
                .await
            }
            _ => {
                copy::to_pod(
                    &cluster.client,
                    cluster.heartbeat,
                    init,
                    "the workspace",
                    vec![Source {
                        dir: layout.work_root.join(ws_rel),
                        name: ws_rel.to_owned(),
                        exclude: Vec::new(),
                    }],
                    WORK_MOUNT,
                )
                .await
            }
        }
    };
    let (temp, workspace) = tokio::join!(temp, workspace);
    eprintln!("_temp: {}", temp?);
    eprintln!("workspace: {}", workspace?);
    let go = exec::Command {
        namespace: ns,
        pod: name,
        container: FS_INIT_CONTAINER,
        argv: vec!["touch".into(), READY_MARKER.into()],
    };
    let (code, _, err) = exec::output(&cluster.client, cluster.heartbeat, &go, 1024).await?;
    if code != 0 {
        return Err(Error::Cluster(format!(
            "cannot start the step in {name}: touch {READY_MARKER} exited {code}: {err}"
        )));
    }
    Ok(())
}

async fn copy_out(
    cluster: &Cluster,
    name: &str,
    state: &State,
    layout: &crate::mounts::Layout,
    ws_rel: &str,
) -> Result<(), Error> {
    let ns = cluster.namespace.as_str();
    let sync = Endpoint {
        namespace: ns,
        pod: name,
        container: FS_SYNC_CONTAINER,
    };
    let temp = layout.temp();
    let file_commands = copy_file_commands_back(cluster, sync, &temp);
    let workspace = async {
        match (&state.job_pod, state.job_container) {
            (Some(job_pod), true) => {
                copy::between(
                    &cluster.client,
                    cluster.heartbeat,
                    "the workspace back",
                    sync,
                    WORK_MOUNT,
                    ws_rel,
                    Endpoint {
                        namespace: ns,
                        pod: job_pod,
                        container: JOB_CONTAINER,
                    },
                    WORK_MOUNT,
                )
                .await
            }
            _ => {
                copy::from_pod(
                    &cluster.client,
                    cluster.heartbeat,
                    sync,
                    "the workspace back",
                    WORK_MOUNT,
                    ws_rel,
                    &layout.work_root,
                )
                .await
            }
        }
    };
    let (fc, ws) = tokio::join!(file_commands, workspace);
    eprintln!("file commands: {}", fc?);
    eprintln!("workspace: {}", ws?);
    Ok(())
}
