//! The docker hook's error type. Every variant renders as one line that carries the engine's
//! own reason when the engine refused something.

use crate::body::BodyError;
use crate::options::OptionsError;

/// Errors of the docker hook (failures of the hook itself; a failed step is an exit code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine could not be reached.
    #[error("cannot connect to the Docker Engine: {source}")]
    Connect {
        /// Why.
        source: EngineError,
    },
    /// The engine refused or failed a request.
    #[error("{action}: {source}")]
    Engine {
        /// What the hook was doing, e.g. `create the job container`.
        action: String,
        /// The engine's answer.
        source: EngineError,
    },
    /// The step's output could not be written to the hook's stdout/stderr (the runner went away).
    #[error("write the output of {what}: {source}")]
    StepOutput {
        /// Which step.
        what: String,
        /// The write's error.
        #[source]
        source: std::io::Error,
    },
    /// `createOptions` could not be used.
    #[error("{what}: {source}")]
    Options {
        /// Which container.
        what: String,
        /// What is wrong.
        source: OptionsError,
    },
    /// The container could not be described to the engine (bad ports, args, mounts).
    #[error("{what}: {source}")]
    Body {
        /// Which container.
        what: String,
        /// What is wrong.
        source: BodyError,
    },
    /// An image could not be pulled.
    #[error("cannot pull {image}{attempts}: {reason}", attempts = if *.attempts > 1 { format!(" (after {} attempts)", .attempts) } else { String::new() })]
    Pull {
        /// The image reference.
        image: String,
        /// How many attempts were made.
        attempts: u32,
        /// The registry's or engine's reason.
        reason: String,
    },
    /// The engine's build of a Dockerfile action failed: the builder's own message.
    #[error("cannot build the action image from {dockerfile}: {reason}")]
    Build {
        /// The Dockerfile's host path.
        dockerfile: String,
        /// The error the build reported in its output.
        reason: String,
    },
    /// The build request itself failed (the engine refused it or the stream broke).
    #[error("cannot build the action image from {dockerfile}: {source}")]
    BuildRequest {
        /// The Dockerfile's host path.
        dockerfile: String,
        /// The engine's answer.
        source: EngineError,
    },
    /// The build ended without an error and without an image.
    #[error(
        "cannot build the action image from {dockerfile}: the build ended without producing the image"
    )]
    BuildProducedNothing {
        /// The Dockerfile's host path.
        dockerfile: String,
    },
    /// Packing the build context stopped before it ended (a panic or a cancelled task).
    #[error("cannot build the action image from {dockerfile}: {source}")]
    BuildTask {
        /// The Dockerfile's host path.
        dockerfile: String,
        /// Why the packing task ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The build context could not be packed (unreadable file, invalid `.dockerignore`).
    #[error(transparent)]
    Context(#[from] buildctx::Error),
    /// A container did not become healthy (or stopped) in time.
    #[error("{what} did not become healthy: {reason}")]
    Unhealthy {
        /// Which container (image and alias).
        what: String,
        /// Why, with the last health-check output.
        reason: String,
    },
    /// The step ran but its exit status could not be observed.
    #[error("the exit status of {0} was never observed; the step's result is unknown")]
    StatusLost(String),
    /// A script step without a job container.
    #[error(
        "run_script_step needs a job container, but the state names none (prepare_job did not create one)"
    )]
    NoJobContainer,
    /// A container without an image (and, for a container step, without a Dockerfile).
    #[error("{0} has no image")]
    MissingImage(String),
    /// The administrator's policy refuses an option or volume.
    #[error("{what}: {source}")]
    Refused {
        /// Which container.
        what: String,
        /// The option and why.
        source: crate::policy::Refused,
    },
    /// The administrator's policy does not allow the image (or a Dockerfile's base image).
    #[error(transparent)]
    NotAllowed(#[from] hooklib::policy::NotAllowed),
    /// The runner cancelled the step (SIGINT/SIGTERM); it was stopped where it ran.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// Several containers failed at once (e.g. two services unhealthy).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many(Vec<Error>),
}

/// An error of the Docker Engine API (bollard's), shown as the engine's own message on one line:
/// the cause of [`Error::Engine`] and its kin, whose lines end with it.
#[derive(Debug)]
pub struct EngineError(pub bollard::errors::Error);

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&reason(&self.0))
    }
}

impl std::error::Error for EngineError {}

impl From<bollard::errors::Error> for EngineError {
    fn from(e: bollard::errors::Error) -> Self {
        Self(e)
    }
}

/// The engine's own message from a bollard error, on one line.
pub(crate) fn reason(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as B;
    let text = match e {
        B::DockerResponseServerError { message, .. } => message.clone(),
        B::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    };
    one_line(&text)
}

/// Collapses white space runs (and line breaks) into single spaces.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the engine answered 404 (the object is already gone).
pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Builds an [`Error::Engine`] for `action`.
pub(crate) fn engine(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Error {
    let action = action.into();
    move |e| Error::Engine {
        action,
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_log_line_names_the_engines_reason_once() {
        let refused = bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message: "Conflict. The container name \"/x\" is\n already in use".into(),
        };
        let e = engine("create the job container")(refused);
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            hooklib::error_line(&e),
            "::error::create the job container: Conflict. The container name \"/x\" is already in use"
        );
    }
}
