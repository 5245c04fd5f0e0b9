//! Does the registry already have the image? A registry v2 manifest `HEAD` (then `GET` when the
//! registry names no digest) with the credentials of the dockerconfigjson secret, done by
//! `oci-client` (the ORAS project's registry client): Basic auth when the registry asks for it,
//! the token dance when it answers with `WWW-Authenticate: Bearer` (ghcr.io, Docker Hub, …).
//! Plain HTTP for loopback and configured insecure registries, HTTPS otherwise.
//!
//! The token realm is named by the registry's answer, and `oci-client` sends the credentials to
//! whatever realm it is named. So the hook asks first: one `GET /v2/` (the request
//! `oci-client` makes to find the challenge), and the realm it names is followed only over
//! HTTPS, or over plain HTTP to a host the admin listed as insecure (or loopback); anything
//! else is refused before anything, the secret above all, is sent there ([`realm_allowed`]).
//! The challenge is read with the parser `oci-client` uses, so both see the same realm.
//! `oci-client` then asks for the challenge once more itself: a registry that answered the two
//! requests differently could name it another realm, which gives it nothing it does not have
//! already (it may name an HTTPS realm of its choosing, which the rule allows). With a token,
//! the manifest is asked by a client holding only that token. The whole check is bounded by
//! [`CHECK_TIMEOUT`]; `oci-client` reads answers without a size cap, within that bound.

use super::auth::{RegistryAuth, bearer_realm};
use hooklib::ImageRef;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth as OciAuth;
use oci_client::{Client, Reference, RegistryOperation};
use std::time::Duration;

/// How long one registry request may take to connect, and then between two reads.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the whole check (challenge, token, manifest) may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// The registry's token service refused our credentials.
    #[error(
        "the token service {realm} of the registry {registry} refused a pull token for {repository} {with}: check the registry secret's credentials"
    )]
    TokenDenied {
        /// The registry host.
        registry: String,
        /// The token service.
        realm: String,
        /// The repository.
        repository: String,
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

/// Asks the registry for the manifest of `image` (a tag): `Some(digest)` when it exists,
/// `None` when the registry does not know it. `plain_http` says which hosts (`host[:port]`)
/// may be spoken to over plain HTTP (a token realm included). Bounded by [`CHECK_TIMEOUT`].
pub async fn manifest_digest(
    image: &ImageRef,
    auth: Option<&RegistryAuth>,
    plain_http: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, RegistryError> {
    check_within(image, auth, plain_http, CHECK_TIMEOUT).await
}

async fn check_within(
    image: &ImageRef,
    auth: Option<&RegistryAuth>,
    plain_http: &dyn Fn(&str) -> bool,
    limit: Duration,
) -> Result<Option<String>, RegistryError> {
    let target = Target::new(image, plain_http);
    tokio::time::timeout(limit, check(&target, auth, plain_http))
        .await
        .unwrap_or_else(|_| {
            Err(RegistryError::Unreachable {
                url: target.manifest_url(),
                reason: format!("the registry check did not finish within {limit:?}"),
            })
        })
}

/// The image as `oci-client` addresses it, and the scheme its registry is spoken to with.
struct Target {
    reference: Reference,
    scheme: &'static str,
}

impl Target {
    fn new(image: &ImageRef, plain_http: &dyn Fn(&str) -> bool) -> Self {
        let (registry, path) = (image.registry().to_owned(), image.path().to_owned());
        let reference = match (image.tag_or_latest(), image.digest()) {
            (Some(t), None) => Reference::with_tag(registry, path, t.to_owned()),
            (None, Some(d)) => Reference::with_digest(registry, path, d.to_owned()),
            (Some(t), Some(d)) => {
                Reference::with_tag_and_digest(registry, path, t.to_owned(), d.to_owned())
            }
            (None, None) => unreachable!("tag_or_latest names a tag when there is no digest"),
        };
        let scheme = if plain_http(reference.resolve_registry()) || plain_http(image.registry()) {
            "http"
        } else {
            "https"
        };
        Self { reference, scheme }
    }

    fn registry(&self) -> &str {
        self.reference.resolve_registry()
    }

    fn base_url(&self) -> String {
        format!("{}://{}/v2/", self.scheme, self.registry())
    }

    fn manifest_url(&self) -> String {
        let r = &self.reference;
        let what = r.digest().or(r.tag()).unwrap_or("latest");
        format!("{}{}/manifests/{what}", self.base_url(), r.repository())
    }

    fn client(&self) -> Result<Client, RegistryError> {
        let protocol = match self.scheme {
            "http" => ClientProtocol::HttpsExcept(vec![self.registry().to_owned()]),
            _ => ClientProtocol::Https,
        };
        Client::try_from(ClientConfig {
            protocol,
            connect_timeout: Some(REQUEST_TIMEOUT),
            read_timeout: Some(REQUEST_TIMEOUT),
            platform_resolver: None,
            ..ClientConfig::default()
        })
        .map_err(|e| self.unreachable(&e))
    }

    fn unreachable(&self, e: &(dyn std::error::Error + 'static)) -> RegistryError {
        RegistryError::Unreachable {
            url: self.manifest_url(),
            reason: hooklib::joblog::with_causes(e),
        }
    }
}

/// TLS through rustls with the ring provider (reqwest is built without a provider of its
/// own): installed once for the process, a no-op when one is installed already.
fn crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
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

/// The decision on the registry's challenge (`WWW-Authenticate` of `GET /v2/`): `Ok` when it
/// names no token realm or one [`realm_allowed`] lets us follow.
fn guard(
    registry: &str,
    challenge: Option<&str>,
    plain_http: &dyn Fn(&str) -> bool,
) -> Result<(), RegistryError> {
    match challenge.and_then(bearer_realm) {
        Some(realm) if !realm_allowed(&realm, plain_http) => Err(RegistryError::InsecureRealm {
            registry: registry.to_owned(),
            realm,
        }),
        _ => Ok(()),
    }
}

/// The registry's challenge: the first `WWW-Authenticate` of `GET /v2/`, as `oci-client`
/// reads it.
async fn challenge(target: &Target) -> Result<Option<String>, RegistryError> {
    let http = reqwest::Client::builder()
        .connect_timeout(REQUEST_TIMEOUT)
        .read_timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| target.unreachable(&e))?;
    let answer = http
        .get(target.base_url())
        .send()
        .await
        .map_err(|e| target.unreachable(&e))?;
    Ok(answer
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned))
}

async fn check(
    target: &Target,
    auth: Option<&RegistryAuth>,
    plain_http: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, RegistryError> {
    crypto_provider();
    let challenge = challenge(target).await?;
    guard(target.registry(), challenge.as_deref(), plain_http)?;
    let credentials = auth.map_or(OciAuth::Anonymous, |a| {
        OciAuth::Basic(a.username.clone(), a.password.expose().to_owned())
    });
    let client = target.client()?;
    let token = client
        .auth(&target.reference, &credentials, RegistryOperation::Pull)
        .await
        .map_err(|e| token_error(target, challenge.as_deref(), auth, e))?;
    // With a token, the manifest is asked by a client that holds the token only, so no second
    // token request can go to a realm we did not check; with Basic the credentials are cached
    // for the registry itself.
    let (client, credentials) = match token {
        Some(t) => (target.client()?, OciAuth::Bearer(t)),
        None => (client, credentials),
    };
    match client
        .fetch_manifest_digest(&target.reference, &credentials)
        .await
    {
        Ok(d) if super::naming::is_digest(&d) => Ok(Some(d)),
        Ok(d) => Err(RegistryError::Unreachable {
            url: target.manifest_url(),
            reason: format!("the registry named the digest {d:?}, not a sha256 digest"),
        }),
        Err(e) => answer(target, auth, e),
    }
}

/// What a failed manifest request means: unknown (`None`), refused, or unreachable. Bodies the
/// registry sent are never repeated (they could echo what we sent).
fn answer(
    target: &Target,
    auth: Option<&RegistryAuth>,
    e: OciDistributionError,
) -> Result<Option<String>, RegistryError> {
    use OciDistributionError as E;
    let unknown = |c: &OciErrorCode| {
        matches!(
            c,
            OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
        )
    };
    match e {
        E::ServerError { code: 404, .. } | E::ImageManifestNotFoundError(_) => Ok(None),
        E::RegistryError { envelope, .. } if envelope.errors.iter().any(|e| unknown(&e.code)) => {
            Ok(None)
        }
        E::UnauthorizedError { .. } => Err(denied(target, 401, auth)),
        E::ServerError {
            code: code @ (401 | 403),
            ..
        } => Err(denied(target, code, auth)),
        E::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.contains(&&OciErrorCode::Denied) {
                Err(denied(target, 403, auth))
            } else if codes.contains(&&OciErrorCode::Unauthorized) {
                Err(denied(target, 401, auth))
            } else {
                Err(RegistryError::Unreachable {
                    url: target.manifest_url(),
                    reason: format!("the registry answered the errors {codes:?}"),
                })
            }
        }
        E::ServerError { code, .. } => Err(RegistryError::Unreachable {
            url: target.manifest_url(),
            reason: format!("unexpected answer HTTP {code}"),
        }),
        other => Err(target.unreachable(&other)),
    }
}

/// Why the token could not be had.
fn token_error(
    target: &Target,
    challenge: Option<&str>,
    auth: Option<&RegistryAuth>,
    e: OciDistributionError,
) -> RegistryError {
    let realm = challenge.and_then(bearer_realm).unwrap_or_default();
    match e {
        OciDistributionError::AuthenticationFailure(_) => RegistryError::TokenDenied {
            registry: target.registry().to_owned(),
            realm,
            repository: target.reference.repository().to_owned(),
            with: with(auth),
        },
        OciDistributionError::RegistryTokenDecodeError(why) => RegistryError::Unreachable {
            url: realm,
            reason: format!("the token service answered no token: {why}"),
        },
        other => target.unreachable(&other),
    }
}

fn with(auth: Option<&RegistryAuth>) -> String {
    match auth {
        Some(a) => format!("to the user {:?} of the registry secret", a.username),
        None => "to anonymous requests (no registry secret, or no entry for this registry in it)"
            .to_owned(),
    }
}

fn denied(target: &Target, status: u16, auth: Option<&RegistryAuth>) -> RegistryError {
    RegistryError::Denied {
        registry: target.registry().to_owned(),
        repository: target.reference.repository().to_owned(),
        status,
        with: with(auth),
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
