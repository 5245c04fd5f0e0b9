//! The one grammar of a `ports:` string (a container's `portMappings`, a docker `-p` value):
//! `[ip:][hostPort:]containerPort[/protocol]`, ports or ranges (`8000-8005`), an IPv6 address
//! in brackets (`[::1]:8080:80`), protocol `tcp` (default), `udp` or `sctp`. Each hook decides
//! what it can do with a valid mapping (Kubernetes has no port ranges, for one).

use std::fmt;

/// A transport protocol of a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `tcp`, the default.
    Tcp,
    /// `udp`.
    Udp,
    /// `sctp`.
    Sctp,
}

impl Protocol {
    /// Lower case, as docker writes it (`tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inclusive range of port numbers (`first == last` for a single port); never empty, never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port (≥ `first`).
    pub last: u16,
}

impl PortRange {
    /// Whether this is one port.
    pub fn is_single(self) -> bool {
        self.first == self.last
    }

    /// How many ports after the first (0 for a single port).
    pub fn span(self) -> u16 {
        self.last - self.first
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// A valid port mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The host address to bind (`127.0.0.1`, `::1` without brackets), if any.
    pub host_ip: Option<String>,
    /// The host port or range, if given (none: the engine picks a free port). Either as wide as
    /// `container`, or a range for a single container port (the engine picks one from it).
    pub host: Option<PortRange>,
    /// The container port or range.
    pub container: PortRange,
    /// The protocol.
    pub protocol: Protocol,
}

/// The mapping in the docker CLI's words, e.g. `127.0.0.1:8080:80/tcp` or `[::1]::80/udp`.
impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host_ip, self.host) {
            (Some(ip), _) if ip.contains(':') => write!(f, "[{ip}]:")?,
            (Some(ip), _) => write!(f, "{ip}:")?,
            (None, _) => {}
        }
        match (self.host, &self.host_ip) {
            (Some(h), _) => write!(f, "{h}:")?,
            (None, Some(_)) => f.write_str(":")?,
            (None, None) => {}
        }
        write!(f, "{}/{}", self.container, self.protocol)
    }
}

/// Why a port string is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port mapping {spec:?}: {reason}")]
pub struct PortError {
    spec: String,
    reason: String,
}

impl PortError {
    /// The port string as given.
    pub fn spec(&self) -> &str {
        &self.spec
    }
}

fn range(s: &str) -> Result<PortRange, String> {
    let parse = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{p:?} is not a port number"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (first, last) = (parse(a)?, parse(b)?);
            if first > last {
                return Err(format!("range {s:?} is reversed"));
            }
            Ok(PortRange { first, last })
        }
        None => {
            let p = parse(s)?;
            Ok(PortRange { first: p, last: p })
        }
    }
}

impl PortMapping {
    /// Parses a `ports:` string like the docker CLI does.
    ///
    /// ```
    /// use hooklib::ports::{PortMapping, Protocol};
    /// let m = PortMapping::parse("127.0.0.1:8080:80/udp").unwrap();
    /// assert_eq!(m.host_ip.as_deref(), Some("127.0.0.1"));
    /// assert_eq!((m.host.unwrap().first, m.container.first), (8080, 80));
    /// assert_eq!(m.protocol, Protocol::Udp);
    /// assert!(PortMapping::parse("80/icmp").is_err());
    /// ```
    pub fn parse(spec: &str) -> Result<Self, PortError> {
        let err = |reason: String| PortError {
            spec: spec.to_owned(),
            reason,
        };
        let trimmed = spec.trim();
        let (rest, protocol) = match trimmed.rsplit_once('/') {
            Some((r, p)) => {
                let protocol = match p.to_ascii_lowercase().as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    "sctp" => Protocol::Sctp,
                    other => return Err(err(format!("unknown protocol {other:?}"))),
                };
                (r, protocol)
            }
            None => (trimmed, Protocol::Tcp),
        };
        // An IPv6 address is written in brackets: [::1]:8080:80.
        let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
            let (ip, after) = r
                .split_once("]:")
                .ok_or_else(|| err("unterminated [address]".to_owned()))?;
            (Some(ip.to_owned()), after)
        } else {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.len() {
                3 => (
                    Some(parts[0].to_owned()).filter(|ip| !ip.is_empty()),
                    &rest[parts[0].len() + 1..],
                ),
                n if n > 3 => return Err(err("too many colons".to_owned())),
                _ => (None, rest),
            }
        };
        let (host, container) = match rest.split_once(':') {
            Some((h, c)) => (h, c),
            None => ("", rest),
        };
        let container = range(container).map_err(err)?;
        let host = if host.is_empty() {
            None
        } else {
            Some(range(host).map_err(err)?)
        };
        if let Some(h) = host
            && h.span() != container.span()
            && !container.is_single()
        {
            return Err(err(
                "host and container port ranges differ in size".to_owned()
            ));
        }
        Ok(Self {
            host_ip,
            host,
            container,
            protocol,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(spec: &str) -> String {
        let m = PortMapping::parse(spec).unwrap();
        format!(
            "{}|{}|{}/{}",
            m.host_ip.unwrap_or_default(),
            m.host.map(|h| h.to_string()).unwrap_or_default(),
            m.container,
            m.protocol
        )
    }

    #[test]
    fn the_docker_grammar() {
        assert_eq!(show("80"), "||80/tcp");
        assert_eq!(show(" 8080:80 "), "|8080|80/tcp");
        assert_eq!(show("8080:80/UDP"), "|8080|80/udp");
        assert_eq!(show("127.0.0.1:8080:80"), "127.0.0.1|8080|80/tcp");
        assert_eq!(show("127.0.0.1::80"), "127.0.0.1||80/tcp");
        assert_eq!(show("[::1]:8080:80"), "::1|8080|80/tcp");
        assert_eq!(show("9000-9005:80"), "|9000-9005|80/tcp");
        assert_eq!(
            show("8000-8001:9000-9001/sctp"),
            "|8000-8001|9000-9001/sctp"
        );
    }

    #[test]
    fn a_mapping_prints_as_it_parses() {
        for spec in [
            "80",
            "8080:80/udp",
            "127.0.0.1:8080:80",
            "127.0.0.1::80",
            "[::1]:8080:80",
            "[::1]::80/sctp",
            "9000-9005:80",
        ] {
            let m = PortMapping::parse(spec).unwrap();
            assert_eq!(
                PortMapping::parse(&m.to_string()).unwrap(),
                m,
                "{spec} -> {m}"
            );
        }
        assert_eq!(
            PortMapping::parse("8080:80").unwrap().to_string(),
            "8080:80/tcp"
        );
    }

    #[test]
    fn invalid_strings_say_why() {
        for (bad, why) in [
            ("", "is not a port number"),
            ("x", "is not a port number"),
            ("80/xyz", "unknown protocol"),
            ("0", "is not a port number"),
            ("70000", "is not a port number"),
            ("1:2:3:4", "too many colons"),
            ("8000-8002:90-91", "differ in size"),
            ("9-8", "reversed"),
            ("[::1:80", "unterminated"),
        ] {
            let e = PortMapping::parse(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
            assert_eq!(e.spec(), bad);
        }
    }
}
