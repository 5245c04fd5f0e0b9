//! Names of built images and builder pods (pure).
//!
//! An action's image is named after the action (`_actions/<owner>/<repo>/<ref>/…` →
//! `<owner>-<repo>`, a local action `…/<dir>/Dockerfile` → `local-<dir>`) and tagged with a hash
//! of what it is built from (the context's content digest, the Dockerfile's path in it and the
//! builder's settings), so an unchanged action finds its image in the registry and a changed one
//! gets a new tag.

use super::settings::Builder;
use crate::names::MAX_NAME_LEN;
use sha2::{Digest, Sha256};
use std::path::{Component, Path};

/// Longest repository name we derive (the registry allows more; logs stay readable).
const MAX_IMAGE_NAME: usize = 96;
/// Hex digits of the tag.
pub const TAG_LEN: usize = 32;

/// Lower-case `[a-z0-9]` runs joined by single `-`.
fn sanitize(part: &str) -> String {
    let mut out = String::new();
    for c in part.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// The repository name (below the registry host) of the image built from `dockerfile`.
pub fn image_name(dockerfile: &Path) -> String {
    let parts: Vec<String> = dockerfile
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let from_actions = parts
        .iter()
        .rposition(|p| p == "_actions")
        .and_then(|i| Some((parts.get(i + 1)?, parts.get(i + 2)?)))
        .filter(|_| parts.len() >= 4)
        .map(|(owner, repo)| format!("{}-{}", sanitize(owner), sanitize(repo)));
    let name = from_actions.unwrap_or_else(|| {
        let dir = parts
            .len()
            .checked_sub(2)
            .and_then(|i| parts.get(i))
            .map(|d| sanitize(d))
            .unwrap_or_default();
        if dir.is_empty() {
            "local".to_owned()
        } else {
            format!("local-{dir}")
        }
    });
    let name = name.trim_matches('-');
    let mut cut = name.len().min(MAX_IMAGE_NAME);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let name = name[..cut].trim_end_matches('-');
    if name.is_empty() {
        "action".to_owned()
    } else {
        name.to_owned()
    }
}

/// The tag: the first [`TAG_LEN`] hex digits of SHA-256 over the context digest, the
/// Dockerfile's path in the context and the builder fingerprint.
pub fn tag(context_digest: &str, dockerfile: &str, fingerprint: &str) -> String {
    let mut h = Sha256::new();
    for part in [context_digest, dockerfile, fingerprint] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())[..TAG_LEN].to_owned()
}

/// The builder pod: `<runner>-kaniko-<id>` (or `-buildkit-`), the runner's name cut so the
/// whole fits 63 characters.
pub fn builder_pod(runner_pod: &str, builder: Builder, id: &str) -> String {
    let suffix = format!("-{}-{id}", builder.name());
    let room = MAX_NAME_LEN.saturating_sub(suffix.len());
    let mut cut = runner_pod.len().min(room);
    while !runner_pod.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", runner_pod[..cut].trim_end_matches(['.', '-']))
}

/// The references of one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct References {
    /// Repository name below the hosts.
    pub name: String,
    /// The tag.
    pub tag: String,
    /// `<push host>/<name>:<tag>`: the builder's `--destination` and the manifest check.
    pub push: String,
    /// `<pull host>/<name>`: the step runs `<pull>@<digest>`.
    pub pull_repository: String,
}

impl References {
    /// The references of `name:tag` on these hosts.
    pub fn new(push_host: &str, pull_host: &str, name: &str, tag: &str) -> Self {
        Self {
            name: name.to_owned(),
            tag: tag.to_owned(),
            push: format!("{push_host}/{name}:{tag}"),
            pull_repository: format!("{pull_host}/{name}"),
        }
    }

    /// What the step pod runs.
    pub fn pull_by_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.pull_repository)
    }
}

/// Whether `s` is a manifest digest as a registry reports it.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::is_dns1123_label;
    use proptest::prelude::*;

    #[test]
    fn names_from_actions() {
        let n = |p: &str| image_name(Path::new(p));
        assert_eq!(
            n("/home/runner/_work/_actions/acme/lint-action/v2/Dockerfile"),
            "acme-lint-action"
        );
        assert_eq!(
            n("/home/runner/_work/_actions/Acme/My_Action.rs/main/sub/dir/Dockerfile"),
            "acme-my-action-rs"
        );
        assert_eq!(
            n("/home/runner/_work/repo/repo/.github/actions/Hello World/Dockerfile"),
            "local-hello-world"
        );
        assert_eq!(n("/Dockerfile"), "local");
        assert_eq!(n("/w/_actions/___/---/v1/Dockerfile"), "action");
    }

    #[test]
    fn tags_follow_content_path_and_settings() {
        let t = tag("abc", "Dockerfile", "kaniko");
        assert_eq!(t.len(), TAG_LEN);
        assert_eq!(t, tag("abc", "Dockerfile", "kaniko"));
        assert_ne!(t, tag("abd", "Dockerfile", "kaniko"));
        assert_ne!(t, tag("abc", "Dockerfile.ci", "kaniko"));
        assert_ne!(t, tag("abc", "Dockerfile", "buildkit"));
        // The separator keeps parts from sliding into each other.
        assert_ne!(tag("ab", "cD", "x"), tag("abc", "D", "x"));
    }

    #[test]
    fn references_and_digests() {
        let r = References::new("127.0.0.1:5556/ci", "localhost:5556/ci", "acme-x", "0123");
        assert_eq!(r.push, "127.0.0.1:5556/ci/acme-x:0123");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            r.pull_by_digest(&d),
            format!("localhost:5556/ci/acme-x@{d}")
        );
        assert!(is_digest(&d));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest(&format!("sha512:{}", "a".repeat(64))));
        assert_eq!(
            builder_pod("runner-abc", Builder::Kaniko, "0123abcd"),
            "runner-abc-kaniko-0123abcd"
        );
    }

    proptest! {
        #[test]
        fn pod_names_are_labels(
            runner in "[a-z0-9]([a-z0-9-]{0,100}[a-z0-9])?|[a-z0-9]{1,5}(\\.[a-z0-9]{1,20}){0,6}",
            id in "[0-9a-f]{8}",
        ) {
            for b in [Builder::Kaniko, Builder::BuildKit] {
                let name = builder_pod(&runner, b, &id);
                prop_assert!(name.len() <= MAX_NAME_LEN);
                prop_assert!(name.split('.').all(is_dns1123_label), "{name}");
            }
        }

        #[test]
        fn image_names_are_repository_components(path in "(/[a-zA-Z0-9 ._@-]{1,30}){1,8}") {
            let name = image_name(Path::new(&path));
            prop_assert!(!name.is_empty() && name.len() <= MAX_IMAGE_NAME);
            let re = regex_lite(&name);
            prop_assert!(re, "{name}");
        }
    }

    /// `[a-z0-9]+(-[a-z0-9]+)*`, a subset of the registry's component grammar.
    fn regex_lite(name: &str) -> bool {
        name.split('-').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
    }
}
