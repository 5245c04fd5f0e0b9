//! core/v1 Events: what the apiserver checks on create, and the recorder the kubelet and the
//! scheduler report through, as client-go's `EventRecorder` does: a repeated event (same
//! object, type, reason, message and source) bumps `count` and `lastTimestamp` instead of
//! adding an object; a new one is named `<object>.<hex nanoseconds>`.

use k8s_openapi::api::core::v1::Event;
use serde_json::{Value, json};

use crate::objects::{decode, encode, invalid};
use crate::status::{ApiError, FieldError};
use crate::store::{Kind, Store, now_rfc3339};
use crate::validation::{NameRule, object_meta};

/// `Normal` or `Warning`.
pub const TYPES: [&str; 2] = ["Normal", "Warning"];

/// Decode, default and validate a new (or replaced) Event (`pkg/apis/core/validation/events.go`,
/// legacy events: involvedObject namespace, type, reason and message lengths).
pub fn prepare_create(v: Value) -> Result<Value, ApiError> {
    let mut e: Event = decode(Kind::Event, &v)?;
    let mut errs = Vec::new();
    let ns = e.metadata.namespace.clone().unwrap_or_default();
    if let Some(ins) = e.involved_object.namespace.as_deref()
        && !ns.is_empty()
        && !ins.is_empty()
        && ins != ns
    {
        errs.push(FieldError::invalid(
            "involvedObject.namespace",
            ins,
            "does not match event.namespace",
        ));
    }
    if let Some(t) = e.type_.as_deref()
        && !t.is_empty()
        && !TYPES.contains(&t)
    {
        errs.push(FieldError::not_supported("type", t, &TYPES));
    }
    if e.reason.as_deref().is_some_and(|r| r.len() > 128) {
        errs.push(FieldError::invalid(
            "reason",
            "",
            "can have at most 128 characters",
        ));
    }
    if e.message.as_deref().is_some_and(|m| m.len() > 1024) {
        // the apiserver truncates nothing: the recorder does (below); clients get an error
        errs.push(FieldError::invalid(
            "message",
            "",
            "can have at most 1024 characters",
        ));
    }
    e.count.get_or_insert(1);
    let out = encode(&e)?;
    object_meta(&out, NameRule::Subdomain, &mut errs);
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(invalid(Kind::Event, &out, &errs))
    }
}

/// Who reports (`source.component`, e.g. `kubelet`, `default-scheduler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reporter<'a> {
    /// `source.component` / `reportingComponent`
    pub component: &'a str,
    /// `source.host` / `reportingInstance` (the node), if any
    pub host: Option<&'a str>,
}

/// The kubelet of the simulated node.
pub const KUBELET: Reporter<'static> = Reporter {
    component: "kubelet",
    host: Some(crate::kubelet::plan::NODE_NAME),
};

/// The scheduler.
pub const SCHEDULER: Reporter<'static> = Reporter {
    component: "default-scheduler",
    host: None,
};

/// One thing to report about a pod (or one of its containers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent<'a> {
    /// `Normal` or `Warning`
    pub type_: &'a str,
    /// e.g. `Failed`, `BackOff`, `FailedMount`, `FailedScheduling`, `Evicted`
    pub reason: &'a str,
    /// the human message
    pub message: String,
    /// the container it is about (`spec.containers{name}` / `spec.initContainers{name}`)
    pub field_path: Option<String>,
}

/// Records `event` about `pod` (the stored pod object) from `by`. Never fails the caller: a
/// namespace being deleted, for one, refuses it.
pub fn record(store: &Store, pod: &Value, by: Reporter<'_>, event: PodEvent<'_>) {
    let meta = &pod["metadata"];
    let ns = meta["namespace"].as_str().unwrap_or_default();
    let name = meta["name"].as_str().unwrap_or_default();
    let uid = meta["uid"].as_str().unwrap_or_default();
    let mut message = event.message;
    if message.len() > 1024 {
        let mut cut = 1021;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    let same = |o: &Value| {
        o["involvedObject"]["uid"].as_str() == Some(uid)
            && o["involvedObject"]["fieldPath"].as_str() == event.field_path.as_deref()
            && o["type"].as_str() == Some(event.type_)
            && o["reason"].as_str() == Some(event.reason)
            && o["message"].as_str() == Some(message.as_str())
            && o["source"]["component"].as_str() == Some(by.component)
    };
    let now = now_rfc3339();
    let existing = store
        .list(Kind::Event, Some(ns))
        .0
        .into_iter()
        .find(|o| same(o))
        .and_then(|o| o["metadata"]["name"].as_str().map(str::to_owned));
    if let Some(ev) = existing {
        let at = now.clone();
        let bumped = store.update(Kind::Event, ns, &ev, move |o| {
            o["count"] = json!(o["count"].as_i64().unwrap_or(1) + 1);
            o["lastTimestamp"] = at;
            Ok(())
        });
        if bumped.is_ok() {
            return;
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut involved = json!({
        "kind": "Pod", "namespace": ns, "name": name, "uid": uid, "apiVersion": "v1",
        "resourceVersion": meta["resourceVersion"].clone(),
    });
    if let Some(f) = &event.field_path {
        involved["fieldPath"] = json!(f);
    }
    let mut source = json!({"component": by.component});
    if let Some(h) = by.host {
        source["host"] = json!(h);
    }
    let v = json!({
        "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": ns},
        "involvedObject": involved,
        "reason": event.reason,
        "message": message,
        "source": source,
        "firstTimestamp": now.clone(),
        "lastTimestamp": now,
        "count": 1,
        "type": event.type_,
        "reportingComponent": by.component,
        "reportingInstance": by.host.unwrap_or_default(),
    });
    match prepare_create(v).and_then(|v| store.create(Kind::Event, ns, v)) {
        Ok(_) => {}
        Err(e) => tracing::debug!(
            pod = name,
            reason = event.reason,
            "event not recorded: {e:?}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_events_are_counted_and_bad_ones_refused() {
        let s = Store::new(100);
        s.create(Kind::Namespace, "", json!({"metadata": {"name": "n"}}))
            .unwrap();
        let pod = s
            .create(Kind::Pod, "n", json!({"metadata": {"name": "p"}}))
            .unwrap();
        let failed = |m: &str| PodEvent {
            type_: "Warning",
            reason: "Failed",
            message: m.into(),
            field_path: Some("spec.containers{job}".into()),
        };
        record(&s, &pod, KUBELET, failed("Error: ErrImagePull"));
        record(&s, &pod, KUBELET, failed("Error: ErrImagePull"));
        record(&s, &pod, KUBELET, failed("Error: ImagePullBackOff"));
        let (events, _) = s.list(Kind::Event, Some("n"));
        assert_eq!(events.len(), 2);
        let pull = events
            .iter()
            .find(|e| e["message"] == "Error: ErrImagePull")
            .unwrap();
        assert_eq!(pull["count"], 2);
        assert_eq!(pull["involvedObject"]["uid"], pod["metadata"]["uid"]);
        assert_eq!(
            pull["source"],
            json!({"component": "kubelet", "host": "kubesim-node"})
        );
        assert!(pull["metadata"]["name"].as_str().unwrap().starts_with("p."));

        let e = prepare_create(json!({
            "metadata": {"name": "x", "namespace": "n"},
            "involvedObject": {"namespace": "other"}, "type": "Bad"
        }))
        .unwrap_err();
        assert_eq!(e.code, 422);
        let msg = e.status["message"].as_str().unwrap();
        assert!(msg.contains("does not match event.namespace"), "{msg}");
        assert!(msg.contains("type"), "{msg}");
    }
}
