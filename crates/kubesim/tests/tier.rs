//! The Docker tier marker, shared by the crates that have a Docker tier.

#[path = "../../testenv/tests/tier.rs"]
mod tier;
