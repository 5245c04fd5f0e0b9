//! Bad input through the real `docker-hook` binary (see `bins/protocol_harness.rs`).

#[path = "../../protocol_harness.rs"]
#[macro_use]
mod harness;

protocol_tests!("docker-hook", "RUNNER_NAME");
