//! Cost labels: where a job's containers and pods spend belongs (repository, workflow, job,
//! run), from the runner's `GITHUB_*` environment, as Kubernetes-valid label values. Both hooks
//! put the same keys on what they create (the `arc-context-*` keys of
//! actions/runner-container-hooks#248). They are data from the workflow: informative only, never
//! used to select anything.

use std::collections::BTreeMap;

/// The setting that turns the cost labels off (`false`); default on. Both hooks read it.
pub const COST_LABELS_VAR: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_COST_LABELS";

/// The runner's variable → the label it becomes.
pub const COST_LABELS: [(&str, &str); 8] = [
    ("GITHUB_REPOSITORY", "arc-context-repository"),
    ("GITHUB_WORKFLOW", "arc-context-workflow"),
    ("GITHUB_JOB", "arc-context-job"),
    ("GITHUB_RUN_ID", "arc-context-run-id"),
    ("GITHUB_RUN_NUMBER", "arc-context-run-number"),
    ("GITHUB_RUN_ATTEMPT", "arc-context-run-attempt"),
    ("GITHUB_ACTOR", "arc-context-actor"),
    ("GITHUB_EVENT_NAME", "arc-context-event-name"),
];

/// The longest label value Kubernetes accepts.
pub const MAX_LABEL_VALUE: usize = 63;

/// `raw` made a label value of at most `max` (≤ 63) characters: every run of characters outside
/// `[A-Za-z0-9._-]` becomes one `_`, the result is cut to `max` and trimmed until it starts and
/// ends alphanumeric (`CI / Build & Test` → `CI_Build_Test`). `None` when nothing is left. A
/// valid value of at most `max` characters comes back unchanged.
pub fn clean_label_value(raw: &str, max: usize) -> Option<String> {
    let mut out = String::with_capacity(raw.len().min(max));
    let mut in_bad = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            out.push(c);
            in_bad = false;
        } else if !in_bad {
            out.push('_');
            in_bad = true;
        }
    }
    let start = out.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    // Only ASCII is left, so byte positions are character positions.
    let cut = &start[..start.len().min(max.min(MAX_LABEL_VALUE))];
    let trimmed = cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The cost labels from the runner's environment (`lookup` of each variable in
/// [`COST_LABELS`]); a variable that is unset or cleans to nothing gives no label.
pub fn cost_labels(lookup: impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
    COST_LABELS
        .iter()
        .filter_map(|(var, key)| {
            let value = clean_label_value(&lookup(var)?, MAX_LABEL_VALUE)?;
            Some(((*key).to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_label_value(v: &str) -> bool {
        !v.is_empty()
            && v.len() <= MAX_LABEL_VALUE
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric())
    }

    #[test]
    fn values_are_cleaned() {
        let clean = |s: &str| clean_label_value(s, 63);
        assert_eq!(
            clean("octo-org/my-repo").as_deref(),
            Some("octo-org_my-repo")
        );
        assert_eq!(
            clean("CI / Build & Test ").as_deref(),
            Some("CI_Build_Test")
        );
        assert_eq!(clean("dependabot[bot]").as_deref(), Some("dependabot_bot"));
        assert_eq!(clean("  "), None);
        assert_eq!(clean("日本"), None);
        assert_eq!(clean("-x-").as_deref(), Some("x"));
        assert_eq!(
            clean(&format!("{}-{}", "a".repeat(62), "b")).as_deref(),
            Some("a".repeat(62).as_str()),
            "cut at 63, then the trailing '-' dropped"
        );
    }

    #[test]
    fn labels_from_the_runner_environment() {
        let env = |k: &str| {
            match k {
                "GITHUB_REPOSITORY" => Some("octo-org/shop"),
                "GITHUB_WORKFLOW" => Some("CI / build"),
                "GITHUB_RUN_ID" => Some("1234567890"),
                "GITHUB_ACTOR" => Some("  "),
                "GITHUB_EVENT_NAME" => Some("pull_request"),
                "GITHUB_TOKEN" => Some("ghs_secret"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let expected: BTreeMap<String, String> = [
            ("arc-context-repository", "octo-org_shop"),
            ("arc-context-workflow", "CI_build"),
            ("arc-context-run-id", "1234567890"),
            ("arc-context-event-name", "pull_request"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(cost_labels(env), expected);
        assert!(cost_labels(|_| None).is_empty());
    }

    proptest! {
        #[test]
        fn cleaned_values_are_label_values(raw in "\\PC{0,100}", max in 1usize..=63) {
            match clean_label_value(&raw, max) {
                Some(v) => {
                    prop_assert!(is_label_value(&v), "{v}");
                    prop_assert!(v.len() <= max);
                    prop_assert_eq!(clean_label_value(&v, max), Some(v.clone()));
                }
                None => prop_assert!(!raw.chars().any(|c| c.is_ascii_alphanumeric())),
            }
        }

        #[test]
        fn valid_values_are_kept(v in "[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?") {
            prop_assert_eq!(clean_label_value(&v, MAX_LABEL_VALUE), Some(v));
        }

        #[test]
        fn cost_labels_are_always_valid(values in proptest::collection::vec("\\PC{0,120}", 8)) {
            let labels = cost_labels(|k| {
                COST_LABELS.iter().position(|(var, _)| *var == k).map(|i| values[i].clone())
            });
            for (k, v) in &labels {
                prop_assert!(k.starts_with("arc-context-"));
                prop_assert!(is_label_value(v), "{k}={v}");
            }
        }
    }
}
