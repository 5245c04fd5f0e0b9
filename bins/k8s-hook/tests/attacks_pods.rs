//! The threat model of the pods, through the real binary on kubesim (issue 10, items 3 and 4):
//!
//! - job code never gets the namespace's service-account token (job container, services, step
//!   pods), unless the admin's pod template opts in;
//! - a runner's prepare sweep and cleanup never touch another runner's objects, even when the
//!   two runner pod names share their first 63 characters.
//!
//! kubesim simulates the ServiceAccount admission plugin (a token file mounted unless the pod
//! says `automountServiceAccountToken: false`), so "no token" is observed inside the
//! containers, not only read off the pod spec.
#![cfg(feature = "e2e")]

mod support;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use support::{Runner, container, rt, sim, testenv};
use testenv::Image;

const TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// A shell test printing `<who>:token` or `<who>:none`.
fn probe(who: &str) -> String {
    format!("if test -e {TOKEN}; then echo {who}:token; else echo {who}:none; fi")
}

/// A service (busybox) that writes its probe to the shared work volume, then sleeps.
fn probing_service() -> Value {
    let mut svc = container(&testenv().image(Image::Busybox));
    svc["entryPoint"] = json!("sh");
    // As the runner sends `command: -c "…"`: split on spaces, quotes kept.
    let script = format!("{} > /__w/service-probe; exec sleep 600", probe("service"));
    let mut args = vec!["-c".to_owned()];
    let words: Vec<&str> = script.split(' ').collect();
    for (i, w) in words.iter().enumerate() {
        let mut w = (*w).to_owned();
        if i == 0 {
            w.insert(0, '"');
        }
        if i == words.len() - 1 {
            w.push('"');
        }
        args.push(w);
    }
    svc["entryPointArgs"] = json!(args);
    // Ready once the probe is written, so prepare_job returns after it.
    svc["createOptions"] =
        json!("--health-cmd \"test -s /__w/service-probe\" --health-interval 1s");
    svc
}

/// The token mounts in every container of `pod`, from its spec as the API server stored it.
fn token_mounts(pod: &Pod) -> Vec<String> {
    let spec = pod.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| {
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount")
        })
        .map(|c| c.name.clone())
        .collect()
}

/// Prepares a job with a probing service, then probes the job container, the service and a
/// container step; returns the three probes and the job pod's token mounts.
fn probe_a_job(runner: &Runner) -> (String, String, String, Vec<String>) {
    let mut job = container(&testenv().image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    let (run, state) = runner.prepare(Some(job), vec![probing_service()]);
    run.ok();
    let mounts = token_mounts(
        &runner
            .get_pod(&format!("{}-workflow", runner.name))
            .unwrap(),
    );
    let job_probe = runner.script(&state, &format!("{}\n", probe("job")), &[]);
    assert_eq!(job_probe.run.code, 0, "{:#?}", job_probe.run);
    // The service wrote its probe before it was ready.
    let service = runner.script(&state, "cat /__w/service-probe\n", &[]);
    assert_eq!(service.run.code, 0, "{:#?}", service.run);
    let step = runner.container_step(
        Some(&state),
        &testenv().image(Image::Busybox),
        Some("sh"),
        &["-c", &format!("\"{}\"", probe("step"))],
        &[],
    );
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    runner.call("cleanup_job", json!({}), Some(&state)).ok();
    (
        job_probe.run.stdout,
        service.run.stdout,
        step.run.stdout,
        mounts,
    )
}

#[test]
fn job_service_and_step_pods_get_no_service_account_token() {
    let runner = Runner::new("notoken");
    let (job, service, step, mounts) = probe_a_job(&runner);
    assert_eq!(job, "job:none\n");
    assert_eq!(service, "service:none\n");
    assert_eq!(step, "step:none\n");
    assert!(mounts.is_empty(), "token mounted in {mounts:?}");
    assert_eq!(runner.labelled(), (vec![], vec![]));
}

#[test]
fn a_template_opting_in_gets_the_token() {
    let mut runner = Runner::new("optin");
    runner.use_template("spec:\n  automountServiceAccountToken: true\n");
    let (job, service, step, mounts) = probe_a_job(&runner);
    assert_eq!(
        (job.as_str(), service.as_str(), step.as_str()),
        ("job:token\n", "service:token\n", "step:token\n")
    );
    assert!(mounts.contains(&"job".to_owned()), "{mounts:?}");
}

#[test]
fn a_template_service_account_decides_for_itself() {
    // No word about the token: the account's own setting applies (kubesim: mount).
    let mut runner = Runner::new("ownsa");
    runner.use_template("spec:\n  serviceAccountName: ci-jobs\n");
    let (job, service, step, _) = probe_a_job(&runner);
    assert_eq!(
        (job.as_str(), service.as_str(), step.as_str()),
        ("job:token\n", "service:token\n", "step:token\n")
    );
    // The account and an explicit `false`: no token.
    let mut runner = Runner::new("ownsa-off");
    runner.use_template(
        "spec:\n  serviceAccountName: ci-jobs\n  automountServiceAccountToken: false\n",
    );
    let (job, service, step, _) = probe_a_job(&runner);
    assert_eq!(
        (job.as_str(), service.as_str(), step.as_str()),
        ("job:none\n", "service:none\n", "step:none\n")
    );
}

/// The `runner-pod` label value on the runner's job pod, and the names of the pods and
/// secrets that carry it.
fn selected(runner: &Runner, label: &str) -> (Vec<String>, Vec<String>) {
    let lp = ListParams::default().labels(&format!("runner-pod={label}"));
    let pods: Api<Pod> = Api::namespaced(runner.client.clone(), &runner.ns);
    let secrets: Api<Secret> = Api::namespaced(runner.client.clone(), &runner.ns);
    rt().block_on(async {
        let mut p: Vec<String> = pods
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        let mut s: Vec<String> = secrets
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect();
        p.sort();
        s.sort();
        (p, s)
    })
}

/// A job with a private-registry job container, so the job has a pull secret too.
fn private_job() -> Value {
    let env = testenv();
    let mut job = container(&env.auth_image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    job["registry"] = json!({
        "username": env.auth_user, "password": env.auth_password, "serverUrl": env.auth_registry
    });
    job
}

#[test]
fn runners_sharing_63_characters_never_clean_up_each_other() {
    let sim = sim();
    let ns = sim.create_namespace().unwrap();
    // Two 70-character runner pod names whose first 63 characters are the same.
    let common = format!("twins-{}", "x".repeat(50));
    let a = Runner::on(sim, &format!("{common}alpha01"), ns.clone());
    let b = Runner::on(sim, &format!("{common}bravo02"), ns);
    assert_eq!((a.name.len(), b.name.len()), (70, 70));
    assert_eq!(a.name[..63], b.name[..63]);

    let (run, state_a) = a.prepare(Some(private_job()), vec![]);
    run.ok();
    let (run, state_b) = b.prepare(Some(private_job()), vec![]);
    run.ok();
    let (pod_a, pod_b) = (
        state_a["jobPod"].as_str().unwrap().to_owned(),
        state_b["jobPod"].as_str().unwrap().to_owned(),
    );
    assert_ne!(pod_a, pod_b, "distinct job pods");
    let label = |pod: &str, r: &Runner| {
        r.get_pod(pod).unwrap().metadata.labels.unwrap()["runner-pod"].clone()
    };
    let (label_a, label_b) = (label(&pod_a, &a), label(&pod_b, &b));
    assert_ne!(label_a, label_b);
    assert!(label_a.len() <= 63 && label_b.len() <= 63);
    let (pods_a, secrets_a) = selected(&a, &label_a);
    let (pods_b, secrets_b) = selected(&b, &label_b);
    assert_eq!(pods_a, std::slice::from_ref(&pod_a));
    assert_eq!(pods_b, std::slice::from_ref(&pod_b));
    assert_eq!((secrets_a.len(), secrets_b.len()), (1, 1));
    assert_ne!(secrets_a, secrets_b);

    // A's cleanup removes A's pod and secret, and nothing of B's.
    let cleanup = a.call("cleanup_job", json!({}), Some(&state_a)).ok();
    assert!(
        cleanup.stderr.contains(&format!(
            "deleted 1 pod(s) and 1 secret(s) labelled runner-pod={label_a}"
        )),
        "{}",
        cleanup.stderr
    );
    assert_eq!(selected(&a, &label_a), (vec![], vec![]));
    assert_eq!(selected(&b, &label_b), (pods_b.clone(), secrets_b.clone()));
    let step = b.script(&state_b, "echo b-still-runs\n", &[]);
    assert_eq!(step.run.stdout, "b-still-runs\n", "{:#?}", step.run);

    // A's next prepare sweeps A's leftovers only.
    let (run, state_a) = a.prepare(Some(private_job()), vec![]);
    let run = run.ok();
    assert!(
        !run.stderr.contains("left by a previous job"),
        "nothing of A's was left, and B's is not A's: {}",
        run.stderr
    );
    assert_eq!(selected(&b, &label_b), (pods_b, secrets_b));
    let secrets_a = selected(&a, &label_a).1;

    // B's cleanup leaves A's new job running.
    b.call("cleanup_job", json!({}), Some(&state_b)).ok();
    assert_eq!(selected(&b, &label_b), (vec![], vec![]));
    assert_eq!(selected(&a, &label_a), (vec![pod_a], secrets_a));
    let step = a.script(&state_a, "echo a-still-runs\n", &[]);
    assert_eq!(step.run.stdout, "a-still-runs\n", "{:#?}", step.run);
    a.call("cleanup_job", json!({}), Some(&state_a)).ok();
    assert_eq!(selected(&a, &label_a), (vec![], vec![]));
}
