//! Cost labels: where a container's spend belongs (repository, workflow, job, run), from the
//! runner's `GITHUB_*` environment, as Kubernetes-valid label values so the same keys work for
//! both hooks and for cluster cost tools. Only informative: cleanup never selects by them.

use std::collections::BTreeMap;

/// Label key → the runner's variable it comes from. The Kubernetes hook uses the same keys.
pub const COST_LABEL_SOURCES: [(&str, &str); 8] = [
    ("hooks.actions/repository", "GITHUB_REPOSITORY"),
    ("hooks.actions/workflow", "GITHUB_WORKFLOW"),
    ("hooks.actions/job", "GITHUB_JOB"),
    ("hooks.actions/run-id", "GITHUB_RUN_ID"),
    ("hooks.actions/run-number", "GITHUB_RUN_NUMBER"),
    ("hooks.actions/run-attempt", "GITHUB_RUN_ATTEMPT"),
    ("hooks.actions/actor", "GITHUB_ACTOR"),
    ("hooks.actions/event", "GITHUB_EVENT_NAME"),
];

/// A valid Kubernetes label value: at most 63 characters of `[A-Za-z0-9._-]`, beginning and
/// ending with an alphanumeric character. Other characters become `_` (`octo/repo` →
/// `octo_repo`). `None` when nothing is left.
pub fn label_value(raw: &str) -> Option<String> {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let cut: String = trimmed.chars().take(63).collect();
    let cut = cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    (!cut.is_empty()).then(|| cut.to_owned())
}

/// The cost labels from the runner's environment (`lookup` of each `GITHUB_*` variable);
/// unset or empty values give no label.
pub(crate) fn labels(lookup: &impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
    COST_LABEL_SOURCES
        .iter()
        .filter_map(|(key, var)| {
            lookup(var)
                .and_then(|v| label_value(&v))
                .map(|v| ((*key).to_owned(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_valid_kubernetes_label_values() {
        assert_eq!(
            label_value("octo-org/octo-repo").unwrap(),
            "octo-org_octo-repo"
        );
        assert_eq!(
            label_value("CI / Build (linux)").unwrap(),
            "CI___Build__linux"
        );
        assert_eq!(label_value("12345").unwrap(), "12345");
        assert_eq!(label_value("dependabot[bot]").unwrap(), "dependabot_bot");
        assert_eq!(label_value("__x__").unwrap(), "x");
        assert_eq!(label_value("ü"), None);
        assert_eq!(label_value(""), None);
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        let v = label_value(&long).unwrap();
        assert_eq!(
            v,
            "a".repeat(62),
            "cut at 63, then the trailing '-' dropped"
        );
        for raw in ["x".repeat(200), "ä".repeat(70) + "z", "a.b-c_d".into()] {
            let v = label_value(&raw).unwrap();
            assert!(v.len() <= 63, "{v}");
            assert!(
                v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
            );
            assert!(v.starts_with(|c: char| c.is_ascii_alphanumeric()));
            assert!(v.ends_with(|c: char| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn labels_from_the_environment() {
        let env = |k: &str| match k {
            "GITHUB_REPOSITORY" => Some("octo/repo".to_owned()),
            "GITHUB_RUN_ID" => Some("987".to_owned()),
            "GITHUB_ACTOR" => Some("  ".to_owned()),
            _ => None,
        };
        let l = labels(&env);
        assert_eq!(
            l,
            BTreeMap::from([
                (
                    "hooks.actions/repository".to_owned(),
                    "octo_repo".to_owned()
                ),
                ("hooks.actions/run-id".to_owned(), "987".to_owned()),
            ])
        );
    }
}
