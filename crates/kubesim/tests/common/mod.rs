//! Shared setup: one simulator per test binary, a kube client, a fresh namespace per test.
#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::NamespaceResourceScope;
use kube::{Client, Config};
use kubesim::testing::Sim;
use serde_json::json;

pub struct Ctx {
    pub sim: &'static Sim,
    pub client: Client,
    pub ns: String,
    pub env: testenv::TestEnv,
}

impl Ctx {
    /// The API of `K` in this test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }
}

pub async fn client_for(path: &std::path::Path) -> Client {
    let kc = Kubeconfig::read_from(path).unwrap();
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

pub async fn setup() -> Ctx {
    let env = testenv::ensure().await.expect("testenv");
    let sim = Sim::shared().await.expect("kubesim");
    let client = client_for(sim.kubeconfig_path()).await;
    let ns = sim.create_namespace().unwrap();
    Ctx {
        sim,
        client,
        ns,
        env,
    }
}

pub fn busybox() -> String {
    testenv::local_tag(testenv::Image::Busybox).to_string()
}

/// A pod running `sh -c script` in the local busybox image.
pub fn sh_pod(name: &str, script: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": busybox(), "imagePullPolicy": "Never",
                "command": ["sh", "-c", script]}]}
    }))
    .unwrap()
}

pub async fn create(ctx: &Ctx, pod: &Pod) -> Pod {
    let api: Api<Pod> = ctx.api();
    api.create(&PostParams::default(), pod).await.unwrap()
}

/// Wait (via the store) until the pod's phase is one of `phases`.
pub async fn wait_phase(ctx: &Ctx, name: &str, phases: &[&str]) -> serde_json::Value {
    let phases: Vec<String> = phases.iter().map(|s| s.to_string()).collect();
    ctx.sim
        .wait_for_pod(&ctx.ns, name, Duration::from_secs(60), |p| {
            let ph = p["status"]["phase"].as_str().unwrap_or("");
            if phases.iter().any(|x| x == ph) {
                return Some(Ok(p.clone()));
            }
            (ph == "Failed" || ph == "Succeeded")
                .then(|| Err(anyhow::anyhow!("pod {name} ended early: {}", p["status"])))
        })
        .await
        .unwrap()
}
