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
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "Docker tier: needs the Docker Engine and the test registries; `cargo xtask ci` runs it"
)]
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
    let digest = manifest_digest(&image("1"), Some(&good), &loopback)
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
    assert_eq!(
        manifest_digest(&plain, None, &loopback).await.unwrap(),
        Some(digest)
    );
    // A tag that is not there.
    assert_eq!(
        manifest_digest(&image("no-such-tag"), Some(&good), &loopback)
            .await
            .unwrap(),
        None
    );
    // Wrong password, no credentials: refused, with the user named and never the password.
    let e = manifest_digest(
        &image("1"),
        Some(&auth(&env.auth_user, "wrong-pw-123")),
        &loopback,
    )
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
    let e = manifest_digest(&image("1"), None, &loopback)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("anonymous"), "{e}");
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let image = ImageLocation::parse(&format!("127.0.0.1:{port}/a/b:c"), loopback).unwrap();
    let e = manifest_digest(&image, None, &loopback).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unreachable { .. }), "{e}");
}

/// A registry that wants a Bearer token from its token service, which wants Basic credentials.
struct TokenRegistry {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

/// The realm the token registry names by default: its own token endpoint on 127.0.0.1.
fn own_realm(port: u16) -> String {
    format!("http://127.0.0.1:{port}/token")
}

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

impl TokenRegistry {
    async fn start() -> Self {
        Self::start_with_realm(own_realm).await
    }

    /// A token registry whose challenge names `realm(port)`.
    async fn start_with_realm(realm: fn(u16) -> String) -> Self {
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
                                    "WWW-Authenticate: Bearer realm=\"{}\",service=\"test-registry\",scope=\"repository:acme/x:pull\"\r\n",
                                    realm(port)
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
        manifest_digest(&reg.image("present"), Some(&good), &loopback)
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
        manifest_digest(&reg.image("absent"), Some(&good), &loopback)
            .await
            .unwrap(),
        None
    );
    let e = manifest_digest(
        &reg.image("present"),
        Some(&auth("robot", "nope")),
        &loopback,
    )
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

#[test]
fn realms_are_followed_over_https_or_to_allowed_plain_http_hosts() {
    let only = |allowed: &'static str| move |h: &str| h == allowed;
    assert!(realm_allowed("https://auth.docker.io/token", &only("x")));
    assert!(realm_allowed(
        "http://10.0.0.5:5000/token",
        &only("10.0.0.5:5000")
    ));
    assert!(realm_allowed("http://reg.local/token", &only("reg.local")));
    assert!(!realm_allowed(
        "http://evil.example/token",
        &only("reg.local")
    ));
    assert!(!realm_allowed(
        "http://reg.local:81/token",
        &only("reg.local:80")
    ));
    assert!(!realm_allowed("ftp://reg.local/token", &only("reg.local")));
    assert!(!realm_allowed("/token", &only("reg.local")));
    assert!(!realm_allowed("not a url", &only("reg.local")));
}

#[tokio::test]
async fn a_plain_http_realm_outside_the_insecure_list_gets_no_secret() {
    // The registry (127.0.0.1:port) is plain HTTP by configuration; its challenge names a
    // realm on another host name (localhost) that is not listed: refused before any request.
    let reg =
        TokenRegistry::start_with_realm(|port| format!("http://localhost:{port}/token")).await;
    let registry = format!("127.0.0.1:{}", reg.port);
    let only_registry = |h: &str| h == registry;
    let e = manifest_digest(
        &reg.image("present"),
        Some(&auth("robot", "s3cret")),
        &only_registry,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, RegistryError::InsecureRealm { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("http://localhost:")
            && msg.contains("REGISTRY_INSECURE")
            && !msg.contains("s3cret"),
        "{msg}"
    );
    let seen = reg.requests.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        1,
        "only the manifest HEAD, never the realm: {seen:#?}"
    );
    assert!(seen[0].starts_with("HEAD "), "{seen:#?}");
    // Listed as insecure, the same realm is followed and the dance succeeds.
    let with_realm = |h: &str| h == registry || h == format!("localhost:{}", reg.port);
    assert_eq!(
        manifest_digest(
            &reg.image("present"),
            Some(&auth("robot", "s3cret")),
            &with_realm
        )
        .await
        .unwrap(),
        Some(DIGEST.to_owned())
    );
}

#[tokio::test]
async fn the_check_as_a_whole_is_bounded() {
    // A registry that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            open.push(sock);
        }
    });
    let image = ImageLocation::parse(&format!("127.0.0.1:{port}/a/b:c"), loopback).unwrap();
    let e = check_within(&image, None, &loopback, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RegistryError::Unreachable { reason, .. } if reason.contains("did not finish within 300ms")),
        "{e}"
    );
    assert_eq!(CHECK_TIMEOUT, Duration::from_secs(30));
    held.abort();
}
