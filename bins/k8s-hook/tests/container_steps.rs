//! Container steps through the real binary: the image's own ENTRYPOINT or the step's, repaired
//! args, outputs and workspace changes brought back, exit codes, the step pod deleted.

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
fn an_image_that_cannot_be_pulled_fails_the_step_with_the_reason() {
    let runner = Runner::new("cstep-bad");
    let step = runner.container_step(
        None,
        "127.0.0.1:5555/hooktest/does-not-exist:1",
        None,
        &[],
        &[],
    );
    assert_eq!(step.run.code, 1, "{:#?}", step.run);
    let errors = step.run.errors();
    assert_eq!(errors.len(), 1, "{:#?}", step.run);
    assert!(
        errors[0].contains("cannot start: ErrImagePull"),
        "{}",
        errors[0]
    );
    assert_eq!(runner.labelled(), (vec![], vec![]));
}
