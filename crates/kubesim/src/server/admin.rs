//! `selfsubjectaccessreviews` and the `/kubesim/` control endpoints (faults, deny rules, kills).

use axum::extract::Request;
use axum::response::Response;
use http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{AppState, json_response, parse_body, read_body};
use crate::faults::{FaultConfig, KillMode};
use crate::status::ApiError;

pub(super) async fn access_review(state: &AppState, req: Request) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let (parts, body) = req.into_parts();
    let mut v = parse_body(&parts.headers, &read_body(body).await?)?;
    let ra = &v["spec"]["resourceAttributes"];
    let allowed = if ra.is_object() {
        let s = |k: &str| ra[k].as_str().unwrap_or("").to_string();
        state.authz.allowed(
            &s("verb"),
            &s("group"),
            &s("resource"),
            &s("subresource"),
            &s("namespace"),
        )
    } else {
        true
    };
    v["kind"] = json!("SelfSubjectAccessReview");
    v["apiVersion"] = json!("authorization.k8s.io/v1");
    if v["metadata"].is_null() {
        v["metadata"] = json!({});
    }
    v["metadata"]["creationTimestamp"] = serde_json::Value::Null;
    v["status"] = if allowed {
        json!({"allowed": true, "reason": "RBAC: allowed by kubesim (no deny rule matched)"})
    } else {
        json!({"allowed": false, "reason": "kubesim: no rule allows this (a deny rule matched)"})
    };
    Ok(json_response(StatusCode::CREATED, &v))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KillBody {
    namespace: String,
    pod: String,
    #[serde(default)]
    container: Option<String>,
    mode: KillMode,
}

/// A control endpoint's body as the type it sets.
fn typed<T: DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("bad body: {e}")))
}

/// 200 with what the knobs are now.
fn ok_json(now: &impl Serialize) -> Result<Response, ApiError> {
    let v = serde_json::to_value(now).map_err(ApiError::internal)?;
    Ok(json_response(StatusCode::OK, &v))
}

pub(super) async fn handle(
    state: &AppState,
    path: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let (parts, body) = req.into_parts();
    let bytes = read_body(body).await?;
    let body = || parse_body(&parts.headers, &bytes);
    match (path, method) {
        ("faults", Method::GET) => ok_json(&state.faults.get()),
        ("faults", Method::PUT) => {
            state.faults.set(typed(body()?)?);
            ok_json(&state.faults.get())
        }
        ("faults", Method::POST) => {
            let add: FaultConfig = typed(body()?)?;
            state.faults.update(|cfg| cfg.add(add));
            ok_json(&state.faults.get())
        }
        ("deny", Method::POST) => {
            state.authz.deny(typed(body()?)?);
            ok_json(&state.authz.get())
        }
        ("deny", Method::GET) => ok_json(&state.authz.get()),
        ("deny", Method::PUT) => {
            state.authz.set(typed(body()?)?);
            ok_json(&state.authz.get())
        }
        ("kill", Method::POST) => {
            let k: KillBody = typed(body()?)?;
            state
                .kubelet
                .kill(&k.namespace, &k.pod, k.container.as_deref(), k.mode)
                .await?;
            Ok(json_response(StatusCode::OK, &json!({"killed": k.pod})))
        }
        _ => Err(ApiError::path_not_found()),
    }
}
