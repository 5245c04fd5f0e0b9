//! API server behaviour through the real kube client: auth, discovery, CRUD, error codes,
//! selectors, watch order, secrets, access reviews, ownerReference GC.
#![cfg(feature = "e2e")]

mod common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::core::Status;
use kubesim::DenyRule;
use serde_json::json;

use common::*;

fn api_err(e: kube::Error) -> Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn version_and_discovery() {
    let ctx = setup().await;
    let v = ctx.client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let d = kube::discovery::Discovery::new(ctx.client.clone())
        .run()
        .await
        .unwrap();
    assert!(d.groups().any(|g| g.name() == "authorization.k8s.io"));
    let core = d.get("").unwrap();
    assert!(
        core.recommended_resources()
            .iter()
            .any(|(r, _)| r.plural == "pods")
    );
}

#[tokio::test]
async fn wrong_or_missing_token_is_401() {
    let ctx = setup().await;
    let kc = ctx.sim.kubeconfig();
    for token in [Some("wrong"), None] {
        let mut cfg = kube::Config::new(kc.server.parse().unwrap());
        cfg.root_cert = Some(vec![rustls_pemfile_der(&kc.ca_pem)]);
        cfg.auth_info.token = token.map(|t| t.to_string().into());
        let client = kube::Client::try_from(cfg).unwrap();
        let api: Api<Pod> = Api::namespaced(client, &ctx.ns);
        let e = api_err(api.list(&ListParams::default()).await.unwrap_err());
        assert_eq!(
            (e.code, e.reason.as_str(), e.message.as_str()),
            (401, "Unauthorized", "Unauthorized")
        );
    }
}

fn rustls_pemfile_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

#[tokio::test]
async fn crud_and_error_codes() {
    let ctx = setup().await;
    let pods: Api<Pod> = ctx.api();
    // 404
    let e = api_err(pods.get("nope").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, "pods \"nope\" not found");
    // create + 409
    let p = sh_pod("crud", "sleep 1000");
    let created = pods.create(&PostParams::default(), &p).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert_eq!(
        created.spec.as_ref().unwrap().dns_policy.as_deref(),
        Some("ClusterFirst")
    );
    let e = api_err(pods.create(&PostParams::default(), &p).await.unwrap_err());
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (409, "AlreadyExists", "pods \"crud\" already exists")
    );
    // 422 with field causes
    let bad: Pod = serde_json::from_value(
        json!({"metadata": {"name": "Bad_Name"}, "spec": {"containers": [
        {"name": "a", "image": "x:1"}, {"name": "a", "image": ""}]}}),
    )
    .unwrap();
    let e = api_err(pods.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message.starts_with(
            "Pod \"Bad_Name\" is invalid: [metadata.name: Invalid value: \"Bad_Name\""
        ),
        "{}",
        e.message
    );
    // namespace missing -> 404 namespaces
    let other: Api<Pod> = Api::namespaced(ctx.client.clone(), "no-such-ns");
    let e = api_err(other.create(&PostParams::default(), &p).await.unwrap_err());
    assert_eq!(e.message, "namespaces \"no-such-ns\" not found");
    // namespaces get/create
    let nss: Api<Namespace> = Api::all(ctx.client.clone());
    let phase = nss.get(&ctx.ns).await.unwrap().status.unwrap().phase;
    assert_eq!(phase.as_deref(), Some("Active"));
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "Not_A_Label"}})).unwrap();
    assert_eq!(
        api_err(nss.create(&PostParams::default(), &ns).await.unwrap_err()).code,
        422
    );
    // selectors
    let mut labelled = sh_pod("labelled", "sleep 1000");
    labelled.metadata.labels = Some([("role".to_string(), "x".to_string())].into());
    pods.create(&PostParams::default(), &labelled)
        .await
        .unwrap();
    let l = pods
        .list(&ListParams::default().labels("role=x"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    let l = pods
        .list(&ListParams::default().fields("metadata.name=crud"))
        .await
        .unwrap();
    assert_eq!(l.items[0].metadata.name.as_deref(), Some("crud"));
    let e = api_err(
        pods.list(&ListParams::default().fields("spec.bogus=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "field label not supported: spec.bogus")
    );
    wait_phase(&ctx, "crud", &["Running"]).await;
    let l = pods
        .list(&ListParams::default().fields("status.phase=Running,metadata.name=crud"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    // delete with grace period 0, deletecollection by label
    pods.delete("crud", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let deleted = pods
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default().labels("role=x"),
        )
        .await
        .unwrap();
    assert_eq!(deleted.left().unwrap().items.len(), 1);
    ctx.sim
        .wait_for_pod(&ctx.ns, "crud", Duration::from_secs(30), |p| {
            p.is_null().then_some(Ok(()))
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn watch_event_order_and_resume() {
    let ctx = setup().await;
    let pods: Api<Pod> = ctx.api();
    let list = pods.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let watch_w = |timeout: u32| {
        let params = WatchParams::default()
            .fields("metadata.name=w")
            .timeout(timeout);
        let (pods, rv) = (pods.clone(), rv.clone());
        async move { pods.watch(&params, &rv).await.unwrap() }
    };
    let mut stream = watch_w(60).await.boxed();
    pods.create(&PostParams::default(), &sh_pod("w", "exit 0"))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    let mut phases = Vec::new();
    let mut last_rv = 0u64;
    while let Some(ev) = stream.try_next().await.unwrap() {
        let (k, p) = match ev {
            WatchEvent::Added(p) => ("ADDED", p),
            WatchEvent::Modified(p) => ("MODIFIED", p),
            WatchEvent::Deleted(p) => ("DELETED", p),
            WatchEvent::Bookmark(_) => continue,
            other => panic!("unexpected {other:?}"),
        };
        let this_rv: u64 = p
            .metadata
            .resource_version
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        assert!(this_rv > last_rv, "resourceVersions must grow");
        last_rv = this_rv;
        kinds.push(k);
        let phase = p.status.and_then(|s| s.phase).unwrap_or_default();
        if phases.last() != Some(&phase) {
            phases.push(phase.clone());
        }
        if phase == "Succeeded" {
            break;
        }
    }
    assert_eq!(kinds[0], "ADDED");
    assert!(kinds[1..].iter().all(|k| *k == "MODIFIED"));
    assert_eq!(phases.first().map(String::as_str), Some("Pending"));
    assert_eq!(phases.last().map(String::as_str), Some("Succeeded"));
    // resume from the first event's rv: replays the same later events
    let resumed = watch_w(1).await;
    let replay: Vec<WatchEvent<Pod>> = resumed
        .try_filter(|e| futures::future::ready(!matches!(e, WatchEvent::Bookmark(_))))
        .try_collect()
        .await
        .unwrap();
    assert!(
        replay.len() >= kinds.len(),
        "{} < {}",
        replay.len(),
        kinds.len()
    );
    assert!(matches!(replay[0], WatchEvent::Added(_)));
}

#[tokio::test]
async fn watch_from_compacted_rv_is_410() {
    let _env = testenv::ensure().await.unwrap();
    let sim = kubesim::testing::Sim::start(kubesim::SimConfig {
        watch_history: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = client_for(sim.kubeconfig_path()).await;
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    for i in 0..6 {
        let s: Secret =
            serde_json::from_value(json!({"metadata": {"name": format!("s{i}")}})).unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    let mut w = secrets
        .watch(&WatchParams::default(), "2")
        .await
        .unwrap()
        .boxed();
    match w.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn secrets_and_immutability() {
    let ctx = setup().await;
    let secrets: Api<Secret> = ctx.api();
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": "creds", "labels": {"k": "v"}},
        "stringData": {"token": "abc"}, "immutable": true}))
        .unwrap();
    let created = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(created.data.as_ref().unwrap()["token"].0, b"abc");
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    let mut changed = created.clone();
    changed
        .data
        .as_mut()
        .unwrap()
        .insert("token".into(), k8s_openapi::ByteString(b"xyz".to_vec()));
    let refused = |s: Secret| {
        let secrets = secrets.clone();
        async move {
            let r = secrets.replace("creds", &PostParams::default(), &s).await;
            api_err(r.unwrap_err())
        }
    };
    let e = refused(changed).await;
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        e.message,
        "Secret \"creds\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    // stale resourceVersion -> 409 Conflict
    let mut relabel = created.clone();
    relabel.metadata.labels = Some([("k".to_string(), "w".to_string())].into());
    secrets
        .replace("creds", &PostParams::default(), &relabel)
        .await
        .unwrap();
    let e = refused(relabel).await;
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        secrets
            .list(&ListParams::default().labels("k=w"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    secrets
        .delete("creds", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_err(secrets.get("creds").await.unwrap_err()).code, 404);
    secrets.create(&PostParams::default(), &s).await.unwrap();
    let gone = secrets
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    assert_eq!(gone.left().unwrap().items.len(), 1);
}

#[tokio::test]
async fn access_reviews_and_deny_rules() {
    let ctx = setup().await;
    let review = |verb: &str, resource: &str, sub: Option<&str>| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ctx.ns.clone()),
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                subresource: sub.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let ssar: Api<SelfSubjectAccessReview> = Api::all(ctx.client.clone());
    let allowed = |verb: &str, resource: &str, sub: Option<&str>| {
        let (ssar, review) = (ssar.clone(), review(verb, resource, sub));
        async move {
            let r = ssar.create(&PostParams::default(), &review).await;
            r.unwrap().status.unwrap().allowed
        }
    };
    assert!(allowed("create", "pods", Some("exec")).await);
    ctx.sim.authz().deny(DenyRule {
        verb: "create".into(),
        group: "*".into(),
        resource: "pods".into(),
        subresource: Some("exec".into()),
        namespace: Some(ctx.ns.clone()),
    });
    ctx.sim.authz().deny(DenyRule {
        verb: "list".into(),
        group: "*".into(),
        resource: "secrets".into(),
        subresource: None,
        namespace: Some(ctx.ns.clone()),
    });
    assert!(!allowed("create", "pods", Some("exec")).await);
    assert!(allowed("create", "pods", None).await);
    let secrets: Api<Secret> = ctx.api();
    let e = api_err(secrets.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert!(
        e.message
            .contains("cannot list resource \"secrets\" in API group \"\" in the namespace"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn owner_reference_garbage_collection() {
    let ctx = setup().await;
    let pods: Api<Pod> = ctx.api();
    let secrets: Api<Secret> = ctx.api();
    let owner = pods
        .create(&PostParams::default(), &sh_pod("owner", "sleep 1000"))
        .await
        .unwrap();
    let oref = json!([{"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": owner.metadata.uid.unwrap()}]);
    let dep_pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": "dep", "ownerReferences": oref},
        "spec": sh_pod("x", "sleep 1000").spec}))
        .unwrap();
    pods.create(&PostParams::default(), &dep_pod).await.unwrap();
    let dep_secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "dep-s", "ownerReferences": oref}}))
            .unwrap();
    secrets
        .create(&PostParams::default(), &dep_secret)
        .await
        .unwrap();
    wait_phase(&ctx, "dep", &["Running"]).await;
    pods.delete("owner", &DeleteParams::default())
        .await
        .unwrap();
    for name in ["owner", "dep"] {
        ctx.sim
            .wait_for_pod(&ctx.ns, name, Duration::from_secs(30), |p| {
                p.is_null().then_some(Ok(()))
            })
            .await
            .unwrap();
    }
    assert_eq!(api_err(secrets.get("dep-s").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn namespace_deletion_removes_its_contents() {
    let ctx = setup().await;
    let pods: Api<Pod> = ctx.api();
    let secrets: Api<Secret> = ctx.api();
    pods.create(&PostParams::default(), &sh_pod("p", "sleep 1000"))
        .await
        .unwrap();
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
    wait_phase(&ctx, "p", &["Running"]).await;
    let nss: Api<Namespace> = Api::all(ctx.client.clone());
    let r = nss.delete(&ctx.ns, &DeleteParams::default()).await.unwrap();
    let ns = r.left().unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    for _ in 0..300 {
        if matches!(nss.get(&ctx.ns).await, Err(kube::Error::Api(s)) if s.code == 404) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(api_err(nss.get(&ctx.ns).await.unwrap_err()).code, 404);
    assert!(
        ctx.sim
            .store()
            .get(kubesim::store::Kind::Pod, &ctx.ns, "p")
            .is_none()
    );
    assert!(
        ctx.sim
            .store()
            .get(kubesim::store::Kind::Secret, &ctx.ns, "s")
            .is_none()
    );
}

#[tokio::test]
async fn missing_sandbox_image_is_a_clear_error() {
    let err = kubesim::testing::Sim::start(kubesim::SimConfig {
        sandbox_image: "kubesim-no-such-image:0".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"kubesim-no-such-image:0\" is not in the local Docker engine"),
        "{err}"
    );
}
