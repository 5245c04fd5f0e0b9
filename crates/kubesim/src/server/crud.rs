//! Generic create / get / list / update / patch / delete / deletecollection.

use axum::extract::Request;
use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{AppState, Target, json_response, param, parse_body, read_body};
use crate::objects::{prepare_create, prepare_update};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, success_status};
use crate::store::{Kind, now_rfc3339};
use crate::validation::generate_name;

/// List response items carry no kind/apiVersion, like the apiserver's JSON lists.
pub(super) fn strip_type(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("kind");
        o.remove("apiVersion");
    }
    v
}

pub(super) fn selectors(
    kind: Kind,
    q: &[(String, String)],
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    Ok((
        LabelSelector::parse(param(q, "labelSelector").unwrap_or(""))?,
        FieldSelector::parse(param(q, "fieldSelector").unwrap_or(""), kind)?,
    ))
}

fn list_doc(kind: Kind, items: Vec<Value>, rv: u64) -> Value {
    json!({
        "kind": format!("{}List", kind.name()),
        "apiVersion": "v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items.into_iter().map(strip_type).collect::<Vec<_>>(),
    })
}

pub(super) async fn handle(
    state: &AppState,
    target: Target,
    q: Vec<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let (parts, body) = req.into_parts();
    let dry_run = param(&q, "dryRun").is_some_and(|d| d == "All");
    // The status subresource reads like its object, and a write to it changes only the status;
    // any other method on it is not allowed.
    let (target, status_only) = match target {
        Target::Sub {
            kind,
            ns,
            name,
            sub,
        } if sub == "status" => match method {
            Method::GET | Method::PUT | Method::PATCH => (Target::Item { kind, ns, name }, true),
            _ => return Err(ApiError::method_not_allowed()),
        },
        t => (t, false),
    };
    match (target, method) {
        (Target::Collection { kind, ns }, Method::GET) => {
            let (ls, fs) = selectors(kind, &q)?;
            let (items, rv) = state.store.list(kind, ns.as_deref());
            let items = items
                .into_iter()
                .filter(|o| ls.matches(o) && fs.matches(o))
                .collect();
            Ok(json_response(StatusCode::OK, &list_doc(kind, items, rv)))
        }
        (Target::Collection { kind, ns }, Method::POST) => {
            let ns = ns.unwrap_or_default();
            if kind.namespaced() && ns.is_empty() {
                return Err(ApiError::method_not_allowed());
            }
            let bytes = read_body(body).await?;
            let mut v = parse_body(&parts.headers, &bytes)?;
            if let Some(body_ns) = v["metadata"]["namespace"].as_str()
                && kind.namespaced()
                && !body_ns.is_empty()
                && body_ns != ns
            {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            if v["metadata"]["name"].as_str().unwrap_or("").is_empty()
                && let Some(g) = v["metadata"]["generateName"].as_str()
                && !g.is_empty()
            {
                v["metadata"]["name"] = json!(generate_name(g));
            }
            if kind == Kind::Event && v["metadata"].is_object() {
                // validation compares the involved object's namespace with the request's
                v["metadata"]["namespace"] = json!(ns);
            }
            let v = prepare_create(kind, v)?;
            if dry_run {
                return Ok(json_response(StatusCode::CREATED, &v));
            }
            let created = state.store.create(kind, &ns, v)?;
            if kind == Kind::PersistentVolumeClaim {
                state.kubelet.bind_claim(&created);
            }
            Ok(json_response(
                StatusCode::CREATED,
                &state
                    .store
                    .get(
                        kind,
                        &ns,
                        created["metadata"]["name"].as_str().unwrap_or_default(),
                    )
                    .unwrap_or(created),
            ))
        }
        (Target::Collection { kind, ns }, Method::DELETE) => {
            let ns = ns.unwrap_or_default();
            let (ls, fs) = selectors(kind, &q)?;
            let opts = delete_options(&q, &parts.headers, body).await?;
            let (items, rv) = state.store.list(kind, Some(&ns));
            let mut deleted = Vec::new();
            for o in items.into_iter().filter(|o| ls.matches(o) && fs.matches(o)) {
                let name = o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if let Ok((obj, _)) = delete_object(state, kind, &ns, &name, &opts) {
                    deleted.push(obj);
                }
            }
            Ok(json_response(StatusCode::OK, &list_doc(kind, deleted, rv)))
        }
        (Target::Item { kind, ns, name }, Method::GET) => Ok(json_response(
            StatusCode::OK,
            &state.store.get_or_404(kind, &ns, &name)?,
        )),
        (Target::Item { kind, ns, name }, m @ (Method::PUT | Method::PATCH)) => {
            update(
                state,
                kind,
                &ns,
                &name,
                m == Method::PATCH,
                status_only,
                &parts.headers,
                body,
                dry_run,
            )
            .await
        }
        (Target::Item { kind, ns, name }, Method::DELETE) => {
            let opts = delete_options(&q, &parts.headers, body).await?;
            let (obj, _) = delete_object(state, kind, &ns, &name, &opts)?;
            Ok(json_response(StatusCode::OK, &obj))
        }
        (Target::Sub { .. }, _) | (Target::Collection { .. }, _) | (Target::Item { .. }, _) => {
            Err(ApiError::method_not_allowed())
        }
        _ => Err(ApiError::path_not_found()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn update(
    state: &AppState,
    kind: Kind,
    ns: &str,
    name: &str,
    patch: bool,
    status_only: bool,
    headers: &http::HeaderMap,
    body: axum::body::Body,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let old = state.store.get_or_404(kind, ns, name)?;
    let new = if patch {
        let mut doc = old.clone();
        if ct.starts_with("application/json-patch+json") {
            let p: json_patch::Patch = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &p).map_err(|e| {
                let mut err = ApiError::invalid("", kind.name(), name, &[]);
                err.status["message"] = json!(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ));
                err
            })?;
        } else if ct.starts_with("application/merge-patch+json")
            || ct.starts_with("application/strategic-merge-patch+json")
        {
            let p: Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("invalid merge patch: {e}")))?;
            json_patch::merge(&mut doc, &p);
        } else {
            return Err(ApiError::unsupported_media_type(&ct));
        }
        if !status_only {
            // a patch carries no resourceVersion unless the client put one in
            if serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|p| {
                    p["metadata"]["resourceVersion"]
                        .as_str()
                        .map(str::to_string)
                })
                .is_none()
            {
                doc["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
            }
        }
        doc
    } else {
        parse_body(headers, &bytes)?
    };
    let next = prepare_update(kind, &old, new, status_only)?;
    if dry_run {
        return Ok(json_response(StatusCode::OK, &next));
    }
    let old_rv = old["metadata"]["resourceVersion"].clone();
    let stored = state.store.update(kind, ns, name, move |cur| {
        if cur["metadata"]["resourceVersion"] != old_rv {
            return Err(ApiError::conflict("", kind.plural(), name, "the object has been modified; please apply your changes to the latest version and try again"));
        }
        *cur = next;
        Ok(())
    })?;
    Ok(json_response(StatusCode::OK, &stored))
}

/// Parsed DeleteOptions.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOpts {
    pub grace: Option<i64>,
    pub propagation: Option<String>,
    pub uid: Option<String>,
    pub rv: Option<String>,
}

async fn delete_options(
    q: &[(String, String)],
    headers: &http::HeaderMap,
    body: axum::body::Body,
) -> Result<DeleteOpts, ApiError> {
    let bytes = read_body(body).await?;
    let b = if bytes.is_empty() {
        json!({})
    } else {
        parse_body(headers, &bytes)?
    };
    let grace = param(q, "gracePeriodSeconds")
        .map(|g| {
            g.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))
        })
        .transpose()?
        .or_else(|| b["gracePeriodSeconds"].as_i64());
    Ok(DeleteOpts {
        grace,
        propagation: param(q, "propagationPolicy")
            .map(str::to_string)
            .or_else(|| b["propagationPolicy"].as_str().map(str::to_string)),
        uid: b["preconditions"]["uid"].as_str().map(str::to_string),
        rv: b["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
    })
}

/// Delete with the apiserver's semantics. Returns (response body, removed now?).
pub(crate) fn delete_object(
    state: &AppState,
    kind: Kind,
    ns: &str,
    name: &str,
    opts: &DeleteOpts,
) -> Result<(Value, bool), ApiError> {
    let cur = state.store.get_or_404(kind, ns, name)?;
    let uid = cur["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(u) = &opts.uid
        && *u != uid
    {
        return Err(ApiError::conflict(
            "",
            kind.plural(),
            name,
            &format!("Precondition failed: UID in precondition: {u}, UID in object meta: {uid}"),
        ));
    }
    if let Some(rv) = &opts.rv
        && Some(rv.as_str()) != cur["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::conflict(
            "",
            kind.plural(),
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    if opts.propagation.as_deref() == Some("Orphan") {
        crate::gc::orphan_dependents(&state.store, &uid);
    }
    let has_finalizers = cur["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    let graceful = match kind {
        Kind::Pod => {
            let phase = cur["status"]["phase"].as_str().unwrap_or_default();
            let scheduled = !cur["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .is_empty();
            let grace = opts.grace.unwrap_or_else(|| {
                cur["spec"]["terminationGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(30)
            });
            let grace = if !scheduled || phase == "Succeeded" || phase == "Failed" {
                0
            } else {
                grace.max(0)
            };
            (grace > 0).then_some(grace)
        }
        Kind::Namespace => Some(0),
        _ => None,
    };
    if kind == Kind::Namespace {
        let obj = state.store.update(kind, "", name, |o| {
            if o["metadata"]["deletionTimestamp"].is_null() {
                o["metadata"]["deletionTimestamp"] = now_rfc3339();
            }
            o["status"]["phase"] = json!("Terminating");
            Ok(())
        })?;
        let st = state.clone();
        let n = name.to_string();
        tokio::spawn(async move { crate::gc::finish_namespace(st, n).await });
        return Ok((obj, false));
    }
    if has_finalizers || graceful.is_some() {
        let obj = state.store.update(kind, ns, name, |o| {
            let existing = o["metadata"]["deletionGracePeriodSeconds"].as_i64();
            let g = match (existing, graceful) {
                (Some(e), Some(g)) => e.min(g),
                (Some(e), None) => e,
                (None, g) => g.unwrap_or(0),
            };
            if existing.is_none() || Some(g) != existing {
                let now = crate::store::now_ts();
                let when = now
                    .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(g))
                    .unwrap_or(now);
                o["metadata"]["deletionTimestamp"] = crate::store::time_value(when);
                o["metadata"]["deletionGracePeriodSeconds"] = json!(g);
            }
            Ok(())
        })?;
        return Ok((obj, false));
    }
    let obj = state
        .store
        .remove(kind, ns, name)
        .ok_or_else(|| ApiError::not_found("", kind.plural(), name))?;
    let body = match kind {
        Kind::Secret | Kind::ConfigMap | Kind::Event => {
            success_status("", kind.plural(), name, &uid)
        }
        _ => obj,
    };
    Ok((body, true))
}
