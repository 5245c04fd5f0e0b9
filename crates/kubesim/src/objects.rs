//! Per-kind create preparation (decode, default, validate) and update rules (pure functions).

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod, Secret};
use serde_json::{Value, json};

use crate::podspec::{admit_service_account, default_pod, validate_pod, validate_pod_update};
use crate::status::{ApiError, FieldError};
use crate::store::Kind;
use crate::validation::{NameRule, config_key, object_meta};

pub(crate) fn decode<T: serde::de::DeserializeOwned>(kind: Kind, v: &Value) -> Result<T, ApiError> {
    serde_json::from_value(v.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"v1\" cannot be handled as a {}: {e}",
            kind.name(),
            kind.name()
        ))
    })
}

pub(crate) fn encode<T: serde::Serialize>(t: &T) -> Result<Value, ApiError> {
    serde_json::to_value(t).map_err(ApiError::internal)
}

pub(crate) fn invalid(kind: Kind, v: &Value, errs: &[FieldError]) -> ApiError {
    let name = v["metadata"]["name"].as_str().unwrap_or_default();
    ApiError::invalid("", kind.name(), name, errs)
}

/// The object as created, or 422 with `errs` when there are any.
fn accepted(kind: Kind, out: Value, errs: &[FieldError]) -> Result<Value, ApiError> {
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(invalid(kind, &out, errs))
    }
}

/// Merge `stringData` into `data` (base64) as the apiserver does on write.
fn fold_string_data(v: &mut Value) {
    if let Some(sd) = v.get("stringData").and_then(Value::as_object).cloned() {
        for (k, val) in sd {
            let s = val.as_str().unwrap_or_default();
            v["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
        }
        if let Some(o) = v.as_object_mut() {
            o.remove("stringData");
        }
    }
}

fn secret_errors(s: &Secret, v: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    object_meta(v, NameRule::Subdomain, &mut errs);
    let mut total = 0usize;
    for (k, d) in s.data.iter().flatten() {
        if let Some(m) = config_key(k) {
            errs.push(FieldError::invalid(format!("data[{k}]"), k, &m));
        }
        total += d.0.len();
    }
    if total > 1024 * 1024 {
        errs.push(FieldError {
            reason: "FieldValueTooLong",
            field: "data".into(),
            detail: "Too long: may not be more than 1048576 bytes".into(),
        });
    }
    let has = |key: &str| s.data.as_ref().is_some_and(|d| d.contains_key(key));
    match s.type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") if !has(".dockerconfigjson") => {
            errs.push(FieldError::required("data[.dockerconfigjson]", ""));
        }
        Some("kubernetes.io/dockercfg") if !has(".dockercfg") => {
            errs.push(FieldError::required("data[.dockercfg]", ""));
        }
        Some("kubernetes.io/basic-auth") if !has("username") && !has("password") => {
            errs.push(FieldError::required(
                "data[username]",
                "one of `username` or `password` is required",
            ));
        }
        _ => {}
    }
    errs
}

/// Decode, default and validate a new object; returns what gets stored.
pub fn prepare_create(kind: Kind, mut v: Value) -> Result<Value, ApiError> {
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    if let Some(o) = v.as_object_mut() {
        // server-set fields are ignored on create
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "selfLink",
                "managedFields",
            ] {
                m.remove(f);
            }
        }
    }
    match kind {
        Kind::Namespace => {
            let mut ns: Namespace = decode(kind, &v)?;
            ns.spec = Some(k8s_openapi::api::core::v1::NamespaceSpec {
                finalizers: Some(vec!["kubernetes".into()]),
            });
            ns.status = Some(k8s_openapi::api::core::v1::NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            });
            let out = encode(&ns)?;
            let mut errs = Vec::new();
            object_meta(&out, NameRule::Label, &mut errs);
            accepted(kind, out, &errs)
        }
        Kind::Pod => {
            let mut pod: Pod = decode(kind, &v)?;
            pod.status = None;
            default_pod(&mut pod);
            admit_service_account(&mut pod);
            let out = encode(&pod)?;
            let errs = validate_pod(&pod, &out);
            accepted(kind, out, &errs)
        }
        Kind::Secret => {
            fold_string_data(&mut v);
            let mut s: Secret = decode(kind, &v)?;
            s.type_.get_or_insert_with(|| "Opaque".into());
            let out = encode(&s)?;
            let errs = secret_errors(&s, &out);
            accepted(kind, out, &errs)
        }
        Kind::ConfigMap => {
            let c: ConfigMap = decode(kind, &v)?;
            let out = encode(&c)?;
            let mut errs = Vec::new();
            object_meta(&out, NameRule::Subdomain, &mut errs);
            for k in c
                .data
                .iter()
                .flat_map(|d| d.keys())
                .chain(c.binary_data.iter().flat_map(|d| d.keys()))
            {
                if let Some(m) = config_key(k) {
                    errs.push(FieldError::invalid(format!("data[{k}]"), k, &m));
                }
            }
            accepted(kind, out, &errs)
        }
        Kind::Event => crate::events::prepare_create(v),
        Kind::PersistentVolumeClaim => {
            let mut c: PersistentVolumeClaim = decode(kind, &v)?;
            let spec = c.spec.get_or_insert_with(Default::default);
            spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
            let mut errs = Vec::new();
            if spec.access_modes.as_ref().is_none_or(Vec::is_empty) {
                errs.push(FieldError::required(
                    "spec.accessModes",
                    "at least 1 access mode is required",
                ));
            }
            let has_storage = spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .is_some_and(|r| r.contains_key("storage"));
            if !has_storage {
                errs.push(FieldError::required("spec.resources[storage]", ""));
            }
            c.status = Some(k8s_openapi::api::core::v1::PersistentVolumeClaimStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            });
            let out = encode(&c)?;
            object_meta(&out, NameRule::Subdomain, &mut errs);
            accepted(kind, out, &errs)
        }
    }
}

/// Validate a full replacement (`PUT`, or a patch result) of `old` by `new`; returns the object to
/// store. `status_only` = the `/status` subresource (only status changes are kept); otherwise status
/// changes are dropped for kinds with a status subresource.
pub fn prepare_update(
    kind: Kind,
    old: &Value,
    mut new: Value,
    status_only: bool,
) -> Result<Value, ApiError> {
    let name = old["metadata"]["name"].as_str().unwrap_or_default();
    if let Some(n) = new["metadata"]["name"].as_str()
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
        && !rv.is_empty()
        && rv
            != old["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
    {
        return Err(ApiError::conflict(
            "",
            kind.plural(),
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let has_status = matches!(
        kind,
        Kind::Pod | Kind::Namespace | Kind::PersistentVolumeClaim
    );
    if status_only {
        let mut out = old.clone();
        out["status"] = new["status"].take();
        return Ok(out);
    }
    if has_status {
        new["status"] = old["status"].clone();
    }
    new["metadata"]["name"] = json!(name);
    // keep server-managed metadata
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        new["metadata"][f] = old["metadata"][f].clone();
        if new["metadata"][f].is_null()
            && let Some(m) = new["metadata"].as_object_mut()
        {
            m.remove(f);
        }
    }
    let mut errs = Vec::new();
    match kind {
        Kind::Pod => {
            let a: Pod = decode(kind, old)?;
            let mut b: Pod = decode(kind, &new)?;
            // defaults apply to updates too (e.g. a patch that drops a defaulted field)
            let st = b.status.clone();
            default_pod(&mut b);
            b.status = st;
            new = encode(&b)?;
            errs.extend(validate_pod_update(&a, &b));
            object_meta(&new, NameRule::Subdomain, &mut errs);
        }
        Kind::Secret => {
            fold_string_data(&mut new);
            let a: Secret = decode(kind, old)?;
            let mut b: Secret = decode(kind, &new)?;
            b.type_.get_or_insert_with(|| "Opaque".into());
            new = encode(&b)?;
            if a.type_ != b.type_ {
                errs.push(FieldError::invalid(
                    "type",
                    b.type_.as_deref().unwrap_or(""),
                    "field is immutable",
                ));
            }
            if a.immutable == Some(true) {
                if b.immutable != Some(true) {
                    errs.push(FieldError::forbidden(
                        "immutable",
                        "field is immutable when `immutable` is set",
                    ));
                }
                if a.data != b.data {
                    errs.push(FieldError::forbidden(
                        "data",
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
            errs.extend(secret_errors(&b, &new));
        }
        Kind::ConfigMap => {
            let a: ConfigMap = decode(kind, old)?;
            let b: ConfigMap = decode(kind, &new)?;
            if a.immutable == Some(true) {
                if b.immutable != Some(true) {
                    errs.push(FieldError::forbidden(
                        "immutable",
                        "field is immutable when `immutable` is set",
                    ));
                }
                if a.data != b.data || a.binary_data != b.binary_data {
                    errs.push(FieldError::forbidden(
                        "data",
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
            new = encode(&b)?;
        }
        Kind::Event => {
            let checked = crate::events::prepare_create(new.clone())?;
            new = checked;
        }
        Kind::PersistentVolumeClaim | Kind::Namespace => {
            if kind == Kind::Namespace {
                new["spec"] = old["spec"].clone();
            }
        }
    }
    if errs.is_empty() {
        Ok(new)
    } else {
        Err(invalid(kind, old, &errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data_and_immutability() {
        let s = prepare_create(
            Kind::Secret,
            json!({"metadata": {"name": "s"}, "stringData": {"a": "hi"}, "immutable": true}),
        )
        .unwrap();
        assert_eq!(s["data"]["a"], "aGk=");
        assert_eq!(s["type"], "Opaque");
        let mut changed = s.clone();
        changed["data"]["a"] = json!("eA==");
        let e = prepare_update(Kind::Secret, &s, changed, false).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.status["message"],
            "Secret \"s\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
        );
        // metadata changes stay allowed
        let mut relabel = s.clone();
        relabel["metadata"]["labels"] = json!({"x": "y"});
        assert!(prepare_update(Kind::Secret, &s, relabel, false).is_ok());
    }

    #[test]
    fn dockerconfigjson_needs_key() {
        let e = prepare_create(
            Kind::Secret,
            json!({"metadata": {"name": "s"}, "type": "kubernetes.io/dockerconfigjson", "data": {}}),
        )
        .unwrap_err();
        assert_eq!(
            e.status["details"]["causes"][0]["field"],
            "data[.dockerconfigjson]"
        );
    }

    #[test]
    fn bad_pod_body_is_400() {
        let e = prepare_create(
            Kind::Pod,
            json!({"metadata": {"name": "p"}, "spec": {"containers": "x"}}),
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
    }
}
