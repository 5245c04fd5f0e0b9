//! Fault injection knobs. Set them in the config file given to the binary (`faults:` key), through
//! `PUT /kubesim/faults` (JSON body = [`FaultConfig`]), or with [`Faults`] from tests. Every knob
//! can be scoped to a namespace so tests sharing one simulator do not disturb each other.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{selects, selects_sub};
use crate::status::ApiError;

fn scope_ok(scope: &Option<String>, ns: &str) -> bool {
    scope.as_deref().is_none_or(|s| s == ns)
}

/// Whether a knob for pods in `namespace` whose name matches the glob `pod` (each: any when
/// absent) applies to pod `name` in `ns`.
pub(crate) fn selects_pod(
    namespace: &Option<String>,
    pod: &Option<String>,
    ns: &str,
    name: &str,
) -> bool {
    scope_ok(namespace, ns) && pod.as_deref().is_none_or(|p| glob_match(p, name))
}

/// `*` matches any run of characters; everything else is literal.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

/// Delay before the kubelet starts working on matching pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDelay {
    /// only pods in this namespace
    #[serde(default)]
    pub namespace: Option<String>,
    /// glob on the pod name (default: all)
    #[serde(default)]
    pub pod: Option<String>,
    /// milliseconds
    pub millis: u64,
}

/// Pulls of images matching `image` (glob) fail with ErrImagePull.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullFailure {
    /// only pods in this namespace
    #[serde(default)]
    pub namespace: Option<String>,
    /// glob on the image reference
    pub image: String,
}

/// Answer `code` (500 or 429) to the next `count` matching requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestFault {
    /// only requests in this namespace
    #[serde(default)]
    pub namespace: Option<String>,
    /// RBAC verb: get, list, watch, create, update, patch, delete, deletecollection ("*" = any)
    pub verb: String,
    /// resource, e.g. pods ("*" = any)
    pub resource: String,
    /// subresource, e.g. exec, log, status (absent = only the main resource, "*" = any)
    #[serde(default)]
    pub subresource: Option<String>,
    /// 500 or 429 (any 4xx/5xx is accepted)
    pub code: u16,
    /// how many requests get the error
    pub count: u32,
    /// Retry-After seconds for 429 (default 1)
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
}

/// Drop exec/attach websockets (no status on channel 3, connection closed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamDrop {
    /// only streams in this namespace
    #[serde(default)]
    pub namespace: Option<String>,
    /// drop after this many stdout+stderr bytes were sent
    #[serde(default)]
    pub after_bytes: Option<u64>,
    /// drop after this many milliseconds
    #[serde(default)]
    pub after_millis: Option<u64>,
    /// how many streams to drop (absent = every one)
    #[serde(default)]
    pub count: Option<u32>,
    /// only exec streams whose command (argv joined with spaces) matches this glob, e.g.
    /// `*k8s-hook-step-follow*` (absent = every exec and attach stream)
    #[serde(default)]
    pub command: Option<String>,
}

/// Keep matching pods Unschedulable for a while.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Unschedulable {
    /// only pods in this namespace
    #[serde(default)]
    pub namespace: Option<String>,
    /// glob on the pod name (default: all)
    #[serde(default)]
    pub pod: Option<String>,
    /// seconds the pod stays unschedulable
    pub seconds: u64,
}

/// All knobs (each may be absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FaultConfig {
    /// delays before pods start
    pub pod_start_delays: Vec<PodDelay>,
    /// failing pulls
    pub pull_failures: Vec<PullFailure>,
    /// unschedulable pods
    pub unschedulable: Vec<Unschedulable>,
    /// erroring requests
    pub request_errors: Vec<RequestFault>,
    /// dropped streams
    pub stream_drops: Vec<StreamDrop>,
    /// cut log streams (`log_faults.rs`)
    pub log_drops: Vec<crate::log_faults::LogDrop>,
}

impl FaultConfig {
    /// Adds every knob of `more` to these (`POST /kubesim/faults`). Every field is named here, so
    /// a new kind of fault cannot be forgotten.
    pub fn add(&mut self, more: FaultConfig) {
        let FaultConfig {
            pod_start_delays,
            pull_failures,
            unschedulable,
            request_errors,
            stream_drops,
            log_drops,
        } = more;
        self.pod_start_delays.extend(pod_start_delays);
        self.pull_failures.extend(pull_failures);
        self.unschedulable.extend(unschedulable);
        self.request_errors.extend(request_errors);
        self.stream_drops.extend(stream_drops);
        self.log_drops.extend(log_drops);
    }
}

/// How to kill a pod's container (`POST /kubesim/kill`, [`crate::testing::Sim::kill_container`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KillMode {
    /// the container is OOM-killed: terminated reason OOMKilled, exit code 137
    OOMKilled,
    /// the pod is evicted: every container killed, pod Failed with reason Evicted
    Evicted,
}

/// Shared, live-editable fault state.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<FaultConfig>>);

impl Faults {
    /// Start from a config.
    pub fn new(cfg: FaultConfig) -> Self {
        Self(Arc::new(Mutex::new(cfg)))
    }
    fn lock(&self) -> MutexGuard<'_, FaultConfig> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Current config.
    pub fn get(&self) -> FaultConfig {
        self.lock().clone()
    }
    /// Replace everything.
    pub fn set(&self, cfg: FaultConfig) {
        *self.lock() = cfg;
    }
    /// Apply a change.
    pub fn update(&self, f: impl FnOnce(&mut FaultConfig)) {
        f(&mut self.lock());
    }
    /// Add a request fault.
    pub fn add_request_error(&self, f: RequestFault) {
        self.lock().request_errors.push(f);
    }
    /// Add a pull failure.
    pub fn add_pull_failure(&self, f: PullFailure) {
        self.lock().pull_failures.push(f);
    }
    /// Add a start delay.
    pub fn add_pod_start_delay(&self, f: PodDelay) {
        self.lock().pod_start_delays.push(f);
    }
    /// Add an unschedulable window.
    pub fn add_unschedulable(&self, f: Unschedulable) {
        self.lock().unschedulable.push(f);
    }
    /// Add a stream drop.
    pub fn add_stream_drop(&self, f: StreamDrop) {
        self.lock().stream_drops.push(f);
    }

    /// Whether this request must fail now (consumes one count).
    pub fn check_request(
        &self,
        verb: &str,
        resource: &str,
        sub: &str,
        ns: &str,
    ) -> Option<ApiError> {
        let mut cfg = self.lock();
        let idx = cfg.request_errors.iter().position(|f| {
            f.count > 0
                && scope_ok(&f.namespace, ns)
                && selects(&f.verb, verb)
                && selects(&f.resource, resource)
                && selects_sub(f.subresource.as_deref(), sub)
        })?;
        let f = &mut cfg.request_errors[idx];
        f.count -= 1;
        let err = match f.code {
            429 => ApiError::too_many_requests(f.retry_after_seconds.unwrap_or(1)),
            500 => ApiError::internal("kubesim: injected fault"),
            503 => ApiError::unavailable("kubesim: injected fault"),
            code => {
                let mut e = ApiError::internal("kubesim: injected fault");
                e.code = code;
                e.status["code"] = code.into();
                e
            }
        };
        if f.count == 0 {
            cfg.request_errors.remove(idx);
        }
        Some(err)
    }

    /// Delay before the kubelet acts on this pod.
    pub fn pod_start_delay(&self, ns: &str, pod: &str) -> Duration {
        let ms = self
            .lock()
            .pod_start_delays
            .iter()
            .filter(|d| selects_pod(&d.namespace, &d.pod, ns, pod))
            .map(|d| d.millis)
            .max()
            .unwrap_or(0);
        Duration::from_millis(ms)
    }

    /// How long this pod stays unschedulable.
    pub fn unschedulable_for(&self, ns: &str, pod: &str) -> Duration {
        let s = self
            .lock()
            .unschedulable
            .iter()
            .filter(|d| selects_pod(&d.namespace, &d.pod, ns, pod))
            .map(|d| d.seconds)
            .max()
            .unwrap_or(0);
        Duration::from_secs(s)
    }

    /// Whether pulling this image must fail.
    pub fn pull_fails(&self, ns: &str, image: &str) -> bool {
        self.lock()
            .pull_failures
            .iter()
            .any(|f| scope_ok(&f.namespace, ns) && glob_match(&f.image, image))
    }

    /// A drop plan for a new exec/attach stream (consumes one count); `command` is the exec's
    /// argv (empty for attach).
    pub fn stream_drop(&self, ns: &str, command: &[String]) -> Option<StreamDrop> {
        let mut cfg = self.lock();
        let joined = command.join(" ");
        let idx = cfg.stream_drops.iter().position(|d| {
            scope_ok(&d.namespace, ns)
                && d.count.is_none_or(|c| c > 0)
                && d.command
                    .as_deref()
                    .is_none_or(|g| !command.is_empty() && glob_match(g, &joined))
        })?;
        let d = &mut cfg.stream_drops[idx];
        let out = d.clone();
        if let Some(c) = d.count.as_mut() {
            *c -= 1;
            if *c == 0 {
                cfg.stream_drops.remove(idx);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("*bad*", "127.0.0.1:5555/bad/img:1"));
        assert!(!glob_match("bad*", "x/bad"));
        assert!(glob_match("a*c", "abbbc"));
    }

    #[test]
    fn request_fault_counts_down() {
        let f = Faults::default();
        f.add_request_error(RequestFault {
            verb: "get".into(),
            resource: "pods".into(),
            code: 429,
            count: 2,
            retry_after_seconds: Some(3),
            ..Default::default()
        });
        assert!(f.check_request("list", "pods", "", "a").is_none());
        assert!(f.check_request("get", "pods", "log", "a").is_none());
        let e = f.check_request("get", "pods", "", "a").unwrap();
        assert_eq!((e.code, e.retry_after), (429, Some(3)));
        assert!(f.check_request("get", "pods", "", "a").is_some());
        assert!(f.check_request("get", "pods", "", "a").is_none());
    }

    #[test]
    fn stream_drops_by_command_count_down() {
        let f = Faults::default();
        f.add_stream_drop(StreamDrop {
            command: Some("*follow*".into()),
            count: Some(2),
            after_bytes: Some(10),
            ..Default::default()
        });
        let cmd = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert!(f.stream_drop("a", &cmd("sh -c tar")).is_none());
        assert!(f.stream_drop("a", &[]).is_none(), "attach has no command");
        assert!(f.stream_drop("a", &cmd("sh -c x follow 1")).is_some());
        assert!(f.stream_drop("b", &cmd("follow")).is_some());
        assert!(f.stream_drop("a", &cmd("follow")).is_none(), "used up");
    }

    #[test]
    fn config_file_shape() {
        let cfg: FaultConfig = serde_yaml_ng::from_str(
            "podStartDelays: [{millis: 500}]\nrequestErrors: [{verb: create, resource: pods, code: 500, count: 1}]\n",
        )
        .unwrap();
        assert_eq!(cfg.pod_start_delays[0].millis, 500);
        assert!(serde_yaml_ng::from_str::<FaultConfig>("bogus: 1").is_err());
    }
}
