//! `Status` objects exactly as kube-apiserver writes them for errors.
//!
//! Checked against `k8s.io/apimachinery/pkg/api/errors/errors.go` (NewNotFound, NewAlreadyExists,
//! NewConflict, NewInvalid, NewForbidden, NewUnauthorized, NewTooManyRequests, NewInternalError,
//! NewResourceExpired, NewBadRequest): message formats, reasons and `details` layout.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

/// An API error: an HTTP code plus the `Status` body the apiserver sends.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code (also `status.code`).
    pub code: u16,
    /// The full `Status` object.
    pub status: Value,
    /// Seconds for a `Retry-After` header (429 / 500 with retry).
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.code,
            self.status["message"].as_str().unwrap_or_default()
        )
    }
}

impl std::error::Error for ApiError {}

/// `{group}.{resource}` as the apiserver qualifies it in messages (`pods`, `jobs.batch`).
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

fn failure(code: u16, reason: &str, message: String, details: Option<Value>) -> ApiError {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        status["details"] = d;
    }
    ApiError {
        code,
        status,
        retry_after: None,
    }
}

/// A field error for a 422 Invalid answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`, `FieldValueForbidden`, `FieldValueNotSupported`, `FieldValueTooLong`
    pub reason: &'static str,
    /// e.g. `spec.containers[0].name`
    pub field: String,
    /// the per-field text (as `field.Error.ErrorBody()`)
    pub detail: String,
}

impl FieldError {
    /// `Required value`
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let detail = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            detail,
        }
    }
    /// `Invalid value: "v": detail`
    pub fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            detail: format!("Invalid value: {value:?}: {detail}"),
        }
    }
    /// `Duplicate value: "v"`
    pub fn duplicate(field: impl Into<String>, value: &str) -> Self {
        Self {
            reason: "FieldValueDuplicate",
            field: field.into(),
            detail: format!("Duplicate value: {value:?}"),
        }
    }
    /// `Forbidden: detail`
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            field: field.into(),
            detail: format!("Forbidden: {detail}"),
        }
    }
    /// `Unsupported value: "v": supported values: ...`
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Self {
            reason: "FieldValueNotSupported",
            field: field.into(),
            detail: format!(
                "Unsupported value: {value:?}: supported values: {}",
                list.join(", ")
            ),
        }
    }
}

impl ApiError {
    /// A failure about one object, named in the details.
    fn about(
        code: u16,
        reason: &str,
        message: String,
        group: &str,
        resource: &str,
        name: &str,
    ) -> Self {
        let details = json!({"name": name, "group": group, "kind": resource});
        failure(code, reason, message, Some(details)).strip_empty_group()
    }
    /// 404 `pods "x" not found`
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let message = format!("{} {name:?} not found", qualified(group, resource));
        Self::about(404, "NotFound", message, group, resource, name)
    }
    /// 409 `pods "x" already exists`
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let message = format!("{} {name:?} already exists", qualified(group, resource));
        Self::about(409, "AlreadyExists", message, group, resource, name)
    }
    /// 409 Conflict (optimistic concurrency and friends)
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let res = qualified(group, resource);
        let message = format!("Operation cannot be fulfilled on {res} {name:?}: {why}");
        Self::about(409, "Conflict", message, group, resource, name)
    }
    /// 422 `Pod "x" is invalid: [a, b]`
    pub fn invalid(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> Self {
        let bodies: Vec<String> = errs
            .iter()
            .map(|e| format!("{}: {}", e.field, e.detail))
            .collect();
        let agg = if bodies.len() == 1 {
            bodies[0].clone()
        } else {
            format!("[{}]", bodies.join(", "))
        };
        let causes: Vec<Value> = errs
            .iter()
            .map(|e| json!({"reason": e.reason, "message": e.detail, "field": e.field}))
            .collect();
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        failure(
            422,
            "Invalid",
            format!("{qualified_kind} {name:?} is invalid: {agg}"),
            Some(json!({"name": name, "group": group, "kind": kind, "causes": causes})),
        )
        .strip_empty_group()
    }
    /// 403 `pods "x" is forbidden: User "u" cannot get resource "pods" in API group "" in the namespace "ns"`
    pub fn forbidden(
        user: &str,
        verb: &str,
        group: &str,
        resource: &str,
        subresource: &str,
        name: &str,
        namespace: &str,
    ) -> Self {
        let res = if subresource.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{subresource}")
        };
        let scope = if namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {namespace:?}")
        };
        let reason =
            format!("User {user:?} cannot {verb} resource {res:?} in API group {group:?} {scope}");
        let message = if name.is_empty() {
            format!("{} is forbidden: {reason}", qualified(group, resource))
        } else {
            format!(
                "{} {name:?} is forbidden: {reason}",
                qualified(group, resource)
            )
        };
        failure(
            403,
            "Forbidden",
            message,
            Some(json!({"name": name, "group": group, "kind": resource})),
        )
        .strip_empty_group()
    }
    /// 401 `Unauthorized`
    pub fn unauthorized() -> Self {
        failure(401, "Unauthorized", "Unauthorized".into(), None)
    }
    /// 400 BadRequest
    pub fn bad_request(message: impl Into<String>) -> Self {
        failure(400, "BadRequest", message.into(), None)
    }
    /// 405 MethodNotAllowed
    pub fn method_not_allowed() -> Self {
        failure(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            None,
        )
    }
    /// 404 for an unknown path
    pub fn path_not_found() -> Self {
        failure(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(json!({})),
        )
    }
    /// 415 for bodies in a content type we do not speak
    pub fn unsupported_media_type(ct: &str) -> Self {
        failure(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; got {ct}"
            ),
            None,
        )
    }
    /// 429 with Retry-After
    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = failure(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.".into(),
            Some(json!({"retryAfterSeconds": retry_after})),
        );
        e.retry_after = Some(retry_after);
        e
    }
    /// 500 InternalError
    pub fn internal(err: impl std::fmt::Display) -> Self {
        let msg = err.to_string();
        failure(
            500,
            "InternalError",
            format!("Internal error occurred: {msg}"),
            Some(json!({"causes": [{"message": msg}]})),
        )
    }
    /// 410 Expired for a watch/list from a compacted resourceVersion
    pub fn expired(requested: u64, oldest: u64) -> Self {
        failure(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
            None,
        )
    }
    /// 503 ServiceUnavailable
    pub fn unavailable(message: impl Into<String>) -> Self {
        failure(503, "ServiceUnavailable", message.into(), None)
    }

    fn strip_empty_group(mut self) -> Self {
        if let Some(d) = self
            .status
            .get_mut("details")
            .and_then(Value::as_object_mut)
        {
            if d.get("group").and_then(Value::as_str) == Some("") {
                d.remove("group");
            }
            if d.get("name").and_then(Value::as_str) == Some("") {
                d.remove("name");
            }
        }
        self
    }
}

/// `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",...}` for deletes that
/// return a Status.
pub fn success_status(group: &str, resource: &str, name: &str, uid: &str) -> Value {
    let mut details = json!({"name": name, "kind": resource, "uid": uid});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            self.status.to_string(),
        )
            .into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_apiserver() {
        let e = ApiError::not_found("", "pods", "x");
        assert_eq!(e.code, 404);
        assert_eq!(e.status["message"], "pods \"x\" not found");
        assert_eq!(e.status["details"], json!({"name": "x", "kind": "pods"}));
    }

    #[test]
    fn invalid_aggregates_like_apiserver() {
        let e = ApiError::invalid(
            "",
            "Pod",
            "Bad",
            &[
                FieldError::invalid("metadata.name", "Bad", "must be lowercase"),
                FieldError::required("spec.containers", ""),
            ],
        );
        assert_eq!(
            e.status["message"],
            "Pod \"Bad\" is invalid: [metadata.name: Invalid value: \"Bad\": must be lowercase, spec.containers: Required value]"
        );
        assert_eq!(
            e.status["details"]["causes"][1]["reason"],
            "FieldValueRequired"
        );
    }

    #[test]
    fn forbidden_message() {
        let e = ApiError::forbidden("u", "create", "", "pods", "exec", "p", "ns");
        assert_eq!(
            e.status["message"],
            "pods \"p\" is forbidden: User \"u\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"ns\""
        );
    }
}
