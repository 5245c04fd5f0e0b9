//! The 2026 runner's additions, through the real binary: background steps (several
//! `run_script_step` calls at once against one job), container actions that always see the
//! runner's `_temp` at `/github/runner_temp`, and cost labels on every container.
#![cfg(feature = "e2e")]

mod support;

use serde_json::{Value, json};
use support::{Runner, container, inspect, runner_split, testenv};
use testenv::Image;

#[test]
fn background_steps_keep_their_own_output_file_commands_and_exit_codes() {
    const STEPS: usize = 5;
    const LINES: usize = 300;
    let runner = Runner::new("background");
    let state = runner.prepare_busybox()["state"].clone();
    let args: Vec<Value> = (0..STEPS)
        .map(|i| {
            runner.script_args(
                &format!(
                    "n=0\nwhile [ $n -lt {LINES} ]; do echo \"step-$ME line-$n\"; echo \"err-$ME-$n\" >&2; n=$((n+1)); done\n\
                     echo \"result=$ME\" >> \"$GITHUB_OUTPUT\"\necho \"ENV_$ME=yes\" >> \"$GITHUB_ENV\"\nexit $((ME + 3))\n"
                ),
                json!({
                    "ME": i.to_string(),
                    "GITHUB_OUTPUT": format!("/__w/_temp/_runner_file_commands/set_output_{i}"),
                    "GITHUB_ENV": format!("/__w/_temp/_runner_file_commands/set_env_{i}"),
                }),
                json!([]),
            )
        })
        .collect();
    // All five hooks run at once against the same job container.
    let runs: Vec<support::Run> = std::thread::scope(|s| {
        let handles: Vec<_> = args
            .iter()
            .map(|a| s.spawn(|| runner.call("run_script_step", a.clone(), Some(&state))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run.code, i as i32 + 3, "step {i}: {run:#?}");
        assert!(
            run.errors().is_empty(),
            "a failed step is not a hook failure"
        );
        let want: String = (0..LINES).map(|n| format!("step-{i} line-{n}\n")).collect();
        assert_eq!(
            run.stdout, want,
            "step {i}'s stdout is exactly its own, in order"
        );
        let errs: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("err-"))
            .collect();
        assert_eq!(errs.len(), LINES, "step {i}");
        assert!(errs.iter().all(|l| l.starts_with(&format!("err-{i}-"))));
        let files = runner.temp().join("_runner_file_commands");
        assert_eq!(
            std::fs::read_to_string(files.join(format!("set_output_{i}"))).unwrap(),
            format!("result={i}\n")
        );
        assert_eq!(
            std::fs::read_to_string(files.join(format!("set_env_{i}"))).unwrap(),
            format!("ENV_{i}=yes\n")
        );
    }
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    runner.assert_nothing_left();
}

#[test]
fn container_actions_always_get_the_runners_temp() {
    let runner = Runner::new("runnertemp");
    std::fs::write(runner.temp().join("probe.txt"), "from-runner-temp").unwrap();
    let mut step = container(&testenv().image(Image::Busybox));
    step["entryPoint"] = json!("sh");
    step["entryPointArgs"] = json!(runner_split(
        "-c \"cat /github/runner_temp/probe.txt; echo written > /github/runner_temp/back.txt\""
    ));
    // A runner that does not send the `_temp` mount: the hook adds it from RUNNER_TEMP.
    let mounts: Vec<Value> = runner
        .step_mounts()
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["targetVolumePath"] != "/github/runner_temp")
        .cloned()
        .collect();
    step["systemMountVolumes"] = json!(mounts);
    let run = runner.call("run_container_step", step, None).ok();
    assert_eq!(run.stdout, "from-runner-temp");
    assert_eq!(
        std::fs::read_to_string(runner.temp().join("back.txt")).unwrap(),
        "written\n"
    );
    runner.assert_nothing_left();
}

#[test]
fn containers_carry_cost_labels_unless_turned_off() {
    let env = testenv();
    let github = [
        ("GITHUB_REPOSITORY", "octo-org/shop"),
        ("GITHUB_WORKFLOW", "CI / build (linux)"),
        ("GITHUB_JOB", "test"),
        ("GITHUB_RUN_ID", "123456789"),
        ("GITHUB_RUN_NUMBER", "42"),
        ("GITHUB_RUN_ATTEMPT", "2"),
        ("GITHUB_ACTOR", "dependabot[bot]"),
        ("GITHUB_EVENT_NAME", "pull_request"),
    ];
    let mut runner = Runner::new("cost");
    runner.extra_env = github
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut job = container(&env.image(Image::Busybox));
    job["systemMountVolumes"] = runner.job_mounts();
    let mut svc = container(&env.image(Image::Healthy));
    svc["createOptions"] = json!("--label arc-context-repository=spoofed");
    let prep = runner
        .call(
            "prepare_job",
            json!({"container": job, "services": [svc]}),
            None,
        )
        .ok();
    let state = prep.json()["state"].clone();
    let label =
        |id: &str, key: &str| inspect(id, &format!("{{{{index .Config.Labels \"{key}\"}}}}"));
    let ids = [
        state["container"].as_str().unwrap().to_owned(),
        state["services"][0].as_str().unwrap().to_owned(),
    ];
    for id in &ids {
        for (key, want) in [
            ("arc-context-repository", "octo-org_shop"),
            ("arc-context-workflow", "CI_build_linux"),
            ("arc-context-job", "test"),
            ("arc-context-run-id", "123456789"),
            ("arc-context-run-number", "42"),
            ("arc-context-run-attempt", "2"),
            ("arc-context-actor", "dependabot_bot"),
            ("arc-context-event-name", "pull_request"),
        ] {
            assert_eq!(label(id, key), want, "{key} on {id}");
        }
    }
    // A step container carries them too (it reads its own labels through the engine's
    // record of it: the step prints nothing, the test inspects it while it runs).
    let mut step = container(&env.image(Image::Busybox));
    step["entryPoint"] = json!("sh");
    step["entryPointArgs"] = json!(runner_split(
        "-c \"while [ ! -f /github/workspace/go ]; do sleep 0.1; done\""
    ));
    step["systemMountVolumes"] = runner.step_mounts();
    let started = runner.start("run_container_step", step, Some(&state));
    let mut step_id = String::new();
    support::wait_until(
        "the step container exists",
        std::time::Duration::from_secs(60),
        || {
            step_id = runner
                .containers()
                .into_iter()
                .find(|c| !ids.contains(c))
                .unwrap_or_default();
            !step_id.is_empty()
        },
    );
    assert_eq!(label(&step_id, "arc-context-run-id"), "123456789");
    std::fs::write(runner.workspace().join("go"), "").unwrap();
    started.finish().ok();
    // Cleanup selects by the runner label only.
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    runner.assert_nothing_left();

    runner.extra_env.push((
        "ACTIONS_RUNNER_CONTAINER_HOOKS_COST_LABELS".to_owned(),
        "false".to_owned(),
    ));
    let off = runner.prepare_busybox();
    let id = off["state"]["container"].as_str().unwrap().to_owned();
    let labels = inspect(&id, "{{json .Config.Labels}}");
    assert!(!labels.contains("arc-context-"), "{labels}");
    runner
        .call("cleanup_job", json!({}), Some(&off["state"]))
        .ok();
    runner.assert_nothing_left();
}
