//! `index.js` run exactly as the runner runs a `.js` hook (`node <path>/index.js`, one JSON line
//! on stdin) against kubesim: a step's exit code passes through, SIGINT sent to node while a
//! step runs reaches the hook (which exits 130 with its one cancellation line), and the folder
//! the launcher sits in picks the mode, as in GitHub's runner image: `k8s` is volume mode with
//! the claim `<pod>-work`, `k8s-novolume` copy mode.
#![cfg(feature = "e2e")]

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use support::spawn::{Program, ScriptStep, start};
use support::{BIN, Runner, container, testenv, volume_mode};
use testenv::Image;

/// The hook installed as in the runner image: `<root>/<folder>/{k8s-hook,index.js,index.sh}`
/// for both folders; returns the path of each `index.js`.
fn install(root: &Path) -> [PathBuf; 2] {
    ["k8s", "k8s-novolume"].map(|folder| {
        let dir = root.join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(BIN, dir.join("k8s-hook")).unwrap();
        let js = include_str!("../../index.js").replace("@BIN@", "k8s-hook");
        std::fs::write(dir.join("index.js"), js).unwrap();
        dir.join("index.js")
    })
}

fn job() -> Value {
    let mut job = container(&testenv().image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    json!({"container": job, "services": []})
}

#[test]
fn sigint_to_node_reaches_the_hook_while_a_step_runs() {
    let hooks = tempfile::tempdir().unwrap();
    let [_, novolume] = install(hooks.path());
    let node = Program::Node(novolume);
    let runner = Runner::new("jssig");
    let prepare = start(&runner, &node, "prepare_job", job(), None).finish();
    let state = prepare.ok().json()["state"].clone();

    let step = ScriptStep::start(&runner, &node, &state, "echo 'code=3'\nexit 3\n");
    let (run, _) = step.finish();
    assert_eq!((run.code, run.stdout.as_str()), (3, "code=3\n"), "{run:#?}");

    let mut step = ScriptStep::start(&runner, &node, &state, "echo started\nsleep 300\n");
    step.started.wait_for_line("started");
    step.started.signal("INT");
    let (run, _) = step.finish();
    assert_eq!(run.code, 130, "{run:#?}");
    let errors = run.errors();
    assert_eq!(
        errors,
        ["::error::The step was cancelled (SIGINT)"],
        "{run:#?}"
    );
}

#[test]
fn the_launchers_folder_picks_the_mode() {
    let hooks = tempfile::tempdir().unwrap();
    let [k8s, novolume] = install(hooks.path());
    // The claim the `k8s` folder defaults to: <runner pod>-work.
    let claim = "runner-jsfolder-work";
    let own = volume_mode("jsfolder", claim, false);
    let (runner, sim) = (&own.runner, &own.sim);

    let claims = |runner: &Runner, pod: &str| -> Vec<String> {
        let spec = runner.get_pod(pod).unwrap().spec.unwrap();
        spec.volumes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.persistent_volume_claim.map(|c| c.claim_name))
            .collect()
    };

    // `k8s`: volume mode, without any setting.
    let node = Program::Node(k8s);
    let run = start(runner, &node, "prepare_job", job(), None).finish();
    let state = run.ok().json()["state"].clone();
    assert_eq!(claims(runner, "runner-jsfolder-workflow"), [claim]);
    let step = ScriptStep::start(
        runner,
        &node,
        &state,
        "echo from-pod > made-in-pod.txt\nexit 4\n",
    );
    let (run, _) = step.finish();
    assert_eq!(run.code, 4, "{run:#?}");
    assert!(
        !run.stderr.contains("Copying"),
        "volume mode copies nothing: {}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(runner.workspace().join("made-in-pod.txt")).unwrap(),
        "from-pod\n"
    );

    // `k8s-novolume`: copy mode.
    let copy = Runner::with_tree(sim, "jsnovol", runner.ns.clone(), Runner::new_tree());
    let node = Program::Node(novolume);
    let run = start(&copy, &node, "prepare_job", job(), None).finish();
    let state = run.ok().json()["state"].clone();
    assert!(claims(&copy, "runner-jsnovol-workflow").is_empty());
    let step = ScriptStep::start(&copy, &node, &state, "echo 'v=1' >> \"$GITHUB_OUTPUT\"\n");
    let (run, files) = step.finish();
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("Copying"), "{}", run.stderr);
    assert_eq!(files[0], "v=1\n");
}
