//! `createOptions`: the workflow's `options:` string, read with `hooklib::create_options` (the
//! docker CLI's grammar, one for both hooks) and turned into Engine API fields. A flag we do not
//! support is an error naming it, never silently dropped.

mod apply;
mod values;

use crate::names::{JOB_LABEL, ROLE_LABEL, RUNNER_LABEL};
use crate::ports;
use bollard::models::{DeviceMapping, DeviceRequest, Mount, ResourcesUlimits};
use hooklib::create_options::GrammarError;
use std::collections::BTreeMap;

/// The container options could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// The string does not follow the docker CLI grammar (`hooklib::create_options`).
    #[error(transparent)]
    Grammar(hooklib::create_options::GrammarError),
    /// A `docker run` flag the hook does not support.
    #[error(
        "unsupported container option `{0}` in `options:`; supported: {list}",
        list = supported_list()
    )]
    Unknown(String),
    /// A flag the hook knows but refuses, with the reason.
    #[error("container option `{flag}` cannot be used with the container hook: {why}")]
    Refused {
        /// The flag as written.
        flag: String,
        /// Why.
        why: &'static str,
    },
    /// A value the flag does not accept.
    #[error("invalid value for container option `{flag}`: {reason}")]
    Invalid {
        /// The flag.
        flag: String,
        /// What is wrong.
        reason: String,
    },
}

/// The `docker run` flags the hook supports (long names; the short forms come with them).
const FLAGS: &[&str] = &[
    "add-host",
    "cap-add",
    "cap-drop",
    "cpu-shares",
    "cpus",
    "cpuset-cpus",
    "device",
    "dns",
    "dns-option",
    "dns-search",
    "entrypoint",
    "env",
    "expose",
    "gpus",
    "group-add",
    "health-cmd",
    "health-interval",
    "health-retries",
    "health-start-period",
    "health-timeout",
    "hostname",
    "init",
    "interactive",
    "ipc",
    "label",
    "log-driver",
    "log-opt",
    "memory",
    "memory-reservation",
    "memory-swap",
    "mount",
    "network-alias",
    "no-healthcheck",
    "oom-kill-disable",
    "pid",
    "pids-limit",
    "platform",
    "privileged",
    "publish",
    "read-only",
    "security-opt",
    "shm-size",
    "stop-signal",
    "stop-timeout",
    "sysctl",
    "tmpfs",
    "tty",
    "ulimit",
    "user",
    "userns",
    "volume",
    "workdir",
];

/// Flags the hook knows and refuses, with the reason shown to the user.
const REFUSED: &[(&str, &str)] = &[
    (
        "name",
        "the hook names containers itself; use --network-alias for another DNS name",
    ),
    (
        "network",
        "the job network is managed by the hook; set ACTIONS_RUNNER_NETWORK_DRIVER on the runner to use an existing network",
    ),
    (
        "net",
        "the job network is managed by the hook; set ACTIONS_RUNNER_NETWORK_DRIVER on the runner to use an existing network",
    ),
    ("rm", "the hook removes containers itself"),
    ("restart", "the hook manages the container's life"),
    ("detach", "the hook manages the container's life"),
    (
        "env-file",
        "files on the runner host are not read; use the workflow's `env:`",
    ),
    ("pull", "the hook always pulls the image"),
];

fn supported_list() -> String {
    FLAGS
        .iter()
        .map(|l| format!("--{l}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Health-check flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HealthFlags {
    pub cmd: Option<String>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub retries: Option<i64>,
    pub start_period: Option<i64>,
    pub disabled: bool,
}

/// What a `createOptions` string asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CreateOptions {
    pub env: Vec<(String, String)>,
    pub entrypoint: Option<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub network_aliases: Vec<String>,
    pub publish: Vec<ports::Published>,
    pub expose: Vec<String>,
    pub platform: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub health: HealthFlags,
    pub host: HostFlags,
}

/// The flags that land in `HostConfig`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HostFlags {
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub shm_size: Option<i64>,
    pub pids_limit: Option<i64>,
    pub oom_kill_disable: Option<bool>,
    pub privileged: Option<bool>,
    pub init: Option<bool>,
    pub read_only: Option<bool>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub devices: Vec<DeviceMapping>,
    pub device_requests: Vec<DeviceRequest>,
    pub ulimits: Vec<ResourcesUlimits>,
    pub tmpfs: BTreeMap<String, String>,
    pub binds: Vec<String>,
    pub anonymous_volumes: Vec<String>,
    pub mounts: Vec<Mount>,
    pub security_opt: Vec<String>,
    pub ipc: Option<String>,
    pub pid: Option<String>,
    pub userns: Option<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub group_add: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    pub log_driver: Option<String>,
    pub log_opts: BTreeMap<String, String>,
}

fn key_value(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some(("", _)) => Err(format!("{v:?} has an empty name")),
        Some((k, val)) => Ok((k.to_owned(), val.to_owned())),
        None => Err(format!("{v:?} is not name=value")),
    }
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a number"))
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{v:?} is not true or false")),
    }
}

impl CreateOptions {
    /// Parses a `createOptions` string. `None` or blank gives the defaults.
    pub(crate) fn parse(options: Option<&str>) -> Result<Self, OptionsError> {
        let mut out = Self::default();
        let Some(text) = options.filter(|s| !s.trim().is_empty()) else {
            return Ok(out);
        };
        let flags = hooklib::create_options::parse(Some(text)).map_err(|e| match e {
            GrammarError::Unknown(flag) => OptionsError::Unknown(flag),
            e => OptionsError::Grammar(e),
        })?;
        for flag in flags {
            if let Some((_, why)) = REFUSED.iter().find(|(l, _)| *l == flag.long) {
                return Err(OptionsError::Refused {
                    flag: flag.written,
                    why,
                });
            }
            if !FLAGS.contains(&flag.long) {
                return Err(OptionsError::Unknown(flag.written));
            }
            out.set(flag.long, flag.value_or_true())
                .map_err(|reason| OptionsError::Invalid {
                    flag: flag.written,
                    reason,
                })?;
        }
        out.check()?;
        Ok(out)
    }

    fn check(&self) -> Result<(), OptionsError> {
        let h = &self.health;
        if h.disabled
            && (h.cmd.is_some()
                || h.interval.is_some()
                || h.timeout.is_some()
                || h.retries.is_some()
                || h.start_period.is_some())
        {
            return Err(OptionsError::Invalid {
                flag: "--no-healthcheck".to_owned(),
                reason: "conflicts with the --health-* options".to_owned(),
            });
        }
        Ok(())
    }

    fn set(&mut self, name: &str, v: &str) -> Result<(), String> {
        let h = &mut self.host;
        match name {
            "add-host" => {
                let (host, ip) = v
                    .split_once('=')
                    .or_else(|| v.split_once(':'))
                    .ok_or_else(|| format!("{v:?} is not host:ip"))?;
                h.extra_hosts.push(format!("{host}:{ip}"));
            }
            "cap-add" => h.cap_add.push(v.to_owned()),
            "cap-drop" => h.cap_drop.push(v.to_owned()),
            "cpu-shares" => h.cpu_shares = Some(number(v)?),
            "cpus" => {
                let cpus: f64 = number(v)?;
                if !(cpus > 0.0 && cpus.is_finite()) {
                    return Err(format!("{v:?} must be a positive number of CPUs"));
                }
                h.nano_cpus = Some((cpus * 1e9).round() as i64);
            }
            "cpuset-cpus" => h.cpuset_cpus = Some(v.to_owned()),
            "device" => h.devices.push(values::device(v)?),
            "dns" => h.dns.push(v.to_owned()),
            "dns-option" => h.dns_options.push(v.to_owned()),
            "dns-search" => h.dns_search.push(v.to_owned()),
            "entrypoint" => self.entrypoint = Some(v.to_owned()),
            "env" => {
                let (k, val) = v.split_once('=').ok_or_else(|| {
                    format!(
                        "{v:?} has no value; write NAME=value (the runner host's environment is not passed through)"
                    )
                })?;
                if k.is_empty() {
                    return Err(format!("{v:?} has an empty name"));
                }
                self.env.push((k.to_owned(), val.to_owned()));
            }
            "expose" => {
                for p in ports::parse(v).map_err(|e| e.to_string())? {
                    self.expose.push(p.container);
                }
            }
            "gpus" => h.device_requests.push(values::gpus(v)?),
            "group-add" => h.group_add.push(v.to_owned()),
            "health-cmd" => self.health.cmd = Some(v.to_owned()),
            "health-interval" => self.health.interval = Some(values::duration_ns(v)?),
            "health-retries" => {
                let r: i64 = number(v)?;
                if r < 0 {
                    return Err("must not be negative".to_owned());
                }
                self.health.retries = Some(r);
            }
            "health-start-period" => self.health.start_period = Some(values::duration_ns(v)?),
            "health-timeout" => self.health.timeout = Some(values::duration_ns(v)?),
            "hostname" => self.hostname = Some(v.to_owned()),
            "init" => h.init = Some(boolean(v)?),
            "interactive" => self.interactive = boolean(v)?,
            "ipc" => h.ipc = Some(v.to_owned()),
            "label" => {
                let (k, val) = v.split_once('=').unwrap_or((v, ""));
                if [RUNNER_LABEL, JOB_LABEL, ROLE_LABEL].contains(&k) {
                    return Err(format!("label {k:?} is set by the hook"));
                }
                self.labels.insert(k.to_owned(), val.to_owned());
            }
            "log-driver" => h.log_driver = Some(v.to_owned()),
            "log-opt" => {
                let (k, val) = key_value(v)?;
                h.log_opts.insert(k, val);
            }
            "memory" => h.memory = Some(values::bytes(v)?),
            "memory-reservation" => h.memory_reservation = Some(values::bytes(v)?),
            "memory-swap" => {
                h.memory_swap = Some(if v.trim() == "-1" {
                    -1
                } else {
                    values::bytes(v)?
                })
            }
            "mount" => h.mounts.push(values::mount(v)?),
            "network-alias" => self.network_aliases.push(v.to_owned()),
            "no-healthcheck" => self.health.disabled = boolean(v)?,
            "oom-kill-disable" => h.oom_kill_disable = Some(boolean(v)?),
            "pid" => h.pid = Some(v.to_owned()),
            "pids-limit" => h.pids_limit = Some(number(v)?),
            "platform" => self.platform = Some(v.to_owned()),
            "privileged" => h.privileged = Some(boolean(v)?),
            "publish" => self
                .publish
                .extend(ports::parse(v).map_err(|e| e.to_string())?),
            "read-only" => h.read_only = Some(boolean(v)?),
            "security-opt" => h.security_opt.push(v.to_owned()),
            "shm-size" => h.shm_size = Some(values::bytes(v)?),
            "stop-signal" => self.stop_signal = Some(v.to_owned()),
            "stop-timeout" => self.stop_timeout = Some(number(v)?),
            "sysctl" => {
                let (k, val) = key_value(v)?;
                h.sysctls.insert(k, val);
            }
            "tmpfs" => {
                let (path, opts) = v.split_once(':').unwrap_or((v, ""));
                if !path.starts_with('/') {
                    return Err(format!("{path:?} is not an absolute path"));
                }
                h.tmpfs.insert(path.to_owned(), opts.to_owned());
            }
            "tty" => self.tty = boolean(v)?,
            "ulimit" => h.ulimits.push(values::ulimit(v)?),
            "user" => self.user = Some(v.to_owned()),
            "userns" => h.userns = Some(v.to_owned()),
            "volume" => {
                if v.is_empty() {
                    return Err("empty volume".to_owned());
                }
                if v.contains(':') {
                    let target = v.split(':').nth(1).unwrap_or_default();
                    if !target.starts_with('/') {
                        return Err(format!("{v:?}: the target must be an absolute path"));
                    }
                    h.binds.push(v.to_owned());
                } else if v.starts_with('/') {
                    h.anonymous_volumes.push(v.to_owned());
                } else {
                    return Err(format!("{v:?} is not source:target[:options] or /target"));
                }
            }
            "workdir" => self.workdir = Some(v.to_owned()),
            other => return Err(format!("internal: flag {other} has no handler")),
        }
        Ok(())
    }

    /// Replaces `--security-opt seccomp=<file>` by the profile's content, as the docker CLI does.
    pub(crate) fn load_seccomp_profiles(&mut self) -> Result<(), OptionsError> {
        for opt in &mut self.host.security_opt {
            let Some(path) = opt.strip_prefix("seccomp=") else {
                continue;
            };
            let path = path.to_owned();
            if path == "unconfined" || path.trim_start().starts_with('{') {
                continue;
            }
            let profile = std::fs::read_to_string(&path).map_err(|e| OptionsError::Invalid {
                flag: "--security-opt".to_owned(),
                reason: format!("cannot read the seccomp profile {path}: {e}"),
            })?;
            *opt = format!("seccomp={profile}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
