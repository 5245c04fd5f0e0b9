//! Cancelling a container step: the runner signals the hook (SIGINT); the hook deletes the
//! step pod with a short grace period and exits 130 with one `::error::` line.

mod support;

use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};
use support::{BIN, Runner, container, testenv};
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
    let response = runner.temp().join("_runner_hook_responses/cancel.json");
    std::fs::write(&response, "").unwrap();
    let line = json!({
        "command": "run_container_step", "responseFile": response, "args": spec, "state": null,
    });
    let mut cmd = Command::new(BIN);
    cmd.current_dir(runner.workspace())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in runner.env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();

    // Once the action runs, the runner cancels the step.
    let pod = 'found: {
        for _ in 0..600 {
            for p in runner.pods() {
                let name = p.metadata.name.clone().unwrap_or_default();
                let running = p
                    .status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
                    .any(|c| {
                        c.name == "job" && c.state.as_ref().is_some_and(|s| s.running.is_some())
                    });
                if name.contains("-step-") && running {
                    break 'found name;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("the step pod never ran");
    };
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("::error::"))
        .collect();
    assert_eq!(
        errors,
        ["::error::The step was cancelled (SIGINT)"],
        "{stderr}"
    );
    assert!(!stdout.contains("late"), "{stdout}");
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
