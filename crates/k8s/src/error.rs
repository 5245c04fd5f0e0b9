//! The hook's error type: every failure as one line, in the cluster's own words where it has
//! some.

use crate::copy::CopyError;
use crate::exec::ExecError;
use crate::pod::PodSpecError;
use crate::retry::ApiError;
use crate::script::ScriptError;
use crate::template::TemplateError;
use crate::wait::WaitError;

/// Errors of the Kubernetes hook.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable cluster connection.
    #[error("cannot connect to the cluster: {what}")]
    Connect {
        /// What was tried (`KUBECONFIG <path>`, `KUBERNETES_SERVICE_HOST <host>`) or missing.
        what: String,
        /// Why it failed.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The input cannot become a pod.
    #[error(transparent)]
    PodSpec(#[from] PodSpecError),
    /// The pod template or patch.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A pod did not get ready.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// A command could not be run or its result is unknown.
    #[error(transparent)]
    Exec(Box<ExecError>),
    /// A copy failed.
    #[error(transparent)]
    Copy(Box<CopyError>),
    /// The step script cannot be written.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// The RBAC preflight found missing permissions.
    #[error(transparent)]
    Rbac(#[from] crate::rbac::MissingPermissions),
    /// The runner's environment lacks something.
    #[error("{0} is not set: the Kubernetes hook needs the runner's {1}")]
    MissingEnv(&'static str, &'static str),
    /// A command needs the job pod and the state has none.
    #[error("{0} needs the job pod created by prepare_job, but the state names none")]
    NoJobPod(&'static str),
    /// A Dockerfile action could not be built (see `build`).
    #[error(transparent)]
    Dockerfile(Box<crate::build::BuildError>),
    /// The administrator's policy does not allow an image (or a Dockerfile's base image).
    #[error(transparent)]
    NotAllowed(#[from] hooklib::policy::NotAllowed),
    /// A file on the runner.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was done.
        what: &'static str,
        /// The file.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The runner cancelled a container step; its pod was deleted.
    #[error("the step was cancelled; step pod {pod} deleted")]
    StepCancelled {
        /// The step pod.
        pod: String,
    },
    /// The step pod's helper could not be released, so the action never started.
    #[error("cannot start the step in {pod}: writing {marker} exited {code}: {stderr}")]
    StepNotStarted {
        /// The step pod.
        pod: String,
        /// The ready marker.
        marker: &'static str,
        /// The exec's exit code.
        code: i32,
        /// What it said.
        stderr: String,
    },
    /// The step pod was evicted while the action ran.
    #[error("the step pod {pod} was evicted while the action ran ({why})")]
    StepPodEvicted {
        /// The step pod.
        pod: String,
        /// The kubelet's reason.
        why: String,
    },
    /// The step pod was deleted (by someone else) while the action ran.
    #[error("the step pod {pod} was deleted while the action ran ({how})")]
    StepPodDeleted {
        /// The step pod.
        pod: String,
        /// When and with what grace period.
        how: String,
    },
    /// The step pod went away before its action's end could be read.
    #[error("the step pod {pod} is gone")]
    StepPodGone {
        /// The step pod.
        pod: String,
    },
    /// The action container ended without an exit code.
    #[error("step pod {pod} reported no exit code")]
    NoExitCode {
        /// The step pod.
        pod: String,
    },
    /// The step's output could not be written to the hook's stdout.
    #[error("writing the step's log")]
    StepLogWrite(#[source] std::io::Error),
    /// A script step could not be followed to its end.
    #[error(transparent)]
    Step(Box<crate::script_run::StepError>),
    /// The runner cancelled the command (SIGINT/SIGTERM); what ran was stopped.
    #[error("cancelled by the runner")]
    Cancelled,
}

impl From<crate::script_run::StepError> for Error {
    fn from(e: crate::script_run::StepError) -> Self {
        Self::Step(Box::new(e))
    }
}

impl From<ExecError> for Error {
    fn from(e: ExecError) -> Self {
        Self::Exec(Box::new(e))
    }
}

impl From<CopyError> for Error {
    fn from(e: CopyError) -> Self {
        Self::Copy(Box::new(e))
    }
}
