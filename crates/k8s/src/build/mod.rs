//! Dockerfile container actions (ADR 0034): the action's image is built inside the cluster by
//! an unprivileged Kaniko pod (or BuildKit rootless, on request), pushed to the configured
//! registry, and run as the step by digest with the registry secret as `imagePullSecrets`.
//!
//! 1. pack the Dockerfile's directory (`buildctx`: `.dockerignore`, deterministic tar, digest);
//! 2. name it `<push host>/<owner>-<repo>:<hash of context + Dockerfile path + builder settings>`;
//! 3. ask the registry (manifest `HEAD`, the secret's credentials) — a hit skips the build;
//! 4. otherwise run the builder pod, stream it the gzipped context over `attach`, stream its
//!    log: the builder (no push credentials) writes an image tarball, the pusher (the only
//!    container with the push secret) pushes it and reports the digest in its termination
//!    message;
//! 5. run `<pull host>/<name>@<digest>` through the container-step path.
//!
//! A cancelled step (the runner's SIGINT/SIGTERM) deletes the builder pod and returns.
//!
//! See `docs/kaniko.md`.

mod attach;
mod auth;
mod driver;
mod error;
mod lines;
mod naming;
mod pods;
mod registry;
mod settings;

pub use error::{BuildError, SecretProblem};
pub use settings::{BuildSettings, Builder};

use crate::context::Ctx;
use crate::mounts::Placement;
use crate::objects::{Cluster, owner_of};
use crate::{State, retry};
use hooklib::joblog;
use hooklib::{Container, ImageRef};
use naming::References;
use std::path::Path;

/// Builds (or finds) the image of the Dockerfile action at `dockerfile` (a host path), then
/// runs it as the step. Returns the action's exit code. A cancellation during the build
/// deletes the builder pod and returns [`BuildError::Cancelled`].
pub async fn run_dockerfile_step(
    ctx: &Ctx<'_>,
    dockerfile: &str,
    args: &Container,
    state: &State,
) -> Result<i32, crate::Error> {
    let image = build_image(ctx, dockerfile, state).await?;
    let secrets: Vec<String> = ctx.settings.build.secret_name.iter().cloned().collect();
    crate::container_step::run_image(ctx, &image, args, state, &secrets).await
}

/// The image reference the step runs: `<pull host>/<name>@<digest>`.
async fn build_image(
    ctx: &Ctx<'_>,
    dockerfile: &str,
    state: &State,
) -> Result<String, crate::Error> {
    let cancel = ctx.cancel;
    let settings = ctx.settings;
    let build = &settings.build;
    let target = build.target().map_err(BuildError::NotConfigured)?;
    let path = Path::new(dockerfile).to_owned();
    // The digest only: the archive is packed again, streamed, if a build is needed.
    let context = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || buildctx::digest(&path))
            .await
            .map_err(|e| joined(dockerfile, e))?
            .map_err(BuildError::from)?
    };
    let name = naming::image_name(&path);
    let tag = naming::tag(&context.digest, &context.dockerfile, &build.fingerprint());
    let refs = References::new(&target.push, &target.pull, &name, &tag);
    let cluster = ctx.cluster().await?;
    let plain_http = |r: &str| build.is_plain_http(r);
    let image = ImageRef::parse(&refs.push)
        .filter(|i| i.tag().is_some())
        .ok_or(BuildError::NotConfigured(settings::NOT_CONFIGURED))?;
    let auth = match &target.secret {
        Some(secret) => registry_auth(cluster, secret, image.registry()).await?,
        None => None,
    };
    joblog::info(&format!(
        "Dockerfile action {dockerfile}: {} files, context digest {}, image {}",
        context.entries,
        context.short_digest(),
        refs.push
    ));
    let check = tokio::select! {
        r = registry::manifest_digest(&image, auth.as_ref(), &plain_http) => r,
        () = cancel.cancelled() => return Err(BuildError::Cancelled { pod: None }.into()),
    };
    match check {
        Ok(Some(digest)) => {
            joblog::info(&format!(
                "{} is already in the registry ({digest}): the build context is unchanged, skipping the build",
                refs.push
            ));
            return Ok(refs.pull_by_digest(&digest));
        }
        Ok(None) => {}
        Err(
            e @ (registry::RegistryError::Denied { .. }
            | registry::RegistryError::TokenDenied { .. }
            | registry::RegistryError::InsecureRealm { .. }),
        ) => {
            return Err(BuildError::from(e).into());
        }
        Err(e) => joblog::warning(&format!("{e}; building the image anyway")),
    }
    let (owner, placement) = owner_and_placement(ctx, cluster, state).await?;
    let pod_name = naming::builder_pod(
        &settings.runner_pod,
        build.builder,
        &crate::names::random_id(),
    );
    let digest = driver::build(
        cluster,
        driver::Plan {
            pod: &pod_name,
            runner_pod: &settings.runner_pod,
            refs: &refs,
            dockerfile_path: &path,
            dockerfile: &context.dockerfile,
            context_digest: &context.digest,
            secret: target.secret.as_deref(),
            pull_secret: build.pull_secret_name.as_deref(),
            owner,
            placement,
            settings: build,
            plain_http: build.is_plain_http(image.registry()),
            start_timeout: settings.prepare_timeout,
        },
        cancel,
    )
    .await?;
    Ok(refs.pull_by_digest(&digest))
}

fn joined(dockerfile: &str, e: tokio::task::JoinError) -> BuildError {
    BuildError::Context(buildctx::Error::Context {
        path: dockerfile.to_owned(),
        source: std::io::Error::other(e),
    })
}

/// Reads the registry secret and picks the credentials for `registry`.
async fn registry_auth(
    cluster: &Cluster,
    secret: &str,
    registry: &str,
) -> Result<Option<auth::RegistryAuth>, BuildError> {
    let bad = |problem: SecretProblem| BuildError::Secret {
        name: secret.to_owned(),
        namespace: cluster.namespace.clone(),
        problem,
    };
    let found = retry::api(format!("get secret {secret}"), || {
        cluster.secrets.get_opt(secret)
    })
    .await?;
    let Some(found) = found else {
        return Err(bad(SecretProblem::Missing));
    };
    let doc = found
        .data
        .as_ref()
        .and_then(|d| d.get(crate::secrets::DOCKER_CONFIG_KEY))
        .ok_or_else(|| bad(SecretProblem::NoDockerConfig))?;
    let creds =
        auth::credentials_for(&doc.0, registry).map_err(|e| bad(SecretProblem::Unusable(e)))?;
    if creds.is_none() {
        joblog::warning(&format!(
            "the registry secret {secret} has no credentials for {registry}: asking the registry anonymously"
        ));
    }
    Ok(creds)
}

/// The builder pod belongs to the job pod (or the runner pod without one) and, in volume mode,
/// sits on the runner's node like the job pod.
async fn owner_and_placement(
    ctx: &Ctx<'_>,
    cluster: &Cluster,
    state: &State,
) -> Result<
    (
        Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
        Placement,
    ),
    BuildError,
> {
    let settings = ctx.settings;
    let runner_name = settings.runner_pod.clone();
    let job = async {
        match &state.job_pod {
            Some(j) => retry::api(format!("get job pod {j}"), || cluster.pods.get_opt(j)).await,
            None => Ok(None),
        }
    };
    let runner = retry::api(format!("get runner pod {runner_name}"), || {
        cluster.pods.get_opt(&runner_name)
    });
    let (job, runner) = tokio::join!(job, runner);
    let (job, runner) = (job?, runner?);
    let owner = job.as_ref().or(runner.as_ref()).and_then(owner_of);
    let placement = if settings.volume_mode() {
        Placement::on_runner_node(runner.as_ref(), settings.use_kube_scheduler)
    } else {
        Placement::Anywhere
    };
    Ok((owner, placement))
}
