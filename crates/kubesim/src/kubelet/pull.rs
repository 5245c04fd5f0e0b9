//! Image references and pull credentials from `imagePullSecrets` (dockerconfigjson / dockercfg).

use base64::Engine;
use bollard::auth::DockerCredentials;
use serde_json::Value;

/// Registry host of an image reference (`docker.io` for Docker Hub names).
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".to_string(),
    }
}

/// The registry host a docker config `auths` key names (scheme and path dropped, Docker Hub's
/// aliases as `docker.io`).
pub(crate) fn normalize(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

/// The credentials of one docker config `auths` entry for registry `host`: its `username` and
/// `password`, else the `user:password` of its base64 `auth`.
pub(crate) fn entry_credentials(entry: &Value, host: String) -> DockerCredentials {
    let (mut user, mut pass) = (
        entry["username"].as_str().map(str::to_string),
        entry["password"].as_str().map(str::to_string),
    );
    if user.is_none()
        && let Some(a) = entry["auth"].as_str()
        && let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(a)
        && let Some((u, p)) = String::from_utf8_lossy(&dec).split_once(':')
    {
        user = Some(u.to_string());
        pass = Some(p.to_string());
    }
    DockerCredentials {
        username: user,
        password: pass,
        serveraddress: Some(host),
        ..Default::default()
    }
}

/// Credentials for `image` found in the given Secret objects (in order).
pub fn credentials_for(image: &str, secrets: &[Value]) -> Vec<DockerCredentials> {
    let reg = registry_of(image);
    let mut out = Vec::new();
    for s in secrets {
        let data = super::plan::secret_data(s);
        let auths: Value = if let Some(b) = data.get(".dockerconfigjson") {
            serde_json::from_slice::<Value>(b)
                .map(|v| v["auths"].clone())
                .unwrap_or(Value::Null)
        } else if let Some(b) = data.get(".dockercfg") {
            serde_json::from_slice::<Value>(b).unwrap_or(Value::Null)
        } else {
            continue;
        };
        let Some(map) = auths.as_object() else {
            continue;
        };
        for (k, v) in map {
            if normalize(k) != reg {
                continue;
            }
            out.push(entry_credentials(v, reg.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registries() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5556/a/b:1"), "127.0.0.1:5556");
        assert_eq!(registry_of("ghcr.io/x/y"), "ghcr.io");
    }

    #[test]
    fn creds_from_dockerconfigjson() {
        let cfg = json!({"auths": {"http://127.0.0.1:5556/v2/": {"auth": base64::engine::general_purpose::STANDARD.encode("u:p:w")}}});
        let secret = json!({"data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(cfg.to_string())}});
        let c = credentials_for("127.0.0.1:5556/a:1", std::slice::from_ref(&secret));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].username.as_deref(), Some("u"));
        assert_eq!(c[0].password.as_deref(), Some("p:w"));
        assert!(credentials_for("127.0.0.1:5555/a:1", &[secret]).is_empty());
    }
}
