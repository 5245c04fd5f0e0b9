//! Pure builders: the Docker create bodies for the sandbox and for each pod container, env
//! resolution, resource quantities.

use std::collections::HashMap;

use base64::Engine;
use bollard::models::{ContainerCreateBody, HostConfig};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::Value;

/// Labels every Docker object of this simulator carries.
#[derive(Debug, Clone)]
pub struct Labels {
    /// simulator instance id
    pub instance: String,
    /// pid of the simulator process (stale-object sweeps)
    pub pid: u32,
}

/// Node name of the single simulated node.
pub const NODE_NAME: &str = "kubesim-node";

/// Node labels (for nodeSelector checks).
pub fn node_labels() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("kubernetes.io/hostname", NODE_NAME),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
    ])
}

fn base_labels(l: &Labels, pod: &Pod, container: &str) -> HashMap<String, String> {
    let m = &pod.metadata;
    HashMap::from([
        ("kubesim.instance".to_string(), l.instance.clone()),
        ("kubesim.pid".to_string(), l.pid.to_string()),
        (
            "io.kubernetes.pod.name".to_string(),
            m.name.clone().unwrap_or_default(),
        ),
        (
            "io.kubernetes.pod.namespace".to_string(),
            m.namespace.clone().unwrap_or_default(),
        ),
        (
            "io.kubernetes.pod.uid".to_string(),
            m.uid.clone().unwrap_or_default(),
        ),
        (
            "io.kubernetes.container.name".to_string(),
            container.to_string(),
        ),
    ])
}

/// The sandbox ("pause") container holding the pod's network namespace.
pub fn sandbox_body(l: &Labels, pod: &Pod, image: &str) -> ContainerCreateBody {
    let hostname = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let hostname: String = hostname.chars().take(63).collect();
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec!["sleep".into(), "2147483647".into()]),
        cmd: None,
        hostname: Some(hostname),
        labels: Some(base_labels(l, pod, "POD")),
        host_config: Some(HostConfig {
            init: Some(false),
            ipc_mode: Some("shareable".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Parse a Kubernetes quantity (`128Mi`, `1G`, `500m`, `1e9`) into a float of base units.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let suffixes: [(&str, f64); 14] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    for (s, mul) in suffixes {
        if let Some(n) = q.strip_suffix(s) {
            return n.parse::<f64>().ok().map(|v| v * mul);
        }
    }
    if let Some(n) = q.strip_suffix('E') {
        return n.parse::<f64>().ok().map(|v| v * 1e18);
    }
    q.parse::<f64>().ok()
}

/// Everything the container body needs besides the pod.
#[derive(Debug, Clone, Default)]
pub struct ContainerInputs {
    /// resolved `NAME=value` env
    pub env: Vec<String>,
    /// Docker binds `host:container[:ro]`
    pub binds: Vec<String>,
    /// sandbox container id
    pub sandbox_id: String,
    /// host file bound at the termination message path
    pub termination_file: Option<String>,
}

/// The Docker create body of one pod container (pure).
pub fn container_body(
    l: &Labels,
    pod: &Pod,
    c: &Container,
    inp: &ContainerInputs,
) -> ContainerCreateBody {
    let spec = pod.spec.clone().unwrap_or_default();
    let psc = spec.security_context.clone().unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    let uid = csc.run_as_user.or(psc.run_as_user);
    let gid = csc.run_as_group.or(psc.run_as_group);
    let user = match (uid, gid) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => Some(format!("0:{g}")),
        (None, None) => None,
    };
    let mut groups: Vec<String> = psc
        .supplemental_groups
        .iter()
        .flatten()
        .map(|g| g.to_string())
        .collect();
    if let Some(fs) = psc.fs_group {
        groups.push(fs.to_string());
    }
    let limits = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    let memory = limits
        .get("memory")
        .and_then(|q| parse_quantity(&q.0))
        .map(|v| v as i64);
    let nano_cpus = limits
        .get("cpu")
        .and_then(|q| parse_quantity(&q.0))
        .map(|v| (v * 1e9) as i64);
    let mut binds = inp.binds.clone();
    if let Some(t) = &inp.termination_file {
        let path = c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        binds.push(format!("{t}:{path}"));
    }
    let caps = csc.capabilities.clone().unwrap_or_default();
    let nonempty = |v: &Option<Vec<String>>| v.clone().filter(|v| !v.is_empty());
    // $(VAR) in command and args expands from the container's env (kubelet `ExpandContainerCommandAndArgs`)
    let vars: HashMap<String, String> = inp
        .env
        .iter()
        .filter_map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let expand_all =
        |v: Option<Vec<String>>| v.map(|v| v.iter().map(|a| expand(a, &vars)).collect::<Vec<_>>());
    ContainerCreateBody {
        image: c.image.clone(),
        entrypoint: expand_all(nonempty(&c.command)),
        cmd: expand_all(nonempty(&c.args)),
        env: Some(inp.env.clone()),
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        user,
        tty: Some(c.tty.unwrap_or(false)),
        open_stdin: Some(c.stdin.unwrap_or(false)),
        stdin_once: Some(c.stdin_once.unwrap_or(false)),
        attach_stdin: Some(c.stdin.unwrap_or(false)),
        labels: Some(base_labels(l, pod, &c.name)),
        host_config: Some(HostConfig {
            network_mode: Some(format!("container:{}", inp.sandbox_id)),
            ipc_mode: Some(format!("container:{}", inp.sandbox_id)),
            binds: Some(binds),
            group_add: (!groups.is_empty()).then_some(groups),
            memory,
            memory_swap: memory,
            nano_cpus,
            privileged: csc.privileged,
            readonly_rootfs: csc.read_only_root_filesystem,
            cap_add: nonempty(&caps.add),
            cap_drop: nonempty(&caps.drop),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Where env values come from (the store, seen through the kubelet).
pub trait EnvSources {
    /// a Secret's `data` (decoded)
    fn secret(&self, name: &str) -> Option<HashMap<String, Vec<u8>>>;
    /// a ConfigMap's `data`
    fn config_map(&self, name: &str) -> Option<HashMap<String, String>>;
}

/// The objects an env var or `envFrom` reads.
#[derive(Debug, Clone, Copy)]
enum EnvSource {
    Secret,
    ConfigMap,
}

impl EnvSource {
    /// The object's data as env values (a secret's bytes as lossy UTF-8); `None` when it is
    /// missing and the reference optional.
    fn data(
        self,
        src: &dyn EnvSources,
        name: &str,
        optional: Option<bool>,
    ) -> Result<Option<HashMap<String, String>>, String> {
        let (found, kind) = match self {
            Self::Secret => {
                let lossy = |d: HashMap<String, Vec<u8>>| {
                    d.into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                        .collect()
                };
                (src.secret(name).map(lossy), "secret")
            }
            Self::ConfigMap => (src.config_map(name), "configmap"),
        };
        match found {
            Some(d) => Ok(Some(d)),
            None if optional == Some(true) => Ok(None),
            None => Err(format!("{kind} {name:?} not found")),
        }
    }

    /// One key of the object; `None` when it (or the object) is missing and the reference
    /// optional.
    fn key(
        self,
        src: &dyn EnvSources,
        ns: &str,
        name: &str,
        key: &str,
        optional: Option<bool>,
    ) -> Result<Option<String>, String> {
        let Some(mut d) = self.data(src, name, optional)? else {
            return Ok(None);
        };
        let kind = match self {
            Self::Secret => "Secret",
            Self::ConfigMap => "ConfigMap",
        };
        match d.remove(key) {
            Some(v) => Ok(Some(v)),
            None if optional == Some(true) => Ok(None),
            None => Err(format!("couldn't find key {key} in {kind} {ns}/{name}")),
        }
    }
}

/// Expand `$(VAR)` references (`$$` escapes), as `third_party/forked/golang/expansion`.
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'('
                && let Some(end) = s[i + 2..].find(')')
            {
                let name = &s[i + 2..i + 2 + end];
                match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&s[i..i + 3 + end]),
                }
                i += 3 + end;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Resolve a container's env (`envFrom` first, then `env`). Err = CreateContainerConfigError message.
pub fn resolve_env(
    pod: &Pod,
    c: &Container,
    pod_ip: &str,
    src: &dyn EnvSources,
) -> Result<Vec<String>, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut map: HashMap<String, String> = HashMap::new();
    let set = |vars: &mut Vec<(String, String)>,
               map: &mut HashMap<String, String>,
               k: String,
               v: String| {
        if let Some(e) = vars.iter_mut().find(|(n, _)| *n == k) {
            e.1 = v.clone();
        } else {
            vars.push((k.clone(), v.clone()));
        }
        map.insert(k, v);
    };
    for ef in c.env_from.iter().flatten() {
        let prefix = ef.prefix.clone().unwrap_or_default();
        let refs = [
            (ef.secret_ref.as_ref()).map(|r| (EnvSource::Secret, &r.name, r.optional)),
            (ef.config_map_ref.as_ref()).map(|r| (EnvSource::ConfigMap, &r.name, r.optional)),
        ];
        for (kind, name, optional) in refs.into_iter().flatten() {
            if let Some(d) = kind.data(src, name, optional)? {
                let mut keys: Vec<_> = d.into_iter().collect();
                keys.sort();
                for (k, v) in keys {
                    set(&mut vars, &mut map, format!("{prefix}{k}"), v);
                }
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            expand(v, &map)
        } else if let Some(vf) = &e.value_from {
            let key_ref = (vf.secret_key_ref.as_ref())
                .map(|r| (EnvSource::Secret, &r.name, &r.key, r.optional))
                .or_else(|| {
                    (vf.config_map_key_ref.as_ref())
                        .map(|r| (EnvSource::ConfigMap, &r.name, &r.key, r.optional))
                });
            if let Some((kind, name, key, optional)) = key_ref {
                match kind.key(src, &ns, name, key, optional)? {
                    Some(v) => v,
                    None => continue,
                }
            } else if let Some(f) = &vf.field_ref {
                let m = &pod.metadata;
                match f.field_path.as_str() {
                    "metadata.name" => m.name.clone().unwrap_or_default(),
                    "metadata.namespace" => ns.clone(),
                    "metadata.uid" => m.uid.clone().unwrap_or_default(),
                    "spec.nodeName" => NODE_NAME.to_string(),
                    "spec.serviceAccountName" => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.clone())
                        .unwrap_or_default(),
                    "status.podIP" | "status.podIPs" => pod_ip.to_string(),
                    "status.hostIP" | "status.hostIPs" => "127.0.0.1".to_string(),
                    p => {
                        // metadata.labels['k'], metadata.annotations['k']
                        let keyed = [
                            ("metadata.labels['", &m.labels),
                            ("metadata.annotations['", &m.annotations),
                        ]
                        .into_iter()
                        .find_map(|(prefix, map)| {
                            Some((p.strip_prefix(prefix)?.strip_suffix("']")?, map))
                        });
                        let Some((k, map)) = keyed else {
                            return Err(format!("unsupported fieldRef {p}"));
                        };
                        map.as_ref()
                            .and_then(|l| l.get(k).cloned())
                            .unwrap_or_default()
                    }
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut vars, &mut map, e.name.clone(), value);
    }
    Ok(vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// Decode a Secret object's `data` into bytes.
pub fn secret_data(obj: &Value) -> HashMap<String, Vec<u8>> {
    obj["data"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let b = base64::engine::general_purpose::STANDARD
                        .decode(v.as_str()?)
                        .ok()?;
                    Some((k.clone(), b))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Src;
    impl EnvSources for Src {
        fn secret(&self, name: &str) -> Option<HashMap<String, Vec<u8>>> {
            (name == "s").then(|| HashMap::from([("token".to_string(), b"t0p".to_vec())]))
        }
        fn config_map(&self, _: &str) -> Option<HashMap<String, String>> {
            None
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "n", "uid": "u-1"}, "spec": {
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
            "containers": [{"name": "c", "image": "img:1", "command": ["sh"], "args": ["-c", "echo $(A)"],
              "workingDir": "/w", "stdin": true, "stdinOnce": true,
              "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
              "env": [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$$(A)"},
                {"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
                {"name": "P", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}))
        .unwrap()
    }

    #[test]
    fn env_resolution() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let env = resolve_env(&p, c, "10.0.0.2", &Src).unwrap();
        assert_eq!(env, ["A=x", "B=x-$(A)", "T=t0p", "P=p"]);
        let mut c2 = c.clone();
        c2.env.as_mut().unwrap()[2]
            .value_from
            .as_mut()
            .unwrap()
            .secret_key_ref
            .as_mut()
            .unwrap()
            .name = "missing".into();
        assert_eq!(
            resolve_env(&p, &c2, "", &Src).unwrap_err(),
            "secret \"missing\" not found"
        );
    }

    #[test]
    fn env_from_keys_and_field_refs() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "n",
            "labels": {"app": "a"}, "annotations": {"note": "b"}}, "spec": {"containers": [{"name": "c",
            "envFrom": [{"prefix": "S_", "secretRef": {"name": "s"}}, {"configMapRef": {"name": "cm", "optional": true}}],
            "env": [{"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
                {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['none']"}}},
                {"name": "O", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": true}}},
                {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}}]}]}}))
        .unwrap();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let env = resolve_env(&p, c, "", &Src).unwrap();
        assert_eq!(env, ["S_token=t0p", "L=a", "N=b", "X="]);
        let failing = |value_from: Value| {
            let mut c2 = c.clone();
            c2.env.as_mut().unwrap()[0] =
                serde_json::from_value(json!({"name": "V", "valueFrom": value_from})).unwrap();
            resolve_env(&p, &c2, "", &Src).unwrap_err()
        };
        assert_eq!(
            failing(json!({"fieldRef": {"fieldPath": "metadata.labels"}})),
            "unsupported fieldRef metadata.labels"
        );
        assert_eq!(
            failing(json!({"secretKeyRef": {"name": "s", "key": "k"}})),
            "couldn't find key k in Secret n/s"
        );
        assert_eq!(
            failing(json!({"configMapKeyRef": {"name": "cm", "key": "k"}})),
            "configmap \"cm\" not found"
        );
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("64Mi"), Some(67108864.0));
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("2"), Some(2.0));
    }

    #[test]
    fn container_body_snapshot() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let l = Labels {
            instance: "[instance]".into(),
            pid: 1,
        };
        let body = container_body(
            &l,
            &p,
            c,
            &ContainerInputs {
                env: vec!["A=x".into()],
                binds: vec!["/host/v:/data".into()],
                sandbox_id: "sandbox123".into(),
                termination_file: Some("/host/term".into()),
            },
        );
        insta::with_settings!({sort_maps => true}, {
            insta::assert_json_snapshot!("container_body", body);
            insta::assert_json_snapshot!("sandbox_body", sandbox_body(&l, &p, "hooktest/busybox:1"));
        });
    }
}
