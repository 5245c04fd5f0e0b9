//! kubesim: a Kubernetes API simulator whose pods are real Docker containers.
//!
//! An HTTPS API server on 127.0.0.1 (CA generated at start, bearer token, kubeconfig written
//! for clients) implementing the part of the Kubernetes API the k8s hook uses with Kubernetes'
//! own semantics, and a kubelet running pods as Docker containers. See `docs/kubesim.md`.

pub mod config;
pub mod events;
pub mod faults;
pub mod gc;
pub mod kubeconfig;
pub mod kubelet;
pub mod log_faults;
pub mod objects;
pub mod podspec;
pub mod selectors;
pub mod server;
pub mod sim;
pub mod standalone;
pub mod status;
pub mod store;
pub mod testing;
pub mod tls;
pub mod validation;

pub use config::{DenyRule, SimConfig};
pub use faults::{FaultConfig, Faults, KillMode};
pub use sim::{SimError, Simulator};
