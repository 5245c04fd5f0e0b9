//! The build context of a Dockerfile container action, shared by the docker hook (which hands it
//! to the engine) and the Kubernetes hook (which streams it to a Kaniko builder):
//!
//! - [`DockerIgnore`]: `.dockerignore` with Docker's own rules;
//! - [`pack`]: the Dockerfile's directory as a deterministic tar (sorted, fixed times and
//!   owners) filtered by `.dockerignore`, with a SHA-256 [`BuildContext::digest`] of its content
//!   and the Dockerfile's name, so an unchanged action keeps its image name and is not rebuilt;
//!   [`digest`] and [`pack_into`] do the same without holding the archive in memory (the
//!   Kubernetes hook hashes first, then streams the archive to the builder only when needed).

// Architecture invariants enforced by the compiler: no environment reads below the binaries
// (clippy.toml lists the methods) and stdout belongs to the step.
#![deny(clippy::disallowed_methods, clippy::print_stdout)]

mod context;
mod dockerignore;

pub use context::{BuildContext, Error, Packed, digest, pack, pack_into};
pub use dockerignore::{DockerIgnore, IgnoreError};
