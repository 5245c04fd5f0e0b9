//! Registry credentials from a `.dockerconfigjson` document, and the token realm of a
//! `WWW-Authenticate` challenge (pure). Passwords travel as [`hooklib::Secret`] and never
//! print.

use base64::Engine;
use hooklib::Secret;
use http_auth::parser::ChallengeParser;

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: Secret,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// The `.dockerconfigjson` document is unusable (each message completes "the secret holds a
/// `.dockerconfigjson` that …").
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not a JSON document.
    #[error("is not JSON ({0})")]
    NotJson(#[source] serde_json::Error),
    /// No `auths` map.
    #[error("has no \"auths\" object")]
    NoAuths,
    /// An `auth` value that is not base64.
    #[error("has an \"auth\" for {registry} that is not base64")]
    AuthNotBase64 {
        /// The registry of the entry.
        registry: String,
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// An `auth` value whose bytes are not text.
    #[error("has an \"auth\" for {registry} that is not UTF-8")]
    AuthNotUtf8 {
        /// The registry of the entry.
        registry: String,
    },
    /// An `auth` value without the `:` between user and password.
    #[error("has an \"auth\" for {registry} without user:password")]
    AuthWithoutPassword {
        /// The registry of the entry.
        registry: String,
    },
}

/// `auths` keys name a registry as `host[:port]`, `https://host/v1/`, `http://host/v2/`, …;
/// Docker Hub has several names.
fn normalize(key: &str) -> String {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

/// The credentials for `registry` (`host[:port]`) in a `.dockerconfigjson` document, if any.
pub fn credentials_for(doc: &[u8], registry: &str) -> Result<Option<RegistryAuth>, ConfigError> {
    let value: serde_json::Value = serde_json::from_slice(doc).map_err(ConfigError::NotJson)?;
    let auths = value
        .get("auths")
        .and_then(|a| a.as_object())
        .ok_or(ConfigError::NoAuths)?;
    let wanted = normalize(registry);
    let Some(entry) = auths
        .iter()
        .find(|(k, _)| normalize(k) == wanted)
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    let field = |k: &str| {
        entry
            .get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    if let (Some(u), Some(p)) = (field("username"), field("password")) {
        return Ok(Some(RegistryAuth {
            username: u.to_owned(),
            password: Secret::new(p),
        }));
    }
    if let Some(a) = field("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|source| ConfigError::AuthNotBase64 {
                registry: registry.to_owned(),
                source,
            })?;
        let text = String::from_utf8(decoded).map_err(|_| ConfigError::AuthNotUtf8 {
            registry: registry.to_owned(),
        })?;
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| ConfigError::AuthWithoutPassword {
                registry: registry.to_owned(),
            })?;
        return Ok(Some(RegistryAuth {
            username: u.to_owned(),
            password: Secret::new(p),
        }));
    }
    Ok(None)
}

/// The realm of the first `Bearer` challenge that names one, read with the parser and the rule
/// `oci-client` follows (`http-auth`; a header whose first challenge is `Basic` can still name a
/// realm in a later one): the URL the credentials would be sent to.
pub fn bearer_realm(header: &str) -> Option<String> {
    ChallengeParser::new(header).find_map(|c| {
        let c = c.ok()?;
        if !c.scheme.eq_ignore_ascii_case("Bearer") {
            return None;
        }
        // oci-client keeps the last `realm` parameter of a challenge.
        c.params
            .iter()
            .rfind(|(k, _)| k.eq_ignore_ascii_case("realm"))
            .map(|(_, v)| v.to_unescaped())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn credentials_from_config() {
        let doc = json!({"auths": {
            "127.0.0.1:5556": {"auth": b64("hookuser:pw:with:colons")},
            "http://localhost:5556/v2/": {"username": "u2", "password": "p2"},
            "https://index.docker.io/v1/": {"auth": b64("hub:tok")},
        }})
        .to_string();
        let c = credentials_for(doc.as_bytes(), "127.0.0.1:5556")
            .unwrap()
            .unwrap();
        assert_eq!(c.username, "hookuser");
        assert_eq!(c.password.expose(), "pw:with:colons");
        assert!(!format!("{c:?}").contains("pw:with"), "{c:?}");
        let c = credentials_for(doc.as_bytes(), "localhost:5556")
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.expose()), ("u2", "p2"));
        let c = credentials_for(doc.as_bytes(), "docker.io")
            .unwrap()
            .unwrap();
        assert_eq!(c.username, "hub");
        assert_eq!(credentials_for(doc.as_bytes(), "ghcr.io").unwrap(), None);
    }

    #[test]
    fn bad_configs() {
        let e = credentials_for(b"nope", "x").unwrap_err();
        assert!(e.to_string().starts_with("is not JSON ("), "{e}");
        let e = credentials_for(b"{}", "x").unwrap_err();
        assert_eq!(e.to_string(), "has no \"auths\" object");
        let doc = json!({"auths": {"x": {"auth": "!!"}}}).to_string();
        let e = credentials_for(doc.as_bytes(), "x").unwrap_err();
        assert_eq!(e.to_string(), "has an \"auth\" for x that is not base64");
        let doc = json!({"auths": {"x": {"auth": b64("nocolon")}}}).to_string();
        let e = credentials_for(doc.as_bytes(), "x").unwrap_err();
        assert_eq!(e.to_string(), "has an \"auth\" for x without user:password");
    }

    #[test]
    fn realms() {
        assert_eq!(bearer_realm(r#"Basic realm="Registry Realm""#), None);
        assert_eq!(
            bearer_realm(
                r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:acme/x:pull""#
            )
            .as_deref(),
            Some("https://ghcr.io/token")
        );
        assert_eq!(
            bearer_realm(r#"bearer scope="a,b", realm="https://auth.example/t""#).as_deref(),
            Some("https://auth.example/t")
        );
        assert_eq!(
            bearer_realm(r#"Bearer realm="https://a.example/\"t\"""#).as_deref(),
            Some(r#"https://a.example/"t""#)
        );
        // The realm oci-client would follow, even behind a Basic challenge.
        assert_eq!(
            bearer_realm(r#"Basic realm="r", Bearer realm="http://evil.example/t""#).as_deref(),
            Some("http://evil.example/t")
        );
        assert_eq!(
            bearer_realm(r#"Bearer realm="https://a.example/t", realm="http://b.example/t""#)
                .as_deref(),
            Some("http://b.example/t")
        );
        assert_eq!(bearer_realm("Bearer service=x"), None);
        assert_eq!(bearer_realm("Negotiate abc"), None);
    }
}
