//! A whole job through the real binary on the real engine, with images pulled from the local
//! registry: prepare (job container + 2 services with ports and health checks) → script steps →
//! container steps (image and Dockerfile) → cleanup.
#![cfg(feature = "e2e")]

mod support;

use serde_json::{Value, json};
use support::{Runner, container, http_get, inspect, runner_split, testenv};
use testenv::Image;

/// A service serving `body` over HTTP on `port` with busybox httpd, started the runner's way
/// (`entrypoint` + `args` split on single spaces).
fn web_service(image: &str, port: u16, body: &str, extra: &str) -> Value {
    let mut s = container(image);
    s["entryPoint"] = json!("sh");
    s["entryPointArgs"] = json!(runner_split(&format!(
        "-c \"mkdir -p /www && echo {body} > /www/index.html && {extra} exec httpd -f -p {port} -h /www\""
    )));
    s["portMappings"] = json!([port.to_string()]);
    s
}

#[test]
fn full_job_lifecycle() {
    let env = testenv();
    let runner = Runner::new("lifecycle");
    std::fs::create_dir_all(runner.work().join("ro")).unwrap();

    // ---- prepare_job ----------------------------------------------------------------------
    let mut job = container(&env.image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    job["createOptions"] = json!("--cpus 1 --memory 256m -e FROM_OPTIONS=\"yes it is\"");
    job["environmentVariables"] = json!({"HOME": "/github/home", "JOB_ENV": "job value"});
    job["systemMountVolumes"] = runner.job_mounts();
    job["userMountVolumes"] = json!([{
        "userProvidedValue": "ro", "sourceVolumePath": runner.work().join("ro").display().to_string(),
        "targetVolumePath": "/ro", "readOnly": true
    }]);
    // The Healthy image's own HEALTHCHECK (test -f /tmp/ready) passes once httpd is about to start.
    let web = web_service(
        &env.image(Image::Healthy),
        8000,
        "hello-from-healthy",
        "touch /tmp/ready &&",
    );
    let mut other = web_service(&env.image(Image::Busybox), 9000, "hello-from-busybox", "");
    other["createOptions"] = json!(
        "--health-cmd \"wget -q -O /dev/null http://127.0.0.1:9000/\" --health-interval 1s --health-retries 20 --network-alias extra-name"
    );
    let prep = runner
        .call(
            "prepare_job",
            json!({"container": job, "services": [web, other]}),
            None,
        )
        .ok();
    let resp = prep.json();
    let state = resp["state"].clone();
    let job_id = resp["context"]["container"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let network = state["network"].as_str().unwrap().to_owned();
    assert_eq!(resp["isAlpine"], json!(false), "{resp}");
    assert_eq!(resp["context"]["container"]["network"], json!(network));
    assert_eq!(state["container"], json!(job_id));
    let services = resp["context"]["services"].as_array().unwrap();
    assert_eq!(services.len(), 2, "{resp}");
    assert_eq!(state["services"].as_array().unwrap().len(), 2);
    for (svc, port) in services.iter().zip(["8000", "9000"]) {
        assert_eq!(svc["network"], json!(network));
        let ports = svc["ports"].as_object().unwrap();
        assert_eq!(ports.len(), 1, "{svc}");
        assert!(
            ports[port].as_str().unwrap().parse::<u16>().unwrap() > 0,
            "{svc}"
        );
    }
    // The log: phases in groups, one summary line, no credentials.
    assert!(
        prep.stderr.contains("::group::Preparing job containers"),
        "{}",
        prep.stderr
    );
    assert!(prep.stderr.contains("::endgroup::"));
    assert_eq!(
        prep.stderr.matches("job ready in").count(),
        1,
        "{}",
        prep.stderr
    );
    assert!(prep.stderr.contains("is healthy after"), "{}", prep.stderr);

    // What the engine got.
    assert_eq!(
        inspect(&job_id, "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}"),
        "1000000000 268435456"
    );
    let job_env = inspect(&job_id, "{{json .Config.Env}}");
    for want in [
        "GITHUB_ACTIONS=true",
        "CI=true",
        "FROM_OPTIONS=yes it is",
        "JOB_ENV=job value",
    ] {
        assert!(job_env.contains(want), "{want} not in {job_env}");
    }
    assert_eq!(inspect(&job_id, "{{.State.Running}}"), "true");
    assert_eq!(
        inspect(
            &job_id,
            &format!("{{{{index .Config.Labels \"{}\"}}}}", support::RUNNER_LABEL)
        ),
        runner.name
    );

    // Services from the host, by published port on 127.0.0.1.
    assert_eq!(
        http_get(services[0]["ports"]["8000"].as_str().unwrap()).trim(),
        "hello-from-healthy"
    );
    assert_eq!(
        http_get(services[1]["ports"]["9000"].as_str().unwrap()).trim(),
        "hello-from-busybox"
    );

    // ---- run_script_step --------------------------------------------------------------------
    let step = runner
        .script_step(
            &state,
            r#"echo "pwd=$(pwd)"
echo "path=$PATH"
printf '[%s]\n' "$GREETING"
echo "job_env=$JOB_ENV step=$STEP_ONLY"
echo "to-stderr" >&2
wget -q -O - http://healthy:8000/
wget -q -O - http://extra-name:9000/
wget -q -O - http://busybox:9000/
if touch /ro/x 2>/dev/null; then echo ro-broken; else echo ro-ok; fi
"#,
            json!({"GREETING": "Mona the Octocat", "STEP_ONLY": "s1"}),
            json!(["/__w/_tool/bin", "/opt/extra"]),
        )
        .ok();
    let out = step.stdout.clone();
    assert!(out.contains("pwd=/__w/repo/repo\n"), "{out}");
    assert!(
        out.contains("path=/__w/_tool/bin:/opt/extra:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"),
        "{out}"
    );
    assert!(out.contains("[Mona the Octocat]\n"), "{out}");
    assert!(out.contains("job_env=job value step=s1\n"), "{out}");
    assert!(
        out.contains("hello-from-healthy\nhello-from-busybox\nhello-from-busybox\n"),
        "{out}"
    );
    assert!(out.contains("ro-ok\n"), "{out}");
    assert!(!out.contains("to-stderr"), "stderr went to stdout: {out}");
    assert!(step.stderr.contains("to-stderr\n"), "{}", step.stderr);

    // Output is streamed live: the step waits for a file the test creates only after it has
    // read the step's first line from the hook's stdout. Buffered output would end in "timeout".
    let live = runner.script_args(
        "echo ready\ni=0\nwhile [ ! -f /__w/_temp/go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n[ -f /__w/_temp/go ] && echo done || echo timeout\n",
        json!({}),
        json!([]),
    );
    let mut started = runner.start("run_script_step", live, Some(&state));
    started.wait_for_line("ready");
    std::fs::write(runner.temp().join("go"), "").unwrap();
    let run = started.finish().ok();
    assert_eq!(
        run.stdout, "ready\ndone\n",
        "the first line was held back until the step ended"
    );

    // Exit codes come out as the hook's own.
    for (script, want) in [
        ("exit 0", 0),
        ("echo failing; exit 1", 1),
        ("exit 2", 2),
        ("this-command-does-not-exist", 127),
        ("exit 255", 255),
    ] {
        let run = runner.script_step(&state, script, json!({}), json!([]));
        assert_eq!(run.code, want, "{script}: {run:#?}");
        assert!(
            run.errors().is_empty(),
            "a failed step is not a hook failure: {run:#?}"
        );
    }

    // ---- run_container_step: an image -------------------------------------------------------
    let mut step = container(&env.image(Image::Busybox));
    step["entryPoint"] = json!("sh");
    step["entryPointArgs"] = json!(runner_split(
        "-c 'printf \"[%s]\\n\" \"$@\"; pwd; echo \"input=$INPUT_WHO ci=$CI actions=$GITHUB_ACTIONS\"; wget -q -O - http://healthy:8000/; echo err-line >&2; exit 3' argv0 \"Mona the Octocat\" plain"
    ));
    step["workingDirectory"] = json!("/github/workspace");
    step["environmentVariables"] = json!({"INPUT_WHO": "octo"});
    step["systemMountVolumes"] = runner.step_mounts();
    let run = runner.call("run_container_step", step, Some(&state));
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(
        run.stdout.contains("[Mona the Octocat]\n[plain]\n/github/workspace\ninput=octo ci=true actions=true\nhello-from-healthy\n"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("err-line"), "{run:#?}");
    assert!(run.stderr.contains("::group::Pulling"), "{run:#?}");
    assert!(run.errors().is_empty(), "{run:#?}");

    // ---- run_container_step: a Dockerfile action --------------------------------------------
    let action = runner.work().join("_actions/acme/hello/v1");
    std::fs::create_dir_all(action.join("sub")).unwrap();
    std::fs::write(
        action.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY . /action/\nENTRYPOINT [\"sh\", \"/action/entry.sh\"]\n",
            env.image(Image::Busybox)
        ),
    )
    .unwrap();
    std::fs::write(
        action.join("entry.sh"),
        "echo \"built-action [$1] [$2]\"; ls /action /action/sub; exit 0\n",
    )
    .unwrap();
    std::fs::write(action.join(".dockerignore"), "secret.txt\nsub/*.log\n").unwrap();
    std::fs::write(action.join("secret.txt"), "do not send").unwrap();
    std::fs::write(action.join("sub/keep.txt"), &runner.name).unwrap();
    std::fs::write(action.join("sub/drop.log"), "x").unwrap();
    let mut step = container("");
    step["image"] = Value::Null;
    step["dockerfile"] = json!(action.join("Dockerfile").display().to_string());
    step["entryPointArgs"] = json!(runner_split("\"Mona the Octocat\" two"));
    step["workingDirectory"] = json!("/github/workspace");
    step["systemMountVolumes"] = runner.step_mounts();
    let built = runner
        .call("run_container_step", step.clone(), Some(&state))
        .ok();
    assert!(
        built
            .stdout
            .contains("built-action [Mona the Octocat] [two]\n"),
        "{built:#?}"
    );
    assert!(built.stdout.contains("entry.sh"), "{built:#?}");
    assert!(built.stdout.contains("keep.txt"), "{built:#?}");
    assert!(
        !built.stdout.contains("secret.txt"),
        ".dockerignore ignored: {built:#?}"
    );
    assert!(
        !built.stdout.contains("drop.log"),
        ".dockerignore ignored: {built:#?}"
    );
    assert!(built.stderr.contains("::group::Building"), "{built:#?}");
    // Unchanged action: not rebuilt.
    let again = runner.call("run_container_step", step, Some(&state)).ok();
    assert!(again.stderr.contains("not rebuilding"), "{again:#?}");
    assert!(
        again
            .stdout
            .contains("built-action [Mona the Octocat] [two]\n")
    );

    // Step containers are removed after each step.
    assert_eq!(runner.containers().len(), 3, "job + 2 services only");

    // ---- cleanup_job ------------------------------------------------------------------------
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert!(
        runner.containers().is_empty(),
        "containers left: {:?}",
        runner.containers()
    );
    assert!(
        runner.networks().is_empty(),
        "networks left: {:?}",
        runner.networks()
    );
    // Cleaning up again (objects already gone) is fine.
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
}

#[test]
fn container_step_without_a_job_container() {
    let env = testenv();
    let runner = Runner::new("nojob");
    let mut step = container(&env.image(Image::Busybox));
    step["entryPoint"] = json!("sh");
    step["entryPointArgs"] = json!(runner_split("-c \"echo no-job-$CI\""));
    step["systemMountVolumes"] = runner.step_mounts();
    let run = runner.call("run_container_step", step, None).ok();
    assert!(run.stdout.contains("no-job-true\n"), "{run:#?}");
    assert!(runner.containers().is_empty());
    runner.call("cleanup_job", json!({}), None).ok();
}
