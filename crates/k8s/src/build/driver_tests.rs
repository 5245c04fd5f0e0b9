//! The build driver against kubesim (whose kubelet performs the Kaniko and crane containers):
//! a cancellation during the build deletes the builder pod and returns at once.

use super::*;
use crate::build::naming::References;
use crate::objects::Cluster;

async fn cluster() -> (Cluster, testenv::TestEnv) {
    let env = testenv::ensure().await.unwrap();
    let sim = kubesim::testing::Sim::shared().await.unwrap();
    let ns = sim.create_namespace().unwrap();
    let kc = kube::config::Kubeconfig::read_from(sim.kubeconfig_path()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    (
        Cluster::new(client, ns, crate::settings::Heartbeat::default()),
        env,
    )
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "Docker tier: needs the Docker Engine (kubesim); `cargo xtask ci` runs it"
)]
async fn a_cancelled_build_deletes_its_pod_and_returns() {
    let (cluster, env) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let df = dir.path().join("Dockerfile");
    std::fs::write(
        &df,
        format!(
            "FROM {}\nRUN sleep 60\n",
            env.image(testenv::Image::Busybox)
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("nonce"), uuid::Uuid::new_v4().to_string()).unwrap();
    let packed = buildctx::digest(&df).unwrap();
    let host = format!("{}/canceltest", env.registry);
    let refs = References::new(&host, &host, "slow", &packed.digest[..32]);
    let settings = BuildSettings::default();
    let name = format!("runner-cancel-kaniko-{}", &packed.digest[..8]);
    let cancel = hooklib::Cancel::new();
    // Cancel once Kaniko runs and has had its context (the RUN sleeps by then).
    let trigger = {
        let (cancel, pods, name) = (cancel.clone(), cluster.pods.clone(), name.clone());
        tokio::spawn(async move {
            loop {
                let running = pods
                    .get_opt(&name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|p| p.status)
                    .and_then(|s| s.init_container_statuses)
                    .into_iter()
                    .flatten()
                    .any(|c| c.state.and_then(|s| s.running).is_some());
                if running {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    cancel.cancel(2);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let result = build(
        &cluster,
        Plan {
            pod: &name,
            runner_pod: "runner-cancel",
            refs: &refs,
            dockerfile_path: &df,
            dockerfile: &packed.dockerfile,
            context_digest: &packed.digest,
            secret: None,
            pull_secret: None,
            owner: None,
            placement: Placement::Anywhere,
            settings: &settings,
            plain_http: true,
            start_timeout: Duration::from_secs(120),
        },
        &cancel,
    )
    .await;
    trigger.await.unwrap();
    assert!(
        matches!(&result, Err(BuildError::Cancelled { pod: Some(p) }) if *p == name),
        "{result:?}"
    );
    assert!(
        cluster.pods.get_opt(&name).await.unwrap().is_none(),
        "the builder pod is gone"
    );
}
