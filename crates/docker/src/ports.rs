//! Port publishing: `ports:` strings (parsed by `hooklib::ports`) as the engine's port bindings,
//! and the `{containerPort: hostPort}` map of the response.

use bollard::models::{PortBinding, PortMap};
use std::collections::BTreeMap;

/// One published port: container port with protocol (`80/tcp`) and where it goes on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Published {
    pub container: String,
    pub host_ip: String,
    /// Empty: the engine picks a free port.
    pub host_port: String,
}

pub(crate) use hooklib::ports::PortError;
use hooklib::ports::PortMapping;

/// Parses a `ports:` / `-p` value (hooklib's grammar) into the engine's published ports, one a
/// container port.
pub(crate) fn parse(spec: &str) -> Result<Vec<Published>, PortError> {
    PortMapping::parse(spec).map(|m| published(&m))
}

/// The engine's published ports of one mapping, one a container port.
pub(crate) fn published(m: &PortMapping) -> Vec<Published> {
    let host_ip = m.host_ip.clone().unwrap_or_default();
    (0..=m.container.span())
        .map(|i| Published {
            container: format!("{}/{}", m.container.first + i, m.protocol),
            host_ip: host_ip.clone(),
            host_port: match m.host {
                None => String::new(),
                // A host range with a single container port lets the engine pick from it.
                Some(h) if m.container.is_single() && !h.is_single() => h.to_string(),
                Some(h) => (h.first + i).to_string(),
            },
        })
        .collect()
}

/// The `PortBindings` of a container publishing `ports`.
pub(crate) fn bindings(ports: &[Published]) -> PortMap {
    let mut map = PortMap::new();
    for p in ports {
        let entry = map.entry(p.container.clone()).or_insert(Some(Vec::new()));
        if let Some(list) = entry {
            list.push(PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: Some(p.host_port.clone()),
            });
        }
    }
    map
}

/// The response's `{containerPort: hostPort}` map from an inspected container's
/// `NetworkSettings.Ports`: the protocol suffix is dropped (as GitHub's hook does) and the
/// IPv4 binding is preferred when the engine bound both families.
pub(crate) fn context_ports(ports: Option<&PortMap>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(ports) = ports else {
        return out;
    };
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort();
    for key in keys {
        let Some(Some(bindings)) = ports.get(key) else {
            continue;
        };
        let pick = bindings
            .iter()
            .find(|b| !b.host_ip.as_deref().unwrap_or_default().contains(':'))
            .or(bindings.first());
        if let Some(port) = pick.and_then(|b| b.host_port.clone()) {
            let container = key.split('/').next().unwrap_or(key).to_owned();
            out.entry(container).or_insert(port);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> (String, String, String) {
        let p = parse(spec).unwrap();
        assert_eq!(p.len(), 1, "{spec}");
        let p = &p[0];
        (p.container.clone(), p.host_ip.clone(), p.host_port.clone())
    }

    #[test]
    fn port_specs() {
        let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
        assert_eq!(one("80"), s("80/tcp", "", ""));
        assert_eq!(one("8080:80"), s("80/tcp", "", "8080"));
        assert_eq!(one("8080:80/udp"), s("80/udp", "", "8080"));
        assert_eq!(one("127.0.0.1:8080:80"), s("80/tcp", "127.0.0.1", "8080"));
        assert_eq!(one("127.0.0.1::80"), s("80/tcp", "127.0.0.1", ""));
        assert_eq!(one("[::1]:8080:80"), s("80/tcp", "::1", "8080"));
        assert_eq!(one("9000-9005:80"), s("80/tcp", "", "9000-9005"));
        let r = parse("8000-8001:9000-9001").unwrap();
        assert_eq!(r[1].container, "9001/tcp");
        assert_eq!(r[1].host_port, "8001");
        for bad in [
            "",
            "x",
            "80/xyz",
            "0",
            "70000",
            "1:2:3:4",
            "8000-8002:90-91",
            "9-8",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn context_prefers_ipv4() {
        let mut map = PortMap::new();
        map.insert(
            "5432/tcp".into(),
            Some(vec![
                PortBinding {
                    host_ip: Some("::".into()),
                    host_port: Some("49001".into()),
                },
                PortBinding {
                    host_ip: Some("0.0.0.0".into()),
                    host_port: Some("49000".into()),
                },
            ]),
        );
        map.insert("6379/tcp".into(), None);
        let ctx = context_ports(Some(&map));
        assert_eq!(ctx.len(), 1);
        assert_eq!(ctx["5432"], "49000");
    }
}
