//! In-memory object store with one global resourceVersion counter (like etcd's revision) and a
//! bounded event history so watches can resume from any recent resourceVersion.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::status::ApiError;

/// The resources kubesim stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// core/v1 Namespace
    Namespace,
    /// core/v1 Pod
    Pod,
    /// core/v1 Secret
    Secret,
    /// core/v1 ConfigMap
    ConfigMap,
    /// core/v1 PersistentVolumeClaim
    PersistentVolumeClaim,
    /// core/v1 Event (what the kubelet and the scheduler report about pods)
    Event,
}

impl Kind {
    /// Every kind, in discovery order.
    pub const ALL: [Kind; 6] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::Secret,
        Kind::ConfigMap,
        Kind::PersistentVolumeClaim,
        Kind::Event,
    ];
    /// Resource name in URLs (`pods`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::Secret => "secrets",
            Kind::ConfigMap => "configmaps",
            Kind::PersistentVolumeClaim => "persistentvolumeclaims",
            Kind::Event => "events",
        }
    }
    /// `kind` field (`Pod`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
            Kind::Event => "Event",
        }
    }
    /// Short names advertised in discovery.
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["ns"],
            Kind::Pod => &["po"],
            Kind::Secret => &[],
            Kind::ConfigMap => &["cm"],
            Kind::PersistentVolumeClaim => &["pvc"],
            Kind::Event => &["ev"],
        }
    }
    /// Whether objects live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Namespace)
    }
    /// Parse a URL resource name.
    pub fn from_plural(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.plural() == s)
    }
}

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// ADDED
    Added,
    /// MODIFIED
    Modified,
    /// DELETED
    Deleted,
}

impl EventType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change in the store.
#[derive(Debug, Clone)]
pub struct Event {
    /// resourceVersion this change produced
    pub rv: u64,
    /// kind of the object
    pub kind: Kind,
    /// namespace ("" for cluster-scoped)
    pub namespace: String,
    /// object name
    pub name: String,
    /// ADDED / MODIFIED / DELETED
    pub etype: EventType,
    /// the object after the change (for DELETED: its last state with the deletion's rv)
    pub object: Arc<Value>,
    /// the object before the change (MODIFIED only)
    pub prev: Option<Arc<Value>>,
}

type Key = (Kind, String, String);

/// Past events after a resourceVersion, and a receiver for the later ones.
pub type Subscription = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

#[derive(Debug)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Event>>,
    /// lowest rv a watch may start from (older ones are "compacted")
    compacted: u64,
}

/// The store. Cheap to share (`Arc<Store>`).
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
    history_cap: usize,
}

/// Now, as a jiff timestamp (second precision, like the apiserver's metav1.Time).
pub fn now_ts() -> k8s_openapi::jiff::Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// A timestamp as the apiserver writes it (RFC 3339, seconds).
pub fn time_value(t: k8s_openapi::jiff::Timestamp) -> Value {
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t))
        .unwrap_or(Value::Null)
}

/// Current time as the apiserver writes timestamps (RFC 3339, seconds).
pub fn now_rfc3339() -> Value {
    time_value(now_ts())
}

/// A metadata field of an object (`""` when absent).
pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

impl Store {
    /// A store keeping the last `history_cap` events for watch resumption.
    pub fn new(history_cap: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(8192);
        Arc::new(Self {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                compacted: 1,
            }),
            tx,
            history_cap,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current global resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    fn emit(
        &self,
        inner: &mut Inner,
        etype: EventType,
        kind: Kind,
        obj: &Value,
        prev: Option<Value>,
    ) {
        let ev = Arc::new(Event {
            rv: inner.rv,
            kind,
            namespace: meta_str(obj, "namespace").to_string(),
            name: meta_str(obj, "name").to_string(),
            etype,
            object: Arc::new(obj.clone()),
            prev: prev.map(Arc::new),
        });
        inner.history.push_back(ev.clone());
        while inner.history.len() > self.history_cap {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
        // No receiver is fine.
        let _ = self.tx.send(ev);
    }

    /// Insert a new object. Fills uid, creationTimestamp, resourceVersion (and namespace).
    pub fn create(&self, kind: Kind, namespace: &str, mut obj: Value) -> Result<Value, ApiError> {
        let name = meta_str(&obj, "name").to_string();
        let mut inner = self.lock();
        if kind.namespaced()
            && !inner
                .objects
                .contains_key(&(Kind::Namespace, String::new(), namespace.to_string()))
        {
            return Err(ApiError::not_found("", "namespaces", namespace));
        }
        let key = (kind, namespace.to_string(), name.clone());
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists("", kind.plural(), &name));
        }
        inner.rv += 1;
        let rv = inner.rv;
        obj["kind"] = json!(kind.name());
        obj["apiVersion"] = json!("v1");
        let meta = &mut obj["metadata"];
        if kind.namespaced() {
            meta["namespace"] = json!(namespace);
        }
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["resourceVersion"] = json!(rv.to_string());
        meta["creationTimestamp"] = now_rfc3339();
        inner.objects.insert(key, obj.clone());
        self.emit(&mut inner, EventType::Added, kind, &obj, None);
        Ok(obj)
    }

    /// Fetch one object.
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        let ns = if kind.namespaced() { namespace } else { "" };
        self.lock()
            .objects
            .get(&(kind, ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Fetch one object or the apiserver's 404.
    pub fn get_or_404(&self, kind: Kind, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.get(kind, namespace, name)
            .ok_or_else(|| ApiError::not_found("", kind.plural(), name))
    }

    /// All objects of a kind (in one namespace, or all), and the list's resourceVersion.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|((k, ns, _), _)| *k == kind && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.rv)
    }

    /// Mutate an object in place. `f` may refuse with an error; nothing changes then. A no-op
    /// change (the object is equal afterwards) does not bump the resourceVersion, as in the
    /// apiserver.
    pub fn update<F>(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        f: F,
    ) -> Result<Value, ApiError>
    where
        F: FnOnce(&mut Value) -> Result<(), ApiError>,
    {
        let ns = if kind.namespaced() { namespace } else { "" };
        let key = (kind, ns.to_string(), name.to_string());
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(&key)
            .ok_or_else(|| ApiError::not_found("", kind.plural(), name))?;
        let mut next = current.clone();
        f(&mut next)?;
        // identity fields stay
        next["metadata"]["uid"] = current["metadata"]["uid"].clone();
        next["metadata"]["name"] = current["metadata"]["name"].clone();
        next["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"].clone();
        if kind.namespaced() {
            next["metadata"]["namespace"] = current["metadata"]["namespace"].clone();
        }
        next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        next["kind"] = json!(kind.name());
        next["apiVersion"] = json!("v1");
        if &next == current {
            return Ok(next);
        }
        let prev = current.clone();
        inner.rv += 1;
        next["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        inner.objects.insert(key, next.clone());
        self.emit(&mut inner, EventType::Modified, kind, &next, Some(prev));
        Ok(next)
    }

    /// Remove an object (final deletion). Returns its last state.
    pub fn remove(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        let ns = if kind.namespaced() { namespace } else { "" };
        let key = (kind, ns.to_string(), name.to_string());
        let mut inner = self.lock();
        let mut obj = inner.objects.remove(&key)?;
        inner.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        self.emit(&mut inner, EventType::Deleted, kind, &obj, None);
        Some(obj)
    }

    /// Remove an object only if its uid is still `uid` (a re-created object of the same name stays).
    pub fn remove_uid(&self, kind: Kind, namespace: &str, name: &str, uid: &str) -> Option<Value> {
        {
            let cur = self.get(kind, namespace, name)?;
            if meta_str(&cur, "uid") != uid {
                return None;
            }
        }
        self.remove(kind, namespace, name)
    }

    /// Events after `rv` still in history, plus a receiver for later ones (no gap, no overlap
    /// beyond what the caller filters by rv). Err(oldest) when `rv` is older than the history.
    pub fn subscribe_from(&self, rv: u64) -> Result<Subscription, u64> {
        let inner = self.lock();
        if rv < inner.compacted {
            return Err(inner.compacted);
        }
        let rx = self.tx.subscribe();
        let past = inner
            .history
            .iter()
            .filter(|e| e.rv > rv)
            .cloned()
            .collect();
        Ok((past, rx))
    }

    /// A receiver of every later change.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Every object (for GC and cleanup).
    pub fn all(&self) -> Vec<(Kind, Value)> {
        self.lock()
            .objects
            .iter()
            .map(|((k, _, _), v)| (*k, v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(store: &Store, name: &str) {
        store
            .create(Kind::Namespace, "", json!({"metadata": {"name": name}}))
            .unwrap();
    }

    #[test]
    fn rv_grows_and_conflicts() {
        let s = Store::new(100);
        ns(&s, "a");
        let p = s
            .create(Kind::Pod, "a", json!({"metadata": {"name": "p"}}))
            .unwrap();
        let e = s
            .create(Kind::Pod, "a", json!({"metadata": {"name": "p"}}))
            .unwrap_err();
        assert_eq!(e.code, 409);
        let e = s
            .create(Kind::Pod, "nope", json!({"metadata": {"name": "p"}}))
            .unwrap_err();
        assert_eq!(e.status["message"], "namespaces \"nope\" not found");
        let rv1: u64 = p["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let q = s
            .update(Kind::Pod, "a", "p", |o| {
                o["metadata"]["labels"] = json!({"x": "y"});
                Ok(())
            })
            .unwrap();
        let rv2: u64 = q["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rv2 > rv1);
        // no-op update keeps rv
        let r = s.update(Kind::Pod, "a", "p", |_| Ok(())).unwrap();
        assert_eq!(
            r["metadata"]["resourceVersion"],
            q["metadata"]["resourceVersion"]
        );
    }

    #[test]
    fn history_compacts() {
        let s = Store::new(3);
        ns(&s, "a");
        for i in 0..10 {
            s.create(
                Kind::Secret,
                "a",
                json!({"metadata": {"name": format!("s{i}")}}),
            )
            .unwrap();
        }
        assert!(s.subscribe_from(2).is_err());
        let (past, _) = s.subscribe_from(s.current_rv() - 2).unwrap();
        assert_eq!(past.len(), 2);
    }
}
