//! The manifest check against the real password-protected test registry (Basic auth), and the
//! Bearer token dance against a small token-auth server speaking the registry's protocol on
//! 127.0.0.1 (the Debian registry cannot issue tokens without a PKI; ghcr.io and Docker Hub do
//! exactly this).

use super::*;
use hooklib::Secret;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn loopback(r: &str) -> bool {
    super::super::settings::is_loopback(r)
}

fn auth(user: &str, pw: &str) -> RegistryAuth {
    RegistryAuth {
        username: user.into(),
        password: Secret::new(pw),
    }
}

#[test]
fn locations() {
    let l = ImageLocation::parse("127.0.0.1:5556/ci/acme-x:0123", loopback).unwrap();
    assert_eq!(
        l.manifest_url(),
        "http://127.0.0.1:5556/v2/ci/acme-x/manifests/0123"
    );
    let l = ImageLocation::parse("ghcr.io/acme/acme-x:t", loopback).unwrap();
    assert_eq!(
        l.manifest_url(),
        "https://ghcr.io/v2/acme/acme-x/manifests/t"
    );
    assert_eq!(ImageLocation::parse("ghcr.io/x", loopback), None);
    assert_eq!(ImageLocation::parse("noslash:1", loopback), None);
    assert_eq!(
        percent_encode("repository:a/b:pull"),
        "repository%3Aa%2Fb%3Apull"
    );
}

#[tokio::test]
async fn basic_auth_against_the_real_registry() {
    let env = testenv::ensure().await.unwrap();
    let image = |tag: &str| {
        ImageLocation::parse(
            &format!("{}/{}/busybox:{tag}", env.auth_registry, env.namespace),
            loopback,
        )
        .unwrap()
    };
    let good = auth(&env.auth_user, &env.auth_password);
    let digest = manifest_digest(&image("1"), Some(&good))
        .await
        .unwrap()
        .unwrap();
    assert!(crate::build::naming::is_digest(&digest), "{digest}");
    // The same digest through the plain registry (same image, same manifest).
    let plain = ImageLocation::parse(
        &format!("{}/{}/busybox:1", env.registry, env.namespace),
        loopback,
    )
    .unwrap();
    assert_eq!(manifest_digest(&plain, None).await.unwrap(), Some(digest));
    // A tag that is not there.
    assert_eq!(
        manifest_digest(&image("no-such-tag"), Some(&good))
            .await
            .unwrap(),
        None
    );
    // Wrong password, no credentials: refused, with the user named and never the password.
    let e = manifest_digest(&image("1"), Some(&auth(&env.auth_user, "wrong-pw-123")))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, RegistryError::Denied { status: 401, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("hookuser") && !msg.contains("wrong-pw-123"),
        "{msg}"
    );
    let e = manifest_digest(&image("1"), None).await.unwrap_err();
    assert!(e.to_string().contains("anonymous"), "{e}");
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let image = ImageLocation::parse(&format!("127.0.0.1:{port}/a/b:c"), loopback).unwrap();
    let e = manifest_digest(&image, None).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unreachable { .. }), "{e}");
}

/// A registry that wants a Bearer token from its token service, which wants Basic credentials.
struct TokenRegistry {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

impl TokenRegistry {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    let authz = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("authorization: ")
                                .or(l.strip_prefix("Authorization: "))
                        })
                        .unwrap_or_default()
                        .to_owned();
                    log.lock().unwrap().push(format!("{line} | {authz}"));
                    let basic = format!(
                        "Basic {}",
                        base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            "robot:s3cret"
                        )
                    );
                    let (status, headers, body) = if line.starts_with("GET /token?") {
                        if authz == basic
                            && line.contains("service=test-registry")
                            && line.contains("scope=repository%3Aacme%2Fx%3Apull")
                        {
                            (
                                "200 OK",
                                String::new(),
                                r#"{"access_token":"tok-123"}"#.to_owned(),
                            )
                        } else {
                            ("401 Unauthorized", String::new(), "{}".to_owned())
                        }
                    } else if line.starts_with("HEAD /v2/acme/x/manifests/") {
                        if authz != "Bearer tok-123" {
                            (
                                "401 Unauthorized",
                                format!(
                                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"test-registry\",scope=\"repository:acme/x:pull\"\r\n"
                                ),
                                String::new(),
                            )
                        } else if line.contains("/manifests/present ") {
                            (
                                "200 OK",
                                format!("Docker-Content-Digest: {DIGEST}\r\n"),
                                String::new(),
                            )
                        } else {
                            ("404 Not Found", String::new(), String::new())
                        }
                    } else {
                        ("404 Not Found", String::new(), String::new())
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                        body.len(),
                        if line.starts_with("HEAD") {
                            ""
                        } else {
                            body.as_str()
                        }
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self { port, requests }
    }

    fn image(&self, tag: &str) -> ImageLocation {
        ImageLocation::parse(&format!("127.0.0.1:{}/acme/x:{tag}", self.port), loopback).unwrap()
    }
}

#[tokio::test]
async fn bearer_token_dance() {
    let reg = TokenRegistry::start().await;
    let good = auth("robot", "s3cret");
    assert_eq!(
        manifest_digest(&reg.image("present"), Some(&good))
            .await
            .unwrap(),
        Some(DIGEST.to_owned())
    );
    let seen = reg.requests.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert!(
        seen[0].starts_with("HEAD /v2/acme/x/manifests/present") && seen[0].ends_with("| "),
        "{seen:#?}"
    );
    assert!(
        seen[1].starts_with("GET /token?service=test-registry&scope=repository%3Aacme%2Fx%3Apull"),
        "{seen:#?}"
    );
    assert!(seen[2].ends_with("| Bearer tok-123"), "{seen:#?}");
    assert_eq!(
        manifest_digest(&reg.image("absent"), Some(&good))
            .await
            .unwrap(),
        None
    );
    let e = manifest_digest(&reg.image("present"), Some(&auth("robot", "nope")))
        .await
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::Denied { status: 401, .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("token service") && !e.to_string().contains("nope"),
        "{e}"
    );
}
