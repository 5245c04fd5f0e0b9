//! The Kubernetes side of the docs tests: YAML documents, field-by-field type checks of
//! Kubernetes objects, the RBAC rules against the preflight list, and the runner container's
//! environment as ARC's chart and Kubernetes make it.

use super::read;
use container_hooks_k8s::REQUIRED_PERMISSIONS;
use k8s_openapi::api::core::v1::{
    ConfigMap, EnvVar, Pod, PodSpec, PodTemplate, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The documents of a YAML text (empty ones dropped) as JSON values.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| {
            let v = serde_yaml_ng::Value::deserialize(d).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The documents of a YAML file of the workspace.
pub fn yaml_file(rel: &str) -> Vec<Value> {
    yaml_docs(&read(rel))
}

/// Deserializes `v` as `T` and demands that nothing was lost or changed on the way back: an
/// unknown or misspelt field fails, as does a value of the wrong shape.
pub fn strict<T: DeserializeOwned + Serialize>(what: &str, v: &Value) -> T {
    let t: T = serde_path_to_error::deserialize(v.clone())
        .unwrap_or_else(|e| panic!("{what}: `{}`: {}", e.path(), e.inner()));
    let mut back = serde_json::to_value(&t).unwrap();
    drop_required_defaults(&mut back, v);
    assert_eq!(
        &back, v,
        "{what}: a field is unknown or not in its canonical form"
    );
    t
}

/// Removes what serialization adds that the original leaves out: required lists and maps
/// written empty (`containers: []` of a template that only sets `nodeSelector`).
fn drop_required_defaults(back: &mut Value, original: &Value) {
    match (back, original) {
        (Value::Object(b), Value::Object(o)) => {
            b.retain(|k, v| {
                o.contains_key(k)
                    || !(v.as_array().is_some_and(Vec::is_empty)
                        || v.as_object().is_some_and(serde_json::Map::is_empty))
            });
            for (k, v) in b.iter_mut() {
                if let Some(ov) = o.get(k) {
                    drop_required_defaults(v, ov);
                }
            }
        }
        (Value::Array(b), Value::Array(o)) => {
            for (bv, ov) in b.iter_mut().zip(o) {
                drop_required_defaults(bv, ov);
            }
        }
        _ => {}
    }
}

/// Type-checks a Kubernetes object by its `kind`; false for kinds this test does not know.
pub fn check_object(what: &str, v: &Value) -> bool {
    match v["kind"].as_str() {
        Some("Pod") => drop(strict::<Pod>(what, v)),
        Some("PodTemplate") => drop(strict::<PodTemplate>(what, v)),
        Some("ServiceAccount") => drop(strict::<ServiceAccount>(what, v)),
        Some("Role") => drop(check_rules(
            what,
            &strict::<Role>(what, v).rules.unwrap_or_default(),
        )),
        Some("RoleBinding") => drop(strict::<RoleBinding>(what, v)),
        Some("ConfigMap") => drop(strict::<ConfigMap>(what, v)),
        Some("Secret") => drop(strict::<Secret>(what, v)),
        Some("Service") => drop(strict::<Service>(what, v)),
        _ => return false,
    }
    true
}

/// Whether a document is a bare pod template (only `metadata` and `spec`).
pub fn is_template(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        !m.is_empty() && m.keys().all(|k| k == "metadata" || k == "spec") && v.get("kind").is_none()
    })
}

/// The permissions the preflight checks, as (verb, "resource[/subresource]").
pub fn preflight() -> BTreeSet<(String, String)> {
    REQUIRED_PERMISSIONS
        .iter()
        .map(|p| {
            let res = match p.subresource {
                Some(s) => format!("{}/{s}", p.resource),
                None => p.resource.to_owned(),
            };
            (p.verb.to_owned(), res)
        })
        .collect()
}

/// The permissions the hook uses only when it has them (`OPTIONAL_PERMISSIONS`).
pub fn optional() -> BTreeSet<(String, String)> {
    container_hooks_k8s::OPTIONAL_PERMISSIONS
        .iter()
        .map(|p| (p.verb.to_owned(), p.resource.to_owned()))
        .collect()
}

/// Demands that `rules` grant exactly the preflight's permissions, in the core group only,
/// plus optional permissions in rules of their own (so they can be left out). Returns the
/// optional permissions granted.
pub fn check_rules(what: &str, rules: &[PolicyRule]) -> BTreeSet<(String, String)> {
    let optional_set = optional();
    let (extra, rules): (Vec<&PolicyRule>, Vec<&PolicyRule>) = rules.iter().partition(|r| {
        r.resources.iter().flatten().all(|res| {
            r.verbs
                .iter()
                .all(|v| optional_set.contains(&(v.clone(), res.clone())))
        })
    });
    let optional_granted = core_grants(what, &extra);
    let granted = core_grants(what, &rules);
    assert_eq!(
        granted,
        preflight(),
        "{what}: the rules must grant exactly what the RBAC preflight checks (optional \
         permissions go in rules of their own)"
    );
    optional_granted
}

/// The (verb, resource) pairs `rules` grant, each once, in the core group only, no wildcard.
fn core_grants(what: &str, rules: &[&PolicyRule]) -> BTreeSet<(String, String)> {
    let mut granted = BTreeSet::new();
    for r in rules {
        assert_eq!(
            r.api_groups.as_deref(),
            Some(&[String::new()][..]),
            "{what}: the hook only uses the core API group"
        );
        for res in r.resources.iter().flatten() {
            for verb in &r.verbs {
                assert_ne!(verb, "*", "{what}: no wildcards");
                assert!(
                    granted.insert((verb.clone(), res.clone())),
                    "{what}: {verb} {res} is granted twice"
                );
            }
        }
    }
    granted
}

/// The rule Dockerfile actions add: exactly what the preflight checks in addition
/// (`BUILD_PERMISSIONS`) when a build registry is configured.
pub fn check_attach_addon(what: &str, rules: &[PolicyRule]) {
    let mut granted = BTreeSet::new();
    for r in rules {
        for res in r.resources.iter().flatten() {
            for v in &r.verbs {
                granted.insert((v.clone(), res.clone()));
            }
        }
    }
    let wanted: BTreeSet<(String, String)> = container_hooks_k8s::BUILD_PERMISSIONS
        .iter()
        .map(|p| {
            (
                p.verb.to_owned(),
                format!("{}/{}", p.resource, p.subresource.unwrap_or_default()),
            )
        })
        .collect();
    assert_eq!(
        granted, wanted,
        "{what}: the add-on must grant exactly BUILD_PERMISSIONS"
    );
}

/// The runner container's env as the runner sees it: the chart's additions, `valueFrom`
/// resolved for a sample pod, `$(VAR)` expanded from earlier entries as Kubernetes does.
pub fn runner_env(values: &Value, spec: &PodSpec) -> BTreeMap<String, String> {
    const POD: &str = "k8s-hook-runners-x7k2p-runner-4xq9z";
    let runner = spec.containers.iter().find(|c| c.name == "runner").unwrap();
    let mut list: Vec<EnvVar> = runner.env.clone().unwrap_or_default();
    let has = |list: &[EnvVar], n: &str| list.iter().any(|e| e.name == n);
    let mode = values["containerMode"]["type"].as_str().unwrap();
    // The hook folders of GitHub's runner image, one per mode.
    let hook = match mode {
        "kubernetes-novolume" => "/home/runner/k8s-novolume/index.js",
        _ => "/home/runner/k8s/index.js",
    };
    let chart_adds = [
        ("ACTIONS_RUNNER_CONTAINER_HOOKS", hook.to_owned()),
        ("ACTIONS_RUNNER_POD_NAME", POD.to_owned()),
        ("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER", "true".to_owned()),
    ];
    for (name, value) in chart_adds {
        if !has(&list, name) {
            list.push(EnvVar {
                name: name.into(),
                value: Some(value),
                ..EnvVar::default()
            });
        }
    }
    if mode == "kubernetes-novolume" && !has(&list, "ACTIONS_RUNNER_IMAGE") {
        list.push(EnvVar {
            name: "ACTIONS_RUNNER_IMAGE".into(),
            value: runner.image.clone(),
            ..EnvVar::default()
        });
    }
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for e in list {
        let value = match (&e.value, &e.value_from) {
            (Some(v), None) => {
                let mut v = v.clone();
                for (k, val) in &env {
                    v = v.replace(&format!("$({k})"), val);
                }
                v
            }
            (None, Some(from)) => {
                let field = &from.field_ref.as_ref().unwrap().field_path;
                assert_eq!(field, "metadata.name", "only the pod name is resolved here");
                POD.to_owned()
            }
            other => panic!("env {}: {other:?}", e.name),
        };
        env.insert(e.name, value);
    }
    env
}
