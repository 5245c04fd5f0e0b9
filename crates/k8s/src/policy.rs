//! The administrator's allowed images (`hooklib::policy`), checked at the start of a command,
//! before anything is created: the job container and services in `prepare_job`, the image or
//! the Dockerfile's base images of a container step.

use crate::error::Error;
use hooklib::policy::{ImagePolicy, ImageRole};
use hooklib::{Container, PrepareJob};

/// The job container's and every service's image.
pub fn check_job(policy: &ImagePolicy, args: &PrepareJob) -> Result<(), Error> {
    let job = args
        .container
        .iter()
        .map(|c| ("the job container", ImageRole::Job, c));
    let services = args
        .services
        .iter()
        .map(|c| ("a service", ImageRole::Service, c));
    for (what, role, spec) in job.chain(services) {
        if let Some(i) = spec.image() {
            policy.check_container(role, &format!("{what} ({i})"), i)?;
        }
    }
    Ok(())
}

/// A container step's image, or the base images of its Dockerfile.
pub fn check_step(policy: &ImagePolicy, spec: &Container) -> Result<(), Error> {
    let what = match spec.image() {
        Some(i) => format!("the container step ({i})"),
        None => "the container step".to_owned(),
    };
    Ok(policy.check_step(&what, spec.image(), spec.dockerfile.as_deref())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jobs: &str, services: &str, steps: &str) -> ImagePolicy {
        let vars = [
            (hooklib::policy::JOB_IMAGES, jobs),
            (hooklib::policy::SERVICE_IMAGES, services),
            (hooklib::policy::STEP_IMAGES, steps),
        ];
        ImagePolicy::from_lookup(hooklib::settings::lookup_from(&vars)).unwrap()
    }

    fn spec(image: &str) -> Container {
        Container {
            image: Some(image.to_owned()),
            ..Container::default()
        }
    }

    #[test]
    fn job_and_services_are_checked_against_their_own_lists() {
        let p = policy("alpine", "redis:*", "");
        let args = |job: &str, svc: &str| PrepareJob {
            container: Some(spec(job)),
            services: vec![spec(svc)],
        };
        assert!(check_job(&p, &args("alpine:latest", "redis:7")).is_ok());
        let e = check_job(&p, &args("debian", "redis:7")).unwrap_err();
        assert!(
            e.to_string().starts_with("the job container (debian): "),
            "{e}"
        );
        let e = check_job(&p, &args("alpine", "postgres:16")).unwrap_err();
        assert!(
            e.to_string()
                .contains("ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_SERVICES"),
            "{e}"
        );
        // Unset lists allow everything.
        assert!(check_job(&ImagePolicy::allow_all(), &args("x/y:z", "q")).is_ok());
    }

    #[test]
    fn dockerfile_base_images_are_checked_when_steps_are_restricted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Dockerfile");
        std::fs::write(&file, "FROM debian:12\nRUN true\n").unwrap();
        let mut s = spec("");
        s.image = None;
        s.dockerfile = Some(file.display().to_string());
        assert!(check_step(&policy("", "", "debian:*"), &s).is_ok());
        let e = check_step(&policy("", "", "alpine"), &s).unwrap_err();
        assert!(
            e.to_string().contains("base image of the Dockerfile"),
            "{e}"
        );
        // Unrestricted: the Dockerfile is not even read.
        s.dockerfile = Some("/nonexistent/Dockerfile".into());
        assert!(check_step(&policy("", "", ""), &s).is_ok());
        assert!(matches!(
            check_step(&policy("", "", "alpine"), &s),
            Err(Error::NotAllowed(
                hooklib::policy::NotAllowed::DockerfileUnreadable { .. }
            ))
        ));
    }
}
