//! The administrator's allowed images (issue 10, item 9), through the real binary on kubesim:
//! a job, a service or a container step whose image the policy does not allow is refused with
//! one `::error::` naming the image and the setting, before any pod or secret is created.
#![cfg(feature = "e2e")]

mod support;

use serde_json::json;
use support::{Runner, container, testenv};
use testenv::Image;

const JOBS: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_IMAGES";
const SERVICES: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_SERVICES";
const STEPS: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_STEP_IMAGES";

fn runner(test: &str, vars: &[(&str, &str)]) -> Runner {
    let mut r = Runner::new(test);
    for (k, v) in vars {
        r.extra_env.push(((*k).into(), (*v).into()));
    }
    r
}

#[test]
fn a_job_or_service_image_outside_the_lists_creates_nothing() {
    let busybox = testenv().image(Image::Busybox);
    let r = runner(
        "policy-job",
        &[(JOBS, "registry.example/allowed/*"), (SERVICES, "**")],
    );
    let (run, _) = r.prepare(Some(container(&busybox)), vec![]);
    assert_ne!(run.code, 0, "{run:#?}");
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{run:#?}");
    assert!(errors[0].contains("the job container"), "{}", errors[0]);
    assert!(errors[0].contains(JOBS), "{}", errors[0]);
    assert_eq!(r.labelled(), (vec![], vec![]), "nothing was created");

    let r = runner("policy-svc", &[(SERVICES, "registry.example/allowed/*")]);
    let (run, _) = r.prepare(Some(container(&busybox)), vec![container(&busybox)]);
    assert_ne!(run.code, 0, "{run:#?}");
    assert_eq!(run.errors().len(), 1, "{run:#?}");
    assert!(run.errors()[0].contains(SERVICES), "{run:#?}");
    assert_eq!(r.labelled(), (vec![], vec![]), "nothing was created");
}

#[test]
fn a_step_image_outside_the_list_is_refused_and_an_allowed_one_runs() {
    let busybox = testenv().image(Image::Busybox);
    let r = runner("policy-step", &[(STEPS, "registry.example/allowed/*")]);
    let (run, state) = r.prepare(Some(container(&busybox)), vec![]);
    run.ok();
    let step = r.container_step(
        Some(&state),
        &busybox,
        Some("sh"),
        &["-c", "\"echo", "ran\""],
        &[],
    );
    assert_ne!(step.run.code, 0, "{:#?}", step.run);
    assert_eq!(step.run.errors().len(), 1, "{:#?}", step.run);
    assert!(step.run.errors()[0].contains(STEPS), "{:#?}", step.run);
    assert!(!step.run.stdout.contains("ran"));
    let (pods, _) = r.labelled();
    assert_eq!(pods.len(), 1, "only the job pod: {pods:?}");

    // The same image, allowed by its repository (any tag), runs.
    let repo = busybox
        .rsplit_once(':')
        .map_or(busybox.as_str(), |(r, _)| r);
    let r2 = runner("policy-step-ok", &[(STEPS, repo)]);
    let (run, state) = r2.prepare(Some(container(&busybox)), vec![]);
    run.ok();
    let step = r2.container_step(
        Some(&state),
        &busybox,
        Some("sh"),
        &["-c", "\"echo", "ran\""],
        &[],
    );
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    assert!(step.run.stdout.contains("ran"));
    for (runner, state) in [(&r, json!({})), (&r2, state)] {
        runner.call("cleanup_job", json!({}), Some(&state)).ok();
    }
}
