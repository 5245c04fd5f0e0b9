//! Dockerfile actions through the real binary on kubesim, whose kubelet performs the Kaniko
//! (or BuildKit) builder pod for real: it builds with the Docker Engine from the context it
//! received over attach and the arguments it was given, and pushes to the password-protected
//! test registry with the credentials mounted from the secret. Push host `127.0.0.1:5556`,
//! pull host `localhost:5556`: two addresses of one registry.
#![cfg(feature = "e2e")]

mod support;
mod support_kaniko;

use serde_json::json;
use support::{Runner, testenv};
use support_kaniko::{
    Action, PulledImages, announced_image, builder_pods, configure, create_secret,
    create_secret_for, dockerfile_step, manifest, pull_host, push_host, step_image,
};

/// A Dockerfile step; the image its pod pulled is removed at the end of the test.
fn step(
    pulled: &PulledImages,
    runner: &Runner,
    state: Option<&serde_json::Value>,
    action: &Action,
    args: &[&str],
    env: &[(&str, &str)],
) -> support::StepRun {
    let s = dockerfile_step(runner, state, action, args, env);
    pulled.note(&s.run);
    s
}

fn runner(test: &str) -> Runner {
    let mut r = Runner::new(test);
    configure(&mut r);
    create_secret(&r, &testenv().auth_password);
    r
}

fn no_password(run: &support::Run) {
    let pw = &testenv().auth_password;
    assert!(
        !run.stdout.contains(pw.as_str()) && !run.stderr.contains(pw.as_str()),
        "the registry password was printed: {run:#?}"
    );
}

#[test]
fn builds_pushes_runs_then_skips_and_rebuilds_when_changed() {
    let pulled = PulledImages::default();
    let runner = runner("kaniko");
    let action = Action::write(&runner, "Acme", "Hello.Action", "v1", "hello");

    // First run: built by the (emulated) Kaniko pod, pushed, pulled by digest, run.
    let first = step(
        &pulled,
        &runner,
        None,
        &action,
        &["\"big", "world\""],
        &[("INPUT_WHO", "octo")],
    );
    assert_eq!(first.run.code, 0, "{:#?}", first.run);
    assert!(
        first.run.stdout.contains("hello: big world"),
        "{:#?}",
        first.run
    );
    assert_eq!(first.output, "who=octo\n");
    // .dockerignore was honoured, the nonce and the Dockerfile were sent.
    let context_line = first
        .run
        .stdout
        .lines()
        .find(|l| l.starts_with("context:"))
        .unwrap();
    assert!(
        context_line.contains("nonce") && context_line.contains("Dockerfile"),
        "{context_line}"
    );
    assert!(
        !context_line.contains("ignored-secret.txt"),
        "{context_line}"
    );
    // Kaniko's own log is in the step log, with the destination on the push host.
    let image = announced_image(&first.run);
    assert!(
        image.starts_with(&format!("{}/acme-hello-action:", push_host())),
        "{image}"
    );
    assert!(
        first
            .run
            .stderr
            .contains("Using dockerfile: /kaniko/buildcontext/Dockerfile"),
        "{:#?}",
        first.run
    );
    // Kaniko built without pushing; the pusher pushed the tarball.
    assert!(
        first
            .run
            .stderr
            .contains("Skipping push to container registry due to --no-push flag"),
        "{:#?}",
        first.run
    );
    assert!(
        first.run.stderr.contains(&format!("pushed {image}")),
        "{:#?}",
        first.run
    );
    // The image is in the registry under that name and tag; the step ran it by digest from
    // the pull host.
    let (status, digest) = manifest(&image);
    assert_eq!(status, 200, "{image} is not in the registry");
    let digest = digest.unwrap();
    assert_eq!(
        step_image(&first.run),
        format!("{}/acme-hello-action@{digest}", pull_host())
    );
    assert!(
        builder_pods(&runner).is_empty(),
        "builder pod deleted after success"
    );
    no_password(&first.run);

    // Second run of the unchanged action: no build.
    let second = step(
        &pulled,
        &runner,
        None,
        &action,
        &["again"],
        &[("EXIT_CODE", "3")],
    );
    assert_eq!(
        second.run.code, 3,
        "the action's exit code is the step's: {:#?}",
        second.run
    );
    assert!(second.run.errors().is_empty(), "{:#?}", second.run);
    assert!(second.run.stdout.contains("hello: again"));
    assert!(
        second.run.stderr.contains("skipping the build"),
        "{:#?}",
        second.run
    );
    assert!(
        !second.run.stderr.contains("Building "),
        "{:#?}",
        second.run
    );
    assert_eq!(announced_image(&second.run), image);
    no_password(&second.run);

    // A changed action gets a new tag and is rebuilt.
    action.set_entrypoint("bonjour");
    let third = step(&pulled, &runner, None, &action, &["monde"], &[]);
    assert_eq!(third.run.code, 0, "{:#?}", third.run);
    assert!(
        third.run.stdout.contains("bonjour: monde"),
        "{:#?}",
        third.run
    );
    let rebuilt = announced_image(&third.run);
    assert_ne!(rebuilt, image);
    assert!(
        third
            .run
            .stderr
            .contains(&format!("Building {rebuilt} with Kaniko")),
        "{:#?}",
        third.run
    );
    assert_eq!(manifest(&rebuilt).0, 200);
    no_password(&third.run);
    if std::env::var_os("KANIKO_TEST_SHOW").is_some() {
        eprintln!(
            "{}\n----\n{}\n----\n{}",
            first.run.stderr, second.run.stderr, third.run.stdout
        );
    }
}

#[test]
fn two_dockerfile_actions_in_one_job_then_cleanup() {
    let pulled = PulledImages::default();
    let runner = runner("kaniko-two");
    let mut job = support::container(&testenv().image(testenv::Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    let (run, state) = runner.prepare(Some(job), vec![]);
    run.ok();
    let a = Action::write(&runner, "acme", "first", "v1", "one");
    let b = Action::write(&runner, "acme", "second", "main", "two");
    let ra = step(
        &pulled,
        &runner,
        Some(&state),
        &a,
        &[],
        &[("INPUT_WHO", "a")],
    );
    let rb = step(
        &pulled,
        &runner,
        Some(&state),
        &b,
        &[],
        &[("INPUT_WHO", "b")],
    );
    assert_eq!(
        (ra.run.code, rb.run.code),
        (0, 0),
        "{:#?}\n{:#?}",
        ra.run,
        rb.run
    );
    assert!(ra.run.stdout.contains("one:") && rb.run.stdout.contains("two:"));
    assert_eq!(
        (ra.output.as_str(), rb.output.as_str()),
        ("who=a\n", "who=b\n")
    );
    assert_ne!(announced_image(&ra.run), announced_image(&rb.run));
    // Each build had its own pod.
    let pod_of = |r: &support::Run| {
        r.stderr
            .lines()
            .find_map(|l| l.split(" in pod ").nth(1).map(str::to_owned))
            .unwrap()
    };
    let (pa, pb) = (pod_of(&ra.run), pod_of(&rb.run));
    assert_ne!(pa, pb);
    assert!(pa.starts_with("runner-kaniko-two-kaniko-"), "{pa}");
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert_eq!(runner.labelled(), (vec![], vec![]));
}

#[test]
fn a_broken_dockerfile_fails_with_the_builders_log_and_cleanup_removes_the_pod() {
    let pulled = PulledImages::default();
    let runner = runner("kaniko-broken");
    let (run, state) = runner.prepare(
        Some(support::container(
            &testenv().image(testenv::Image::Busybox),
        )),
        vec![],
    );
    run.ok();
    let action = Action::write(&runner, "acme", "broken", "v1", "never");
    let df = action.dockerfile();
    let text = std::fs::read_to_string(&df).unwrap();
    std::fs::write(
        &df,
        text.replace(
            "COPY . /ctx",
            "COPY . /ctx\nRUN echo about-to-fail && exit 7",
        ),
    )
    .unwrap();
    let step = step(&pulled, &runner, Some(&state), &action, &[], &[]);
    let error = step.run.one_error(1);
    assert!(
        error.contains("the Kaniko build of") && error.contains("exited with code 1 (Error)"),
        "{error}"
    );
    assert!(error.contains("kept for inspection"), "{error}");
    // The builder's log is in the step log.
    assert!(step.run.stderr.contains("about-to-fail"), "{:#?}", step.run);
    assert!(
        step.run.stderr.contains("returned a non-zero code: 7"),
        "{:#?}",
        step.run
    );
    assert!(
        step.run.stderr.contains("cleanup_job deletes it"),
        "{:#?}",
        step.run
    );
    let kept = builder_pods(&runner);
    assert_eq!(kept.len(), 1, "the failed builder pod is kept");
    // As the API server has it: owned by the job pod, labelled, unprivileged,
    // the secret projected as Kaniko's config.json.
    let pod = runner.get_pod(&kept[0]).unwrap();
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Pod", "runner-kaniko-broken-workflow")
    );
    assert_eq!(
        pod.metadata.labels.as_ref().unwrap()["container-hooks/role"],
        "builder"
    );
    let spec = pod.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let kaniko = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        kaniko.security_context.as_ref().unwrap().privileged,
        Some(false)
    );
    assert!(
        kaniko
            .args
            .as_ref()
            .unwrap()
            .contains(&"--context=tar://stdin".to_owned())
    );
    // The push secret is a volume of the pusher's, not of Kaniko's.
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.secret.is_some())
        .unwrap();
    assert_eq!(
        volume.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("regcred")
    );
    assert!(
        kaniko
            .volume_mounts
            .iter()
            .flatten()
            .all(|m| m.name != volume.name)
    );
    assert!(
        spec.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == volume.name)
    );
    no_password(&step.run);
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert!(builder_pods(&runner).is_empty());
}

#[test]
fn wrong_credentials_fail_clearly_without_printing_them() {
    let pulled = PulledImages::default();
    let mut runner = Runner::new("kaniko-badpw");
    configure(&mut runner);
    create_secret(&runner, "definitely-wrong-pw");
    let action = Action::write(&runner, "acme", "badpw", "v1", "x");
    let step = step(&pulled, &runner, None, &action, &[], &[]);
    let error = step.run.one_error(1);
    assert!(
        error.contains("refused access") && error.contains("hookuser"),
        "{error}"
    );
    assert!(
        !step.run.stderr.contains("definitely-wrong-pw")
            && !step.run.stdout.contains("definitely-wrong-pw")
    );
    assert!(
        builder_pods(&runner).is_empty(),
        "nothing built with bad credentials"
    );
}

#[test]
fn without_registry_configuration_the_error_says_what_to_set() {
    let pulled = PulledImages::default();
    let runner = Runner::new("kaniko-unset");
    let action = Action::write(&runner, "acme", "unset", "v1", "x");
    let step = step(&pulled, &runner, None, &action, &[], &[]);
    let error = step.run.one_error(1);
    for needle in [
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST",
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_SECRET_NAME",
        "Dockerfile action",
    ] {
        assert!(error.contains(needle), "{error}");
    }
    assert!(runner.labelled().0.is_empty());
}

#[test]
fn builder_arguments_are_really_checked() {
    let pulled = PulledImages::default();
    let mut runner = runner("kaniko-args");
    runner.extra_env.push((
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_EXTRA_ARGS".into(),
        "--no-such-flag".into(),
    ));
    let action = Action::write(&runner, "acme", "args", "v1", "x");
    let step = step(&pulled, &runner, None, &action, &[], &[]);
    assert_eq!(step.run.code, 1, "{:#?}", step.run);
    let errors = step.run.errors();
    assert!(
        errors[0].contains("unknown flag: --no-such-flag"),
        "{:#?}",
        step.run
    );
}

#[test]
fn buildkit_rootless_builds_and_runs() {
    let pulled = PulledImages::default();
    let mut runner = runner("buildkit");
    runner.extra_env.push((
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER".into(),
        "buildkit".into(),
    ));
    let action = Action::write(&runner, "acme", "bk", "v1", "from-buildkit");
    let step = step(
        &pulled,
        &runner,
        None,
        &action,
        &["hi"],
        &[("INPUT_WHO", "bk")],
    );
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    assert!(
        step.run.stdout.contains("from-buildkit: hi"),
        "{:#?}",
        step.run
    );
    assert_eq!(step.output, "who=bk\n");
    let image = announced_image(&step.run);
    assert!(
        step.run
            .stderr
            .contains(&format!("Building {image} with BuildKit")),
        "{:#?}",
        step.run
    );
    let (status, digest) = manifest(&image);
    assert_eq!(status, 200);
    assert!(step_image(&step.run).ends_with(&digest.unwrap()));
    assert!(builder_pods(&runner).is_empty());
    no_password(&step.run);
}

#[test]
fn the_step_pod_pulls_with_the_secrets_entry_for_the_pull_host() {
    let pulled = PulledImages::default();
    let mut runner = Runner::new("kaniko-pullcreds");
    configure(&mut runner);
    // Credentials for the push address only: the build and push work, the kubelet's pull
    // from the other address has none and is refused by the registry.
    create_secret_for(
        &runner,
        &testenv().auth_password,
        &[&testenv().auth_registry],
    );
    let action = Action::write(&runner, "acme", "pullcreds", "v1", "x");
    let s = step(&pulled, &runner, None, &action, &[], &[]);
    assert_eq!(s.run.code, 1, "{:#?}", s.run);
    let errors = s.run.errors();
    assert!(
        errors[0].contains("cannot start: ErrImagePull"),
        "{:#?}",
        s.run
    );
    assert!(errors[0].contains(&pull_host()), "{}", errors[0]);
    assert!(s.run.stderr.contains("built and pushed"), "{:#?}", s.run);
}

#[test]
fn a_build_over_the_timeout_fails_and_keeps_the_pod_until_cleanup() {
    let pulled = PulledImages::default();
    let mut runner = runner("kaniko-timeout");
    runner.extra_env.push((
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILD_TIMEOUT_SECONDS".into(),
        "2".into(),
    ));
    let action = Action::write(&runner, "acme", "slow", "v1", "x");
    let df = action.dockerfile();
    let text = std::fs::read_to_string(&df).unwrap();
    std::fs::write(
        &df,
        text.replace("COPY . /ctx", "COPY . /ctx\nRUN sleep 60"),
    )
    .unwrap();
    let s = step(&pulled, &runner, None, &action, &[], &[]);
    assert_eq!(s.run.code, 1, "{:#?}", s.run);
    let errors = s.run.errors();
    assert!(
        errors[0].contains("did not finish within 2s")
            && errors[0].contains("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILD_TIMEOUT_SECONDS"),
        "{:#?}",
        s.run
    );
    let kept = builder_pods(&runner);
    assert_eq!(kept.len(), 1, "kept for inspection");
    // No job pod: the runner pod owns it.
    let pod = runner.get_pod(&kept[0]).unwrap();
    assert_eq!(pod.metadata.owner_references.unwrap()[0].name, runner.name);
    runner.call("cleanup_job", json!({}), None).ok();
    assert!(builder_pods(&runner).is_empty());
}
