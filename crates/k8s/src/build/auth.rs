//! Registry credentials from a `.dockerconfigjson` document and `WWW-Authenticate` challenges
//! (pure). Passwords travel as [`hooklib::Secret`] and never print.

use base64::Engine;
use hooklib::Secret;

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

impl RegistryAuth {
    /// The `Authorization: Basic …` value.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password.expose());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The `.dockerconfigjson` document is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
    let value: serde_json::Value =
        serde_json::from_slice(doc).map_err(|e| ConfigError(format!("is not JSON ({e})")))?;
    let auths = value
        .get("auths")
        .and_then(|a| a.as_object())
        .ok_or_else(|| ConfigError("has no \"auths\" object".into()))?;
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
            .map_err(|_| {
                ConfigError(format!("has an \"auth\" for {registry} that is not base64"))
            })?;
        let text = String::from_utf8(decoded).map_err(|_| {
            ConfigError(format!("has an \"auth\" for {registry} that is not UTF-8"))
        })?;
        let (u, p) = text.split_once(':').ok_or_else(|| {
            ConfigError(format!(
                "has an \"auth\" for {registry} without user:password"
            ))
        })?;
        return Ok(Some(RegistryAuth {
            username: u.to_owned(),
            password: Secret::new(p),
        }));
    }
    Ok(None)
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=…`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The service parameter.
        service: Option<String>,
        /// The scope the registry suggests.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses the first challenge of the header (RFC 7235 auth-params, quoted or not).
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = header
            .split_once(char::is_whitespace)
            .unwrap_or((header, ""));
        let params = auth_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Self::Basic),
            "bearer" => Some(Self::Bearer {
                realm: get("realm").filter(|r| !r.is_empty())?,
                service: get("service"),
                scope: get("scope"),
            }),
            _ => None,
        }
    }
}

/// `k=v, k="v, with commas", …` → pairs.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((key.trim().to_owned(), value.trim().to_owned()));
        if chars.peek().is_none() {
            return out;
        }
    }
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
        assert!(c.basic_header().starts_with("Basic "));
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
        assert!(
            credentials_for(b"nope", "x")
                .unwrap_err()
                .0
                .contains("not JSON")
        );
        assert!(credentials_for(b"{}", "x").unwrap_err().0.contains("auths"));
        let doc = json!({"auths": {"x": {"auth": "!!"}}}).to_string();
        assert!(
            credentials_for(doc.as_bytes(), "x")
                .unwrap_err()
                .0
                .contains("base64")
        );
        let doc = json!({"auths": {"x": {"auth": b64("nocolon")}}}).to_string();
        assert!(credentials_for(doc.as_bytes(), "x").is_err());
    }

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:acme/x:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: Some("repository:acme/x:pull".into()),
            })
        );
        assert_eq!(
            Challenge::parse(r#"bearer scope="a,b", realm=https://auth.example/t"#),
            Some(Challenge::Bearer {
                realm: "https://auth.example/t".into(),
                service: None,
                scope: Some("a,b".into()),
            })
        );
        assert_eq!(Challenge::parse("Bearer service=x"), None);
        assert_eq!(Challenge::parse("Negotiate abc"), None);
    }
}
