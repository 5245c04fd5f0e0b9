//! Parsers for the values of `docker create` flags, following the docker CLI's own rules.

use bollard::models::{
    DeviceMapping, DeviceRequest, Mount, MountBindOptions, MountBindOptionsPropagationEnum,
    MountTmpfsOptions, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig,
    ResourcesUlimits,
};
use std::collections::HashMap;

/// A size such as `512m`, `1g`, `1.5GiB`, `100` (bytes): binary multiples, like the docker
/// CLI's `RAMInBytes`.
pub(crate) fn bytes(value: &str) -> Result<i64, String> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let number: f64 = num
        .parse()
        .map_err(|_| format!("{value:?} is not a size (e.g. 512m, 2g)"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0_f64.powi(4),
        "p" => 1024.0_f64.powi(5),
        _ => {
            return Err(format!(
                "{value:?} has an unknown size unit (use b, k, m, g, t)"
            ));
        }
    };
    Ok((number * mult) as i64)
}

/// A Go duration (`hooklib::create_options::go_duration`) in nanoseconds.
pub(crate) fn duration_ns(value: &str) -> Result<i64, String> {
    hooklib::create_options::go_duration(value)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .ok_or_else(|| format!("{value:?} is not a duration (e.g. 10s, 1m30s, 500ms)"))
}

/// `--ulimit name=soft[:hard]`.
pub(crate) fn ulimit(value: &str) -> Result<ResourcesUlimits, String> {
    const NAMES: [&str; 15] = [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not name=soft[:hard]"))?;
    if !NAMES.contains(&name) {
        return Err(format!("unknown ulimit {name:?}"));
    }
    let num = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("{value:?}: {s:?} is not a number"))
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => (num(limits)?, num(limits)?),
    };
    if soft > hard {
        return Err(format!("{value:?}: soft limit is above the hard limit"));
    }
    Ok(ResourcesUlimits {
        name: Some(name.to_owned()),
        soft: Some(soft),
        hard: Some(hard),
    })
}

/// `--device host[:container][:permissions]`.
pub(crate) fn device(value: &str) -> Result<DeviceMapping, String> {
    let is_perms = |s: &str| !s.is_empty() && s.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let parts: Vec<&str> = value.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_perms(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if is_perms(p) => (*h, *c, *p),
        _ => return Err(format!("{value:?} is not host[:container][:rwm]")),
    };
    if host.is_empty() || container.is_empty() {
        return Err(format!("{value:?} is not host[:container][:rwm]"));
    }
    Ok(DeviceMapping {
        path_on_host: Some(host.to_owned()),
        path_in_container: Some(container.to_owned()),
        cgroup_permissions: Some(perms.to_owned()),
    })
}

/// Splits a comma-separated list with CSV quoting (`"device=0,1",capabilities=gpu`).
pub(crate) fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("{value:?} has an unterminated quote"));
    }
    fields.push(cur);
    Ok(fields)
}

fn bool_value(key: &str, value: Option<&str>) -> Result<bool, String> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("1" | "true") => Ok(true),
        Some("0" | "false") => Ok(false),
        Some(v) => Err(format!("{key}={v} is not a boolean")),
    }
}

/// `--mount type=bind,source=…,target=…[,readonly]…`.
pub(crate) fn mount(value: &str) -> Result<Mount, String> {
    let mut m = Mount {
        typ: Some(MountType::VOLUME),
        ..Default::default()
    };
    let mut bind = MountBindOptions::default();
    let mut vol = MountVolumeOptions::default();
    let mut tmpfs = MountTmpfsOptions::default();
    let mut vol_labels = HashMap::new();
    let mut driver = MountVolumeOptionsDriverConfig::default();
    for field in csv_fields(value)? {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_owned())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = |v: Option<String>| v.ok_or_else(|| format!("{key} needs a value"));
        match key.as_str() {
            "type" => {
                m.typ = Some(match need(val)?.as_str() {
                    "bind" => MountType::BIND,
                    "volume" => MountType::VOLUME,
                    "tmpfs" => MountType::TMPFS,
                    other => return Err(format!("unsupported mount type {other:?}")),
                })
            }
            "source" | "src" => m.source = Some(need(val)?),
            "target" | "destination" | "dst" => m.target = Some(need(val)?),
            "readonly" | "ro" => m.read_only = Some(bool_value(&key, val.as_deref())?),
            "consistency" => m.consistency = Some(need(val)?),
            "bind-propagation" => {
                bind.propagation = Some(match need(val)?.as_str() {
                    "private" => MountBindOptionsPropagationEnum::PRIVATE,
                    "rprivate" => MountBindOptionsPropagationEnum::RPRIVATE,
                    "shared" => MountBindOptionsPropagationEnum::SHARED,
                    "rshared" => MountBindOptionsPropagationEnum::RSHARED,
                    "slave" => MountBindOptionsPropagationEnum::SLAVE,
                    "rslave" => MountBindOptionsPropagationEnum::RSLAVE,
                    other => return Err(format!("unknown bind-propagation {other:?}")),
                })
            }
            "bind-nonrecursive" => bind.non_recursive = Some(bool_value(&key, val.as_deref())?),
            "volume-nocopy" => vol.no_copy = Some(bool_value(&key, val.as_deref())?),
            "volume-label" => {
                let v = need(val)?;
                let (k, lv) = v.split_once('=').unwrap_or((v.as_str(), ""));
                vol_labels.insert(k.to_owned(), lv.to_owned());
            }
            "volume-driver" => driver.name = Some(need(val)?),
            "volume-opt" => {
                let v = need(val)?;
                let (k, ov) = v
                    .split_once('=')
                    .ok_or_else(|| format!("volume-opt {v:?} is not key=value"))?;
                driver
                    .options
                    .get_or_insert_with(HashMap::new)
                    .insert(k.to_owned(), ov.to_owned());
            }
            "tmpfs-size" => tmpfs.size_bytes = Some(bytes(&need(val)?)?),
            "tmpfs-mode" => {
                let v = need(val)?;
                tmpfs.mode = Some(
                    i64::from_str_radix(&v, 8)
                        .map_err(|_| format!("tmpfs-mode {v:?} is not an octal mode"))?,
                )
            }
            other => return Err(format!("unknown mount field {other:?}")),
        }
    }
    if m.target.is_none() {
        return Err("target is required".to_owned());
    }
    match m.typ {
        Some(MountType::BIND) => {
            if m.source.is_none() {
                return Err("a bind mount needs a source".to_owned());
            }
            if bind != MountBindOptions::default() {
                m.bind_options = Some(bind);
            }
        }
        Some(MountType::VOLUME) => {
            if !vol_labels.is_empty() {
                vol.labels = Some(vol_labels);
            }
            if driver != MountVolumeOptionsDriverConfig::default() {
                vol.driver_config = Some(driver);
            }
            if vol != MountVolumeOptions::default() {
                m.volume_options = Some(vol);
            }
        }
        Some(MountType::TMPFS) => {
            if m.source.is_some() {
                return Err("a tmpfs mount takes no source".to_owned());
            }
            if tmpfs != MountTmpfsOptions::default() {
                m.tmpfs_options = Some(tmpfs);
            }
        }
        _ => {}
    }
    Ok(m)
}

/// `--gpus all`, `--gpus 2`, `--gpus '"device=0,1",capabilities=compute'`.
pub(crate) fn gpus(value: &str) -> Result<DeviceRequest, String> {
    let mut req = DeviceRequest {
        driver: Some(String::new()),
        count: None,
        device_ids: None,
        capabilities: None,
        options: None,
    };
    let mut caps: Vec<String> = Vec::new();
    let count = |v: &str| -> Result<i64, String> {
        if v == "all" {
            Ok(-1)
        } else {
            v.parse()
                .map_err(|_| format!("count {v:?} is not a number or \"all\""))
        }
    };
    for field in csv_fields(value)? {
        match field.split_once('=') {
            None => req.count = Some(count(&field)?),
            Some(("count", v)) => req.count = Some(count(v)?),
            Some(("device", v)) => {
                req.device_ids = Some(v.split(',').map(str::to_owned).collect());
            }
            Some(("driver", v)) => req.driver = Some(v.to_owned()),
            Some(("capabilities", v)) => caps.extend(v.split(',').map(str::to_owned)),
            Some(("options", v)) => {
                let mut opts = HashMap::new();
                for o in v.split(',') {
                    let (k, ov) = o.split_once('=').unwrap_or((o, ""));
                    opts.insert(k.to_owned(), ov.to_owned());
                }
                req.options = Some(opts);
            }
            Some((k, _)) => return Err(format!("unknown field {k:?}")),
        }
    }
    if req.count.is_some() && req.device_ids.is_some() {
        return Err("count and device cannot both be given".to_owned());
    }
    if req.count.is_none() && req.device_ids.is_none() {
        req.count = Some(-1);
    }
    if !caps.iter().any(|c| c == "gpu") {
        caps.push("gpu".to_owned());
    }
    req.capabilities = Some(vec![caps]);
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes("512m"), Ok(512 * 1024 * 1024));
        assert_eq!(bytes("1g"), Ok(1 << 30));
        assert_eq!(bytes("1GiB"), Ok(1 << 30));
        assert_eq!(bytes("64MB"), Ok(64 << 20));
        assert_eq!(bytes("100"), Ok(100));
        assert_eq!(bytes("1.5k"), Ok(1536));
        assert!(bytes("lots").is_err());
        assert!(bytes("5x").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ns("1m30s"), Ok(90_000_000_000));
        assert!(
            duration_ns("3 days")
                .unwrap_err()
                .contains("is not a duration")
        );
    }

    #[test]
    fn ulimits_and_devices() {
        let u = ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (Some(1024), Some(2048)));
        assert!(ulimit("nofile=2:1").is_err());
        assert!(ulimit("bogus=1").is_err());
        let d = device("/dev/fuse").unwrap();
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/fuse"));
        let d = device("/dev/sda:r").unwrap();
        assert_eq!(d.cgroup_permissions.as_deref(), Some("r"));
        let d = device("/dev/sda:/dev/xvda:rw").unwrap();
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/xvda"));
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(
            csv_fields(r#""device=0,1",capabilities=gpu"#).unwrap(),
            ["device=0,1", "capabilities=gpu"]
        );
        assert!(csv_fields(r#""open"#).is_err());
    }
}
