//! Failures through the real binary: each is one clear `::error::` line, a non-zero exit, and
//! nothing left behind.
#![cfg(feature = "e2e")]

mod support;

use serde_json::{Value, json};
use support::{Runner, container, testenv};
use testenv::Image;

#[test]
fn unhealthy_service_fails_prepare_with_its_last_check_output() {
    let env = testenv();
    let runner = Runner::new("unhealthy");
    let mut job = container(&env.image(Image::Busybox));
    job["systemMountVolumes"] = runner.job_mounts();
    let mut sick = container(&env.image(Image::Unhealthy));
    // The image's own check is `false`; this one prints something to show.
    sick["createOptions"] = json!(
        "--health-cmd \"echo database is not ready; exit 1\" --health-interval 500ms --health-retries 2"
    );
    let run = runner.prepare(job, vec![sick]);
    let e = run.one_error(1);
    assert!(e.contains("service unhealthy ("), "{e}");
    assert!(e.contains("did not become healthy"), "{e}");
    assert!(e.contains("database is not ready"), "{e}");
    assert_eq!(run.response, "", "no response on failure");
    // What prepare_job created is gone already; cleanup_job (always called) copes with no state.
    assert!(runner.containers().is_empty(), "{:?}", runner.containers());
    assert!(runner.networks().is_empty(), "{:?}", runner.networks());
    runner.call("cleanup_job", json!({}), None).ok();
}

#[test]
fn a_service_that_stays_starting_is_bounded_by_its_own_settings() {
    let env = testenv();
    let mut runner = Runner::new("starting");
    // Failing checks inside the 60 s start period do not count, so the service stays
    // `starting`; the overall cap (3 s here) ends the wait.
    let mut slow = container(&env.image(Image::Busybox));
    slow["entryPoint"] = json!("sleep");
    slow["entryPointArgs"] = json!(["600"]);
    slow["createOptions"] = json!(
        "--health-cmd \"test -f /never\" --health-interval 1s --health-timeout 1s --health-retries 1 --health-start-period 60s"
    );
    runner.extra_env.push((
        "ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS".to_owned(),
        "3".to_owned(),
    ));
    let run = runner.prepare(Value::Null, vec![slow]);
    assert_eq!(run.code, 1, "{run:#?}");
    let e = run.errors().join("\n");
    assert!(e.contains("still starting after 3s"), "{e}");
    assert!(runner.containers().is_empty());
}

#[test]
fn private_registry_with_the_right_and_the_wrong_password() {
    let env = testenv();
    let runner = Runner::new("auth");
    let image = env.auth_image(Image::Busybox);
    let with = |password: &str| {
        let mut svc = container(&image);
        svc["entryPoint"] = json!("sleep");
        svc["entryPointArgs"] = json!(["600"]);
        svc["registry"] = json!({
            "username": env.auth_user, "password": password, "serverUrl": env.auth_registry
        });
        json!({"container": null, "services": [svc]})
    };

    let wrong = "wrong-password-7d1f";
    let run = runner.call("prepare_job", with(wrong), None);
    let e = run.one_error(1);
    assert!(e.contains(&format!("cannot pull {image}")), "{}", e);
    assert!(
        e.to_lowercase().contains("unauthorized") || e.to_lowercase().contains("authentication"),
        "the registry's reason: {}",
        e
    );
    // Bad credentials are not retried.
    assert!(!e.contains("attempts"), "{e}");
    for text in [&run.stdout, &run.stderr, &run.response] {
        assert!(!text.contains(wrong), "password leaked: {text}");
    }
    assert!(runner.containers().is_empty());

    let run = runner
        .call("prepare_job", with(&env.auth_password), None)
        .ok();
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains(&env.auth_password),
            "password leaked: {text}"
        );
    }
    let state = run.json()["state"].clone();
    assert_eq!(run.json()["context"]["services"][0]["ports"], json!({}));
    assert_eq!(runner.containers().len(), 1);
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert!(runner.containers().is_empty());
    assert!(runner.networks().is_empty());
}

#[test]
fn unknown_create_option_is_a_clear_error_before_anything_is_created() {
    let runner = Runner::new("badopt");
    let mut svc = container("127.0.0.1:5555/hooktest/busybox:1");
    svc["createOptions"] = json!("--cpus 1 --frobnicate 3");
    let run = runner.prepare(Value::Null, vec![svc]);
    let e = run.one_error(1);
    assert!(
        e.starts_with(
            "::error::service busybox (127.0.0.1:5555/hooktest/busybox:1): unsupported container option `--frobnicate`"
        ),
        "{}",
        e
    );
    assert!(runner.containers().is_empty());
    assert!(runner.networks().is_empty());
}

#[test]
fn an_image_that_does_not_exist_fails_fast_with_the_registrys_reason() {
    let env = testenv();
    let runner = Runner::new("noimage");
    let svc = container(&format!("{}/hooktest/does-not-exist:1", env.registry));
    let run = runner.prepare(Value::Null, vec![svc]);
    assert_eq!(run.code, 1, "{run:#?}");
    let e = run.errors().join("\n");
    assert!(e.contains("cannot pull"), "{e}");
    assert!(e.contains("not found") || e.contains("unknown"), "{e}");
    // A permanent error is not retried (no backoff, no "after N attempts").
    assert!(!e.contains("attempts"), "{e}");
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
    assert!(runner.containers().is_empty());
}

#[test]
fn script_step_without_a_job_container_is_a_hook_error() {
    let runner = Runner::new("noscript");
    let run = runner.script_step(&json!({"network": "x"}), "true", json!({}), json!([]));
    assert_eq!(run.code, 1);
    assert!(
        run.errors()[0].contains("needs a job container"),
        "{run:#?}"
    );
}

#[test]
fn an_unreachable_registry_is_retried_three_times_then_reported() {
    let runner = Runner::new("retry");
    // Nothing listens on port 1: a transient-looking network error.
    let svc = container("127.0.0.1:1/hooktest/busybox:1");
    let run = runner.prepare(Value::Null, vec![svc]);
    assert_eq!(run.code, 1, "{run:#?}");
    let e = run.errors().join("\n");
    assert!(
        e.contains("cannot pull 127.0.0.1:1/hooktest/busybox:1 (after 3 attempts)"),
        "{e}"
    );
    assert!(e.contains("connection refused"), "the engine's reason: {e}");
    assert_eq!(
        run.stderr.matches("retrying in").count(),
        2,
        "{}",
        run.stderr
    );
    assert!(runner.containers().is_empty());
    assert!(runner.networks().is_empty());
}
