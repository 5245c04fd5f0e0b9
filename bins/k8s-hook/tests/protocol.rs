//! Bad input through the real `k8s-hook` binary (see `bins/protocol_harness.rs`).

#[path = "../../protocol_harness.rs"]
#[macro_use]
mod harness;

protocol_tests!("k8s-hook", "ACTIONS_RUNNER_POD_NAME");
