//! Pod defaulting and validation as the apiserver does it on create
//! (`pkg/apis/core/v1/defaults.go`, `pkg/apis/core/validation/validation.go` ValidatePodCreate).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Toleration};

use crate::status::FieldError;
use crate::validation::{NameRule, dns1123_label, object_meta};

/// The default pull policy for an image reference: `Always` for `:latest` or no tag, else
/// `IfNotPresent` (digests count as a tag).
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn default_container(c: &mut Container) {
    if c.image_pull_policy.is_none() {
        let img = c.image.clone().unwrap_or_default();
        c.image_pull_policy = Some(default_pull_policy(&img).to_string());
    }
    if c.termination_message_path.is_none() {
        c.termination_message_path = Some("/dev/termination-log".into());
    }
    if c.termination_message_policy.is_none() {
        c.termination_message_policy = Some("File".into());
    }
    if c.resources.is_none() {
        c.resources = Some(Default::default());
    }
}

/// Apply the defaults the apiserver (and its default admission plugins) fill in.
pub fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    for c in spec.containers.iter_mut() {
        default_container(c);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        default_container(c);
    }
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    spec.security_context.get_or_insert_with(Default::default);
    spec.enable_service_links.get_or_insert(true);
    spec.priority.get_or_insert(0);
    spec.preemption_policy
        .get_or_insert_with(|| "PreemptLowerPriority".into());
    // ServiceAccount admission plugin (token volume not simulated).
    spec.service_account_name
        .get_or_insert_with(|| "default".into());
    // DefaultTolerationSeconds admission plugin.
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !tolerations.iter().any(|t| t.key.as_deref() == Some(key)) {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(300),
                ..Default::default()
            });
        }
    }
    let status = pod.status.get_or_insert_with(Default::default);
    status.phase = Some("Pending".into());
    status.qos_class = Some(qos_class(spec).into());
}

/// Where the ServiceAccount admission plugin mounts the token.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ServiceAccount admission plugin's token volume (create only,
/// `plugin/pkg/admission/serviceaccount`): unless `spec.automountServiceAccountToken` is
/// `false` (kubesim stores no ServiceAccount objects, so an account's own setting is not
/// consulted), a projected `kube-api-access-<5 chars>` volume with the token and the
/// namespace is mounted read-only at [`SERVICE_ACCOUNT_MOUNT`] in every container and init
/// container that has nothing mounted there. The `ca.crt` of the `kube-root-ca.crt` ConfigMap
/// is left out: kubesim does not publish that ConfigMap.
pub fn admit_service_account(pod: &mut Pod) {
    use k8s_openapi::api::core::v1::{
        DownwardAPIProjection, DownwardAPIVolumeFile, ObjectFieldSelector, ProjectedVolumeSource,
        ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
    };
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    if spec.automount_service_account_token == Some(false) {
        return;
    }
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    let name = match volumes
        .iter()
        .find(|v| v.name.starts_with("kube-api-access-"))
    {
        Some(v) => v.name.clone(),
        None => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            let name = format!("kube-api-access-{}", &id[..5]);
            volumes.push(Volume {
                name: name.clone(),
                projected: Some(ProjectedVolumeSource {
                    default_mode: Some(0o644),
                    sources: Some(vec![
                        VolumeProjection {
                            service_account_token: Some(ServiceAccountTokenProjection {
                                path: "token".into(),
                                expiration_seconds: Some(3607),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        VolumeProjection {
                            downward_api: Some(DownwardAPIProjection {
                                items: Some(vec![DownwardAPIVolumeFile {
                                    path: "namespace".into(),
                                    field_ref: Some(ObjectFieldSelector {
                                        api_version: Some("v1".into()),
                                        field_path: "metadata.namespace".into(),
                                    }),
                                    ..Default::default()
                                }]),
                            }),
                            ..Default::default()
                        },
                    ]),
                }),
                ..Default::default()
            });
            name
        }
    };
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
        if !mounts.iter().any(|m| m.mount_path == SERVICE_ACCOUNT_MOUNT) {
            mounts.push(VolumeMount {
                name: name.clone(),
                mount_path: SERVICE_ACCOUNT_MOUNT.into(),
                read_only: Some(true),
                ..Default::default()
            });
        }
    }
}

/// QoS class from requests/limits (`pkg/apis/core/helper/qos`), simplified: BestEffort when no
/// container sets any, Guaranteed when every container has limits == requests for cpu and memory,
/// else Burstable.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let any = all.iter().any(|c| {
        c.resources.as_ref().is_some_and(|r| {
            r.requests.as_ref().is_some_and(|m| !m.is_empty())
                || r.limits.as_ref().is_some_and(|m| !m.is_empty())
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = all.iter().all(|c| {
        let Some(r) = c.resources.as_ref() else {
            return false;
        };
        let Some(l) = r.limits.as_ref() else {
            return false;
        };
        ["cpu", "memory"].iter().all(|k| {
            l.contains_key(*k)
                && r.requests
                    .as_ref()
                    .is_none_or(|req| req.get(*k).is_none_or(|v| Some(v) == l.get(*k)))
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn validate_container(
    c: &Container,
    path: &str,
    names: &mut HashSet<String>,
    volumes: &HashSet<String>,
    errs: &mut Vec<FieldError>,
) {
    if c.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        for m in dns1123_label(&c.name) {
            errs.push(FieldError::invalid(format!("{path}.name"), &c.name, &m));
        }
        if !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), &c.name));
        }
    }
    if c.image.as_deref().unwrap_or("").trim().is_empty() {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    if let Some(p) = c.image_pull_policy.as_deref()
        && !matches!(p, "Always" | "IfNotPresent" | "Never")
    {
        errs.push(FieldError::not_supported(
            format!("{path}.imagePullPolicy"),
            p,
            &["Always", "IfNotPresent", "Never"],
        ));
    }
    let mut mount_paths = HashSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            errs.push(FieldError::required(format!("{mp}.name"), ""));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError {
                reason: "FieldValueNotFound",
                field: format!("{mp}.name"),
                detail: format!("Not found: {:?}", m.name),
            });
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(format!("{mp}.mountPath"), ""));
        } else if !mount_paths.insert(m.mount_path.clone()) {
            errs.push(FieldError::invalid(
                format!("{mp}.mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
    }
    for (i, e) in c.env.iter().flatten().enumerate() {
        if e.name.is_empty() || e.name.contains('=') {
            errs.push(FieldError::invalid(
                format!("{path}.env[{i}].name"),
                &e.name,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
    }
}

/// Validate a defaulted pod on create. Returns every field error, like the apiserver.
pub fn validate_pod(pod: &Pod, value: &serde_json::Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    object_meta(value, NameRule::Subdomain, &mut errs);
    let Some(spec) = pod.spec.as_ref() else {
        errs.push(FieldError::required("spec", ""));
        return errs;
    };
    let mut volumes = HashSet::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        for m in dns1123_label(&v.name) {
            errs.push(FieldError::invalid(
                format!("spec.volumes[{i}].name"),
                &v.name,
                &m,
            ));
        }
        if !volumes.insert(v.name.clone()) {
            errs.push(FieldError::duplicate(
                format!("spec.volumes[{i}].name"),
                &v.name,
            ));
        }
    }
    if spec.containers.is_empty() {
        errs.push(FieldError::required("spec.containers", ""));
    }
    let mut names = HashSet::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        validate_container(
            c,
            &format!("spec.initContainers[{i}]"),
            &mut names,
            &volumes,
            &mut errs,
        );
    }
    for (i, c) in spec.containers.iter().enumerate() {
        validate_container(
            c,
            &format!("spec.containers[{i}]"),
            &mut names,
            &volumes,
            &mut errs,
        );
    }
    if let Some(rp) = spec.restart_policy.as_deref()
        && !matches!(rp, "Always" | "OnFailure" | "Never")
    {
        errs.push(FieldError::not_supported(
            "spec.restartPolicy",
            rp,
            &["Always", "OnFailure", "Never"],
        ));
    }
    if spec.termination_grace_period_seconds.is_some_and(|g| g < 0) {
        errs.push(FieldError::invalid(
            "spec.terminationGracePeriodSeconds",
            &spec
                .termination_grace_period_seconds
                .unwrap_or_default()
                .to_string(),
            "must be greater than or equal to 0",
        ));
    }
    errs
}

/// On update only a few spec fields may change (`ValidatePodUpdate`): container images,
/// `activeDeadlineSeconds`, added tolerations. Everything else is compared.
pub fn validate_pod_update(old: &Pod, new: &Pod) -> Vec<FieldError> {
    let mut a = old.spec.clone().unwrap_or_default();
    let mut b = new.spec.clone().unwrap_or_default();
    for (x, y) in a.containers.iter_mut().zip(b.containers.iter_mut()) {
        x.image = y.image.clone();
    }
    for (x, y) in a
        .init_containers
        .iter_mut()
        .flatten()
        .zip(b.init_containers.iter_mut().flatten())
    {
        x.image = y.image.clone();
    }
    a.active_deadline_seconds = b.active_deadline_seconds;
    a.tolerations = b.tolerations.clone();
    if a != b {
        return vec![FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        )];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> (Pod, serde_json::Value) {
        let mut p: Pod = serde_json::from_value(v).unwrap();
        default_pod(&mut p);
        let v = serde_json::to_value(&p).unwrap();
        (p, v)
    }

    #[test]
    fn service_account_token_is_mounted_unless_opted_out() {
        let base = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "busybox"},
                           {"name": "d", "image": "busybox", "volumeMounts": [
                               {"name": "own", "mountPath": SERVICE_ACCOUNT_MOUNT}]}],
            "initContainers": [{"name": "i", "image": "busybox"}],
            "volumes": [{"name": "own", "emptyDir": {}}]}});
        let mut p: Pod = serde_json::from_value(base.clone()).unwrap();
        admit_service_account(&mut p);
        let spec = p.spec.as_ref().unwrap();
        let vol = spec.volumes.as_ref().unwrap().last().unwrap().clone();
        assert!(vol.name.starts_with("kube-api-access-") && vol.name.len() == 21);
        let sources = vol.projected.unwrap().sources.unwrap();
        assert_eq!(
            sources[0].service_account_token.as_ref().unwrap().path,
            "token"
        );
        let mounted = |c: &Container| {
            c.volume_mounts
                .iter()
                .flatten()
                .filter(|m| m.mount_path == SERVICE_ACCOUNT_MOUNT)
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(mounted(&spec.containers[0]), [vol.name.as_str()]);
        assert_eq!(mounted(&spec.containers[1]), ["own"]);
        assert_eq!(
            mounted(&spec.init_containers.as_ref().unwrap()[0]),
            [vol.name.as_str()]
        );
        // Admitting twice adds nothing.
        let before = p.clone();
        admit_service_account(&mut p);
        assert_eq!(p, before);
        let mut off = base;
        off["spec"]["automountServiceAccountToken"] = json!(false);
        let mut p: Pod = serde_json::from_value(off.clone()).unwrap();
        admit_service_account(&mut p);
        assert_eq!(p, serde_json::from_value::<Pod>(off).unwrap());
    }

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("127.0.0.1:5000/a/b"), "Always");
        assert_eq!(default_pull_policy("127.0.0.1:5000/a/b:1"), "IfNotPresent");
        assert_eq!(default_pull_policy("a@sha256:00"), "IfNotPresent");
    }

    #[test]
    fn duplicate_and_missing() {
        let (p, v) = pod(json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "a", "image": "x:1"}],
            "containers": [{"name": "a", "image": ""}, {"name": "B", "image": "y:1",
              "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}]}}));
        let errs = validate_pod(&p, &v);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.containers[0].name",
                "spec.containers[0].image",
                "spec.containers[1].name",
                "spec.containers[1].volumeMounts[0].name"
            ]
        );
        assert_eq!(errs[0].reason, "FieldValueDuplicate");
    }

    #[test]
    fn defaults_snapshot() {
        let (_, v) = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        );
        insta::assert_json_snapshot!(v);
    }
}
