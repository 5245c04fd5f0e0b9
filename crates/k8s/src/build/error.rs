//! Why a Dockerfile action could not be built: one line each, saying what to do.

use super::attach::AttachError;
use super::registry::RegistryError;
use crate::retry::ApiError;
use crate::wait::WaitError;
use std::time::Duration;

/// A Dockerfile build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No registry configured.
    #[error("{0}")]
    NotConfigured(&'static str),
    /// The context could not be packed.
    #[error(transparent)]
    Context(#[from] buildctx::Error),
    /// The registry secret is missing or unusable.
    #[error(
        "the registry secret {name} (ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_SECRET_NAME) in namespace {namespace} {problem}"
    )]
    Secret {
        /// The secret.
        name: String,
        /// Its namespace.
        namespace: String,
        /// What is wrong.
        #[source]
        problem: SecretProblem,
    },
    /// The registry refused our credentials.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The builder pod did not start.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// The context could not be sent.
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// The builder exited non-zero.
    #[error(
        "the {builder} build of {destination} failed: container {container} of pod {pod} exited with code {code} ({reason}){last}; the pod is kept for inspection until cleanup_job"
    )]
    Failed {
        /// `Kaniko` or `BuildKit`.
        builder: &'static str,
        /// What was built.
        destination: String,
        /// The builder pod.
        pod: String,
        /// The container.
        container: String,
        /// Its exit code.
        code: i32,
        /// Its terminated reason.
        reason: String,
        /// `: <last log line>` or nothing.
        last: String,
    },
    /// The pusher exited non-zero.
    #[error(
        "the push of {destination} failed: container push of pod {pod} exited with code {code} ({reason}){last}; the pod is kept for inspection until cleanup_job"
    )]
    PushFailed {
        /// What was pushed.
        destination: String,
        /// The builder pod.
        pod: String,
        /// Its exit code.
        code: i32,
        /// Its terminated reason.
        reason: String,
        /// `: <last log line>` or nothing.
        last: String,
    },
    /// The action's files changed between naming the image and sending the context.
    #[error(
        "the files of the Dockerfile action {path} changed while its build context was sent: the image would not match its content tag; re-run the step"
    )]
    ContextChanged {
        /// The Dockerfile.
        path: String,
    },
    /// The step was cancelled during the build (the builder pod, if any, is deleted).
    #[error("the build was cancelled")]
    Cancelled {
        /// The deleted builder pod.
        pod: Option<String>,
    },
    /// The build took too long.
    #[error(
        "the build of {destination} in pod {pod} did not finish within {timeout:?} (ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILD_TIMEOUT_SECONDS); the pod is kept for inspection until cleanup_job"
    )]
    Timeout {
        /// What was built.
        destination: String,
        /// The builder pod.
        pod: String,
        /// The limit.
        timeout: Duration,
    },
    /// The pusher succeeded but reported no digest.
    #[error(
        "the builder pod {pod} finished but the pusher's termination message holds no image digest ({message:?}): does the pusher image (ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_PUSHER_IMAGE) write the pushed reference to --image-refs?"
    )]
    NoDigest {
        /// The builder pod.
        pod: String,
        /// What it said.
        message: String,
    },
    /// Reading the builder's log failed.
    #[error("reading the log of builder pod {pod}: {source}")]
    Log {
        /// The builder pod.
        pod: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What is wrong with the registry secret (each message completes "the registry secret … in
/// namespace … ").
#[derive(Debug, thiserror::Error)]
pub enum SecretProblem {
    /// No such secret.
    #[error("does not exist: create it with kubectl create secret docker-registry")]
    Missing,
    /// Not a docker-registry secret.
    #[error(
        "has no {} key (type kubernetes.io/dockerconfigjson expected)",
        crate::secrets::DOCKER_CONFIG_KEY
    )]
    NoDockerConfig,
    /// Its `.dockerconfigjson` cannot be read.
    #[error("holds a {key} that {0}", key = crate::secrets::DOCKER_CONFIG_KEY)]
    Unusable(#[source] super::auth::ConfigError),
}

impl From<BuildError> for crate::Error {
    fn from(e: BuildError) -> Self {
        Self::Dockerfile(Box::new(e))
    }
}
