//! The kube client, from the kubeconfig named in the settings or the in-cluster service account.

use crate::error::Error;
use crate::settings::{ClusterSource, Settings};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::Path;

const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn connect_error(what: String, source: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Connect {
        what,
        source: Some(Box::new(source)),
    }
}

/// A client and the namespace to work in.
pub async fn connect(settings: &Settings) -> Result<(Client, String), Error> {
    let mut config = match &settings.cluster {
        ClusterSource::Kubeconfig(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                connect_error(format!("cannot read KUBECONFIG {}", path.display()), e)
            })?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| connect_error(format!("KUBECONFIG {}", path.display()), e))?
        }
        ClusterSource::InCluster { host, port } => {
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            let url = format!("https://{host}:{port}")
                .parse()
                .map_err(|e| connect_error(format!("KUBERNETES_SERVICE_HOST {host}"), e))?;
            let sa = Path::new(SERVICE_ACCOUNT);
            let mut config = Config::new(url);
            config.root_cert_file = Some(sa.join("ca.crt"));
            config.auth_info.token_file = Some(sa.join("token").to_string_lossy().into_owned());
            if let Ok(ns) = std::fs::read_to_string(sa.join("namespace")) {
                config.default_namespace = ns.trim().to_owned();
            }
            config
        }
        ClusterSource::None => {
            return Err(Error::Connect {
                what: "KUBECONFIG is not set and the hook is not running in a pod (no KUBERNETES_SERVICE_HOST)"
                    .into(),
                source: None,
            });
        }
    };
    // Retries are the hook's own (bounded, see retry.rs), not kube's 15-attempt default.
    config.default_retry = false;
    let namespace = settings
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| connect_error("the client".into(), e))?;
    Ok((client, namespace))
}
