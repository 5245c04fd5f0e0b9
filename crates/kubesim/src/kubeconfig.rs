//! The kubeconfig kubesim writes for its clients (bearer token, CA data).

use base64::Engine;
use serde_json::json;

/// Everything a client needs to talk to one simulator.
#[derive(Debug, Clone)]
pub struct KubeconfigData {
    /// `https://127.0.0.1:<port>`
    pub server: String,
    /// PEM of the CA
    pub ca_pem: String,
    /// bearer token
    pub token: String,
    /// default namespace of the context
    pub namespace: String,
}

/// Render the kubeconfig YAML (pure).
pub fn render(d: &KubeconfigData) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(d.ca_pem.as_bytes());
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubesim", "cluster": {
            "server": d.server,
            "certificate-authority-data": ca,
        }}],
        "users": [{"name": "kubesim", "user": {"token": d.token}}],
        "contexts": [{"name": "kubesim", "context": {
            "cluster": "kubesim", "user": "kubesim", "namespace": d.namespace,
        }}],
        "current-context": "kubesim",
        "preferences": {},
    });
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_snapshot() {
        let y = render(&KubeconfigData {
            server: "https://127.0.0.1:6443".into(),
            ca_pem: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n".into(),
            token: "[token]".into(),
            namespace: "default".into(),
        });
        insta::assert_snapshot!(y);
    }
}
