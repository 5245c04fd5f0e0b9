//! Port publishing: `ports:` strings (`80`, `8080:80`, `127.0.0.1:8080:80/udp`, ranges) and the
//! `{containerPort: hostPort}` map of the response.

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

/// Why a port string is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port mapping {spec:?}: {reason}")]
pub struct PortError {
    spec: String,
    reason: String,
}

fn range(s: &str) -> Result<(u16, u16), String> {
    let parse = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{p:?} is not a port number"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if a > b {
                return Err(format!("range {s:?} is reversed"));
            }
            Ok((a, b))
        }
        None => {
            let p = parse(s)?;
            Ok((p, p))
        }
    }
}

/// Parses a `ports:` / `-p` value like the docker CLI: `[ip:][hostPort:]containerPort[/proto]`.
pub(crate) fn parse(spec: &str) -> Result<Vec<Published>, PortError> {
    let err = |reason: String| PortError {
        spec: spec.to_owned(),
        reason,
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(err(format!("unknown protocol {proto:?}")));
    }
    // An IPv6 address is written in brackets: [::1]:8080:80.
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r
            .split_once("]:")
            .ok_or_else(|| err("unterminated [address]".to_owned()))?;
        (ip.to_owned(), after)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() == 3 {
            (parts[0].to_owned(), &rest[parts[0].len() + 1..])
        } else if parts.len() > 3 {
            return Err(err("too many colons".to_owned()));
        } else {
            (String::new(), rest)
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h, c),
        None => ("", rest),
    };
    let (c_lo, c_hi) = range(container).map_err(err)?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(range(host).map_err(err)?)
    };
    let count = c_hi - c_lo;
    let mut out = Vec::new();
    for i in 0..=count {
        let host_port = match host_range {
            None => String::new(),
            Some((h_lo, h_hi)) if h_hi - h_lo == count => (h_lo + i).to_string(),
            // docker: a host range with a single container port lets the engine pick from it.
            Some((h_lo, h_hi)) if count == 0 => format!("{h_lo}-{h_hi}"),
            Some(_) => {
                return Err(err(
                    "host and container port ranges differ in size".to_owned()
                ));
            }
        };
        out.push(Published {
            container: format!("{}/{proto}", c_lo + i),
            host_ip: ip.clone(),
            host_port,
        });
    }
    Ok(out)
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
