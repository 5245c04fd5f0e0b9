//! The cluster side of `cargo xtask demo --k8s`: kubesim, a namespace, the runner pod, and the
//! registry secret the Kaniko builds push and pull with (one registry reached as `127.0.0.1` by
//! the builder and as `localhost` by the kubelet, to show separate push and pull hosts).

use anyhow::Context as _;
use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubesim::testing::Sim;
use std::collections::BTreeMap;
use testenv::{Image, TestEnv};

const RUNNER_POD: &str = "demo-runner";
const SECRET: &str = "demo-registry";

/// A running simulator prepared for the demo job.
pub struct Cluster {
    sim: Sim,
    client: kube::Client,
    namespace: String,
    env: TestEnv,
}

impl Cluster {
    pub async fn start(env: &TestEnv) -> anyhow::Result<Self> {
        let sim = Sim::start(Default::default())
            .await
            .context("starting kubesim")?;
        let namespace = sim.create_namespace()?;
        sim.create_runner_pod(&namespace, RUNNER_POD).await?;
        let kc = Kubeconfig::read_from(sim.kubeconfig_path())?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        let client = kube::Client::try_from(config)?;
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", env.auth_user, env.auth_password));
        let auths: serde_json::Map<String, serde_json::Value> =
            [push_registry(env), pull_registry(env)]
                .into_iter()
                .map(|r| (r, serde_json::json!({ "auth": auth })))
                .collect();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(SECRET.into()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".to_owned(),
                ByteString(
                    serde_json::json!({ "auths": auths })
                        .to_string()
                        .into_bytes(),
                ),
            )])),
            ..Default::default()
        };
        Api::<Secret>::namespaced(client.clone(), &namespace)
            .create(&PostParams::default(), &secret)
            .await
            .context("creating the registry secret")?;
        println!(
            "namespace {namespace}, runner pod {RUNNER_POD}, kubeconfig {}",
            sim.kubeconfig_path().display()
        );
        Ok(Self {
            sim,
            client,
            namespace,
            env: env.clone(),
        })
    }

    /// The runner pod's environment for the hook.
    pub fn runner_env(&self) -> Vec<(String, String)> {
        let k = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_";
        vec![
            ("ACTIONS_RUNNER_POD_NAME".into(), RUNNER_POD.into()),
            (
                "ACTIONS_RUNNER_KUBERNETES_NAMESPACE".into(),
                self.namespace.clone(),
            ),
            (
                "KUBECONFIG".into(),
                self.sim.kubeconfig_path().display().to_string(),
            ),
            ("ACTIONS_RUNNER_IMAGE".into(), self.env.image(Image::Runner)),
            (
                format!("{k}REGISTRY_HOST_PUSH"),
                format!("{}/demo", push_registry(&self.env)),
            ),
            (
                format!("{k}REGISTRY_HOST_PULL"),
                format!("{}/demo", pull_registry(&self.env)),
            ),
            (format!("{k}REGISTRY_SECRET_NAME"), SECRET.into()),
        ]
    }

    /// Names of the pods labelled as this runner's (the job's pods).
    pub async fn job_pods(&self) -> anyhow::Result<Vec<String>> {
        let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(
            self.client.clone(),
            &self.namespace,
        )
        .list(&Default::default())
        .await?;
        Ok(pods
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .filter(|n| n != RUNNER_POD)
            .collect())
    }

    pub async fn stop(self) {
        self.sim.shutdown().await;
    }
}

fn push_registry(env: &TestEnv) -> String {
    env.auth_registry.clone()
}

fn pull_registry(env: &TestEnv) -> String {
    env.auth_registry.replace("127.0.0.1", "localhost")
}
