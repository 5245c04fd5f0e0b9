//! The manifest check against the real password-protected test registry (Basic auth), and the
//! Bearer token dance against a small token-auth server speaking the registry's protocol on
//! 127.0.0.1 (the Debian registry cannot issue tokens without a PKI; ghcr.io and Docker Hub do
//! exactly this): the registry client is `oci-client`, the realm check is ours.

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

fn image(reference: &str) -> ImageRef {
    ImageRef::parse(reference).unwrap()
}

#[test]
fn targets() {
    let t = Target::new(&image("127.0.0.1:5556/ci/acme-x:0123"), &loopback);
    assert_eq!(
        t.manifest_url(),
        "http://127.0.0.1:5556/v2/ci/acme-x/manifests/0123"
    );
    assert_eq!(t.base_url(), "http://127.0.0.1:5556/v2/");
    let t = Target::new(&image("ghcr.io/acme/acme-x:t"), &loopback);
    assert_eq!(
        t.manifest_url(),
        "https://ghcr.io/v2/acme/acme-x/manifests/t"
    );
    // Docker Hub is asked under its API host, like the pusher does.
    let t = Target::new(&image("acme/x:1"), &loopback);
    assert_eq!(
        t.manifest_url(),
        "https://index.docker.io/v2/acme/x/manifests/1"
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
        ImageRef::parse(&format!(
            "{}/{}/busybox:{tag}",
            env.auth_registry, env.namespace
        ))
        .unwrap()
    };
    let good = auth(&env.auth_user, &env.auth_password);
    let digest = manifest_digest(&image("1"), Some(&good), &loopback)
        .await
        .unwrap()
        .unwrap();
    assert!(crate::build::naming::is_digest(&digest), "{digest}");
    // The same digest through the plain registry (same image, same manifest).
    let plain = ImageRef::parse(&format!("{}/{}/busybox:1", env.registry, env.namespace)).unwrap();
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
    let image = image(&format!("127.0.0.1:{port}/a/b:c"));
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
        Self::start_with_challenge(move |port| {
            format!(
                "Bearer realm=\"{}\",service=\"test-registry\",scope=\"repository:acme/x:pull\"",
                realm(port)
            )
        })
        .await
    }

    /// A token registry whose `WWW-Authenticate` is `challenge(port)`.
    async fn start_with_challenge(
        challenge: impl Fn(u16) -> String + Send + Sync + 'static,
    ) -> Self {
        let challenge = Arc::new(challenge);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let log = log.clone();
                let challenge = challenge.clone();
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
                    } else if line.starts_with("GET /v2/ ")
                        || line.starts_with("HEAD /v2/acme/x/manifests/")
                        || line.starts_with("GET /v2/acme/x/manifests/")
                    {
                        if authz != "Bearer tok-123" {
                            (
                                "401 Unauthorized",
                                format!("WWW-Authenticate: {}\r\n", challenge(port)),
                                String::new(),
                            )
                        } else if line.starts_with("GET /v2/ ") {
                            ("200 OK", String::new(), "{}".to_owned())
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

    fn image(&self, tag: &str) -> ImageRef {
        image(&format!("127.0.0.1:{}/acme/x:{tag}", self.port))
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
    assert_eq!(seen.len(), 4, "{seen:#?}");
    // Our challenge probe, then oci-client's: both anonymous.
    for probe in &seen[..2] {
        assert_eq!(probe, "GET /v2/ HTTP/1.1 | ", "{seen:#?}");
    }
    // The token request carries the Basic credentials (the server answers nothing else).
    assert!(
        seen[2].starts_with("GET /token?")
            && seen[2].contains("service=test-registry")
            && seen[2].contains("scope=repository%3Aacme%2Fx%3Apull")
            && seen[2].ends_with("| Basic cm9ib3Q6czNjcmV0"),
        "{seen:#?}"
    );
    assert!(
        seen[3].starts_with("HEAD /v2/acme/x/manifests/present ")
            && seen[3].ends_with("| Bearer tok-123"),
        "{seen:#?}"
    );
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
        matches!(&e, RegistryError::TokenDenied { realm, .. } if *realm == own_realm(reg.port)),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("token service") && msg.contains("\"robot\"") && !msg.contains("nope"),
        "{msg}"
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

/// The registry (127.0.0.1:port) is plain HTTP by configuration; its challenge names a realm
/// on another host name (`localhost`) that is not listed: refused before any request to it,
/// the secret never sent. Listed as insecure, the same realm is followed and the dance succeeds
/// (so the refusal was the check's).
async fn the_unlisted_realm_is_refused_then_followed_once_listed(reg: TokenRegistry) {
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
        seen,
        ["GET /v2/ HTTP/1.1 | "],
        "only the challenge probe, never the realm"
    );
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
async fn a_plain_http_realm_outside_the_insecure_list_gets_no_secret() {
    let reg =
        TokenRegistry::start_with_realm(|port| format!("http://localhost:{port}/token")).await;
    the_unlisted_realm_is_refused_then_followed_once_listed(reg).await;
}

#[tokio::test]
async fn a_plain_http_realm_behind_a_basic_challenge_gets_no_secret() {
    // oci-client follows the first Bearer challenge of the header, wherever it is: so does the
    // check in front of it.
    let reg = TokenRegistry::start_with_challenge(|port| {
        format!(
            "Basic realm=\"registry\", Bearer realm=\"http://localhost:{port}/token\",service=\"test-registry\""
        )
    })
    .await;
    the_unlisted_realm_is_refused_then_followed_once_listed(reg).await;
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
    let image = image(&format!("127.0.0.1:{port}/a/b:c"));
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
