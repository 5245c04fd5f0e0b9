//! `selfsubjectaccessreviews` and the `/kubesim/` control endpoints (faults, deny rules, kills).

use axum::extract::Request;
use axum::response::Response;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, json_response, parse_body, read_body};
use crate::config::DenyRule;
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

pub(super) async fn handle(
    state: &AppState,
    path: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let (parts, body) = req.into_parts();
    let bytes = read_body(body).await?;
    let bad = |e: serde_json::Error| ApiError::bad_request(format!("bad body: {e}"));
    match (path, method) {
        ("faults", Method::GET) => Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(state.faults.get()).map_err(ApiError::internal)?,
        )),
        ("faults", Method::PUT) => {
            let cfg: FaultConfig =
                serde_json::from_value(parse_body(&parts.headers, &bytes)?).map_err(bad)?;
            state.faults.set(cfg);
            Ok(json_response(
                StatusCode::OK,
                &serde_json::to_value(state.faults.get()).map_err(ApiError::internal)?,
            ))
        }
        ("faults", Method::POST) => {
            let add: FaultConfig =
                serde_json::from_value(parse_body(&parts.headers, &bytes)?).map_err(bad)?;
            state.faults.update(|cfg| {
                cfg.pod_start_delays.extend(add.pod_start_delays);
                cfg.pull_failures.extend(add.pull_failures);
                cfg.unschedulable.extend(add.unschedulable);
                cfg.request_errors.extend(add.request_errors);
                cfg.stream_drops.extend(add.stream_drops);
            });
            Ok(json_response(
                StatusCode::OK,
                &serde_json::to_value(state.faults.get()).map_err(ApiError::internal)?,
            ))
        }
        ("deny", Method::POST) => {
            let rule: DenyRule =
                serde_json::from_value(parse_body(&parts.headers, &bytes)?).map_err(bad)?;
            state.authz.deny(rule);
            Ok(json_response(
                StatusCode::OK,
                &serde_json::to_value(state.authz.get()).map_err(ApiError::internal)?,
            ))
        }
        ("deny", Method::GET) => Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(state.authz.get()).map_err(ApiError::internal)?,
        )),
        ("deny", Method::PUT) => {
            let rules: Vec<DenyRule> =
                serde_json::from_value(parse_body(&parts.headers, &bytes)?).map_err(bad)?;
            state.authz.set(rules);
            Ok(json_response(
                StatusCode::OK,
                &serde_json::to_value(state.authz.get()).map_err(ApiError::internal)?,
            ))
        }
        ("kill", Method::POST) => {
            let k: KillBody =
                serde_json::from_value(parse_body(&parts.headers, &bytes)?).map_err(bad)?;
            state
                .kubelet
                .kill(&k.namespace, &k.pod, k.container.as_deref(), k.mode)
                .await?;
            Ok(json_response(StatusCode::OK, &json!({"killed": k.pod})))
        }
        _ => Err(ApiError::path_not_found()),
    }
}
