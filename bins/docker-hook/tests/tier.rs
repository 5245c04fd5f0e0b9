//! The Docker tier marker, shared by the crates that have a Docker tier.

#[path = "../../../crates/testenv/tests/tier.rs"]
mod tier;
