//! The `logDrops` fault knob: pod log streams (`pods/log`) cut after N bytes, as a proxy or an
//! API server restart cuts them (the chunked body ends without its last chunk). Kept apart from
//! `faults.rs`, which holds the other knobs; [`crate::faults::FaultConfig::log_drops`] holds
//! the configuration.

use serde::{Deserialize, Serialize};

use crate::faults::{Faults, selects_pod};

/// Cut matching log streams after `after_bytes` bytes of body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogDrop {
    /// only streams in this namespace
    #[serde(default)]
    pub namespace: Option<String>,
    /// glob on the pod name (default: all)
    #[serde(default)]
    pub pod: Option<String>,
    /// cut after this many bytes of the response body
    pub after_bytes: u64,
    /// how many streams to cut (absent = every one)
    #[serde(default)]
    pub count: Option<u32>,
}

impl Faults {
    /// Add a log drop.
    pub fn add_log_drop(&self, d: LogDrop) {
        self.update(|cfg| cfg.log_drops.push(d));
    }

    /// Where to cut a new log stream of `pod` (consumes one count).
    pub fn log_drop(&self, ns: &str, pod: &str) -> Option<u64> {
        let mut out = None;
        self.update(|cfg| {
            let Some(idx) = cfg.log_drops.iter().position(|d| {
                selects_pod(&d.namespace, &d.pod, ns, pod) && d.count.is_none_or(|c| c > 0)
            }) else {
                return;
            };
            let d = &mut cfg.log_drops[idx];
            out = Some(d.after_bytes);
            if let Some(c) = d.count.as_mut() {
                *c -= 1;
                if *c == 0 {
                    cfg.log_drops.remove(idx);
                }
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_and_scopes() {
        let f = Faults::default();
        f.add_log_drop(LogDrop {
            namespace: Some("a".into()),
            pod: Some("step-*".into()),
            after_bytes: 10,
            count: Some(2),
        });
        assert_eq!(f.log_drop("b", "step-1"), None);
        assert_eq!(f.log_drop("a", "job"), None);
        assert_eq!(f.log_drop("a", "step-1"), Some(10));
        assert_eq!(f.log_drop("a", "step-1"), Some(10));
        assert_eq!(f.log_drop("a", "step-1"), None);
        let cfg: crate::faults::FaultConfig =
            serde_yaml_ng::from_str("logDrops: [{afterBytes: 5}]").unwrap();
        assert_eq!(cfg.log_drops[0].after_bytes, 5);
    }
}
