//! The kubelet and the streaming subresources through the real kube client: exec, attach, logs,
//! volumes, readiness, image pulls with credentials.
#![cfg(feature = "e2e")]

mod common;

use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, AttachedProcess, DeleteParams, LogParams, PostParams};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use common::*;

/// Run a command, returning (stdout, stderr, exit code as kube reports it).
async fn exec(pods: &Api<Pod>, name: &str, cmd: &[&str]) -> (String, String, Option<i32>) {
    let mut p = pods
        .exec(
            name,
            cmd.to_vec(),
            &AttachParams::default().stdout(true).stderr(true),
        )
        .await
        .unwrap();
    let mut so = p.stdout().unwrap();
    let mut se = p.stderr().unwrap();
    let status = p.take_status().unwrap();
    let (mut a, mut b) = (String::new(), String::new());
    let (r1, r2, st) = tokio::join!(so.read_to_string(&mut a), se.read_to_string(&mut b), status);
    r1.unwrap();
    r2.unwrap();
    let st = st.expect("a status on channel 3");
    let code = match st.status.as_deref() {
        Some("Success") => Some(0),
        _ => {
            assert_eq!(st.reason.as_deref(), Some("NonZeroExitCode"));
            let causes = st.details.unwrap().causes.unwrap();
            assert_eq!(causes[0].reason.as_deref(), Some("ExitCode"));
            causes[0].message.as_deref().and_then(|m| m.parse().ok())
        }
    };
    p.join().await.unwrap();
    (a, b, code)
}

#[tokio::test]
async fn exec_output_and_exit_codes() {
    let ctx = setup().await;
    let pods: Api<Pod> = ctx.api();
    create(&ctx, &sh_pod("ex", "sleep 1000")).await;
    wait_phase(&ctx, "ex", &["Running"]).await;
    let (out, err, code) = exec(&pods, "ex", &["sh", "-c", "echo hello; echo oops >&2"]).await;
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("hello\n", "oops\n", Some(0))
    );
    for want in [0, 1, 42, 255] {
        let (_, _, code) = exec(&pods, "ex", &["sh", "-c", &format!("exit {want}")]).await;
        assert_eq!(code, Some(want));
    }
    // exec denied by a rule -> the upgrade is refused (403)
    let rule = kubesim::DenyRule {
        verb: "create".into(),
        group: "*".into(),
        resource: "pods".into(),
        subresource: Some("exec".into()),
        namespace: Some(ctx.ns.clone()),
    };
    ctx.sim.authz().deny(rule.clone());
    let e = pods
        .exec("ex", vec!["true"], &AttachParams::default())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("403"), "{e}");
    ctx.sim.authz().remove(&rule);
    // exec into a completed pod -> 400
    create(&ctx, &sh_pod("done", "true")).await;
    wait_phase(&ctx, "done", &["Succeeded"]).await;
    let e = pods
        .exec("done", vec!["true"], &AttachParams::default())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("400"), "{e}");
    // exec into a missing container -> 400
    let e = pods
        .exec(
            "ex",
            vec!["true"],
            &AttachParams::default().container("nope"),
        )
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("400") || e.to_string().to_lowercase().contains("bad request"),
        "{e}"
    );
}

/// stdin and stdout attached, no stderr.
fn stdin_stdout() -> AttachParams {
    AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(false)
}

/// The process's stdin, stdout and status (channel 3), each taken once.
fn take_io(
    p: &mut AttachedProcess,
) -> (
    impl AsyncWrite + Unpin,
    impl AsyncRead + Unpin,
    impl Future<Output = Option<Status>>,
) {
    (
        p.stdin().unwrap(),
        p.stdout().unwrap(),
        p.take_status().unwrap(),
    )
}

#[tokio::test]
async fn exec_stdin_100mb_round_trip() {
    let ctx = setup().await;
    let pods: Api<Pod> = ctx.api();
    create(&ctx, &sh_pod("big", "sleep 1000")).await;
    wait_phase(&ctx, "big", &["Running"]).await;
    let mut p = pods
        .exec("big", vec!["cat"], &stdin_stdout())
        .await
        .unwrap();
    let (mut stdin, mut stdout, status) = take_io(&mut p);
    const TOTAL: usize = 100 * 1024 * 1024;
    let writer = async move {
        let mut h = Sha256::new();
        let mut chunk = vec![0u8; 1 << 20];
        for i in 0..TOTAL / chunk.len() {
            for (j, b) in chunk.iter_mut().enumerate() {
                *b = (i * 31 + j * 7) as u8;
            }
            h.update(&chunk);
            stdin.write_all(&chunk).await.unwrap();
        }
        stdin.shutdown().await.unwrap();
        drop(stdin);
        h.finalize()
    };
    let reader = async move {
        let mut h = Sha256::new();
        let mut n = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let r = stdout.read(&mut buf).await.unwrap();
            if r == 0 {
                break;
            }
            n += r;
            h.update(&buf[..r]);
        }
        (n, h.finalize())
    };
    let (sent, (n, got), st) = tokio::join!(writer, reader, status);
    assert_eq!(n, TOTAL);
    assert_eq!(sent, got);
    assert_eq!(st.unwrap().status.as_deref(), Some("Success"));
}

#[tokio::test]
async fn attach_stdin_and_logs_follow() {
    let ctx = setup().await;
    let pods: Api<Pod> = ctx.api();
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "att"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": busybox(), "imagePullPolicy": "Never", "stdin": true, "stdinOnce": true,
            "command": ["sh", "-c", "wc -c; echo done"]}]}}))
    .unwrap();
    create(&ctx, &pod).await;
    wait_phase(&ctx, "att", &["Running"]).await;
    let mut p = pods.attach("att", &stdin_stdout()).await.unwrap();
    let (mut stdin, mut stdout, status) = take_io(&mut p);
    stdin.write_all(&vec![b'x'; 12345]).await.unwrap();
    // the writer half of kube's stdin pipe only reaches EOF on shutdown (v5 then sends [255, 0])
    stdin.shutdown().await.unwrap();
    let mut out = String::new();
    let (r, st) = tokio::join!(stdout.read_to_string(&mut out), status);
    r.unwrap();
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["12345", "done"]
    );
    assert_eq!(st.unwrap().status.as_deref(), Some("Success"));
    let done = wait_phase(&ctx, "att", &["Succeeded"]).await;
    assert_eq!(
        done["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );

    // logs follow streams until the container ends
    create(
        &ctx,
        &sh_pod("logs", "for i in 1 2 3; do echo line$i; sleep 0.3; done"),
    )
    .await;
    wait_phase(&ctx, "logs", &["Running", "Succeeded"]).await;
    let lines: Vec<String> = pods
        .log_stream(
            "logs",
            &LogParams {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .lines()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(lines, ["line1", "line2", "line3"]);
}

#[tokio::test]
async fn empty_dir_secret_volume_readiness_and_termination() {
    let ctx = setup().await;
    let pods: Api<Pod> = ctx.api();
    let secrets: Api<Secret> = ctx.api();
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "vol"}, "stringData": {"a": "alpha", "b": "beta"}}),
    )
    .unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "vols"}, "spec": {"restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "volumes": [{"name": "shared", "emptyDir": {}},
                    {"name": "sec", "secret": {"secretName": "vol", "items": [{"key": "a", "path": "dir/a.txt", "mode": 0o600}]}}],
        "initContainers": [{"name": "init", "image": busybox(), "imagePullPolicy": "Never",
            "command": ["sh", "-c", "echo from-init > /shared/x"], "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}],
        "containers": [{"name": "app", "image": busybox(), "imagePullPolicy": "Never",
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "vol", "key": "b"}}}],
            "command": ["sh", "-c", "sleep 1000"],
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
            "volumeMounts": [{"name": "shared", "mountPath": "/data"}, {"name": "sec", "mountPath": "/etc/sec"}]}]}}))
    .unwrap();
    create(&ctx, &pod).await;
    let running = wait_phase(&ctx, "vols", &["Running"]).await;
    assert_eq!(
        running["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    let (out, _, _) = exec(&pods, "vols", &["sh", "-c", "cat /data/x; cat /etc/sec/dir/a.txt; echo; stat -c %a /etc/sec/dir/a.txt; ls /etc/sec; echo $TOKEN"]).await;
    assert_eq!(out, "from-init\nalpha\n600\ndir\nbeta\n");
    // not ready until the probe passes
    let p = pods.get("vols").await.unwrap();
    let ready = |p: &Pod| {
        p.status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    };
    assert!(!ready(&p));
    exec(&pods, "vols", &["touch", "/tmp/ready"]).await;
    ctx.sim
        .wait_for_pod(&ctx.ns, "vols", Duration::from_secs(20), |p| {
            let conds = p["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            conds
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                .then_some(Ok(()))
        })
        .await
        .unwrap();
    assert!(
        pods.get("vols")
            .await
            .unwrap()
            .status
            .unwrap()
            .container_statuses
            .unwrap()[0]
            .ready
    );
    // graceful delete: the object stays with a deletionTimestamp, then goes
    let r = pods.delete("vols", &DeleteParams::default()).await.unwrap();
    assert!(r.left().unwrap().metadata.deletion_timestamp.is_some());
    ctx.sim
        .wait_for_pod(&ctx.ns, "vols", Duration::from_secs(30), |p| {
            p.is_null().then_some(Ok(()))
        })
        .await
        .unwrap();

    // termination message + exit code of a failed pod
    create(
        &ctx,
        &sh_pod("fail", "echo bad-digest > /dev/termination-log; exit 3"),
    )
    .await;
    let done = wait_phase(&ctx, "fail", &["Failed"]).await;
    let t = &done["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (
            t["exitCode"].as_i64(),
            t["reason"].as_str(),
            t["message"].as_str()
        ),
        (Some(3), Some("Error"), Some("bad-digest\n"))
    );
}

fn dockerconfig(registry: &str, user: &str, pw: &str) -> Secret {
    let cfg = json!({"auths": {registry: {"username": user, "password": pw}}});
    serde_json::from_value(json!({"metadata": {"name": format!("pull-{}", if pw.is_empty() { "bad" } else { "good" })},
        "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": cfg.to_string()}}))
    .unwrap()
}

#[tokio::test]
async fn pulls_with_and_without_credentials() {
    let ctx = setup().await;
    let secrets: Api<Secret> = ctx.api();
    let env = &ctx.env;
    secrets
        .create(
            &PostParams::default(),
            &dockerconfig(&env.auth_registry, &env.auth_user, &env.auth_password),
        )
        .await
        .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &dockerconfig(&env.auth_registry, &env.auth_user, ""),
        )
        .await
        .unwrap();
    // a tag unique to this run so the engine must really pull
    let image = env.auth_image(testenv::Image::Busybox);
    let pod_with = |name: &str, secret: Option<&str>| -> Pod {
        let mut v = json!({"metadata": {"name": name}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": image, "imagePullPolicy": "Always", "command": ["true"]}]}});
        if let Some(s) = secret {
            v["spec"]["imagePullSecrets"] = json!([{"name": s}]);
        }
        serde_json::from_value(v).unwrap()
    };
    create(&ctx, &pod_with("good", Some("pull-good"))).await;
    create(&ctx, &pod_with("bad", Some("pull-bad"))).await;
    create(&ctx, &pod_with("none", None)).await;
    wait_phase(&ctx, "good", &["Succeeded"]).await;
    for name in ["bad", "none"] {
        ctx.sim
            .wait_for_pod(&ctx.ns, name, Duration::from_secs(30), |p| {
                let r = p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    .as_str()
                    .unwrap_or("");
                (r == "ErrImagePull" || r == "ImagePullBackOff").then_some(Ok(()))
            })
            .await
            .unwrap();
        assert_eq!(
            wait_phase(&ctx, name, &["Pending"]).await["status"]["phase"],
            "Pending"
        );
    }
}

#[tokio::test]
async fn pvc_bound_to_a_host_directory() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let ctx = setup().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("from-host"), b"hi").unwrap();
    ctx.sim.set_claim_dir(&ctx.ns, "work", dir.path());
    let pvcs: Api<PersistentVolumeClaim> = ctx.api();
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "work"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
    .unwrap();
    pvcs.create(&PostParams::default(), &claim).await.unwrap();
    let phase = pvcs.get("work").await.unwrap().status.unwrap().phase;
    assert_eq!(phase.as_deref(), Some("Bound"));
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "pvc"}, "spec": {"restartPolicy": "Never",
        "volumes": [{"name": "w", "persistentVolumeClaim": {"claimName": "work"}}],
        "containers": [{"name": "main", "image": busybox(), "imagePullPolicy": "Never",
            "command": ["sh", "-c", "cat /w/from-host > /w/from-pod"], "volumeMounts": [{"name": "w", "mountPath": "/w"}]}]}}))
    .unwrap();
    create(&ctx, &pod).await;
    wait_phase(&ctx, "pvc", &["Succeeded"]).await;
    assert_eq!(std::fs::read(dir.path().join("from-pod")).unwrap(), b"hi");
}
