//! Every fault knob, observed through the real kube client.
#![cfg(feature = "e2e")]

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use kubesim::KillMode;
use kubesim::faults::{PodDelay, PullFailure, RequestFault, StreamDrop, Unschedulable};
use serde_json::json;
use tokio::io::AsyncReadExt;

use common::*;

#[tokio::test]
async fn start_delay_and_unschedulable() {
    let ctx = setup().await;
    ctx.sim.faults().add_pod_start_delay(PodDelay {
        namespace: Some(ctx.ns.clone()),
        pod: Some("slow*".into()),
        millis: 1500,
    });
    ctx.sim.faults().add_unschedulable(Unschedulable {
        namespace: Some(ctx.ns.clone()),
        pod: Some("unsched".into()),
        seconds: 2,
    });
    let t0 = Instant::now();
    create(&ctx, &sh_pod("slow", "sleep 100")).await;
    create(&ctx, &sh_pod("unsched", "sleep 100")).await;
    ctx.sim
        .wait_for_pod(&ctx.ns, "unsched", Duration::from_secs(20), |p| {
            let c = p["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            c.iter()
                .any(|c| {
                    c["type"] == "PodScheduled"
                        && c["status"] == "False"
                        && c["reason"] == "Unschedulable"
                })
                .then_some(Ok(()))
        })
        .await
        .unwrap();
    let slow = ctx
        .sim
        .store()
        .get(kubesim::store::Kind::Pod, &ctx.ns, "slow")
        .unwrap();
    if t0.elapsed() < Duration::from_millis(1500) {
        assert!(
            slow["status"]["conditions"].is_null(),
            "kubelet acted before the delay: {}",
            slow["status"]
        );
    }
    wait_phase(&ctx, "slow", &["Running"]).await;
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    let p = wait_phase(&ctx, "unsched", &["Running"]).await;
    assert!(t0.elapsed() >= Duration::from_secs(2));
    assert_eq!(p["spec"]["nodeName"], "kubesim-node");
}

#[tokio::test]
async fn injected_pull_failure() {
    let ctx = setup().await;
    ctx.sim.faults().add_pull_failure(PullFailure {
        namespace: Some(ctx.ns.clone()),
        image: "*hooktest/busybox*".into(),
    });
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "pf"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": ctx.env.image(testenv::Image::Busybox), "imagePullPolicy": "Always", "command": ["true"]}]}}))
    .unwrap();
    create(&ctx, &pod).await;
    let msg = ctx
        .sim
        .wait_for_pod(&ctx.ns, "pf", Duration::from_secs(20), |p| {
            let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
            (w["reason"] == "ErrImagePull")
                .then(|| Ok(w["message"].as_str().unwrap_or("").to_string()))
        })
        .await
        .unwrap();
    assert!(msg.contains("injected pull failure"), "{msg}");
    ctx.sim
        .wait_for_pod(&ctx.ns, "pf", Duration::from_secs(20), |p| {
            (p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                == "ImagePullBackOff")
                .then_some(Ok(()))
        })
        .await
        .unwrap();
}

/// `code` for the next `count` `verb` requests on pods in `ns`.
fn pods_fault(ns: &str, verb: &str, code: u16, count: u32) -> RequestFault {
    RequestFault {
        namespace: Some(ns.to_string()),
        verb: verb.into(),
        resource: "pods".into(),
        code,
        count,
        ..Default::default()
    }
}

#[tokio::test]
async fn request_errors_500_and_429() {
    let ctx = setup().await;
    let pods: Api<Pod> = ctx.api();
    let faults = ctx.sim.faults();
    faults.add_request_error(pods_fault(&ctx.ns, "list", 500, 1));
    match pods.list(&Default::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (500, "InternalError")),
        other => panic!("expected 500, got {other:?}"),
    }
    pods.list(&Default::default()).await.unwrap();
    // 429 with Retry-After, seen on the raw response of a client without kube's retry layer
    faults.add_request_error(RequestFault {
        retry_after_seconds: Some(7),
        ..pods_fault(&ctx.ns, "get", 429, 1)
    });
    let kc = kube::config::Kubeconfig::read_from(ctx.sim.kubeconfig_path()).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.default_retry = false;
    let raw = kube::Client::try_from(cfg).unwrap();
    let get = || {
        http::Request::get(format!("/api/v1/namespaces/{}/pods/x", ctx.ns))
            .body(Vec::new())
            .unwrap()
            .map(kube::client::Body::from)
    };
    let resp = raw.send(get()).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(raw.send(get()).await.unwrap().status(), 404);
    // kube's default client honours Retry-After and retries 429s
    faults.add_request_error(RequestFault {
        retry_after_seconds: Some(1),
        ..pods_fault(&ctx.ns, "get", 429, 2)
    });
    let t0 = Instant::now();
    match pods.get("x").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("expected 404 after retries, got {other:?}"),
    }
    assert!(t0.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn faults_over_http_endpoint() {
    let ctx = setup().await;
    // POST adds knobs of every kind (PUT replaces them all)
    let body = json!({
        "requestErrors": [{"namespace": ctx.ns, "verb": "create", "resource": "pods", "code": 500, "count": 1}],
        "logDrops": [{"namespace": ctx.ns, "pod": "nothing-*", "afterBytes": 10, "count": 1}],
    });
    let req = http::Request::post("/kubesim/faults")
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .unwrap();
    let resp = ctx
        .client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let added = ctx.sim.faults().get();
    assert_eq!(
        (added.request_errors.len(), added.log_drops.len()),
        (1, 1),
        "{added:?}"
    );
    let pods: Api<Pod> = ctx.api();
    match pods.create(&Default::default(), &sh_pod("h", "true")).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 500),
        other => panic!("expected 500, got {other:?}"),
    }
    pods.create(&Default::default(), &sh_pod("h", "true"))
        .await
        .unwrap();
}

/// Returns (stdout bytes seen, whether a status arrived). kube's AttachedProcess does not end
/// its stdout reader when the connection breaks, so read in a task and stop once `join` ends.
async fn exec_until_drop(pods: &Api<Pod>, name: &str, cmd: &[&str]) -> (usize, bool) {
    let mut p = pods
        .exec(
            name,
            cmd.to_vec(),
            &AttachParams::default().stdout(true).stderr(false),
        )
        .await
        .unwrap();
    let mut out = p.stdout().unwrap();
    let status = p.take_status().unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen2 = seen.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = out.read(&mut buf).await {
            if n == 0 {
                break;
            }
            seen2.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let st = status.await;
    let _ = p.join().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
    (seen.load(std::sync::atomic::Ordering::SeqCst), st.is_some())
}

#[tokio::test]
async fn stream_drops_after_bytes_and_time() {
    let ctx = setup().await;
    let pods: Api<Pod> = ctx.api();
    create(&ctx, &sh_pod("drop", "sleep 1000")).await;
    wait_phase(&ctx, "drop", &["Running"]).await;
    ctx.sim.faults().add_stream_drop(StreamDrop {
        namespace: Some(ctx.ns.clone()),
        after_bytes: Some(1000),
        after_millis: None,
        count: Some(1),
        command: None,
    });
    let (n, has_status) =
        exec_until_drop(&pods, "drop", &["sh", "-c", "yes | head -c 100000"]).await;
    assert!(n <= 1000, "{n}");
    assert!(!has_status, "a dropped stream must not carry a status");
    ctx.sim.faults().add_stream_drop(StreamDrop {
        namespace: Some(ctx.ns.clone()),
        after_bytes: None,
        after_millis: Some(300),
        count: Some(1),
        command: None,
    });
    let (_, has_status) = exec_until_drop(&pods, "drop", &["sleep", "3"]).await;
    assert!(!has_status);
    // knobs are used up: the next exec completes with a status
    let (n, has_status) =
        exec_until_drop(&pods, "drop", &["sh", "-c", "yes | head -c 100000"]).await;
    assert_eq!((n, has_status), (100000, true));
}

#[tokio::test]
async fn kill_oom_and_evict() {
    let ctx = setup().await;
    create(&ctx, &sh_pod("oom", "sleep 1000")).await;
    create(&ctx, &sh_pod("evict", "sleep 1000")).await;
    wait_phase(&ctx, "oom", &["Running"]).await;
    wait_phase(&ctx, "evict", &["Running"]).await;
    ctx.sim
        .kill_container(&ctx.ns, "oom", Some("main"), KillMode::OOMKilled)
        .await
        .unwrap();
    let p = wait_phase(&ctx, "oom", &["Failed"]).await;
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (t["reason"].as_str(), t["exitCode"].as_i64()),
        (Some("OOMKilled"), Some(137))
    );
    ctx.sim
        .kill_container(&ctx.ns, "evict", None, KillMode::Evicted)
        .await
        .unwrap();
    let p = wait_phase(&ctx, "evict", &["Failed"]).await;
    assert_eq!(p["status"]["reason"], "Evicted");
    let conds = p["status"]["conditions"].as_array().unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "DisruptionTarget" && c["status"] == "True")
    );
}
