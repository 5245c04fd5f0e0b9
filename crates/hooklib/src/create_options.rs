//! The grammar of a container's `createOptions` (the workflow's `options:`): words split like a
//! shell (`shlex`), then flags read with the docker CLI's rules (`--flag value`,
//! `--flag=value`, `-m512m`, `-m=512m`, grouped short booleans `-it`). Which flags take a value
//! comes from one table of every `docker run` flag, so both hooks read a string the same way;
//! each hook then decides which flags it honours.

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// `--memory 512m`.
    Value,
    /// `--rm`, or `--rm=false`.
    Bool,
}

/// One flag of `docker run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DockerFlag {
    /// The long name without dashes (`memory`).
    pub long: &'static str,
    /// The one-letter name, if any (`m`).
    pub short: Option<char>,
    /// Whether it takes a value.
    pub kind: FlagKind,
}

const fn value(long: &'static str, short: Option<char>) -> DockerFlag {
    DockerFlag {
        long,
        short,
        kind: FlagKind::Value,
    }
}

const fn boolean(long: &'static str, short: Option<char>) -> DockerFlag {
    DockerFlag {
        long,
        short,
        kind: FlagKind::Bool,
    }
}

/// Every flag of `docker run` / `docker create` (Docker CLI 20–28), sorted by long name.
pub const DOCKER_RUN_FLAGS: &[DockerFlag] = &[
    value("add-host", None),
    value("annotation", None),
    value("attach", Some('a')),
    value("blkio-weight", None),
    value("blkio-weight-device", None),
    value("cap-add", None),
    value("cap-drop", None),
    value("cgroup-parent", None),
    value("cgroupns", None),
    value("cidfile", None),
    value("cpu-count", None),
    value("cpu-percent", None),
    value("cpu-period", None),
    value("cpu-quota", None),
    value("cpu-rt-period", None),
    value("cpu-rt-runtime", None),
    value("cpu-shares", Some('c')),
    value("cpus", None),
    value("cpuset-cpus", None),
    value("cpuset-mems", None),
    boolean("detach", Some('d')),
    value("detach-keys", None),
    value("device", None),
    value("device-cgroup-rule", None),
    value("device-read-bps", None),
    value("device-read-iops", None),
    value("device-write-bps", None),
    value("device-write-iops", None),
    boolean("disable-content-trust", None),
    value("dns", None),
    value("dns-opt", None),
    value("dns-option", None),
    value("dns-search", None),
    value("domainname", None),
    value("entrypoint", None),
    value("env", Some('e')),
    value("env-file", None),
    value("expose", None),
    value("gpus", None),
    value("group-add", None),
    value("health-cmd", None),
    value("health-interval", None),
    value("health-retries", None),
    value("health-start-interval", None),
    value("health-start-period", None),
    value("health-timeout", None),
    boolean("help", None),
    value("hostname", Some('h')),
    boolean("init", None),
    boolean("interactive", Some('i')),
    value("io-maxbandwidth", None),
    value("io-maxiops", None),
    value("ip", None),
    value("ip6", None),
    value("ipc", None),
    value("isolation", None),
    value("kernel-memory", None),
    value("label", Some('l')),
    value("label-file", None),
    value("link", None),
    value("link-local-ip", None),
    value("log-driver", None),
    value("log-opt", None),
    value("mac-address", None),
    value("memory", Some('m')),
    value("memory-reservation", None),
    value("memory-swap", None),
    value("memory-swappiness", None),
    value("mount", None),
    value("name", None),
    value("net", None),
    value("net-alias", None),
    value("network", None),
    value("network-alias", None),
    boolean("no-healthcheck", None),
    boolean("oom-kill-disable", None),
    value("oom-score-adj", None),
    value("pid", None),
    value("pids-limit", None),
    value("platform", None),
    boolean("privileged", None),
    value("publish", Some('p')),
    boolean("publish-all", Some('P')),
    value("pull", None),
    boolean("quiet", Some('q')),
    boolean("read-only", None),
    value("restart", None),
    boolean("rm", None),
    value("runtime", None),
    value("security-opt", None),
    value("shm-size", None),
    boolean("sig-proxy", None),
    value("stop-signal", None),
    value("stop-timeout", None),
    value("storage-opt", None),
    value("sysctl", None),
    value("tmpfs", None),
    boolean("tty", Some('t')),
    value("ulimit", None),
    value("user", Some('u')),
    value("userns", None),
    value("uts", None),
    value("volume", Some('v')),
    value("volume-driver", None),
    value("volumes-from", None),
    value("workdir", Some('w')),
];

/// One flag as read from a `createOptions` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// Its long name (`memory` for `-m` too).
    pub long: &'static str,
    /// As written (`-m`, `--memory`), for messages.
    pub written: String,
    /// Its value; for a bool flag `None` unless written `--flag=value`.
    pub value: Option<String>,
    /// Whether the value was written in the flag's own word (`--cpus=2`, `-m512m`).
    pub inline: bool,
}

impl Flag {
    /// The value, or `"true"` for a bool flag written without one.
    pub fn value_or_true(&self) -> &str {
        self.value.as_deref().unwrap_or("true")
    }

    /// The flag as the user wrote it, with its value (`--cpus 2`, `--rm`), for messages.
    pub fn as_written(&self) -> String {
        match &self.value {
            Some(v) if self.inline && self.written.starts_with("--") => {
                format!("{}={v}", self.written)
            }
            Some(v) if self.inline => format!("{}{v}", self.written),
            Some(v) => format!("{} {v}", self.written),
            None => self.written.clone(),
        }
    }
}

/// A `createOptions` string that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// Unbalanced quotes.
    #[error("cannot split the container options {0:?}: unbalanced quotes")]
    Quoting(String),
    /// A flag `docker run` does not have.
    #[error("unknown container option `{0}` in `options:` (not a `docker run` flag)")]
    Unknown(String),
    /// A value flag at the end of the string.
    #[error("container option `{0}` needs a value")]
    MissingValue(String),
    /// A word that is not a flag.
    #[error(
        "unexpected argument {0:?} in container options: only flags are allowed (the image and command come from the workflow)"
    )]
    Positional(String),
}

fn by_long(name: &str) -> Option<&'static DockerFlag> {
    DOCKER_RUN_FLAGS.iter().find(|f| f.long == name)
}

fn by_short(c: char) -> Option<&'static DockerFlag> {
    DOCKER_RUN_FLAGS.iter().find(|f| f.short == Some(c))
}

/// Reads a `createOptions` string into its flags, in order. `None` or blank: no flags.
///
/// ```
/// use hooklib::create_options::parse;
/// let flags = parse(Some(r#"--cpus 2 -it -m512m --health-cmd "pg_isready -U x""#)).unwrap();
/// let read: Vec<String> = flags.iter().map(|f| f.as_written()).collect();
/// assert_eq!(read, ["--cpus 2", "-i", "-t", "-m512m", "--health-cmd pg_isready -U x"]);
/// assert_eq!(flags[3].long, "memory");
/// assert!(parse(Some("--no-such-flag")).is_err());
/// ```
pub fn parse(text: Option<&str>) -> Result<Vec<Flag>, GrammarError> {
    let Some(text) = text.filter(|s| !s.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let words = shlex::split(text).ok_or_else(|| GrammarError::Quoting(text.to_owned()))?;
    let mut words = words.into_iter();
    let mut out = Vec::new();
    while let Some(word) = words.next() {
        if let Some(long) = word.strip_prefix("--").filter(|l| !l.is_empty()) {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let written = format!("--{name}");
            let flag = by_long(name).ok_or_else(|| GrammarError::Unknown(written.clone()))?;
            let inline_given = inline.is_some();
            let value = match (flag.kind, inline) {
                (_, Some(v)) => Some(v),
                (FlagKind::Bool, None) => None,
                (FlagKind::Value, None) => Some(
                    words
                        .next()
                        .ok_or_else(|| GrammarError::MissingValue(written.clone()))?,
                ),
            };
            out.push(Flag {
                long: flag.long,
                written,
                value,
                inline: inline_given,
            });
        } else if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            let chars: Vec<char> = shorts.chars().collect();
            let mut i = 0;
            while i < chars.len() {
                let c = chars[i];
                let written = format!("-{c}");
                let flag = by_short(c).ok_or_else(|| GrammarError::Unknown(written.clone()))?;
                let (value, inline) = match flag.kind {
                    FlagKind::Bool => (None, false),
                    FlagKind::Value => {
                        let rest: String = chars[i + 1..].iter().collect();
                        i = chars.len();
                        if rest.is_empty() {
                            let next = words
                                .next()
                                .ok_or_else(|| GrammarError::MissingValue(written.clone()))?;
                            (Some(next), false)
                        } else {
                            (
                                Some(rest.strip_prefix('=').unwrap_or(&rest).to_owned()),
                                true,
                            )
                        }
                    }
                };
                out.push(Flag {
                    long: flag.long,
                    written,
                    value,
                    inline,
                });
                i += 1;
            }
        } else {
            return Err(GrammarError::Positional(word));
        }
    }
    Ok(out)
}

/// A Go duration as `docker run` takes it (`10s`, `1m30s`, `500ms`, `1.5h`, `0`): one or more
/// decimal numbers each with a unit `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`. `None` when it is not
/// one (a bare number other than `0`, a negative or unknown unit).
///
/// ```
/// use std::time::Duration;
/// use hooklib::create_options::go_duration;
/// assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
/// assert_eq!(go_duration("10"), None);
/// ```
pub fn go_duration(value: &str) -> Option<std::time::Duration> {
    let v = value.trim();
    if v == "0" {
        return Some(std::time::Duration::ZERO);
    }
    if v.is_empty() {
        return None;
    }
    let mut rest = v;
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_end == 0 {
            return None;
        }
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += number * scale;
        rest = &rest[unit_end..];
    }
    Some(std::time::Duration::from_nanos(nanos.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<(&'static str, Option<String>)> {
        parse(Some(text))
            .unwrap()
            .into_iter()
            .map(|f| (f.long, f.value))
            .collect()
    }

    #[test]
    fn the_table_is_sorted_and_has_no_duplicates() {
        for pair in DOCKER_RUN_FLAGS.windows(2) {
            assert!(pair[0].long < pair[1].long, "{pair:?}");
        }
        let mut shorts: Vec<char> = DOCKER_RUN_FLAGS.iter().filter_map(|f| f.short).collect();
        let n = shorts.len();
        shorts.sort_unstable();
        shorts.dedup();
        assert_eq!(shorts.len(), n);
    }

    #[test]
    fn the_docker_cli_forms() {
        let v = |s: &str| Some(s.to_owned());
        assert_eq!(
            read("--cpus 2 --memory=1g -m512m -m=256m -e A=1 -eB=2"),
            [
                ("cpus", v("2")),
                ("memory", v("1g")),
                ("memory", v("512m")),
                ("memory", v("256m")),
                ("env", v("A=1")),
                ("env", v("B=2")),
            ]
        );
        // Booleans never take the next word: `--rm -v x` keeps `-v x` a volume.
        assert_eq!(
            read("--rm -v /a:/b --init=false -itd"),
            [
                ("rm", None),
                ("volume", v("/a:/b")),
                ("init", v("false")),
                ("interactive", None),
                ("tty", None),
                ("detach", None),
            ]
        );
        // A short value flag takes the rest of its group.
        assert_eq!(
            read("-tp8080:80"),
            [("tty", None), ("publish", v("8080:80"))]
        );
        // A value may start with a dash.
        assert_eq!(read("--stop-signal -9"), [("stop-signal", v("-9"))]);
        assert!(parse(None).unwrap().is_empty());
        assert!(parse(Some("  ")).unwrap().is_empty());
    }

    #[test]
    fn go_durations() {
        use std::time::Duration;
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(go_duration("10s"), ms(10_000));
        assert_eq!(go_duration("1m30s"), ms(90_000));
        assert_eq!(go_duration("1.5s"), ms(1500));
        assert_eq!(go_duration("1.5h"), ms(5_400_000));
        assert_eq!(go_duration("250ms"), ms(250));
        assert_eq!(go_duration("10us"), Some(Duration::from_micros(10)));
        assert_eq!(go_duration(" 0 "), Some(Duration::ZERO));
        for bad in ["10", "", "s", "3 days", "-1s", "1x", "1.2.3s"] {
            assert_eq!(go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn what_the_grammar_refuses() {
        for (text, want) in [
            ("--cpus \"2", GrammarError::Quoting("--cpus \"2".into())),
            ("--frobnicate", GrammarError::Unknown("--frobnicate".into())),
            ("-Z", GrammarError::Unknown("-Z".into())),
            ("--memory", GrammarError::MissingValue("--memory".into())),
            ("-m", GrammarError::MissingValue("-m".into())),
            ("ubuntu", GrammarError::Positional("ubuntu".into())),
            ("--rm -", GrammarError::Positional("-".into())),
        ] {
            assert_eq!(parse(Some(text)).unwrap_err(), want, "{text}");
        }
    }
}
