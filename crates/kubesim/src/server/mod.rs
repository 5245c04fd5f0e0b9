//! The HTTPS API server: authentication, authorization, fault hooks, routing.

mod admin;
mod crud;
mod discovery;
mod pods;
mod streams;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::Method;

use crate::config::Authz;
use crate::faults::Faults;
use crate::kubelet::Kubelet;
use crate::status::ApiError;
use crate::store::{Kind, Store};

pub(crate) use crud::delete_object;

/// Shared state of the server.
#[derive(Debug, Clone)]
pub struct AppState {
    /// the objects
    pub store: Arc<Store>,
    /// fault knobs
    pub faults: Faults,
    /// deny rules
    pub authz: Authz,
    /// the node agent
    pub kubelet: Arc<Kubelet>,
    /// expected bearer token
    pub token: Arc<str>,
    /// user name for messages
    pub user: Arc<str>,
    /// host:port we serve on
    pub address: Arc<str>,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Version,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String),
    Collection {
        kind: Kind,
        ns: Option<String>,
    },
    Item {
        kind: Kind,
        ns: String,
        name: String,
    },
    Sub {
        kind: Kind,
        ns: String,
        name: String,
        sub: String,
    },
    AccessReview,
    Admin(String),
}

/// Parse a URL path into a target (pure).
pub(crate) fn route(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let kind = |s: &str| Kind::from_plural(s);
    Some(match segs.as_slice() {
        ["version"] => Target::Version,
        ["api"] => Target::CoreVersions,
        ["apis"] => Target::Groups,
        ["api", "v1"] => Target::Resources("v1".into()),
        ["apis", "authorization.k8s.io"] => Target::Group("authorization.k8s.io".into()),
        ["apis", "authorization.k8s.io", "v1"] => {
            Target::Resources("authorization.k8s.io/v1".into())
        }
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
        ] => Target::AccessReview,
        ["kubesim", rest @ ..] => Target::Admin(rest.join("/")),
        ["api", "v1", "namespaces", name] => Target::Item {
            kind: Kind::Namespace,
            ns: String::new(),
            name: (*name).into(),
        },
        ["api", "v1", res] => Target::Collection {
            kind: kind(res)?,
            ns: None,
        },
        [
            "api",
            "v1",
            "namespaces",
            name,
            sub @ ("status" | "finalize"),
        ] => Target::Sub {
            kind: Kind::Namespace,
            ns: String::new(),
            name: (*name).into(),
            sub: (*sub).into(),
        },
        ["api", "v1", "namespaces", ns, res] => {
            let k = kind(res)?;
            if k == Kind::Namespace {
                return None;
            }
            Target::Collection {
                kind: k,
                ns: Some((*ns).into()),
            }
        }
        ["api", "v1", "namespaces", ns, res, name] => Target::Item {
            kind: kind(res)?,
            ns: (*ns).into(),
            name: (*name).into(),
        },
        ["api", "v1", "namespaces", ns, res, name, sub] => Target::Sub {
            kind: kind(res)?,
            ns: (*ns).into(),
            name: (*name).into(),
            sub: (*sub).into(),
        },
        _ => return None,
    })
}

/// Query parameters as ordered pairs (repeated keys kept, as for exec `command`).
pub(crate) fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query()
        .and_then(|q| serde_urlencoded_pairs(q).ok())
        .unwrap_or_default()
}

fn serde_urlencoded_pairs(q: &str) -> Result<Vec<(String, String)>, ()> {
    use axum::extract::Query;
    let uri: http::Uri = format!("/?{q}").parse().map_err(|_| ())?;
    Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|Query(v)| v)
        .map_err(|_| ())
}

/// First value of a query parameter.
pub(crate) fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// RBAC verb of a request.
fn verb_of(method: &Method, target: &Target, q: &[(String, String)]) -> &'static str {
    let watch = param(q, "watch").is_some_and(|w| w == "true" || w == "1");
    match (method, target) {
        (&Method::GET, Target::Collection { .. }) if watch => "watch",
        (&Method::GET, Target::Collection { .. }) => "list",
        (&Method::GET, Target::Sub { sub, .. }) if sub == "exec" || sub == "attach" => "create",
        (&Method::GET, _) | (&Method::HEAD, _) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, Target::Collection { .. }) => "deletecollection",
        (&Method::DELETE, _) => "delete",
        _ => "unknown",
    }
}

fn authenticated(state: &AppState, req: &Request) -> bool {
    let Some(h) = req.headers().get(http::header::AUTHORIZATION) else {
        return false;
    };
    let Ok(h) = h.to_str() else { return false };
    let Some(tok) = h.strip_prefix("Bearer ") else {
        return false;
    };
    // constant-time-ish comparison
    let a = tok.trim().as_bytes();
    let b = state.token.as_bytes();
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    if !authenticated(&state, &req) {
        return ApiError::unauthorized().into_response();
    }
    let Some(target) = route(req.uri().path()) else {
        return ApiError::path_not_found().into_response();
    };
    let q = query_pairs(req.uri());
    // authorization + injected request faults for resource requests
    let (resource, group, ns, name, sub): (&str, &str, String, String, String) = match &target {
        Target::Collection { kind, ns } => (
            kind.plural(),
            "",
            ns.clone().unwrap_or_default(),
            String::new(),
            String::new(),
        ),
        Target::Item { kind, ns, name } => {
            (kind.plural(), "", ns.clone(), name.clone(), String::new())
        }
        Target::Sub {
            kind,
            ns,
            name,
            sub,
        } => (kind.plural(), "", ns.clone(), name.clone(), sub.clone()),
        Target::AccessReview => (
            "selfsubjectaccessreviews",
            "authorization.k8s.io",
            String::new(),
            String::new(),
            String::new(),
        ),
        _ => ("", "", String::new(), String::new(), String::new()),
    };
    if !resource.is_empty() {
        let verb = verb_of(req.method(), &target, &q);
        // A namespace item's namespace for authorization is the namespace itself.
        let authz_ns = if matches!(
            &target,
            Target::Item {
                kind: Kind::Namespace,
                ..
            }
        ) {
            name.as_str()
        } else {
            ns.as_str()
        };
        if resource != "selfsubjectaccessreviews"
            && !state.authz.allowed(verb, group, resource, &sub, authz_ns)
        {
            return ApiError::forbidden(&state.user, verb, group, resource, &sub, &name, &ns)
                .into_response();
        }
        if let Some(err) = state.faults.check_request(verb, resource, &sub, authz_ns) {
            tracing::debug!(
                verb,
                resource,
                sub,
                code = err.code,
                "injected request fault"
            );
            return err.into_response();
        }
    }
    let result = match target {
        Target::Version => Ok(discovery::version()),
        Target::CoreVersions => Ok(discovery::core_versions(&state.address)),
        Target::Groups => Ok(discovery::groups()),
        Target::Group(g) => discovery::group(&g),
        Target::Resources(gv) => discovery::resources(&gv),
        Target::AccessReview => admin::access_review(&state, req).await,
        Target::Admin(path) => admin::handle(&state, &path, req).await,
        Target::Sub {
            kind: Kind::Pod,
            ns,
            name,
            sub,
        } if matches!(sub.as_str(), "exec" | "attach") => {
            return streams::handle(state, &ns, &name, &sub, q, req).await;
        }
        Target::Sub {
            kind: Kind::Pod,
            ns,
            name,
            sub,
        } if sub == "log" => pods::logs(&state, &ns, &name, &q).await,
        Target::Collection { kind, ns }
            if req.method() == Method::GET
                && param(&q, "watch").is_some_and(|w| w == "true" || w == "1") =>
        {
            watch::watch(&state, kind, ns, &q)
        }
        other => crud::handle(&state, other, q, req).await,
    };
    match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// A JSON response with a status code.
pub(crate) fn json_response(code: http::StatusCode, v: &serde_json::Value) -> Response {
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Build the router.
pub fn router(state: AppState) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// Read a request body fully (bounded).
pub(crate) async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))
}

/// Parse a JSON (or YAML) request body.
pub(crate) fn parse_body(
    headers: &http::HeaderMap,
    bytes: &[u8],
) -> Result<serde_json::Value, ApiError> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.contains("yaml") {
        serde_yaml_ng::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else if ct.contains("json") || ct.is_empty() {
        serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type json): {e}"
            ))
        })
    } else {
        Err(ApiError::unsupported_media_type(ct))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("/api/v1/namespaces/a/pods/p/exec"),
            Some(Target::Sub {
                kind: Kind::Pod,
                ns: "a".into(),
                name: "p".into(),
                sub: "exec".into()
            })
        );
        assert_eq!(
            route("/api/v1/namespaces/a"),
            Some(Target::Item {
                kind: Kind::Namespace,
                ns: String::new(),
                name: "a".into()
            })
        );
        assert_eq!(
            route("/api/v1/pods"),
            Some(Target::Collection {
                kind: Kind::Pod,
                ns: None
            })
        );
        assert_eq!(route("/api/v1/namespaces/a/widgets"), None);
        assert_eq!(
            route("/api/v1/namespaces/a/pods"),
            Some(Target::Collection {
                kind: Kind::Pod,
                ns: Some("a".into())
            })
        );
    }

    #[test]
    fn query_keeps_repeats() {
        let uri: http::Uri = "/x?command=sh&command=-c&command=echo%20hi&stdout=true"
            .parse()
            .unwrap();
        let q = query_pairs(&uri);
        let cmd: Vec<&str> = q
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(cmd, ["sh", "-c", "echo hi"]);
    }
}
