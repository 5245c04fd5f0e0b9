//! The RBAC preflight of `prepare_job`: one SelfSubjectAccessReview per needed permission,
//! all sent at once, every denial reported in one message.

use crate::retry;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

/// One permission: verb on (sub)resource in the core group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// The verb.
    pub verb: &'static str,
    /// The resource.
    pub resource: &'static str,
    /// The subresource, if any.
    pub subresource: Option<&'static str>,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.subresource {
            Some(s) => write!(f, "{} {}/{}", self.verb, self.resource, s),
            None => write!(f, "{} {}", self.verb, self.resource),
        }
    }
}

const fn p(verb: &'static str, resource: &'static str, sub: Option<&'static str>) -> Permission {
    Permission {
        verb,
        resource,
        subresource: sub,
    }
}

/// Everything the hook does with the API.
pub const REQUIRED: [Permission; 12] = [
    p("get", "pods", None),
    p("list", "pods", None),
    p("watch", "pods", None),
    p("create", "pods", None),
    p("delete", "pods", None),
    p("get", "pods", Some("exec")),
    p("create", "pods", Some("exec")),
    p("get", "pods", Some("log")),
    p("get", "secrets", None),
    p("list", "secrets", None),
    p("create", "secrets", None),
    p("delete", "secrets", None),
];

/// What the hook uses when it may and does without otherwise (the preflight does not ask):
/// a pod's events, shown when a pod wait fails or times out.
pub const OPTIONAL: [Permission; 1] = [p("list", "events", None)];

/// What Dockerfile actions add when a build registry is configured: the build context is
/// streamed to the builder pod over `pods/attach`.
pub const BUILD_REQUIRED: [Permission; 2] = [
    p("get", "pods", Some("attach")),
    p("create", "pods", Some("attach")),
];

/// The access review asking for `perm` in `namespace`.
pub fn review(perm: &Permission, namespace: &str) -> SelfSubjectAccessReview {
    SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                verb: Some(perm.verb.to_owned()),
                group: Some(String::new()),
                resource: Some(perm.resource.to_owned()),
                subresource: perm.subresource.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    }
}

/// The outcome of the preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// Everything is allowed.
    Allowed,
    /// These permissions are denied.
    Denied(Vec<Permission>),
    /// The reviews themselves failed (the hook goes on; the real calls will say what is wrong).
    Unknown(String),
}

/// The permissions the runner's service account lacks, every one listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the runner's service account lacks permissions in namespace {namespace}: {} (grant them in the runner's Role; see docs/k8s.md)",
    .missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
)]
pub struct MissingPermissions {
    /// The namespace the hook works in.
    pub namespace: String,
    /// What the access reviews denied.
    pub missing: Vec<Permission>,
}

/// Sends every review at once: [`REQUIRED`], plus [`BUILD_REQUIRED`] when `builds` (a build
/// registry is configured, so Dockerfile actions will attach to builder pods).
pub async fn preflight(client: &Client, namespace: &str, builds: bool) -> Preflight {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let extra: &[Permission] = if builds { &BUILD_REQUIRED } else { &[] };
    let checks = REQUIRED.iter().chain(extra).map(|perm| {
        let api = api.clone();
        async move {
            let body = review(perm, namespace);
            let pp = PostParams::default();
            let r = retry::api(format!("access review ({perm})"), || api.create(&pp, &body)).await;
            (perm, r)
        }
    });
    let results = futures::future::join_all(checks).await;
    let mut denied = Vec::new();
    for (perm, r) in results {
        match r {
            Ok(review) => {
                if !review.status.is_some_and(|s| s.allowed) {
                    denied.push(*perm);
                }
            }
            Err(e) => return Preflight::Unknown(e.to_string()),
        }
    }
    if denied.is_empty() {
        Preflight::Allowed
    } else {
        Preflight::Denied(denied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_lists_everything() {
        let m = MissingPermissions {
            namespace: "ci".into(),
            missing: vec![REQUIRED[2], REQUIRED[6]],
        };
        assert_eq!(
            m.to_string(),
            "the runner's service account lacks permissions in namespace ci: watch pods, create pods/exec (grant them in the runner's Role; see docs/k8s.md)"
        );
        let r = review(&REQUIRED[6], "ci");
        let attrs = r.spec.resource_attributes.unwrap();
        assert_eq!(attrs.subresource.as_deref(), Some("exec"));
        assert_eq!(attrs.verb.as_deref(), Some("create"));
    }
}
