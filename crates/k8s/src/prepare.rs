//! `prepare_job`: preflight, clean up the previous job, create the secrets and the job pod,
//! wait for it with a watch, copy the workspace in, answer the runner.

use crate::context::Ctx;
use crate::copy::{self};
use crate::error::Error;
use crate::mounts::{Placement, Storage, WORK_MOUNT};
use crate::names::{self, JOB_CONTAINER};
use crate::objects::Cluster;
use crate::pod::{self, ARCHIVER_CONTAINER, PodContext, labels, runner_selector};
use crate::rbac::{self, Preflight};
use crate::secrets::{self, distinct_credentials};
use crate::tarball::Source;
use crate::template::PodKind;
use crate::wait::{self, Goal};
use crate::{State, exec, retry};
use hooklib::joblog::{self, Group, secs};
use hooklib::{ContainerInfo, JobContext, PrepareJob, PrepareJobResponse, ServiceInfo};
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;
use std::time::Instant;

/// Files of `_work` never copied into pods.
pub const NOT_COPIED: [&str; 1] = ["_temp/_runner_hook_responses"];

pub async fn prepare_job(
    ctx: &Ctx<'_>,
    args: PrepareJob,
) -> Result<PrepareJobResponse<State>, Error> {
    let started = Instant::now();
    let settings = ctx.settings;
    let group = Group::start("Preparing the job pod");
    // Everything that can be wrong with the input fails before anything is created.
    let layout = ctx.layout()?;
    let custom = ctx.customization()?;
    let cluster = ctx.cluster().await?;
    let ns = cluster.namespace.clone();
    let job_name = names::job_pod(&settings.runner_pod);
    let selector = runner_selector(&settings.runner_pod);

    let cancel = ctx.cancel;
    let (preflight, runner, pruned) = tokio::select! {
        r = async {
            tokio::join!(
                rbac::preflight(&cluster.client, &ns, settings.build.target().is_ok()),
                retry::api(format!("get runner pod {}", settings.runner_pod), || {
                    cluster.pods.get_opt(&settings.runner_pod)
                }),
                cluster.delete_labelled(&selector),
            )
        } => r,
        // Nothing of this job exists yet.
        () = cancel.cancelled() => return Err(Error::Cancelled),
    };
    match preflight {
        Preflight::Allowed => {}
        Preflight::Denied(missing) => {
            return Err(rbac::MissingPermissions {
                namespace: ns.clone(),
                missing,
            }
            .into());
        }
        Preflight::Unknown(why) => tracing::debug!(%why, "RBAC preflight inconclusive"),
    }
    let (pods_removed, secrets_removed) = pruned?;
    if pods_removed + secrets_removed > 0 {
        joblog::info(&format!(
            "removed {pods_removed} pod(s) and {secrets_removed} secret(s) left by a previous job of this runner"
        ));
    }
    let runner = runner?;
    if runner.is_none() {
        joblog::warning(&format!(
            "runner pod {} not found in namespace {ns}: the job's pods will not be garbage-collected if the runner goes away",
            settings.runner_pod
        ));
    }
    let pods = PodContext::new(settings, runner.as_ref(), layout.clone());
    if let Storage::Volume {
        placement: Placement::Anywhere,
        ..
    } = pods.storage
    {
        joblog::warning(
            "the runner's node is unknown: the job pod is scheduled without pinning; the volume must be ReadWriteMany",
        );
    }
    let (token, storage) = (pods.token.clone(), pods.storage.clone());

    let plan = plan_job(&pods, &custom, &job_name, &args)?;
    for w in &plan.warnings {
        joblog::warning(w);
    }
    let JobPlan {
        secrets: secret_objs,
        secret_names,
        pod: job_pod,
        service_names,
        ..
    } = plan;

    let creating = async {
        for r in
            futures::future::join_all(secret_objs.iter().map(|s| cluster.create_secret(s, &token)))
                .await
        {
            r?;
        }
        let created = cluster.create_pod(&job_pod, &token).await?;
        joblog::info(&format!("created pod {job_name} in namespace {ns}"));
        let has_job = args.container.is_some();
        let deadline = tokio::time::Instant::now() + settings.prepare_timeout;
        let ready_goal = Goal::JobReady {
            job: has_job,
            services: service_names.clone(),
        };
        let wait_ready = |rv: Option<String>| {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ready_goal = &ready_goal;
            let pods = &cluster.pods;
            let name = job_name.as_str();
            async move {
                let (pod, _) = wait::until(pods, name, rv, ready_goal, remaining, joblog::info)
                    .await
                    .map_err(|e| match e {
                        // The deadline is the whole prepare timeout, however it was split.
                        wait::WaitError::Timeout { pod, state, .. } => wait::WaitError::Timeout {
                            pod,
                            timeout: settings.prepare_timeout,
                            state,
                        },
                        other => other,
                    })?;
                Ok::<_, Error>((pod, started.elapsed()))
            }
        };
        let ((ready, ready_after), (copied, is_alpine)) = if has_job {
            // The job container runs before the services are ready: copy the workspace and
            // look at /etc/os-release meanwhile.
            let (running, _) = wait::until(
                &cluster.pods,
                &job_name,
                created.metadata.resource_version.clone(),
                &Goal::Started(JOB_CONTAINER.into()),
                settings.prepare_timeout,
                joblog::info,
            )
            .await?;
            tokio::try_join!(
                wait_ready(running.metadata.resource_version.clone()),
                async {
                    let (copied, alpine) = tokio::join!(
                        copy_work(
                            cluster,
                            &job_name,
                            &storage,
                            &layout,
                            running.metadata.resource_version.clone(),
                            settings.prepare_timeout,
                        ),
                        is_alpine(cluster, &job_name),
                    );
                    Ok::<_, Error>((copied?, alpine?))
                }
            )?
        } else {
            (
                wait_ready(created.metadata.resource_version.clone()).await?,
                (None, false),
            )
        };
        Ok::<_, Error>((ready, ready_after, copied, is_alpine))
    };
    // A cancellation drops the creation where it is and takes the failure path below, which
    // deletes what was created (all of it labelled, so cleanup_job would remove it anyway).
    let created = tokio::select! {
        r = creating => r,
        () = cancel.cancelled() => Err(Error::Cancelled),
    };
    let (ready, ready_after, copied, is_alpine) = match created {
        Ok(v) => v,
        Err(e) => {
            // Nothing half-created stays behind.
            let _ = cluster.delete_pod(&job_name).await;
            for s in &secret_names {
                let _ = cluster.delete_secret(s).await;
            }
            return Err(e);
        }
    };
    group.end();
    let copy_note = copied.map_or_else(String::new, |c| format!("; workspace copied: {c}"));
    joblog::info(&format!(
        "job pod {job_name} ready in {}{copy_note}; prepare_job took {}",
        secs(ready_after),
        secs(started.elapsed())
    ));
    Ok(response(&ready, &args, &service_names, is_alpine))
}

/// Everything `prepare_job` creates, decided before any of it is: the registry secrets (one
/// immutable secret per distinct login), the job pod with the administrator's customization
/// applied last, and the warnings to print.
#[derive(Debug)]
pub struct JobPlan {
    /// The registry secrets, created before the pod.
    pub secrets: Vec<k8s_openapi::api::core::v1::Secret>,
    /// Their names, as the pod's `imagePullSecrets`.
    pub secret_names: Vec<String>,
    /// The job pod.
    pub pod: k8s_openapi::api::core::v1::Pod,
    /// The service containers' names, in the input's order.
    pub service_names: Vec<String>,
    /// What the job log should say about the input (ignored options, overwritten labels).
    pub warnings: Vec<String>,
}

/// The pure part of `prepare_job`: what to create for `args`, no I/O.
pub fn plan_job(
    pods: &PodContext,
    custom: &crate::template::Customization,
    job_name: &str,
    args: &PrepareJob,
) -> Result<JobPlan, Error> {
    let registries = std::iter::once(args.container.as_ref().and_then(|c| c.registry.as_ref()))
        .chain(args.services.iter().map(|s| s.registry.as_ref()));
    let (creds, _) = distinct_credentials(registries);
    let secrets: Vec<_> = creds
        .iter()
        .map(|c| {
            let name = names::secret(&pods.runner_pod, &names::random_id());
            secrets::registry_secret(
                &name,
                labels(&pods.runner_pod, "registry-secret"),
                &pods.token,
                pods.owner.clone(),
                c,
            )
        })
        .collect();
    let secret_names: Vec<String> = secrets
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    let built = pod::job_pod(pods, job_name, args, &secret_names)?;
    let mut pod = built.pod;
    let mut warnings = built.warnings;
    warnings.extend(custom.apply(&mut pod, PodKind::Job)?);
    Ok(JobPlan {
        secrets,
        secret_names,
        pod,
        service_names: built.service_names,
        warnings,
    })
}

/// Copy mode: streams the runner's `_work` into the job pod through its archiver (never the
/// job image's `tar`), once the archiver runs.
async fn copy_work(
    cluster: &Cluster,
    pod: &str,
    storage: &Storage,
    layout: &crate::mounts::Layout,
    rv: Option<String>,
    timeout: std::time::Duration,
) -> Result<Option<copy::CopyReport>, Error> {
    if !matches!(storage, Storage::Copy) {
        return Ok(None);
    }
    wait::until(
        &cluster.pods,
        pod,
        rv,
        &Goal::Started(ARCHIVER_CONTAINER.into()),
        timeout,
        joblog::info,
    )
    .await?;
    let source = Source {
        dir: layout.work_root.clone(),
        name: String::new(),
        exclude: NOT_COPIED.iter().map(Into::into).collect(),
    };
    let report = copy::to_pod(
        &cluster.client,
        cluster.heartbeat,
        cluster.endpoint(pod, ARCHIVER_CONTAINER),
        "the runner's _work",
        vec![source],
        WORK_MOUNT,
    )
    .await?;
    Ok(Some(report))
}

async fn is_alpine(cluster: &Cluster, pod: &str) -> Result<bool, Error> {
    let cmd = exec::Command {
        namespace: &cluster.namespace,
        pod,
        container: JOB_CONTAINER,
        argv: vec![
            "sh".into(),
            "-c".into(),
            "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null || true".into(),
        ],
    };
    let (_, out, _) = exec::output(&cluster.client, cluster.heartbeat, &cmd, 64 * 1024).await?;
    Ok(hooklib::is_alpine(&out))
}

/// The runner's answer: `state.jobPod`, the job container and one entry per service (by
/// position, with its ports), side-cars left out.
pub fn response(
    pod: &Pod,
    args: &PrepareJob,
    service_names: &[String],
    is_alpine: bool,
) -> PrepareJobResponse<State> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let services = service_names
        .iter()
        .map(|svc| {
            let ports: BTreeMap<String, String> = containers
                .iter()
                .find(|c| c.name == *svc)
                .and_then(|c| c.ports.as_ref())
                .into_iter()
                .flatten()
                .map(|p| {
                    let port = p.container_port.to_string();
                    (port.clone(), p.host_port.map_or(port, |h| h.to_string()))
                })
                .collect();
            ServiceInfo {
                id: svc.clone(),
                network: name.clone(),
                ports,
            }
        })
        .collect();
    PrepareJobResponse {
        state: State {
            job_pod: Some(name.clone()),
            job_container: args.container.is_some(),
        },
        context: JobContext {
            container: args.container.as_ref().map(|_| ContainerInfo {
                id: name.clone(),
                network: name.clone(),
            }),
            services,
        },
        is_alpine,
    }
}
