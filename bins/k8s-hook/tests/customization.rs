//! The pod template (PROTOCOL §7) and the patch file through the real binary, and private
//! registries through the generated pull secret.
#![cfg(feature = "e2e")]

mod support;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use serde_json::json;
use support::{Runner, container, rt, testenv};
use testenv::Image;

#[test]
fn template_and_patch_shape_the_pods() {
    let env = testenv();
    let mut runner = Runner::new("tpl");
    let template = runner.root().join("template.yaml");
    std::fs::write(
        &template,
        format!(
            r#"metadata:
  labels:
    team: shop
  annotations:
    example.com/cost-center: "42"
spec:
  containers:
    - name: $job
      command: ["sh", "-c", "echo from-template > /tmp/marker; exec sleep 600"]
      env:
        - name: FROM_TEMPLATE
          value: job
    - name: $busybox
      env:
        - name: FROM_TEMPLATE
          value: service
      resources:
        limits:
          memory: 64Mi
    - name: sidecar
      image: {image}
      command: ["sleep", "600"]
"#,
            image = env.image(Image::Busybox)
        ),
    )
    .unwrap();
    let patch = runner.root().join("patch.json");
    std::fs::write(
        &patch,
        r#"{"metadata": {"annotations": {"example.com/patched": "yes"}}}"#,
    )
    .unwrap();
    runner.extra_env.push((
        "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE".into(),
        template.display().to_string(),
    ));
    runner.extra_env.push((
        "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE_PATCH".into(),
        patch.display().to_string(),
    ));

    let mut job = container(&env.image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    let mut svc = container(&env.image(Image::Busybox));
    svc["entryPoint"] = json!("sleep");
    svc["entryPointArgs"] = json!(["600"]);
    let (run, state) = runner.prepare(Some(job), vec![svc]);
    let run = run.ok();
    let resp = run.json();
    assert_eq!(
        resp["context"]["services"].as_array().unwrap().len(),
        1,
        "the side-car is not a service: {resp}"
    );

    let pod = runner.get_pod("runner-tpl-workflow").unwrap();
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(labels["team"], "shop");
    assert_eq!(labels["runner-pod"], "runner-tpl");
    let annotations = pod.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["example.com/cost-center"], "42");
    assert_eq!(annotations["example.com/patched"], "yes");
    let spec = pod.spec.unwrap();
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["job", "busybox", "hook-archiver", "sidecar"]);
    let svc = &spec.containers[1];
    assert_eq!(
        svc.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0,
        "64Mi"
    );
    assert!(
        svc.env
            .as_ref()
            .unwrap()
            .iter()
            .any(|e| e.name == "FROM_TEMPLATE")
    );

    let step = runner.script(&state, "cat /tmp/marker; echo \"$FROM_TEMPLATE\"\n", &[]);
    assert_eq!(step.run.stdout, "from-template\njob\n", "{:#?}", step.run);

    // `$job` also shapes container-step pods (every field: so no `command` for this one).
    std::fs::write(
        &template,
        "spec:\n  containers:\n    - name: $job\n      env:\n        - name: FROM_TEMPLATE\n          value: job\n",
    )
    .unwrap();
    let cstep = runner.container_step(
        Some(&state),
        &env.image(Image::Busybox),
        Some("sh"),
        &["-c", "\"echo", "step", "$FROM_TEMPLATE\""],
        &[],
    );
    assert_eq!(cstep.run.code, 0, "{:#?}", cstep.run);
    assert_eq!(cstep.run.stdout, "step job\n");
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert_eq!(runner.labelled(), (vec![], vec![]));
}

#[test]
fn an_unusable_template_is_refused_before_anything_is_created() {
    let mut runner = Runner::new("badtpl");
    let template = runner.root().join("template.yaml");
    std::fs::write(&template, "- just\n- a list\n").unwrap();
    runner.extra_env.push((
        "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE".into(),
        template.display().to_string(),
    ));
    let (run, _) = runner.prepare(Some(container(&testenv().image(Image::Busybox))), vec![]);
    assert_eq!(run.code, 1);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{run:#?}");
    assert!(
        errors[0].contains("template.yaml is invalid: expected a mapping"),
        "{}",
        errors[0]
    );
    assert_eq!(runner.labelled(), (vec![], vec![]));
}

#[test]
fn private_registry_through_the_generated_secret() {
    let env = testenv();
    let mut runner = Runner::new("auth");
    // Always pull, so a cached image cannot hide a wrong password.
    runner.use_template("spec:\n  containers:\n    - name: $job\n      imagePullPolicy: Always\n");
    let job = |password: &str| {
        let mut job = container(&env.auth_image(Image::Busybox));
        job["registry"] = json!({
            "username": env.auth_user, "password": password, "serverUrl": env.auth_registry
        });
        job
    };
    let wrong = "wrong-pw-7d3f";
    let (run, _) = runner.prepare(Some(job(wrong)), vec![]);
    let error = run.one_error(1);
    assert!(
        error.contains("container job cannot start: ErrImagePull"),
        "{error}"
    );
    assert!(
        !run.stderr.contains(wrong) && !run.stdout.contains(wrong),
        "the password is never printed"
    );
    assert_eq!(
        runner.labelled(),
        (vec![], vec![]),
        "pod and secret deleted"
    );

    let (run, state) = runner.prepare(Some(job(&env.auth_password)), vec![]);
    let run = run.ok();
    assert!(!run.stderr.contains(&env.auth_password));
    let secrets: Api<Secret> = Api::namespaced(runner.client.clone(), &runner.ns);
    let list = rt()
        .block_on(secrets.list(&ListParams::default().labels("runner-pod=runner-auth")))
        .unwrap()
        .items;
    assert_eq!(list.len(), 1);
    let s = &list[0];
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    assert_eq!(s.immutable, Some(true));
    let owners = s.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners[0].name, "runner-auth", "owned by the runner pod");
    let doc: serde_json::Value =
        serde_json::from_slice(&s.data.as_ref().unwrap()[".dockerconfigjson"].0).unwrap();
    assert_eq!(
        doc["auths"][&env.auth_registry]["username"],
        json!(env.auth_user)
    );
    let pod = runner.get_pod("runner-auth-workflow").unwrap();
    let pull = pod.spec.unwrap().image_pull_secrets.unwrap();
    assert_eq!(pull[0].name, s.metadata.name.clone().unwrap());
    let step = runner.script(&state, "echo pulled-and-running\n", &[]);
    assert_eq!(step.run.stdout, "pulled-and-running\n");
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    assert_eq!(runner.labelled(), (vec![], vec![]));
}
