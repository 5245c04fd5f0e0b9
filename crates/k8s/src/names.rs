//! Names of the objects and containers the hook creates.
//!
//! Object names follow the upstream hooks (`<runner>-workflow`, `<runner>-step-<id>`,
//! `<runner>-secret-<id>`); a runner pod name too long for that is cut and followed by a hash of
//! the whole name, so no two runners share a name or a `runner-pod` label value;
//! container names are DNS-1123 labels derived from images (`docker.io/library/redis:7` →
//! `redis`, duplicates `redis-0`, `redis-1`).

use std::collections::{HashMap, HashSet};

/// Longest pod, container or label-value name.
pub const MAX_NAME_LEN: usize = 63;
/// Length of the random part of step pod and secret names.
pub const ID_LEN: usize = 8;
/// The job container's name (also the action container of a step pod).
pub const JOB_CONTAINER: &str = "job";
/// The init container that copies the runner's `externals` (and, in step pods, receives the
/// workspace).
pub const FS_INIT_CONTAINER: &str = "fs-init";
/// The helper container of a copy-mode step pod that outlives the action to hand back its files.
pub const FS_SYNC_CONTAINER: &str = "fs-sync";
/// The label naming the runner pod on every object the hook creates.
pub const RUNNER_POD_LABEL: &str = "runner-pod";
/// The label saying which part of a job an object is (`job`, `step`, `registry-secret`).
pub const ROLE_LABEL: &str = "container-hooks/role";
/// The annotation carrying a per-invocation token, so a create retried after an ambiguous
/// failure can recognise its own object.
pub const TOKEN_ANNOTATION: &str = "container-hooks/creation-token";

/// Hex digits of the hash (of the full runner pod name) that keeps cut names and label values
/// unique: two runner pods whose names share their first 63 characters never share an object
/// name or a `runner-pod` label value.
pub const HASH_LEN: usize = 10;

/// The first [`HASH_LEN`] hex digits of the SHA-256 of `s`.
pub fn short_hash(s: &str) -> String {
    use sha2::Digest;
    let mut h = hex::encode(sha2::Sha256::digest(s.as_bytes()));
    h.truncate(HASH_LEN);
    h
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `prefix + suffix` when it fits [`MAX_NAME_LEN`] (the upstream hooks' names); otherwise the
/// prefix is cut and a hash of the whole prefix goes in front of the suffix
/// (`<cut prefix>-<hash><suffix>`), so that runner pods sharing a long prefix get distinct
/// names. A `.` or `-` the cut leaves at the end of the prefix is dropped (a `.` would make the
/// name invalid).
fn with_suffix(prefix: &str, suffix: &str) -> String {
    if prefix.len() + suffix.len() <= MAX_NAME_LEN {
        return format!("{prefix}{suffix}");
    }
    let room = MAX_NAME_LEN.saturating_sub(suffix.len() + 1 + HASH_LEN);
    let head = cut(prefix, room).trim_end_matches(['.', '-']);
    format!("{head}-{}{suffix}", short_hash(prefix))
}

/// The job pod: `<runner>-workflow`.
pub fn job_pod(runner_pod: &str) -> String {
    with_suffix(runner_pod, "-workflow")
}

/// A container-step pod: `<runner>-step-<id>`.
pub fn step_pod(runner_pod: &str, id: &str) -> String {
    with_suffix(runner_pod, &format!("-step-{id}"))
}

/// A registry secret: `<runner>-secret-<id>`.
pub fn secret(runner_pod: &str, id: &str) -> String {
    with_suffix(runner_pod, &format!("-secret-{id}"))
}

/// A fresh random id for [`step_pod`] and [`secret`].
pub fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..ID_LEN].to_owned()
}

/// Whether `v` is a valid, non-empty label value: at most 63 of `[A-Za-z0-9._-]`,
/// alphanumeric at both ends.
pub fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// The value of the [`RUNNER_POD_LABEL`] label, which prepare's sweep and cleanup select on.
///
/// A runner pod name that is a valid label value (every pod name of at most 63 characters) is
/// used as it is, so `kubectl get pods -l runner-pod=<runner pod>` finds the objects. Any other
/// name becomes `<cleaned, cut name>-<hash of the full name>` (63 characters at most): unique
/// for every name, so runners whose names share their first 63 characters never select each
/// other's objects.
pub fn runner_label_value(runner_pod: &str) -> String {
    if is_label_value(runner_pod) {
        return runner_pod.to_owned();
    }
    let hash = short_hash(runner_pod);
    match hooklib::cost::clean_label_value(runner_pod, MAX_NAME_LEN - 1 - HASH_LEN) {
        Some(head) => format!("{head}-{hash}"),
        None => hash,
    }
}

#[cfg(test)]
/// Whether `s` is a DNS-1123 label: 1–63 of `[a-z0-9-]`, alphanumeric at both ends.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// The container name an image gives a service: its last path segment without tag or digest,
/// lower-cased, every other character than `[a-z0-9-]` replaced by `-`.
pub fn image_base_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    let last = last.split(':').next().unwrap_or(last);
    let mapped: String = last
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    // Leave room for a `-NN` suffix when the name is duplicated.
    let trimmed: String = mapped
        .trim_matches('-')
        .chars()
        .take(MAX_NAME_LEN - 4)
        .collect();
    let trimmed = trimmed.trim_end_matches('-');
    if trimmed.is_empty() {
        "service".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The container names of the services, in input order: [`image_base_name`] of each image;
/// a name used more than once (or clashing with the hook's own containers) gets `-0`, `-1`, …
/// in order of appearance.
pub fn service_container_names<'a>(images: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let bases: Vec<String> = images.into_iter().map(image_base_name).collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for b in &bases {
        *count.entry(b).or_default() += 1;
    }
    let reserved = [JOB_CONTAINER, FS_INIT_CONTAINER, FS_SYNC_CONTAINER];
    let mut taken: HashSet<String> = bases
        .iter()
        .filter(|b| count[b.as_str()] == 1 && !reserved.contains(&b.as_str()))
        .cloned()
        .collect();
    taken.extend(reserved.iter().map(|r| (*r).to_owned()));
    let mut next: HashMap<&str, usize> = HashMap::new();
    bases
        .iter()
        .map(|b| {
            if count[b.as_str()] == 1 && !reserved.contains(&b.as_str()) {
                return b.clone();
            }
            let n = next.entry(b).or_default();
            loop {
                let candidate = format!("{b}-{n}");
                *n += 1;
                if taken.insert(candidate.clone()) {
                    return candidate;
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn object_names_like_upstream() {
        assert_eq!(job_pod("runner-abc"), "runner-abc-workflow");
        assert_eq!(
            step_pod("runner-abc", "0123abcd"),
            "runner-abc-step-0123abcd"
        );
        assert_eq!(
            secret("runner-abc", "0123abcd"),
            "runner-abc-secret-0123abcd"
        );
        let long = "r".repeat(80);
        let hash = short_hash(&long);
        assert_eq!(hash.len(), HASH_LEN);
        assert_eq!(
            job_pod(&long),
            format!("{}-{hash}-workflow", "r".repeat(43))
        );
        assert_eq!(step_pod(&long, "01234567").len(), 63);
        // Exactly 63 characters: unchanged.
        assert_eq!(
            job_pod(&"a".repeat(54)),
            format!("{}-workflow", "a".repeat(54))
        );
        let dotted = format!("{}.x", "a".repeat(53));
        assert_eq!(
            job_pod(&dotted),
            format!("{}-{}-workflow", "a".repeat(43), short_hash(&dotted))
        );
        // Two runners sharing their first 63 characters get distinct names.
        let (a, b) = (
            format!("{}-aaaaaaa", "x".repeat(62)),
            format!("{}-bbbbbbb", "x".repeat(62)),
        );
        assert_ne!(job_pod(&a), job_pod(&b));
        assert_ne!(secret(&a, "01234567"), secret(&b, "01234567"));
    }

    #[test]
    fn service_names() {
        let names = service_container_names([
            "docker.io/library/redis:7",
            "postgres",
            "redis@sha256:abcd",
            "ghcr.io/acme/My_Cache:1",
            "job:1",
            "127.0.0.1:5000/svc",
        ]);
        assert_eq!(
            names,
            ["redis-0", "postgres", "redis-1", "my-cache", "job-0", "svc"]
        );
        let names = service_container_names(["redis", "redis", "redis-0"]);
        assert_eq!(names, ["redis-1", "redis-2", "redis-0"]);
        assert_eq!(service_container_names(["___:1"]), ["service"]);
    }

    #[test]
    fn label_values() {
        assert_eq!(runner_label_value("runner-1"), "runner-1");
        assert_eq!(runner_label_value(&"a".repeat(63)), "a".repeat(63));
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        assert_eq!(
            runner_label_value(&long),
            format!("{}-{}", "a".repeat(52), short_hash(&long))
        );
        let other = format!("{}-{}", "a".repeat(62), "c".repeat(10));
        assert_ne!(runner_label_value(&long), runner_label_value(&other));
        assert_eq!(runner_label_value("---"), short_hash("---"));
    }

    fn label_value_ok(v: &str) -> bool {
        v.len() <= MAX_NAME_LEN
            && (v.is_empty()
                || (v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    && v.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && v.ends_with(|c: char| c.is_ascii_alphanumeric())))
    }

    proptest! {
        #[test]
        fn object_names_are_labels(runner in "[a-z0-9]([a-z0-9-]{0,100}[a-z0-9])?", id in "[0-9a-f]{8}") {
            for name in [job_pod(&runner), step_pod(&runner, &id), secret(&runner, &id)] {
                prop_assert!(name.len() <= MAX_NAME_LEN);
                prop_assert!(is_dns1123_label(&name), "{name}");
            }
            if runner.len() <= 54 {
                prop_assert_eq!(job_pod(&runner), format!("{runner}-workflow"));
            }
        }

        #[test]
        fn subdomain_runner_names_stay_valid(runner in "[a-z0-9]{1,5}(\\.[a-z0-9]{1,20}){0,6}") {
            let name = job_pod(&runner);
            prop_assert!(name.len() <= MAX_NAME_LEN);
            prop_assert!(name.split('.').all(is_dns1123_label), "{name}");
        }

        #[test]
        fn label_value_is_valid(runner in "\\PC{0,100}") {
            let v = runner_label_value(&runner);
            prop_assert!(!v.is_empty() && label_value_ok(&v), "{v}");
            prop_assert!(is_label_value(&v));
        }

        #[test]
        fn valid_runner_names_are_their_own_label(runner in "[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?") {
            prop_assert_eq!(runner_label_value(&runner), runner);
        }

        #[test]
        fn long_runner_names_never_share_a_label_or_a_name(
            common in "[a-z0-9]([a-z0-9-]{55,70})",
            a in "[a-z0-9-]{0,20}[a-z0-9]",
            b in "[a-z0-9-]{0,20}[a-z0-9]",
        ) {
            let (ra, rb) = (format!("{common}{a}"), format!("{common}{b}"));
            prop_assume!(ra != rb);
            prop_assert_ne!(runner_label_value(&ra), runner_label_value(&rb));
            prop_assert_ne!(job_pod(&ra), job_pod(&rb));
            prop_assert_ne!(secret(&ra, "01234567"), secret(&rb, "01234567"));
            prop_assert_ne!(step_pod(&ra, "01234567"), step_pod(&rb, "01234567"));
        }

        #[test]
        fn service_names_are_unique_labels(images in proptest::collection::vec("[a-zA-Z0-9._/:@-]{0,80}", 0..8)) {
            let names = service_container_names(images.iter().map(String::as_str));
            prop_assert_eq!(names.len(), images.len());
            let set: HashSet<&String> = names.iter().collect();
            prop_assert_eq!(set.len(), names.len());
            for n in &names {
                prop_assert!(is_dns1123_label(n), "{n}");
                prop_assert!(![JOB_CONTAINER, FS_INIT_CONTAINER, FS_SYNC_CONTAINER].contains(&n.as_str()));
            }
        }
    }
}
