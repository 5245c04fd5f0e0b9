//! The effects: creating and deleting the hook's pods and secrets, with retries and
//! recognition of our own objects after an ambiguous create.

use crate::names::TOKEN_ANNOTATION;
use crate::retry::{self, ApiError};
use crate::settings::Heartbeat;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy, WatchEvent, WatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use std::time::Duration;

/// How long a create waits for a terminating namesake to go away.
const NAMESAKE_WAIT: Duration = Duration::from_secs(60);

/// The cluster as the hook uses it: a client, a namespace and typed APIs.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// The namespace of every object.
    pub namespace: String,
    /// Pods in the namespace.
    pub pods: Api<Pod>,
    /// Secrets in the namespace.
    pub secrets: Api<Secret>,
    /// Exec keepalive.
    pub heartbeat: Heartbeat,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// Deletion without grace: the hook's pods hold nothing worth a graceful shutdown.
pub fn delete_now() -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    }
}

fn is_ours<K: Resource>(obj: &K, token: &str) -> bool {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(TOKEN_ANNOTATION))
        .is_some_and(|t| t == token)
}

/// The owner reference naming `pod`.
pub fn owner_of(pod: &Pod) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod.metadata.name.clone()?,
        uid: pod.metadata.uid.clone()?,
        ..OwnerReference::default()
    })
}

impl Cluster {
    /// The cluster view for `namespace`.
    pub fn new(client: Client, namespace: String, heartbeat: Heartbeat) -> Self {
        Self {
            pods: Api::namespaced(client.clone(), &namespace),
            secrets: Api::namespaced(client.clone(), &namespace),
            client,
            namespace,
            heartbeat,
        }
    }

    /// Creates `pod`. A create retried after an ambiguous failure finds its own pod (by the
    /// token annotation); a namesake that is still terminating is waited for.
    pub async fn create_pod(&self, pod: &Pod, token: &str) -> Result<Pod, ApiError> {
        let name = pod.name_any();
        let op = format!("create pod {name}");
        let mut waited = false;
        loop {
            let pp = PostParams::default();
            match retry::api(op.as_str(), || self.pods.create(&pp, pod)).await {
                Ok(p) => return Ok(p),
                Err(e) if e.is_conflict() => {
                    let existing =
                        retry::api(format!("get pod {name}"), || self.pods.get_opt(&name)).await?;
                    match existing {
                        Some(p) if is_ours(&p, token) => return Ok(p),
                        Some(p) if p.metadata.deletion_timestamp.is_some() && !waited => {
                            waited = true;
                            self.wait_deleted(&name, p.resource_version().unwrap_or_default())
                                .await?;
                        }
                        None if !waited => waited = true,
                        _ => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn wait_deleted(&self, name: &str, version: String) -> Result<(), ApiError> {
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(NAMESAKE_WAIT.as_secs() as u32);
        let stream = retry::api(format!("watch pod {name}"), || {
            self.pods.watch(&params, &version)
        })
        .await?;
        let mut stream = std::pin::pin!(stream);
        let _ = tokio::time::timeout(NAMESAKE_WAIT, async {
            while let Some(ev) = stream.next().await {
                if matches!(ev, Ok(WatchEvent::Deleted(_)) | Err(_)) {
                    break;
                }
            }
        })
        .await;
        Ok(())
    }

    /// Creates `secret`, recognising our own after a retried create.
    pub async fn create_secret(&self, secret: &Secret, token: &str) -> Result<Secret, ApiError> {
        let name = secret.name_any();
        let pp = PostParams::default();
        match retry::api(format!("create secret {name}"), || {
            self.secrets.create(&pp, secret)
        })
        .await
        {
            Err(e) if e.is_conflict() => {
                match retry::api(format!("get secret {name}"), || self.secrets.get_opt(&name))
                    .await?
                {
                    Some(s) if is_ours(&s, token) => Ok(s),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Deletes a pod now; a missing pod is fine.
    pub async fn delete_pod(&self, name: &str) -> Result<(), ApiError> {
        let dp = delete_now();
        match retry::api(format!("delete pod {name}"), || self.pods.delete(name, &dp)).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Deletes a secret; a missing secret is fine.
    pub async fn delete_secret(&self, name: &str) -> Result<(), ApiError> {
        let dp = DeleteParams::default();
        match retry::api(format!("delete secret {name}"), || {
            self.secrets.delete(name, &dp)
        })
        .await
        {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Deletes every pod and secret matching `selector`; returns how many of each.
    pub async fn delete_labelled(&self, selector: &str) -> Result<(usize, usize), ApiError> {
        let lp = ListParams::default().labels(selector);
        let (pods, secrets) = tokio::join!(
            retry::api(format!("list pods {selector}"), || self.pods.list(&lp)),
            retry::api(format!("list secrets {selector}"), || self
                .secrets
                .list(&lp)),
        );
        let (pods, secrets) = (pods?, secrets?);
        let pod_names: Vec<String> = pods.items.iter().map(ResourceExt::name_any).collect();
        let secret_names: Vec<String> = secrets.items.iter().map(ResourceExt::name_any).collect();
        let deletions = pod_names
            .iter()
            .map(|n| futures::future::Either::Left(self.delete_pod(n)))
            .chain(
                secret_names
                    .iter()
                    .map(|n| futures::future::Either::Right(self.delete_secret(n))),
            );
        for r in futures::future::join_all(deletions).await {
            r?;
        }
        Ok((pod_names.len(), secret_names.len()))
    }
}
