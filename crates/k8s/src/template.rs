//! Pod customisation: the upstream pod template (`ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE`,
//! merged with the rules of PROTOCOL §7) and, applied last, an optional JSON merge patch or
//! RFC 6902 patch ([`crate::settings::TEMPLATE_PATCH_VAR`]).

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Prefix of template containers that merge into generated ones (`$job`, `$redis`).
pub const MERGE_PREFIX: char = '$';

/// The template and the patch, read once per command.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Customization {
    /// The PodTemplate's `metadata` and `spec` (as JSON).
    template: Option<Map<String, Value>>,
    /// The patch applied last.
    patch: Option<PatchDoc>,
}

#[derive(Debug, Clone, PartialEq)]
enum PatchDoc {
    Merge(Value),
    Json(json_patch::Patch),
}

/// The template or the patch cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file cannot be read.
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        /// Template or patch.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not YAML/JSON, empty, or the wrong shape.
    #[error("the {what} {path} is invalid: {message}")]
    Invalid {
        /// Template or patch.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The merged pod is not a valid pod.
    #[error("the pod template or patch makes an invalid pod at `{at}`: {message}")]
    Result {
        /// JSON path of the bad field.
        at: String,
        /// The deserialization error.
        message: String,
    },
    /// The RFC 6902 patch does not apply.
    #[error("the pod patch does not apply to pod {pod}: {source}")]
    Patch {
        /// The pod.
        pod: String,
        /// Why.
        source: json_patch::PatchError,
    },
}

/// Which generated pod the customisation is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodKind {
    /// The job pod: `$<service>` containers apply too.
    Job,
    /// A container-step pod: only `$job` applies (to the action container).
    Step,
}

fn read_doc(what: &'static str, path: &Path) -> Result<Value, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    let invalid = |message: String| TemplateError::Invalid {
        what,
        path: path.to_owned(),
        message,
    };
    if text.trim().is_empty() {
        return Err(invalid("the file is empty".into()));
    }
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    serde_json::to_value(yaml).map_err(|e| invalid(e.to_string()))
}

impl Customization {
    /// Reads the template and patch files named by the settings (either may be absent).
    pub fn load(template: Option<&Path>, patch: Option<&Path>) -> Result<Self, TemplateError> {
        let template = template
            .map(|path| {
                let invalid = |message: &str| TemplateError::Invalid {
                    what: "pod template",
                    path: path.to_owned(),
                    message: message.to_owned(),
                };
                let Value::Object(mut doc) = read_doc("pod template", path)? else {
                    return Err(invalid("expected a mapping with `metadata` and `spec`"));
                };
                // A whole PodTemplate object (`kind: PodTemplate`) carries them under `template`.
                if !doc.contains_key("spec")
                    && let Some(Value::Object(inner)) = doc.remove("template")
                {
                    doc = inner;
                }
                if doc.get("spec").is_some_and(|s| !s.is_object()) {
                    return Err(invalid("`spec` must be a mapping"));
                }
                if doc.get("metadata").is_some_and(|s| !s.is_object()) {
                    return Err(invalid("`metadata` must be a mapping"));
                }
                let containers = doc.get("spec").and_then(|s| s.get("containers"));
                if let Some(c) = containers {
                    let ok = c.as_array().is_some_and(|list| {
                        list.iter()
                            .all(|c| c.get("name").and_then(Value::as_str).is_some())
                    });
                    if !ok {
                        return Err(invalid(
                            "`spec.containers` must be a list of containers, each with a `name`",
                        ));
                    }
                }
                Ok(doc)
            })
            .transpose()?;
        let patch = patch
            .map(|path| match read_doc("pod patch", path)? {
                v @ Value::Object(_) => Ok(PatchDoc::Merge(v)),
                v @ Value::Array(_) => serde_json::from_value(v).map(PatchDoc::Json).map_err(|e| {
                    TemplateError::Invalid {
                        what: "pod patch",
                        path: path.to_owned(),
                        message: format!("not an RFC 6902 JSON patch: {e}"),
                    }
                }),
                _ => Err(TemplateError::Invalid {
                    what: "pod patch",
                    path: path.to_owned(),
                    message:
                        "expected a JSON merge patch (a mapping) or an RFC 6902 patch (a list)"
                            .into(),
                }),
            })
            .transpose()?;
        Ok(Self { template, patch })
    }

    /// Customisation from already parsed documents (tests).
    #[cfg(test)]
    pub fn from_values(template: Option<Value>, patch: Option<Value>) -> Self {
        Self {
            template: template.and_then(|t| t.as_object().cloned()),
            patch: patch.and_then(|p| match p {
                v @ Value::Object(_) => Some(PatchDoc::Merge(v)),
                v => serde_json::from_value(v).ok().map(PatchDoc::Json),
            }),
        }
    }

    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.template.is_none() && self.patch.is_none()
    }

    /// Applies the template, then the patch, to `pod`; returns the warnings to print.
    pub fn apply(&self, pod: &mut Pod, kind: PodKind) -> Result<Vec<String>, TemplateError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let mut doc = serde_json::to_value(&*pod).map_err(|e| TemplateError::Result {
            at: String::new(),
            message: e.to_string(),
        })?;
        let mut warnings = Vec::new();
        if let Some(t) = &self.template {
            merge_template(&mut doc, t, kind, &mut warnings);
        }
        match &self.patch {
            Some(PatchDoc::Merge(p)) => json_patch::merge(&mut doc, p),
            Some(PatchDoc::Json(p)) => {
                json_patch::patch(&mut doc, p).map_err(|source| TemplateError::Patch {
                    pod: name.clone(),
                    source,
                })?
            }
            None => {}
        }
        *pod = serde_path_to_error::deserialize(doc).map_err(|e| TemplateError::Result {
            at: e.path().to_string(),
            message: e.into_inner().to_string(),
        })?;
        Ok(warnings)
    }
}

fn merge_template(
    pod: &mut Value,
    template: &Map<String, Value>,
    kind: PodKind,
    warnings: &mut Vec<String>,
) {
    if let Some(Value::Object(meta)) = template.get("metadata") {
        for (field, value) in meta {
            match (field.as_str(), value) {
                ("labels" | "annotations", Value::Object(entries)) => {
                    let target = object_at(pod, &["metadata", field]);
                    for (k, v) in entries {
                        if let Some(old) = target.get(k)
                            && old != v
                        {
                            warnings.push(format!(
                                "pod template: {} {k} is already set to {old} and is overwritten with {v}",
                                &field[..field.len() - 1]
                            ));
                        }
                        target.insert(k.clone(), v.clone());
                    }
                }
                (f, _) => warnings.push(format!(
                    "pod template: metadata.{f} is ignored (only labels and annotations are merged)"
                )),
            }
        }
    }
    let Some(Value::Object(spec)) = template.get("spec") else {
        return;
    };
    // The template decides about the service-account token: its
    // `automountServiceAccountToken` replaces the hook's `false` below; a service account
    // without it lets that account's own setting apply.
    if (spec.contains_key("serviceAccountName") || spec.contains_key("serviceAccount"))
        && !spec.contains_key("automountServiceAccountToken")
    {
        object_at(pod, &["spec"]).remove("automountServiceAccountToken");
    }
    for (field, value) in spec {
        match field.as_str() {
            "containers" => {
                for c in value.as_array().into_iter().flatten() {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                    match name.strip_prefix(MERGE_PREFIX) {
                        Some(target) => merge_into_container(pod, target, c, kind, warnings),
                        None => array_at(pod, &["spec", "containers"]).push(c.clone()),
                    }
                }
            }
            "volumes" => {
                let volumes = array_at(pod, &["spec", "volumes"]);
                volumes.extend(value.as_array().into_iter().flatten().cloned());
            }
            _ => {
                if field == "initContainers" {
                    warnings.push(
                        "pod template: spec.initContainers replaces the hook's fs-init init container"
                            .into(),
                    );
                }
                object_at(pod, &["spec"]).insert(field.clone(), value.clone());
            }
        }
    }
}

fn merge_into_container(
    pod: &mut Value,
    target: &str,
    from: &Value,
    kind: PodKind,
    warnings: &mut Vec<String>,
) {
    let containers = array_at(pod, &["spec", "containers"]);
    let found = containers
        .iter_mut()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(target));
    let Some(Value::Object(base)) = found else {
        if kind == PodKind::Job {
            warnings.push(format!(
                "pod template: container {MERGE_PREFIX}{target} matches no container of the job pod and is ignored"
            ));
        }
        return;
    };
    let Some(from) = from.as_object() else { return };
    for (field, value) in from {
        match field.as_str() {
            "name" => {}
            "image" => warnings.push(format!(
                "pod template: the image of {MERGE_PREFIX}{target} is ignored (the workflow decides the image)"
            )),
            "env" | "volumeMounts" | "ports" => {
                let list = base
                    .entry(field.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !list.is_array() {
                    *list = Value::Array(Vec::new());
                }
                if let (Some(list), Some(extra)) = (list.as_array_mut(), value.as_array()) {
                    list.extend(extra.iter().cloned());
                }
            }
            _ => {
                base.insert(field.clone(), value.clone());
            }
        }
    }
}

fn object_at<'a>(doc: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut cur = doc;
    for key in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur = cur
            .as_object_mut()
            .map(|m| m.entry(key.to_string()).or_insert(Value::Null))
            .unwrap_or_else(|| unreachable!("made an object above"));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    match cur {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

fn array_at<'a>(doc: &'a mut Value, path: &[&str]) -> &'a mut Vec<Value> {
    let (last, parents) = path.split_last().unwrap_or((&"", &[]));
    let parent = object_at(doc, parents);
    let slot = parent
        .entry(last.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(a) => a,
        _ => unreachable!("made an array above"),
    }
}
