//! The docker hook's threat model, as attacks through the real binary.
//!
//! The job's YAML, its images and everything that runs in them are hostile; the runner host
//! holds credentials. An administrator who sets
//! `ACTIONS_RUNNER_CONTAINER_HOOKS_DOCKER_REFUSE_PRIVILEGED=true` and the allowed-image lists
//! gets, for every attack below: one `::error::` line naming the option (or image) and the
//! setting, a non-zero exit, no response, and no container, network or image left behind —
//! the refusal comes before anything is created or pulled. Without those settings the hook
//! behaves as before (drop-in), which the last tests show.
#![cfg(feature = "e2e")]

mod support;

use serde_json::{Value, json};
use support::{Runner, container, inspect, runner_split, testenv};
use testenv::Image;

const REFUSE: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_DOCKER_REFUSE_PRIVILEGED";
const JOB_IMAGES: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_IMAGES";
const SERVICE_IMAGES: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_SERVICES";
const STEP_IMAGES: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_STEP_IMAGES";

fn runner_with(test: &str, env: &[(&str, &str)]) -> Runner {
    let mut r = Runner::new(test);
    r.extra_env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    r
}

fn job(runner: &Runner, options: &str) -> Value {
    let mut j = container(&testenv().image(Image::Busybox));
    j["systemMountVolumes"] = runner.job_mounts();
    j["createOptions"] = json!(options);
    j
}

/// One `::error::` naming `needle` and `setting`, exit ≠ 0, no response, nothing left.
#[track_caller]
fn assert_refused(runner: &Runner, run: &support::Run, needle: &str, setting: &str) {
    assert_ne!(run.code, 0, "{run:#?}");
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{run:#?}");
    assert!(errors[0].contains(needle), "{needle} not in {}", errors[0]);
    assert!(
        errors[0].contains(setting),
        "{setting} not in {}",
        errors[0]
    );
    assert_eq!(run.response, "", "a refused prepare_job writes no response");
    runner.assert_nothing_left();
}

#[test]
fn privileged_options_are_refused_before_anything_is_created() {
    let runner = runner_with("privileged", &[(REFUSE, "true")]);
    // A link a previous job planted in `_work` that points at the host's /etc.
    std::os::unix::fs::symlink("/etc", runner.work().join("planted")).unwrap();
    let planted = runner.work().join("planted").display().to_string();
    for (options, named) in [
        ("--privileged", "`--privileged`"),
        ("--cap-add SYS_ADMIN", "`--cap-add SYS_ADMIN`"),
        ("--cap-add=ALL", "`--cap-add ALL`"),
        ("--pid=host", "`--pid host`"),
        ("--ipc host", "`--ipc host`"),
        ("--userns=host", "`--userns host`"),
        ("--device /dev/fuse", "`--device /dev/fuse`"),
        ("--gpus all", "`--gpus`"),
        (
            "--security-opt seccomp=unconfined",
            "`--security-opt seccomp=unconfined`",
        ),
        (
            "--security-opt apparmor=unconfined",
            "`--security-opt apparmor=unconfined`",
        ),
        (
            "--security-opt label=disable",
            "`--security-opt label=disable`",
        ),
        ("-v /etc:/host-etc:ro", "`--volume /etc:/host-etc:ro`"),
        (
            "--mount type=bind,source=/,target=/host",
            "`--mount source=/`",
        ),
        (
            "--mount type=volume,source=sneaky,target=/x,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/root",
            "`--mount volume-driver/volume-opt`",
        ),
        (
            &format!("-v {planted}:/x"),
            "is outside the runner's work directory",
        ),
    ] {
        let run = runner.call(
            "prepare_job",
            json!({"container": job(&runner, options), "services": []}),
            None,
        );
        assert_refused(&runner, &run, named, REFUSE);
    }
    // The workflow's own `volumes:` are host binds too.
    let mut j = job(&runner, "");
    j["userMountVolumes"] = json!([{
        "userProvidedValue": "/root:/r", "sourceVolumePath": "/root",
        "targetVolumePath": "/r", "readOnly": true
    }]);
    let run = runner.call("prepare_job", json!({"container": j, "services": []}), None);
    assert_refused(&runner, &run, "`volumes: /root:/r`", REFUSE);
    // A service is refused like the job container, and so is a container step.
    let mut svc = container(&testenv().image(Image::Healthy));
    svc["createOptions"] = json!("--privileged");
    let run = runner.call(
        "prepare_job",
        json!({"container": job(&runner, ""), "services": [svc]}),
        None,
    );
    assert_refused(&runner, &run, "service healthy", REFUSE);
    let mut step = container(&testenv().image(Image::Busybox));
    step["createOptions"] = json!("--cap-add NET_ADMIN");
    step["systemMountVolumes"] = runner.step_mounts();
    let run = runner.call("run_container_step", step, None);
    assert_refused(&runner, &run, "`--cap-add NET_ADMIN`", REFUSE);
}

#[test]
fn the_docker_socket_is_withheld_when_privileges_are_refused() {
    let runner = runner_with("socket", &[(REFUSE, "true")]);
    let mut j = job(&runner, "--cap-drop ALL --security-opt no-new-privileges");
    let mut mounts = runner.job_mounts();
    mounts.as_array_mut().unwrap().push(json!({
        "userProvidedValue": null, "sourceVolumePath": "/var/run/docker.sock",
        "targetVolumePath": "/var/run/docker.sock", "readOnly": false
    }));
    j["systemMountVolumes"] = mounts;
    // A bind inside `_work` is fine.
    std::fs::create_dir_all(runner.work().join("cache")).unwrap();
    j["userMountVolumes"] = json!([{
        "userProvidedValue": "cache", "sourceVolumePath": runner.work().join("cache").display().to_string(),
        "targetVolumePath": "/cache", "readOnly": false
    }]);
    let prep = runner
        .call("prepare_job", json!({"container": j, "services": []}), None)
        .ok();
    let id = prep.json()["state"]["container"]
        .as_str()
        .unwrap()
        .to_owned();
    let binds = inspect(&id, "{{json .HostConfig.Binds}}");
    assert!(!binds.contains("docker.sock"), "{binds}");
    assert!(binds.contains(":/cache"), "{binds}");
    assert!(binds.contains(":/__w"), "{binds}");
    runner
        .call("cleanup_job", json!({}), Some(&prep.json()["state"]))
        .ok();
    runner.assert_nothing_left();
}

#[test]
fn images_outside_the_allowed_lists_are_refused_before_any_pull() {
    let env = testenv();
    let repo = |image: Image| env.image(image).rsplit_once(':').unwrap().0.to_owned();
    let allowed = repo(Image::Busybox);
    let runner = runner_with(
        "images",
        &[
            (JOB_IMAGES, &allowed),
            (
                SERVICE_IMAGES,
                &format!("{}/hooktest/healthy:*", env.registry),
            ),
            (STEP_IMAGES, &allowed),
        ],
    );
    // Never pushed anywhere: had the hook tried to pull it, the error would be a pull error.
    let unknown = format!(
        "{}/hooktest/not-allowed-{}:1",
        env.registry,
        std::process::id()
    );

    let mut j = job(&runner, "");
    j["image"] = json!(unknown);
    let run = runner.call("prepare_job", json!({"container": j, "services": []}), None);
    assert_refused(&runner, &run, "is not allowed on this runner", JOB_IMAGES);
    assert!(support::docker(&["image", "inspect", &unknown]).is_err());

    // The busybox image is a job image here, not a service.
    let run = runner.call(
        "prepare_job",
        json!({"container": job(&runner, ""), "services": [container(&env.image(Image::Busybox))]}),
        None,
    );
    assert_refused(&runner, &run, "service busybox", SERVICE_IMAGES);

    let mut step = container(&env.image(Image::Healthy));
    step["systemMountVolumes"] = runner.step_mounts();
    let run = runner.call("run_container_step", step, None);
    assert_refused(&runner, &run, "the container step", STEP_IMAGES);

    // A Dockerfile action's base images are step images; a build argument cannot hide one.
    let action = runner.work().join("_actions/evil/v1");
    std::fs::create_dir_all(&action).unwrap();
    for (dockerfile, needle) in [
        (
            format!("FROM {allowed}:1 AS ok\nFROM {unknown}\n"),
            "base image of the Dockerfile",
        ),
        (
            format!("ARG B={allowed}:1\nFROM $B\n"),
            "through a build argument",
        ),
    ] {
        std::fs::write(action.join("Dockerfile"), dockerfile).unwrap();
        let mut step = container("");
        step["image"] = Value::Null;
        step["dockerfile"] = json!(action.join("Dockerfile").display().to_string());
        step["systemMountVolumes"] = runner.step_mounts();
        let run = runner.call("run_container_step", step, None);
        assert_refused(&runner, &run, needle, STEP_IMAGES);
    }

    // What the lists allow still runs: the policy can pass as well as fail.
    let prep = runner
        .call(
            "prepare_job",
            json!({"container": job(&runner, ""), "services": [container(&env.image(Image::Healthy))]}),
            None,
        )
        .ok();
    let mut step = container(&env.image(Image::Busybox));
    step["entryPoint"] = json!("sh");
    step["entryPointArgs"] = json!(runner_split("-c \"echo allowed-step\""));
    step["systemMountVolumes"] = runner.step_mounts();
    let run = runner
        .call("run_container_step", step, Some(&prep.json()["state"]))
        .ok();
    assert!(run.stdout.contains("allowed-step"), "{run:#?}");
    runner
        .call("cleanup_job", json!({}), Some(&prep.json()["state"]))
        .ok();
    runner.assert_nothing_left();
}

#[test]
fn without_a_policy_the_hook_behaves_as_before() {
    let runner = Runner::new("nopolicy");
    let prep = runner
        .call(
            "prepare_job",
            json!({"container": job(&runner, "--cap-add SYS_PTRACE"), "services": []}),
            None,
        )
        .ok();
    let id = prep.json()["state"]["container"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        inspect(&id, "{{json .HostConfig.CapAdd}}"),
        "[\"SYS_PTRACE\"]"
    );
    runner
        .call("cleanup_job", json!({}), Some(&prep.json()["state"]))
        .ok();
    runner.assert_nothing_left();
}

#[test]
fn a_hostile_os_release_is_read_with_a_size_cap_and_a_timeout() {
    let runner = Runner::new("osrelease");
    // An endless file (the host's /dev/zero) and a FIFO nobody writes to, mounted over the job
    // image's /etc/os-release: the probe reads at most 64 KiB, for at most 10 s.
    let fifo = runner.work().join("os-release.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for (source, warning) in [
        ("/dev/zero".to_owned(), "is larger than 65536 bytes"),
        (fifo.display().to_string(), "took longer than 10s"),
    ] {
        let mut j = job(&runner, "");
        j["userMountVolumes"] = json!([{
            "userProvidedValue": null, "sourceVolumePath": source,
            "targetVolumePath": "/etc/os-release", "readOnly": true
        }]);
        let prep = runner
            .call("prepare_job", json!({"container": j, "services": []}), None)
            .ok();
        assert_eq!(prep.json()["isAlpine"], json!(false), "{prep:#?}");
        assert!(prep.stderr.contains(warning), "{}", prep.stderr);
        runner
            .call("cleanup_job", json!({}), Some(&prep.json()["state"]))
            .ok();
    }
    runner.assert_nothing_left();
}
