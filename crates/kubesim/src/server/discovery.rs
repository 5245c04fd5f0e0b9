//! `/version`, `/api`, `/apis` and the APIResourceList documents.

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::json_response;
use crate::status::ApiError;
use crate::store::Kind;

pub(super) fn version() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "35",
            "emulationMajor": "1",
            "emulationMinor": "35",
            "minCompatibilityMajor": "1",
            "minCompatibilityMinor": "34",
            "gitVersion": "v1.35.0-kubesim",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-12-17T00:00:00Z",
            "goVersion": "go1.25.5",
            "compiler": "gc",
            "platform": "linux/amd64"
        }),
    )
}

pub(super) fn core_versions(address: &str) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]
        }),
    )
}

fn authz_group() -> Value {
    json!({
        "name": "authorization.k8s.io",
        "versions": [{"groupVersion": "authorization.k8s.io/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "authorization.k8s.io/v1", "version": "v1"}
    })
}

pub(super) fn groups() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [authz_group()]}),
    )
}

pub(super) fn group(name: &str) -> Result<Response, ApiError> {
    if name != "authorization.k8s.io" {
        return Err(ApiError::path_not_found());
    }
    let mut g = authz_group();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Ok(json_response(StatusCode::OK, &g))
}

const ALL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn singular(kind: Kind) -> String {
    kind.name().to_lowercase()
}

/// The core/v1 resource list (pure).
pub(crate) fn core_resources() -> Value {
    let mut resources = Vec::new();
    for k in Kind::ALL {
        let verbs: Vec<&str> = if k == Kind::Namespace {
            vec![
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
        } else {
            ALL_VERBS.to_vec()
        };
        let mut r = json!({
            "name": k.plural(), "singularName": singular(k), "namespaced": k.namespaced(),
            "kind": k.name(), "verbs": verbs,
        });
        if !k.short_names().is_empty() {
            r["shortNames"] = json!(k.short_names());
        }
        if matches!(k, Kind::Pod | Kind::PersistentVolumeClaim) {
            r["categories"] = json!(["all"]);
        }
        resources.push(r);
        let subs: &[(&str, &str, &[&str])] = match k {
            Kind::Pod => &[
                ("attach", "PodAttachOptions", &["create", "get"]),
                ("exec", "PodExecOptions", &["create", "get"]),
                ("log", "Pod", &["get"]),
                ("status", "Pod", &["get", "patch", "update"]),
            ],
            Kind::Namespace => &[("status", "Namespace", &["get", "patch", "update"])],
            Kind::PersistentVolumeClaim => &[(
                "status",
                "PersistentVolumeClaim",
                &["get", "patch", "update"],
            )],
            _ => &[],
        };
        for (sub, kind, verbs) in subs {
            resources.push(json!({
                "name": format!("{}/{sub}", k.plural()), "singularName": "",
                "namespaced": k.namespaced(), "kind": kind, "verbs": verbs,
            }));
        }
    }
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})
}

pub(super) fn resources(gv: &str) -> Result<Response, ApiError> {
    let doc = match gv {
        "v1" => core_resources(),
        "authorization.k8s.io/v1" => json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": [{"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview",
                "namespaced": false, "kind": "SelfSubjectAccessReview", "verbs": ["create"]}]
        }),
        _ => return Err(ApiError::path_not_found()),
    };
    Ok(json_response(StatusCode::OK, &doc))
}
