//! Does the registry already have the image? A registry v2 manifest `HEAD` with the
//! credentials of the dockerconfigjson secret: Basic auth when the registry asks for it, and the
//! token dance when it answers `401` with `WWW-Authenticate: Bearer` (ghcr.io, Docker Hub, …).
//! Plain HTTP for loopback and configured insecure registries, HTTPS otherwise.
//!
//! The token realm is named by the registry's answer: it is followed over HTTPS, or over plain
//! HTTP only to a host the admin listed as insecure (or loopback); a plain-HTTP realm anywhere
//! else is refused before anything, the secret above all, is sent there. The whole check is
//! bounded by [`CHECK_TIMEOUT`].

use super::auth::{Challenge, RegistryAuth};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The manifest media types we accept (OCI and Docker, single and multi-platform).
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
/// How long one registry request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the whole check (challenge, token, manifest) may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest token or manifest body read.
const BODY_LIMIT: usize = 4 << 20;

/// The manifest check failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused our credentials (or needs some and we have none).
    #[error(
        "the registry {registry} refused access to {repository} (HTTP {status}) {with}: check the registry secret's credentials"
    )]
    Denied {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The final status.
        status: u16,
        /// With which credentials.
        with: String,
    },
    /// The registry named a token realm we will not send credentials to.
    #[error(
        "the registry {registry} asked for a token from {realm}, which is not HTTPS and not listed in ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_INSECURE: the registry secret is never sent there"
    )]
    InsecureRealm {
        /// The registry host.
        registry: String,
        /// The realm it named.
        realm: String,
    },
    /// The registry could not be reached or answered something unusable.
    #[error("cannot ask {url} whether the image exists: {reason}")]
    Unreachable {
        /// What was requested.
        url: String,
        /// Why it failed.
        reason: String,
    },
}

/// One image in one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLocation {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `host[:port]`.
    pub registry: String,
    /// The repository, e.g. `acme/acme-lint-action`.
    pub repository: String,
    /// The tag.
    pub tag: String,
}

impl ImageLocation {
    /// Splits `host[:port]/repository:tag`.
    pub fn parse(reference: &str, plain_http: impl Fn(&str) -> bool) -> Option<Self> {
        let (registry, rest) = reference.split_once('/')?;
        let (repository, tag) = rest.rsplit_once(':')?;
        if repository.is_empty() || tag.is_empty() || tag.contains('/') {
            return None;
        }
        Some(Self {
            scheme: if plain_http(registry) {
                "http"
            } else {
                "https"
            },
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        })
    }

    /// The manifest URL.
    pub fn manifest_url(&self) -> String {
        format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme, self.registry, self.repository, self.tag
        )
    }
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

fn client() -> HttpClient {
    let provider = rustls::crypto::ring::default_provider();
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(b) => b,
        Err(e) => {
            // No CA certificates on this machine: plain HTTP still works; HTTPS fails with a
            // certificate error naming the registry.
            tracing::debug!("no native CA roots ({e}); HTTPS registries cannot be verified");
            let config = rustls::ClientConfig::builder_with_provider(provider.into())
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default TLS versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(connector)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

async fn send(
    client: &HttpClient,
    method: Method,
    url: &str,
    accept: Option<&str>,
    authorization: Option<&str>,
) -> Result<Answer, RegistryError> {
    let unreachable = |reason: String| RegistryError::Unreachable {
        url: url.to_owned(),
        reason,
    };
    let mut req = Request::builder().method(method.clone()).uri(url);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    if let Some(a) = authorization {
        req = req.header(header::AUTHORIZATION, a);
    }
    let req = req
        .body(Empty::new())
        .map_err(|e| unreachable(e.to_string()))?;
    let work = async {
        let resp = client.request(req).await.map_err(|e| {
            use std::error::Error as _;
            let mut msg = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            unreachable(msg)
        })?;
        let (parts, body) = resp.into_parts();
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            let limited = http_body_util::Limited::new(body, BODY_LIMIT);
            limited
                .collect()
                .await
                .map_err(|e| unreachable(format!("reading the answer: {e}")))?
                .to_bytes()
        };
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| unreachable(format!("no answer within {REQUEST_TIMEOUT:?}")))?
}

/// Asks the registry for the manifest of `image`: `Some(digest)` when it exists, `None` when
/// the registry does not know it. `plain_http` says which hosts (`host[:port]`) may be spoken
/// to over plain HTTP (a token realm included). Bounded by [`CHECK_TIMEOUT`].
pub async fn manifest_digest(
    image: &ImageLocation,
    auth: Option<&RegistryAuth>,
    plain_http: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, RegistryError> {
    check_within(image, auth, plain_http, CHECK_TIMEOUT).await
}

async fn check_within(
    image: &ImageLocation,
    auth: Option<&RegistryAuth>,
    plain_http: &dyn Fn(&str) -> bool,
    limit: Duration,
) -> Result<Option<String>, RegistryError> {
    tokio::time::timeout(limit, check(image, auth, plain_http))
        .await
        .unwrap_or_else(|_| {
            Err(RegistryError::Unreachable {
                url: image.manifest_url(),
                reason: format!("the registry check did not finish within {limit:?}"),
            })
        })
}

/// Whether a token realm may be followed: HTTPS, or plain HTTP to an allowed host.
fn realm_allowed(realm: &str, plain_http: &dyn Fn(&str) -> bool) -> bool {
    let Ok(uri) = realm.parse::<http::Uri>() else {
        return false;
    };
    let Some(authority) = uri.authority() else {
        return false;
    };
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => plain_http(authority.as_str()) || plain_http(authority.host()),
        _ => false,
    }
}

async fn check(
    image: &ImageLocation,
    auth: Option<&RegistryAuth>,
    plain_http: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, RegistryError> {
    let client = client();
    let url = image.manifest_url();
    let mut authorization: Option<String> = None;
    let mut tried_auth = false;
    loop {
        let answer = send(
            &client,
            Method::HEAD,
            &url,
            Some(MANIFEST_TYPES),
            authorization.as_deref(),
        )
        .await?;
        match answer.status {
            StatusCode::OK => {
                return digest_of(&client, &url, &answer, authorization.as_deref())
                    .await
                    .map(Some);
            }
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::UNAUTHORIZED if !tried_auth => {
                tried_auth = true;
                let challenge = answer
                    .headers
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Challenge::parse);
                authorization = match challenge {
                    Some(Challenge::Basic) => auth.map(RegistryAuth::basic_header),
                    Some(Challenge::Bearer { realm, service, .. }) => {
                        if !realm_allowed(&realm, plain_http) {
                            return Err(RegistryError::InsecureRealm {
                                registry: image.registry.clone(),
                                realm,
                            });
                        }
                        let scope = format!("repository:{}:pull", image.repository);
                        Some(token(&client, &realm, service.as_deref(), &scope, auth).await?)
                    }
                    None => None,
                };
                if authorization.is_none() {
                    return Err(denied(image, answer.status, auth));
                }
            }
            s if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN => {
                return Err(denied(image, s, auth));
            }
            other => {
                return Err(RegistryError::Unreachable {
                    url,
                    reason: format!("unexpected answer HTTP {other}"),
                });
            }
        }
    }
}

fn denied(image: &ImageLocation, status: StatusCode, auth: Option<&RegistryAuth>) -> RegistryError {
    RegistryError::Denied {
        registry: image.registry.clone(),
        repository: image.repository.clone(),
        status: status.as_u16(),
        with: match auth {
            Some(a) => format!("to the user {:?} of the registry secret", a.username),
            None => {
                "to anonymous requests (no registry secret, or no entry for this registry in it)"
                    .to_owned()
            }
        },
    }
}

/// The digest from `Docker-Content-Digest`, else the SHA-256 of the manifest itself.
async fn digest_of(
    client: &HttpClient,
    url: &str,
    answer: &Answer,
    authorization: Option<&str>,
) -> Result<String, RegistryError> {
    if let Some(d) = answer
        .headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .filter(|d| super::naming::is_digest(d))
    {
        return Ok(d.to_owned());
    }
    let full = send(
        client,
        Method::GET,
        url,
        Some(MANIFEST_TYPES),
        authorization,
    )
    .await?;
    if full.status != StatusCode::OK {
        return Err(RegistryError::Unreachable {
            url: url.to_owned(),
            reason: format!(
                "HEAD found the manifest but GET answered HTTP {}",
                full.status
            ),
        });
    }
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(&full.body))
    ))
}

/// The token dance: `GET realm?service=…&scope=…` (with Basic credentials when we have them),
/// answered by `{"token": …}` or `{"access_token": …}`.
async fn token(
    client: &HttpClient,
    realm: &str,
    service: Option<&str>,
    scope: &str,
    auth: Option<&RegistryAuth>,
) -> Result<String, RegistryError> {
    let mut url = String::from(realm);
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    for (k, v) in [("service", service), ("scope", Some(scope))] {
        if let Some(v) = v {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&percent_encode(v));
            sep = '&';
        }
    }
    let basic = auth.map(RegistryAuth::basic_header);
    let answer = send(client, Method::GET, &url, None, basic.as_deref()).await?;
    if !answer.status.is_success() {
        return Err(RegistryError::Denied {
            registry: realm.to_owned(),
            repository: scope.to_owned(),
            status: answer.status.as_u16(),
            with: match auth {
                Some(a) => format!(
                    "(token service) to the user {:?} of the registry secret",
                    a.username
                ),
                None => "(token service) to anonymous requests".to_owned(),
            },
        });
    }
    #[derive(serde::Deserialize)]
    struct Token {
        token: Option<String>,
        access_token: Option<String>,
    }
    let t: Token =
        serde_json::from_slice(&answer.body).map_err(|e| RegistryError::Unreachable {
            url: realm.to_owned(),
            reason: format!("the token service answered no token: {e}"),
        })?;
    t.token
        .or(t.access_token)
        .filter(|t| !t.is_empty())
        .map(|t| format!("Bearer {t}"))
        .ok_or_else(|| RegistryError::Unreachable {
            url: realm.to_owned(),
            reason: "the token service answered no token".into(),
        })
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
