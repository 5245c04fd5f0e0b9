//! core/v1 Events through the real kube client: what the kubelet records about a pod that
//! cannot pull its image, field selectors, counting repeats, create validation.
#![cfg(feature = "e2e")]

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use kubesim::faults::PullFailure;
use serde_json::json;

use common::*;

#[tokio::test]
async fn the_kubelet_records_warnings_that_clients_can_select() {
    let ctx = setup().await;
    ctx.sim.faults().add_pull_failure(PullFailure {
        namespace: Some(ctx.ns.clone()),
        image: "*hooktest/busybox*".into(),
    });
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "ev"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": ctx.env.image(testenv::Image::Busybox), "imagePullPolicy": "Always", "command": ["true"]}]}}))
    .unwrap();
    let created = create(&ctx, &pod).await;
    ctx.sim
        .wait_for_pod(&ctx.ns, "ev", Duration::from_secs(30), |p| {
            let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
            (w["reason"] == "ImagePullBackOff").then_some(Ok(()))
        })
        .await
        .unwrap();
    let events: Api<Event> = ctx.api();
    let uid = created.metadata.uid.unwrap();
    let lp = ListParams::default().fields(&format!(
        "involvedObject.name=ev,involvedObject.uid={uid},type=Warning,source=kubelet"
    ));
    let list = events.list(&lp).await.unwrap().items;
    let said: Vec<(String, String)> = list
        .iter()
        .map(|e| {
            (
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
            )
        })
        .collect();
    let image = ctx.env.image(testenv::Image::Busybox);
    for (reason, message) in [
        (
            "Failed",
            format!("Failed to pull image {image:?}: kubesim: injected pull failure"),
        ),
        ("Failed", "Error: ErrImagePull".to_owned()),
        ("BackOff", format!("Back-off pulling image {image:?}")),
        ("Failed", "Error: ImagePullBackOff".to_owned()),
    ] {
        assert!(
            said.contains(&(reason.to_owned(), message.clone())),
            "{reason}: {message} in {said:#?}"
        );
    }
    let e = &list[0];
    assert_eq!(e.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(
        e.involved_object.field_path.as_deref(),
        Some("spec.containers{main}")
    );
    assert_eq!(
        e.source.as_ref().unwrap().host.as_deref(),
        Some("kubesim-node")
    );
    // Nothing Normal, nothing about other pods.
    let none = ListParams::default().fields("type=Normal");
    assert!(events.list(&none).await.unwrap().items.is_empty());
    // An unknown field is refused like the apiserver does.
    let bad = ListParams::default().fields("spec.nodeName=x");
    assert!(events.list(&bad).await.is_err());

    // Create: the involved object's namespace must be the event's.
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"name": "mine"},
        "involvedObject": {"kind": "Pod", "name": "ev", "namespace": "elsewhere"},
        "reason": "Test", "message": "hello", "type": "Warning"
    }))
    .unwrap();
    let err = events
        .create(&PostParams::default(), &ev)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message.contains("does not match event.namespace"),
                "{}",
                s.message
            );
        }
        other => panic!("{other}"),
    }
    let mut ok = ev.clone();
    ok.involved_object.namespace = Some(ctx.ns.clone());
    let made = events.create(&PostParams::default(), &ok).await.unwrap();
    assert_eq!(made.count, Some(1));
}
