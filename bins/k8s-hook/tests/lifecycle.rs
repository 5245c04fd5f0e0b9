//! A job's whole life through the real binary on kubesim: prepare with services, script steps,
//! cleanup.
#![cfg(feature = "e2e")]

mod support;

use serde_json::json;
use support::{Runner, container, testenv};
use testenv::Image;

#[test]
fn prepare_steps_and_cleanup() {
    let env = testenv();
    let runner = Runner::new("life");
    let mut job = container(&env.image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    job["environmentVariables"] = json!({"HOME": "/github/home", "JOB_VAR": "from-prepare"});
    job["portMappings"] = json!(["8080"]);
    let mut redis = container(&env.image(Image::Busybox));
    redis["entryPoint"] = json!("sh");
    redis["entryPointArgs"] = json!(["-c", "\"touch /tmp/up; exec sleep 600\""]);
    redis["portMappings"] = json!(["6379:6379"]);
    redis["createOptions"] =
        json!("--health-cmd \"test -f /tmp/up\" --health-interval 1s --cpus 1");
    let mut sleeper = container(&env.image(Image::Healthy));
    sleeper["environmentVariables"] = json!({"SERVICE_VAR": "x"});
    let (run, state) = runner.prepare(Some(job), vec![redis, sleeper]);
    let run = run.ok();
    let resp = run.json();
    assert_eq!(state["jobPod"], json!("runner-life-workflow"), "{resp}");
    assert_eq!(resp["isAlpine"], json!(false));
    assert_eq!(resp["context"]["services"].as_array().unwrap().len(), 2);
    assert_eq!(
        resp["context"]["services"][0]["ports"],
        json!({"6379": "6379"})
    );
    assert_eq!(resp["context"]["services"][1]["ports"], json!({}));
    assert!(
        run.warnings().iter().any(|w| w.contains("--cpus 1")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("::group::"), "{}", run.stderr);

    // Step: env, output, env file, workdir, a file from the copied _work, /github/home and event.json.
    let step = runner.script(
        &state,
        "echo \"hello $WHO from $(pwd)\"\n\
         cat README.md\n\
         test -f /github/workflow/event.json\n\
         test -d /github/home\n\
         test -x /__e/node20/bin/node\n\
         echo \"result=42\" >> \"$GITHUB_OUTPUT\"\n\
         echo \"FOO=bar\" >> \"$GITHUB_ENV\"\n\
         echo \"## summary\" >> \"$GITHUB_STEP_SUMMARY\"\n\
         echo to-stderr >&2\n",
        &[("WHO", "octo")],
    );
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    assert!(
        step.run.stdout.contains("hello octo from /__w/repo/repo"),
        "{:#?}",
        step.run
    );
    assert!(step.run.stdout.contains("# repo"));
    assert!(step.run.stderr.contains("to-stderr"));
    assert_eq!(step.output, "result=42\n");
    assert_eq!(step.env, "FOO=bar\n");
    assert_eq!(step.summary, "## summary\n");

    let cleanup = runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert!(cleanup.stderr.contains("deleted"), "{}", cleanup.stderr);
    assert_eq!(runner.labelled(), (vec![], vec![]));
}
