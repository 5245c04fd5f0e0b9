//! Script steps survive dropped exec streams, through the real binary on kubesim: kubesim cuts
//! the step's follower stream again and again (after N bytes, after N ms) and the job log still
//! has every line exactly once, in order, with the step's own exit code; a pod deleted under a
//! step is a clear error, never a success; a job container OOM-killed or evicted under a step
//! ends it with 137 and a reason.
#![cfg(feature = "e2e")]

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kubesim::faults::{KillMode, StreamDrop};
use serde_json::{Value, json};
use support::{Run, Runner, container, rt, sim, testenv, wait_until};
use testenv::Image;

fn job(runner: &Runner) -> Value {
    let mut job = container(&testenv().image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    let (run, state) = runner.prepare(Some(job), vec![]);
    run.ok();
    state
}

/// Cuts the step followers' streams of this runner's namespace, `count` times.
fn drop_followers(
    runner: &Runner,
    after_bytes: Option<u64>,
    after_millis: Option<u64>,
    count: u32,
) {
    sim().faults().add_stream_drop(StreamDrop {
        namespace: Some(runner.ns.clone()),
        after_bytes,
        after_millis,
        count: Some(count),
        command: Some("*k8s-hook-step-follow*".into()),
    });
}

/// The drops of this namespace not used yet.
fn drops_left(runner: &Runner) -> u32 {
    sim()
        .faults()
        .get()
        .stream_drops
        .iter()
        .filter(|d| d.namespace.as_deref() == Some(runner.ns.as_str()))
        .map(|d| d.count.unwrap_or(u32::MAX))
        .sum()
}

fn resumes(run: &Run) -> usize {
    run.stderr
        .lines()
        .filter(|l| l.contains("the step's output stream broke") && l.contains("resuming at byte"))
        .count()
}

#[test]
fn many_drops_lose_no_line_and_repeat_none() {
    let runner = Runner::new("resume-lines");
    let state = job(&runner);
    // ~2.3 MB of stdout: cut six times, every 300 kB of a stream.
    drop_followers(&runner, Some(300_000), None, 6);
    let step = runner.script(
        &state,
        "i=0\nwhile [ $i -lt 200000 ]; do\n  echo \"line $i\"\n  \
         case $i in *0000) echo \"err $i\" >&2;; esac\n  i=$((i+1))\ndone\nexit 5\n",
        &[],
    );
    let run = &step.run;
    assert_eq!(run.code, 5, "the step's own exit code: {}", run.stderr);
    assert!(run.errors().is_empty(), "{}", run.stderr);
    let mut want = String::with_capacity(2_400_000);
    for i in 0..200_000 {
        want.push_str(&format!("line {i}\n"));
    }
    // Compared line by line first, so a failure names the first wrong line.
    for (n, (got, exp)) in run.stdout.lines().zip(want.lines()).enumerate() {
        assert_eq!(got, exp, "line {n}");
    }
    assert!(
        run.stdout == want,
        "stdout: {} bytes, want {}",
        run.stdout.len(),
        want.len()
    );
    let errs: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("err "))
        .collect();
    let want_errs: Vec<String> = (1..20).map(|k| format!("err {}", k * 10_000)).collect();
    assert_eq!(errs, want_errs);
    assert_eq!(drops_left(&runner), 0, "every drop happened");
    assert_eq!(resumes(run), 6, "{}", run.stderr);
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
}

#[test]
fn a_quiet_step_dropped_mid_sleep_resumes_and_keeps_its_exit_code() {
    let runner = Runner::new("resume-quiet");
    let state = job(&runner);
    drop_followers(&runner, None, Some(700), 2);
    let step = runner.script(&state, "echo before\nsleep 3\necho after\nexit 7\n", &[]);
    let run = &step.run;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert_eq!(run.stdout, "before\nafter\n");
    assert!(run.errors().is_empty(), "{}", run.stderr);
    assert!(resumes(run) >= 1, "{}", run.stderr);
    // The step ran once: its directory holds one exit code and the next step runs normally.
    let next = runner.script(&state, "echo next\n", &[]);
    assert_eq!((next.run.code, next.run.stdout.as_str()), (0, "next\n"));
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
}

/// Runs a long script step; once it runs in `pod`, does `act` and waits for the step.
fn with_a_running_step<T>(
    runner: &Runner,
    state: &Value,
    pod: &str,
    act: impl FnOnce() -> T,
) -> (Run, T) {
    std::thread::scope(|s| {
        let step = s.spawn(|| {
            runner
                .script(state, "touch /tmp/started\nsleep 300\necho never\n", &[])
                .run
        });
        wait_until("the step runs", || {
            runner.job_exec(pod, &["sh", "-c", "test -f /tmp/started && echo yes"]) == "yes\n"
        });
        let done = act();
        (step.join().unwrap(), done)
    })
}

#[test]
fn the_job_pod_deleted_under_a_step_is_a_clear_error() {
    let runner = Runner::new("resume-gone");
    let state = job(&runner);
    let pod = state["jobPod"].as_str().unwrap().to_owned();
    let (run, deleted) = with_a_running_step(&runner, &state, &pod, || {
        let pods: Api<Pod> = Api::namespaced(runner.client.clone(), &runner.ns);
        rt().block_on(pods.delete(&pod, &DeleteParams::default()))
            .unwrap();
        std::time::Instant::now()
    });
    let after = deleted.elapsed();
    eprintln!("the hook failed {after:?} after the deletion");
    // Liveness, not timing: the job container lives on for the pod's 30 s grace period, so
    // only the hook's watch of the pod can end the step well before that.
    assert!(after < std::time::Duration::from_secs(20), "{after:?}");
    assert_eq!(run.code, 1, "never a success: {run:#?}");
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains(&format!("the job pod {pod} went away while the step ran")),
        "{}",
        errors[0]
    );
    assert!(!run.stdout.contains("never"));
}

fn killed_under_a_step(mode: KillMode, test: &str) -> (Run, String) {
    let runner = Runner::new(test);
    let state = job(&runner);
    let pod = state["jobPod"].as_str().unwrap().to_owned();
    let (run, ()) = with_a_running_step(&runner, &state, &pod, || {
        rt().block_on(sim().kill_container(&runner.ns, &pod, Some("job"), mode))
            .unwrap();
    });
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    (run, pod)
}

#[test]
fn an_oom_killed_job_container_ends_the_step_with_137_and_says_why() {
    let (run, _) = killed_under_a_step(KillMode::OOMKilled, "resume-oom");
    assert_eq!(run.code, 137, "{run:#?}");
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains("the job container was OOM-killed (OOMKilled"),
        "{}",
        errors[0]
    );
    assert!(!run.stdout.contains("never"));
}

#[test]
fn an_evicted_job_pod_ends_the_step_with_137_and_says_why() {
    let (run, pod) = killed_under_a_step(KillMode::Evicted, "resume-evict");
    assert_eq!(run.code, 137, "{run:#?}");
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains(&format!("the job pod {pod} was evicted while the step ran")),
        "{}",
        errors[0]
    );
}
