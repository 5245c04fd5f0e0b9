//! Cancelling a container step: the runner signals the hook (SIGINT); the hook deletes the
//! step pod with a short grace period and exits 130 with one `::error::` line.
#![cfg(feature = "e2e")]

mod support;

use serde_json::json;
use support::spawn::{Program, start};
use support::{Runner, container, testenv};
use testenv::Image;

#[test]
fn sigint_deletes_the_step_pod_and_exits_130() {
    let runner = Runner::new("cancel-cstep");
    let mut spec = container(&testenv().image(Image::Busybox));
    spec["entryPoint"] = json!("sh");
    // As the runner splits `args: -c "sleep 40 && echo late"`.
    spec["entryPointArgs"] = json!(["-c", "\"sleep", "40", "&&", "echo", "late\""]);
    spec["workingDirectory"] = json!("/github/workspace");
    spec["environmentVariables"] = json!({"GITHUB_WORKSPACE": "/github/workspace"});
    let mut child = start(&runner, &Program::Binary, "run_container_step", spec, None);

    // Once the action runs, the runner cancels the step.
    let pod = runner.running_step_pod();
    child.signal("INT");
    let run = child.finish();
    assert_eq!(run.code, 130, "{run:#?}");
    assert_eq!(
        run.errors(),
        ["::error::The step was cancelled (SIGINT)"],
        "{run:#?}"
    );
    assert!(!run.stdout.contains("late"), "{run:#?}");
    // The hook waited for the pod to go (a bounded wait: the pod is gone, or going).
    let pod_left = runner.get_pod(&pod);
    assert!(
        pod_left
            .as_ref()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
        "the step pod was deleted: {pod_left:?}"
    );
    for _ in 0..300 {
        if runner.get_pod(&pod).is_none() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the step pod {pod} is still there 30 s after the cancellation");
}
