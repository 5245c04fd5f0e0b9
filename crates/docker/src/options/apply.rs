//! Writing parsed options into a container create body.

use super::{CreateOptions, HealthFlags, HostFlags};
use crate::ports;
use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig, HostConfigLogConfig};
use std::collections::BTreeMap;

impl CreateOptions {
    /// Writes the options into a create body that already holds the hook's own settings.
    /// Options win over the hook's values (as in the docker CLI, where they come last), except
    /// for the hook's labels.
    pub(crate) fn apply(&self, body: &mut ContainerCreateBody) {
        if !self.env.is_empty() {
            let mut env: BTreeMap<String, String> = body
                .env
                .iter()
                .flatten()
                .filter_map(|e| e.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                .collect();
            env.extend(self.env.iter().cloned());
            body.env = Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect());
        }
        if let Some(ep) = &self.entrypoint {
            body.entrypoint = Some(if ep.is_empty() {
                vec![String::new()]
            } else {
                vec![ep.clone()]
            });
        }
        set(&mut body.working_dir, &self.workdir);
        set(&mut body.user, &self.user);
        set(&mut body.hostname, &self.hostname);
        set(&mut body.stop_signal, &self.stop_signal);
        if self.stop_timeout.is_some() {
            body.stop_timeout = self.stop_timeout;
        }
        if self.tty {
            body.tty = Some(true);
        }
        if self.interactive {
            body.open_stdin = Some(true);
        }
        if !self.labels.is_empty() {
            let labels = body.labels.get_or_insert_with(Default::default);
            for (k, v) in &self.labels {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if !self.network_aliases.is_empty()
            && let Some(endpoints) = body
                .networking_config
                .as_mut()
                .and_then(|n| n.endpoints_config.as_mut())
        {
            for ep in endpoints.values_mut() {
                ep.aliases
                    .get_or_insert_with(Vec::new)
                    .extend(self.network_aliases.iter().cloned());
            }
        }
        let mut exposed: Vec<String> = body.exposed_ports.take().unwrap_or_default();
        exposed.extend(self.expose.iter().cloned());
        exposed.extend(self.publish.iter().map(|p| p.container.clone()));
        exposed.sort();
        exposed.dedup();
        if !exposed.is_empty() {
            body.exposed_ports = Some(exposed);
        }
        let mut volumes: Vec<String> = body.volumes.take().unwrap_or_default();
        volumes.extend(self.host.anonymous_volumes.iter().cloned());
        if !volumes.is_empty() {
            body.volumes = Some(volumes);
        }
        if let Some(health) = self.health_config() {
            body.healthcheck = Some(health);
        }
        let host = body.host_config.get_or_insert_with(HostConfig::default);
        self.host.apply(host);
        if !self.publish.is_empty() {
            let map = host.port_bindings.get_or_insert_with(Default::default);
            for (k, v) in ports::bindings(&self.publish) {
                match (map.get_mut(&k), v) {
                    (Some(Some(list)), Some(new)) => list.extend(new),
                    (_, v) => {
                        map.insert(k, v);
                    }
                }
            }
        }
    }

    fn health_config(&self) -> Option<HealthConfig> {
        let h = &self.health;
        if h.disabled {
            return Some(HealthConfig {
                test: Some(vec!["NONE".to_owned()]),
                ..Default::default()
            });
        }
        if h == &HealthFlags::default() {
            return None;
        }
        Some(HealthConfig {
            test: h
                .cmd
                .as_ref()
                .map(|c| vec!["CMD-SHELL".to_owned(), c.clone()]),
            interval: h.interval,
            timeout: h.timeout,
            retries: h.retries,
            start_period: h.start_period,
            start_interval: None,
        })
    }
}

fn set(field: &mut Option<String>, value: &Option<String>) {
    if let Some(v) = value {
        *field = Some(v.clone());
    }
}

fn extend(field: &mut Option<Vec<String>>, values: &[String]) {
    if !values.is_empty() {
        field
            .get_or_insert_with(Vec::new)
            .extend(values.iter().cloned());
    }
}

impl HostFlags {
    fn apply(&self, h: &mut HostConfig) {
        let opt = |dst: &mut Option<i64>, v: Option<i64>| {
            if v.is_some() {
                *dst = v;
            }
        };
        opt(&mut h.nano_cpus, self.nano_cpus);
        opt(&mut h.cpu_shares, self.cpu_shares);
        opt(&mut h.memory, self.memory);
        opt(&mut h.memory_swap, self.memory_swap);
        opt(&mut h.memory_reservation, self.memory_reservation);
        opt(&mut h.shm_size, self.shm_size);
        opt(&mut h.pids_limit, self.pids_limit);
        set(&mut h.cpuset_cpus, &self.cpuset_cpus);
        set(&mut h.ipc_mode, &self.ipc);
        set(&mut h.pid_mode, &self.pid);
        set(&mut h.userns_mode, &self.userns);
        let flag = |dst: &mut Option<bool>, v: Option<bool>| {
            if v.is_some() {
                *dst = v;
            }
        };
        flag(&mut h.oom_kill_disable, self.oom_kill_disable);
        flag(&mut h.privileged, self.privileged);
        flag(&mut h.init, self.init);
        flag(&mut h.readonly_rootfs, self.read_only);
        extend(&mut h.cap_add, &self.cap_add);
        extend(&mut h.cap_drop, &self.cap_drop);
        extend(&mut h.binds, &self.binds);
        extend(&mut h.security_opt, &self.security_opt);
        extend(&mut h.dns, &self.dns);
        extend(&mut h.dns_search, &self.dns_search);
        extend(&mut h.dns_options, &self.dns_options);
        extend(&mut h.extra_hosts, &self.extra_hosts);
        extend(&mut h.group_add, &self.group_add);
        if !self.devices.is_empty() {
            h.devices
                .get_or_insert_with(Vec::new)
                .extend(self.devices.iter().cloned());
        }
        if !self.device_requests.is_empty() {
            h.device_requests
                .get_or_insert_with(Vec::new)
                .extend(self.device_requests.iter().cloned());
        }
        if !self.ulimits.is_empty() {
            h.ulimits
                .get_or_insert_with(Vec::new)
                .extend(self.ulimits.iter().cloned());
        }
        if !self.mounts.is_empty() {
            h.mounts
                .get_or_insert_with(Vec::new)
                .extend(self.mounts.iter().cloned());
        }
        if !self.tmpfs.is_empty() {
            h.tmpfs
                .get_or_insert_with(Default::default)
                .extend(self.tmpfs.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if !self.sysctls.is_empty() {
            h.sysctls
                .get_or_insert_with(Default::default)
                .extend(self.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if self.log_driver.is_some() || !self.log_opts.is_empty() {
            h.log_config = Some(HostConfigLogConfig {
                typ: self.log_driver.clone(),
                config: (!self.log_opts.is_empty()).then(|| {
                    self.log_opts
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                }),
            });
        }
    }
}
