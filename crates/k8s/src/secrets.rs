//! Registry credentials as `kubernetes.io/dockerconfigjson` secrets (pure builders).

use crate::names::TOKEN_ANNOTATION;
use base64::Engine;
use hooklib::Registry;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

/// The key of a dockerconfigjson secret.
pub const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";

/// One registry login, taken from the runner's `registry` object.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The `auths` key: the registry host, or `https://index.docker.io/v1/` for Docker Hub.
    pub server: String,
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: hooklib::Secret,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

impl Credentials {
    /// The credentials of a container, when it has any (a user name or a password).
    pub fn from_registry(registry: Option<&Registry>) -> Option<Self> {
        let r = registry?;
        let username = r.username.clone().unwrap_or_default();
        let password = r.password.clone().unwrap_or_default();
        if username.is_empty() && password.expose().is_empty() {
            return None;
        }
        Some(Self {
            server: r.server().to_owned(),
            username,
            password,
        })
    }

    /// The `.dockerconfigjson` document.
    pub fn docker_config(&self) -> Vec<u8> {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.username,
            self.password.expose()
        ));
        let doc = serde_json::json!({
            "auths": {
                self.server.clone(): {
                    "username": self.username,
                    "password": self.password.expose(),
                    "auth": auth,
                }
            }
        });
        doc.to_string().into_bytes()
    }
}

/// An immutable dockerconfigjson secret named `name` holding `creds`.
pub fn registry_secret(
    name: &str,
    labels: BTreeMap<String, String>,
    token: &str,
    owner: Option<OwnerReference>,
    creds: &Credentials,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                TOKEN_ANNOTATION.to_owned(),
                token.to_owned(),
            )])),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        immutable: Some(true),
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(
            DOCKER_CONFIG_KEY.to_owned(),
            ByteString(creds.docker_config()),
        )])),
        ..Secret::default()
    }
}

/// The distinct credentials of the job container and the services, in order of first use, and
/// for each container (job first, then services) the index of its credentials.
pub fn distinct_credentials<'a>(
    registries: impl IntoIterator<Item = Option<&'a Registry>>,
) -> (Vec<Credentials>, Vec<Option<usize>>) {
    let mut distinct: Vec<Credentials> = Vec::new();
    let index = registries
        .into_iter()
        .map(|r| {
            let c = Credentials::from_registry(r)?;
            Some(match distinct.iter().position(|d| *d == c) {
                Some(i) => i,
                None => {
                    distinct.push(c);
                    distinct.len() - 1
                }
            })
        })
        .collect();
    (distinct, index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(server: Option<&str>, user: &str, pw: &str) -> Registry {
        Registry {
            username: Some(user.into()),
            password: Some(hooklib::Secret::new(pw)),
            server_url: server.map(Into::into),
        }
    }

    #[test]
    fn docker_hub_key_and_auth() {
        let c = Credentials::from_registry(Some(&reg(Some(""), "u", "p"))).unwrap();
        assert_eq!(c.server, "https://index.docker.io/v1/");
        let doc: serde_json::Value = serde_json::from_slice(&c.docker_config()).unwrap();
        assert_eq!(doc["auths"]["https://index.docker.io/v1/"]["auth"], "dTpw");
        assert!(!format!("{c:?}").contains("\"p\""));
        assert_eq!(Credentials::from_registry(Some(&Registry::default())), None);
        assert_eq!(Credentials::from_registry(None), None);
    }

    #[test]
    fn shared_credentials_make_one_secret() {
        let a = reg(Some("127.0.0.1:5556"), "u", "p");
        let b = reg(Some("ghcr.io"), "u", "q");
        let (distinct, index) = distinct_credentials([Some(&a), None, Some(&b), Some(&a.clone())]);
        assert_eq!(distinct.len(), 2);
        assert_eq!(index, [Some(0), None, Some(1), Some(0)]);
    }
}
