//! Container steps through the real binary: the image's own ENTRYPOINT or the step's, repaired
//! args, outputs and workspace changes brought back, exit codes, the step pod deleted.
#![cfg(feature = "e2e")]

mod support;

use serde_json::json;
use support::{Runner, container, testenv};
use testenv::Image;

/// An image whose ENTRYPOINT writes an output, touches the workspace and exits with $EXIT_CODE.
/// Built locally with a per-process tag (tag `:1`, so it is never pulled) and removed by `Drop`.
struct ActionImage(String);

impl ActionImage {
    fn build() -> Self {
        testenv();
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("k8shooktest/action-{}-{n}:1", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("entrypoint.sh"),
            "#!/bin/sh\n\
             echo \"entrypoint got: $*\"\n\
             echo \"who=$INPUT_WHO\" >> \"$GITHUB_OUTPUT\"\n\
             echo \"ACTION_ENV=1\" >> \"$GITHUB_ENV\"\n\
             echo from-action > /github/workspace/made-by-action\n\
             cat /github/workspace/README.md\n\
             test -f /github/workflow/event.json && echo event-ok\n\
             echo \"cwd=$(pwd)\"\n\
             exit \"${EXIT_CODE:-0}\"\n",
        )
        .unwrap();
        std::fs::set_permissions(
            dir.path().join("entrypoint.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM {}\nLABEL k8shooktest.pid={}\nCOPY entrypoint.sh /entrypoint.sh\nENTRYPOINT [\"/entrypoint.sh\"]\n",
                testenv::local_tag(Image::Busybox),
                std::process::id()
            ),
        )
        .unwrap();
        let out = std::process::Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(dir.path())
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(tag)
    }
}

impl Drop for ActionImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &self.0])
            .output();
    }
}

#[test]
fn container_steps_with_a_job_container() {
    let image = ActionImage::build();
    let runner = Runner::new("cstep");
    let mut job = container(&testenv().image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    let (run, state) = runner.prepare(Some(job), vec![]);
    run.ok();

    // The image's own ENTRYPOINT with the runner's split args, repaired.
    let step = runner.container_step(
        Some(&state),
        &image.0,
        None,
        &["\"Hello", "world\"", "--flag"],
        &[("INPUT_WHO", "octo")],
    );
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    assert!(
        step.run
            .stdout
            .contains("entrypoint got: Hello world --flag"),
        "{:#?}",
        step.run
    );
    assert!(
        step.run.stdout.contains("# repo"),
        "the workspace came in: {:#?}",
        step.run
    );
    assert!(step.run.stdout.contains("event-ok"));
    assert!(step.run.stdout.contains("cwd=/github/workspace"));
    assert_eq!(step.output, "who=octo\n");
    assert_eq!(step.env, "ACTION_ENV=1\n");
    // The action's workspace change is visible to the next script step in the job pod.
    let next = runner.script(&state, "cat made-by-action\n", &[]);
    assert_eq!(next.run.stdout, "from-action\n", "{:#?}", next.run);

    // An exit code of the action is the step's.
    let failing = runner.container_step(Some(&state), &image.0, None, &[], &[("EXIT_CODE", "3")]);
    assert_eq!(failing.run.code, 3, "{:#?}", failing.run);
    assert!(failing.run.errors().is_empty());

    // The step's entrypoint replaces the image's.
    let custom = runner.container_step(
        Some(&state),
        &image.0,
        Some("sh"),
        &["-c", "\"echo", "via", "sh", "$INPUT_WHO;", "exit", "4\""],
        &[("INPUT_WHO", "me")],
    );
    assert_eq!(custom.run.code, 4, "{:#?}", custom.run);
    assert_eq!(custom.run.stdout.trim(), "via sh me");

    // No step pod is left behind.
    let (pods, _) = runner.labelled();
    assert_eq!(pods, vec!["runner-cstep-workflow".to_owned()]);
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert_eq!(runner.labelled(), (vec![], vec![]));
}

#[test]
fn container_step_without_a_job_container_uses_the_runners_workspace() {
    let image = ActionImage::build();
    let runner = Runner::new("nojob");
    let step = runner.container_step(None, &image.0, None, &["x"], &[("INPUT_WHO", "solo")]);
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    assert_eq!(step.output, "who=solo\n");
    assert_eq!(
        std::fs::read_to_string(runner.workspace().join("made-by-action")).unwrap(),
        "from-action\n"
    );
    assert_eq!(runner.labelled(), (vec![], vec![]));
}

#[test]
fn the_administrators_copy_back_caps_hold_for_container_steps() {
    let mut runner = Runner::new("capped");
    runner.extra_env.push((
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_WORKSPACE_COPY_BACK_MAX_ENTRIES".into(),
        "20".into(),
    ));
    // 30 new files in the workspace: over the administrator's 20 entries (the default is
    // 1 000 000), so the copy back is refused and the step fails with one line saying why.
    let args =
        sh_args("mkdir many && i=0 && while [ $i -lt 30 ]; do i=$((i+1)); touch many/f$i; done");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let image = testenv().image(Image::Busybox);
    let step = runner.container_step(None, &image, Some("sh"), &args, &[]);
    let error = step.run.one_error(1);
    assert!(
        error.contains("more than 20 entries")
            && error.contains("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_WORKSPACE_COPY_BACK_MAX_ENTRIES"),
        "{error}"
    );
    assert_eq!(runner.labelled().0, Vec::<String>::new());
}

/// `sh -c "<script>"` as the runner sends it (split on spaces; no double quotes in `script`).
fn sh_args(script: &str) -> Vec<String> {
    format!("-c \"{script}\"")
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// Runs `script` as a container step (busybox, no job container) and `act` on its pod while
/// the action runs.
fn during_step(runner: &Runner, script: &str, act: impl FnOnce(&str)) -> support::StepRun {
    let image = testenv().image(Image::Busybox);
    let args = sh_args(script);
    std::thread::scope(|s| {
        let step = s.spawn(|| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            runner.container_step(None, &image, Some("sh"), &args, &[])
        });
        let pod = runner.running_step_pod();
        act(&pod);
        step.join().unwrap()
    })
}

#[test]
fn a_broken_log_stream_is_resumed_without_losing_or_doubling_a_line() {
    let runner = Runner::new("cstep-resume");
    // Two log streams of this namespace's step pods are cut after 40 kB (the output is
    // ~125 kB, timestamps included, over several seconds).
    support::sim()
        .faults()
        .add_log_drop(kubesim::log_faults::LogDrop {
            namespace: Some(runner.ns.clone()),
            pod: Some("*-step-*".into()),
            after_bytes: 40_000,
            count: Some(2),
        });
    // And the first opening of a log stream gets a 500 twice (retried).
    support::sim()
        .faults()
        .add_request_error(kubesim::faults::RequestFault {
            namespace: Some(runner.ns.clone()),
            verb: "get".into(),
            resource: "pods".into(),
            subresource: Some("log".into()),
            code: 500,
            count: 2,
            retry_after_seconds: None,
        });
    let step = runner.container_step(
        None,
        &testenv().image(Image::Busybox),
        Some("sh"),
        &sh_args(
            "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo line-$i; \
             case $i in *0) sleep 0.01;; esac; done; exit 5",
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
        &[],
    );
    assert_eq!(
        step.run.code, 5,
        "the exit code is the action's: {:#?}",
        step.run.stderr
    );
    let expected: String = (1..=3000).map(|i| format!("line-{i}\n")).collect();
    assert!(
        step.run.stdout == expected,
        "every line once, in order; got {} lines, first difference at line {:?}",
        step.run.stdout.lines().count(),
        step.run
            .stdout
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
    );
    let left: Vec<_> = support::sim()
        .faults()
        .get()
        .log_drops
        .into_iter()
        .filter(|d| d.namespace.as_deref() == Some(runner.ns.as_str()))
        .collect();
    assert!(left.is_empty(), "both cuts happened: {left:?}");
    let errors_left = support::sim()
        .faults()
        .get()
        .request_errors
        .into_iter()
        .filter(|d| d.namespace.as_deref() == Some(runner.ns.as_str()))
        .count();
    assert_eq!(errors_left, 0, "the 500s were answered");
}

#[test]
fn an_oom_killed_action_is_exit_137_with_the_reason() {
    let runner = Runner::new("cstep-oom");
    let step = during_step(&runner, "echo started; sleep 60", |pod| {
        support::rt()
            .block_on(support::sim().kill_container(
                &runner.ns,
                pod,
                Some("job"),
                kubesim::faults::KillMode::OOMKilled,
            ))
            .unwrap();
    });
    let error = step.run.one_error(137);
    assert!(error.contains("OOMKilled"), "{error}");
    assert_eq!(step.run.stdout, "started\n");
    assert_eq!(runner.labelled(), (vec![], vec![]));
}

#[test]
fn an_evicted_step_pod_is_an_error_never_a_success() {
    let runner = Runner::new("cstep-evict");
    let step = during_step(&runner, "sleep 60", |pod| {
        support::rt()
            .block_on(support::sim().kill_container(
                &runner.ns,
                pod,
                None,
                kubesim::faults::KillMode::Evicted,
            ))
            .unwrap();
    });
    let error = step.run.one_error(1);
    assert!(error.to_lowercase().contains("evicted"), "{error}");
    assert!(error.contains("low on resource"), "{error}");
}

#[test]
fn a_step_pod_deleted_by_someone_else_is_an_error_at_once() {
    let runner = Runner::new("cstep-deleted");
    // `sh` as PID 1 ignores SIGTERM: the action would only end after the 30 s grace period.
    let step = during_step(&runner, "sleep 60", |pod| {
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(runner.client.clone(), &runner.ns);
        support::rt()
            .block_on(api.delete(pod, &kube::api::DeleteParams::default()))
            .unwrap();
    });
    let error = step.run.one_error(1);
    assert!(error.contains("being deleted"), "{error}");
}
