//! Whether the single node `kubesim-node` fits a pod: `nodeSelector` and required node affinity,
//! with the scheduler's rules (`k8s.io/component-helpers/scheduling/corev1/nodeaffinity`):
//! terms of `nodeSelectorTerms` are ORed, the requirements inside a term ANDed; `matchFields`
//! only knows `metadata.name`; an empty term list or a term without requirements matches nothing.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Pod};

/// Does the node with `name` and `labels` satisfy the pod's `nodeSelector` and
/// `requiredDuringSchedulingIgnoredDuringExecution` node affinity?
pub fn fits(pod: &Pod, name: &str, labels: &HashMap<&str, &str>) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let selector_ok = spec.node_selector.as_ref().is_none_or(|sel| {
        sel.iter()
            .all(|(k, v)| labels.get(k.as_str()) == Some(&v.as_str()))
    });
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affinity_ok = required.is_none_or(|sel| {
        sel.node_selector_terms.iter().any(|term| {
            let exprs = term.match_expressions.as_deref().unwrap_or_default();
            let fields = term.match_fields.as_deref().unwrap_or_default();
            (!exprs.is_empty() || !fields.is_empty())
                && exprs
                    .iter()
                    .all(|r| matches(r, labels.get(r.key.as_str()).copied()))
                && fields
                    .iter()
                    .all(|r| r.key == "metadata.name" && matches(r, Some(name)))
        })
    });
    selector_ok && affinity_ok
}

fn matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let number = |v: &str| v.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| values.iter().all(|x| x != v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a > b)
        }
        "Lt" => {
            matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn affinity(terms: serde_json::Value) -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "image": "i"}]});
        spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}});
        pod(spec)
    }

    #[test]
    fn table() {
        let labels = HashMap::from([("kubernetes.io/hostname", "kubesim-node"), ("zone", "a")]);
        let fits = |p: &Pod| fits(p, "kubesim-node", &labels);
        let field = |op: &str, v: &str| json!([{"matchFields": [{"key": "metadata.name", "operator": op, "values": [v]}]}]);
        assert!(fits(&pod(json!({"containers": []}))));
        assert!(fits(&pod(
            json!({"containers": [], "nodeSelector": {"zone": "a"}})
        )));
        assert!(!fits(&pod(
            json!({"containers": [], "nodeSelector": {"zone": "b"}})
        )));
        assert!(fits(&affinity(field("In", "kubesim-node"))));
        assert!(!fits(&affinity(field("In", "other-node"))));
        assert!(fits(&affinity(field("NotIn", "other-node"))));
        let host = |op: &str, v: &str| json!([{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": op, "values": [v]}]}]);
        assert!(fits(&affinity(host("In", "kubesim-node"))));
        assert!(!fits(&affinity(host("In", "node-7"))));
        // terms are ORed
        let mut either = host("In", "node-7");
        either
            .as_array_mut()
            .unwrap()
            .push(host("In", "kubesim-node")[0].clone());
        assert!(fits(&affinity(either)));
        // requirements in a term are ANDed
        assert!(!fits(&affinity(json!([{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]},
            {"key": "gpu", "operator": "Exists"}]}]))));
        assert!(fits(&affinity(
            json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}])
        )));
        // an empty term matches nothing
        assert!(!fits(&affinity(json!([{}]))));
        // matchFields knows only metadata.name
        assert!(!fits(&affinity(
            json!([{"matchFields": [{"key": "metadata.uid", "operator": "Exists"}]}])
        )));
    }
}
