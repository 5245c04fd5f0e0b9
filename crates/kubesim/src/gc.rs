//! Garbage collection: ownerReferences (background propagation), finalizer-free removal of
//! objects being deleted, and namespace termination.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::server::{AppState, delete_object};
use crate::store::{EventType, Kind, Store, meta_str};

/// Drop `owner_uid` from every object's ownerReferences (propagationPolicy Orphan).
pub fn orphan_dependents(store: &Store, owner_uid: &str) {
    for (kind, obj) in store.all() {
        let refs = obj["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !refs.iter().any(|r| r["uid"] == owner_uid) {
            continue;
        }
        let (ns, name) = (meta_str(&obj, "namespace"), meta_str(&obj, "name"));
        let _ = store.update(kind, ns, name, |o| {
            let kept: Vec<Value> = refs
                .iter()
                .filter(|r| r["uid"] != owner_uid)
                .cloned()
                .collect();
            if kept.is_empty() {
                if let Some(m) = o["metadata"].as_object_mut() {
                    m.remove("ownerReferences");
                }
            } else {
                o["metadata"]["ownerReferences"] = Value::Array(kept);
            }
            Ok(())
        });
    }
}

fn kind_of_ref(r: &Value) -> Option<Kind> {
    if r["apiVersion"].as_str() != Some("v1") {
        return None;
    }
    Kind::ALL
        .into_iter()
        .find(|k| Some(k.name()) == r["kind"].as_str())
}

/// Objects all of whose (resolvable) owners are gone.
pub fn dangling(store: &Store) -> Vec<(Kind, String, String)> {
    let all = store.all();
    let present: HashSet<(Kind, String, String, String)> = all
        .iter()
        .map(|(k, o)| {
            let m = &o["metadata"];
            (
                *k,
                m["namespace"].as_str().unwrap_or_default().to_string(),
                m["name"].as_str().unwrap_or_default().to_string(),
                m["uid"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let mut out = Vec::new();
    for (kind, o) in &all {
        let m = &o["metadata"];
        let Some(refs) = m["ownerReferences"].as_array() else {
            continue;
        };
        if refs.is_empty() || !m["deletionTimestamp"].is_null() {
            continue;
        }
        let ns = m["namespace"].as_str().unwrap_or_default().to_string();
        let all_gone = refs.iter().all(|r| {
            let Some(k) = kind_of_ref(r) else {
                return false;
            };
            let owner_ns = if k.namespaced() {
                ns.clone()
            } else {
                String::new()
            };
            !present.contains(&(
                k,
                owner_ns,
                r["name"].as_str().unwrap_or_default().to_string(),
                r["uid"].as_str().unwrap_or_default().to_string(),
            ))
        });
        if all_gone {
            out.push((
                *kind,
                ns,
                m["name"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

fn sweep(state: &AppState) {
    for (kind, ns, name) in dangling(&state.store) {
        tracing::debug!(?kind, ns, name, "garbage-collecting dependent");
        let _ = delete_object(state, kind, &ns, &name, &Default::default());
    }
}

/// The garbage collector loop.
pub async fn run(state: AppState) {
    let mut rx = state.store.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    if ev.etype == EventType::Deleted {
                        sweep(&state);
                    } else if ev.etype == EventType::Modified {
                        let m = &ev.object["metadata"];
                        let done = !m["deletionTimestamp"].is_null()
                            && m["finalizers"].as_array().is_none_or(Vec::is_empty)
                            && ev.kind != Kind::Namespace
                            && (ev.kind != Kind::Pod || !state.kubelet.is_managing(m["uid"].as_str().unwrap_or_default()));
                        if done {
                            state.store.remove_uid(ev.kind, &ev.namespace, &ev.name, m["uid"].as_str().unwrap_or_default());
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => sweep(&state),
                Err(_) => return,
            },
            _ = tick.tick() => sweep(&state),
        }
    }
}

/// Namespace termination: delete everything in it, then the namespace.
pub async fn finish_namespace(state: AppState, ns: String) {
    for kind in [
        Kind::Pod,
        Kind::Secret,
        Kind::ConfigMap,
        Kind::PersistentVolumeClaim,
    ] {
        let (items, _) = state.store.list(kind, Some(&ns));
        for o in items {
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let _ = delete_object(&state, kind, &ns, &name, &Default::default());
        }
    }
    for _ in 0..3000 {
        let left: usize = [
            Kind::Pod,
            Kind::Secret,
            Kind::ConfigMap,
            Kind::PersistentVolumeClaim,
        ]
        .iter()
        .map(|k| state.store.list(*k, Some(&ns)).0.len())
        .sum();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Events last: the kubelet reports on the pods it stops until they are gone.
    for o in state.store.list(Kind::Event, Some(&ns)).0 {
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        let _ = state.store.remove(Kind::Event, &ns, name);
    }
    state.store.remove(Kind::Namespace, "", &ns);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dangling_only_when_all_owners_gone() {
        let s = Store::new(100);
        s.create(Kind::Namespace, "", json!({"metadata": {"name": "a"}}))
            .unwrap();
        let owner = s
            .create(Kind::Secret, "a", json!({"metadata": {"name": "o"}}))
            .unwrap();
        let uid = owner["metadata"]["uid"].as_str().unwrap();
        let r = json!({"apiVersion": "v1", "kind": "Secret", "name": "o", "uid": uid});
        s.create(
            Kind::Secret,
            "a",
            json!({"metadata": {"name": "d", "ownerReferences": [r]}}),
        )
        .unwrap();
        assert!(dangling(&s).is_empty());
        s.remove(Kind::Secret, "a", "o");
        assert_eq!(
            dangling(&s),
            vec![(Kind::Secret, "a".to_string(), "d".to_string())]
        );
    }
}
