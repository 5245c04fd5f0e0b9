//! The two registries: Debian's docker-registry run as detached host processes (through util-linux
//! `setsid`, so they outlive the test process and its session), state under their own directory:
//! `config.yml`, `htpasswd` (auth only), `data/`, `registry.pid`, `registry.log` and a marker file
//! proving testenv created the directory.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::http;
use crate::settings::{RegistrySettings, Settings};

/// Label written into every pidfile and marker file.
pub const PROCESS_LABEL: &str = "hooktest.testenv";
const MARKER: &str = ".hooktest-testenv";
const PIDFILE: &str = "registry.pid";
const CONFIG: &str = "config.yml";
const LOG: &str = "registry.log";
const HTPASSWD: &str = "htpasswd";
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryKind {
    /// Plain HTTP, anonymous.
    Plain,
    /// Plain HTTP, basic auth (htpasswd, bcrypt). The engine sends basic auth to a plain-HTTP
    /// registry on 127.0.0.0/8 (an insecure registry by default), so no TLS is needed.
    Auth,
}

impl RegistryKind {
    pub const ALL: [Self; 2] = [Self::Plain, Self::Auth];

    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Auth => "auth",
        }
    }

    pub(crate) fn of(self, settings: &Settings) -> &RegistrySettings {
        match self {
            Self::Plain => &settings.plain,
            Self::Auth => &settings.auth,
        }
    }
}

fn yaml_str(p: &Path) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(&p.display().to_string()).expect("string serialises")
}

/// The registry's `config.yml`.
pub fn render_config(kind: RegistryKind, reg: &RegistrySettings) -> String {
    let mut c = format!(
        "# written by testenv ({PROCESS_LABEL}); removed by `cargo xtask testenv down`\n\
         version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n  headers:\n    X-Content-Type-Options: [nosniff]\n",
        data = yaml_str(&reg.dir.join("data")),
        addr = reg.addr,
    );
    if kind == RegistryKind::Auth {
        c.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: hooktest\n    path: {}\n",
            yaml_str(&reg.dir.join(HTPASSWD))
        ));
    }
    c
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PidFile {
    label: String,
    namespace: String,
    pid: u32,
    config: PathBuf,
}

/// What answers on a registry address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Nothing listens.
    Down,
    /// A registry that behaves as configured (anonymous / password-protected).
    Healthy,
    /// Something else; the text says what.
    Unexpected(String),
}

/// Probes the registry at `reg` the way `kind` must behave.
pub async fn probe(
    kind: RegistryKind,
    reg: &RegistrySettings,
    user: &str,
    password: &str,
) -> Probe {
    let anonymous = match http::get(reg.addr, "/v2/", &[]).await {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Probe::Down,
        Err(e) => return Probe::Unexpected(format!("GET /v2/ failed: {e}")),
    };
    if anonymous.header("Docker-Distribution-Api-Version") != Some("registry/2.0") {
        return Probe::Unexpected(format!("not a registry (HTTP {})", anonymous.status));
    }
    match kind {
        RegistryKind::Plain if anonymous.status == 200 => Probe::Healthy,
        RegistryKind::Plain => Probe::Unexpected(format!("GET /v2/ answered {}", anonymous.status)),
        RegistryKind::Auth => {
            let challenge = anonymous.header("Www-Authenticate").unwrap_or_default();
            if anonymous.status != 401 || !challenge.starts_with("Basic") {
                return Probe::Unexpected(format!(
                    "anonymous GET /v2/ answered {} (want 401 with a Basic challenge)",
                    anonymous.status
                ));
            }
            let auth = http::basic_auth(user, password);
            match http::get(reg.addr, "/v2/", &[("Authorization", &auth)]).await {
                Ok(r) if r.status == 200 => Probe::Healthy,
                Ok(r) => Probe::Unexpected(format!("the test credentials got HTTP {}", r.status)),
                Err(e) => Probe::Unexpected(format!("GET /v2/ with credentials failed: {e}")),
            }
        }
    }
}

/// `/proc/<pid>` is a live (not zombie) docker-registry serving `config`.
fn is_our_registry(pid: u32, config: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let config = config.as_os_str().as_encoded_bytes();
    let serves = args.windows(2).any(|w| w[0] == b"serve" && w[1] == config);
    let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true);
    serves && !zombie
}

/// The pid of our running registry for `reg`: from the pidfile, or (pidfile lost) by scanning
/// `/proc` for a docker-registry serving exactly our config file.
pub fn running_pid(reg: &RegistrySettings) -> Option<u32> {
    let config = reg.dir.join(CONFIG);
    let from_file = fs::read(reg.dir.join(PIDFILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<PidFile>(&b).ok())
        .filter(|p| p.label == PROCESS_LABEL && p.config == config)
        .map(|p| p.pid);
    if let Some(pid) = from_file.filter(|pid| is_our_registry(*pid, &config)) {
        return Some(pid);
    }
    let dir = fs::read_dir("/proc").ok()?;
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| is_our_registry(*pid, &config))
}

/// Creates the state dir with its marker, or checks an existing one is ours.
fn claim_dir(dir: &Path, namespace: &str) -> anyhow::Result<()> {
    let want = format!("{PROCESS_LABEL} namespace={namespace}\n");
    let marker = dir.join(MARKER);
    match fs::read_to_string(&marker) {
        Ok(have) if have == want => return Ok(()),
        Ok(_) => bail!(
            "refusing to use {}: it belongs to another testenv namespace",
            dir.display()
        ),
        Err(_) => {}
    }
    if dir.exists() && fs::read_dir(dir)?.next().is_some() {
        bail!(
            "refusing to use {}: it exists and was not created by testenv",
            dir.display()
        );
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(&marker, want).with_context(|| format!("writing {}", marker.display()))?;
    Ok(())
}

/// The state dir may be used/removed by us: absent, or carrying our marker.
pub fn dir_is_ours(dir: &Path, namespace: &str) -> bool {
    fs::read_to_string(dir.join(MARKER))
        .is_ok_and(|m| m == format!("{PROCESS_LABEL} namespace={namespace}\n"))
}

/// What `ensure` has to do with one registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Keep,
    Start,
    /// Ours but misconfigured or unhealthy: stop `pid`, then start.
    Restart(u32),
}

/// Decides without changing anything; fails when the address is taken by a process we did not
/// start or the state dir is not ours.
pub async fn plan(kind: RegistryKind, settings: &Settings) -> anyhow::Result<Plan> {
    let reg = kind.of(settings);
    if reg.dir.exists()
        && !dir_is_ours(&reg.dir, &settings.namespace)
        && fs::read_dir(&reg.dir)?.next().is_some()
    {
        bail!(
            "refusing to use {}: it exists and was not created by testenv",
            reg.dir.display()
        );
    }
    if let Some(pid) = running_pid(reg) {
        let config_ok =
            fs::read_to_string(reg.dir.join(CONFIG)).is_ok_and(|c| c == render_config(kind, reg));
        let healthy =
            probe(kind, reg, &settings.auth_user, &settings.auth_password).await == Probe::Healthy;
        return Ok(if config_ok && healthy {
            Plan::Keep
        } else {
            Plan::Restart(pid)
        });
    }
    if let Err(e) = std::net::TcpListener::bind(reg.addr) {
        bail!(
            "{} registry address {} is in use by a process testenv did not start ({e}); free the port",
            kind.name(),
            reg.addr
        );
    }
    Ok(Plan::Start)
}

fn write_htpasswd(settings: &Settings, path: &Path) -> anyhow::Result<()> {
    let mut child = Command::new(&settings.tools.htpasswd)
        .args(["-B", "-i", "-n", &settings.auth_user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", settings.tools.htpasswd.display()))?;
    child
        .stdin
        .take()
        .context("htpasswd stdin")?
        .write_all(settings.auth_password.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "htpasswd failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let line = String::from_utf8(out.stdout).context("htpasswd output")?;
    fs::write(path, line.trim_end().to_owned() + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

fn log_tail(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join(LOG)).unwrap_or_default();
    let lines: Vec<&str> = log.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Starts our registry for `kind` and waits until it answers as configured.
pub async fn start(kind: RegistryKind, settings: &Settings) -> anyhow::Result<u32> {
    let reg = kind.of(settings);
    claim_dir(&reg.dir, &settings.namespace)?;
    let config = reg.dir.join(CONFIG);
    if kind == RegistryKind::Auth {
        write_htpasswd(settings, &reg.dir.join(HTPASSWD))?;
    }
    fs::write(&config, render_config(kind, reg))
        .with_context(|| format!("writing {}", config.display()))?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(reg.dir.join(LOG))?;
    let mut child = Command::new(&settings.tools.setsid)
        .arg(&settings.tools.docker_registry)
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", settings.tools.docker_registry.display()))?;
    // Not a group leader, so setsid(1) calls setsid(2) and execs: the child IS the registry.
    let pid = child.id();
    let pidfile = PidFile {
        label: PROCESS_LABEL.to_owned(),
        namespace: settings.namespace.clone(),
        pid,
        config: config.clone(),
    };
    fs::write(reg.dir.join(PIDFILE), serde_json::to_vec(&pidfile)?)?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let _ = fs::remove_file(reg.dir.join(PIDFILE));
            bail!(
                "{} registry on {} exited at start ({status}): {}",
                kind.name(),
                reg.addr,
                log_tail(&reg.dir)
            );
        }
        match probe(kind, reg, &settings.auth_user, &settings.auth_password).await {
            Probe::Healthy => break,
            other if started.elapsed() > READY_TIMEOUT => {
                let _ = signal(settings, pid, "KILL");
                let _ = child.wait();
                bail!(
                    "{} registry on {} not ready after {READY_TIMEOUT:?} ({other:?}): {}",
                    kind.name(),
                    reg.addr,
                    log_tail(&reg.dir)
                );
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    // Reap it should it die while this process lives; it outlives us otherwise.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    tracing::info!(registry = kind.name(), addr = %reg.addr, pid, "registry started");
    Ok(pid)
}

fn signal(settings: &Settings, pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = Command::new(&settings.tools.busybox)
        .args(["kill", "-s", sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {} kill", settings.tools.busybox.display()))?;
    if !status.success() {
        bail!("kill -s {sig} {pid} failed ({status})");
    }
    Ok(())
}

/// Stops our registry process `pid` (TERM, then KILL), verifying it is ours first.
pub async fn stop_process(kind: RegistryKind, settings: &Settings, pid: u32) -> anyhow::Result<()> {
    let reg = kind.of(settings);
    let config = reg.dir.join(CONFIG);
    if !is_our_registry(pid, &config) {
        return Ok(());
    }
    for (sig, wait) in [("TERM", STOP_TIMEOUT), ("KILL", STOP_TIMEOUT)] {
        if signal(settings, pid, sig).is_err() && !is_our_registry(pid, &config) {
            break;
        }
        let since = Instant::now();
        while is_our_registry(pid, &config) && since.elapsed() < wait {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if !is_our_registry(pid, &config) {
            let _ = fs::remove_file(reg.dir.join(PIDFILE));
            tracing::info!(registry = kind.name(), pid, "registry stopped");
            return Ok(());
        }
    }
    bail!("{} registry (pid {pid}) did not stop", kind.name())
}

/// Stops the registry (if running) and removes its state dir (if ours).
pub async fn remove(kind: RegistryKind, settings: &Settings) -> anyhow::Result<()> {
    let reg = kind.of(settings);
    if let Some(pid) = running_pid(reg) {
        stop_process(kind, settings, pid).await?;
    }
    if !reg.dir.exists() {
        return Ok(());
    }
    if !dir_is_ours(&reg.dir, &settings.namespace) {
        bail!(
            "not removing {}: it was not created by testenv (no marker)",
            reg.dir.display()
        );
    }
    fs::remove_dir_all(&reg.dir).with_context(|| format!("removing {}", reg.dir.display()))
}

/// A `kubernetes.io/dockerconfigjson` Secret named `name`, as the JSON a Kubernetes API takes,
/// with `user:password` for each of `registries` (as a runner's registry secret holds them).
pub fn registry_secret(
    name: &str,
    user: &str,
    password: &str,
    registries: &[&str],
) -> serde_json::Value {
    use base64::Engine as _;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let auth = b64(&format!("{user}:{password}"));
    let auths: serde_json::Map<String, serde_json::Value> = registries
        .iter()
        .map(|r| ((*r).to_owned(), serde_json::json!({"auth": auth})))
        .collect();
    let doc = serde_json::json!({ "auths": auths });
    serde_json::json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": b64(&doc.to_string())},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_secret_holds_the_login_for_each_registry() {
        use base64::Engine as _;
        let secret = registry_secret("regcred", "u", "p:w", &["a:1", "b"]);
        assert_eq!(secret["metadata"]["name"], "regcred");
        assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
        let doc = base64::engine::general_purpose::STANDARD
            .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        // "u:p:w" in base64.
        let auth = serde_json::json!({"auth": "dTpwOnc="});
        assert_eq!(doc, serde_json::json!({"auths": {"a:1": auth, "b": auth}}));
    }

    #[test]
    fn configs() {
        let s = Settings::default();
        insta::assert_snapshot!("plain", render_config(RegistryKind::Plain, &s.plain));
        insta::assert_snapshot!("auth", render_config(RegistryKind::Auth, &s.auth));
    }

    #[test]
    fn claim_dir_refuses_foreign_dirs() {
        let root = tempfile::tempdir().unwrap();
        let foreign = root.path().join("foreign");
        fs::create_dir(&foreign).unwrap();
        fs::write(foreign.join("precious"), b"keep").unwrap();
        let err = claim_dir(&foreign, "ns").unwrap_err().to_string();
        assert!(err.contains("was not created by testenv"), "{err}");
        assert_eq!(fs::read(foreign.join("precious")).unwrap(), b"keep");

        let fresh = root.path().join("fresh");
        claim_dir(&fresh, "ns").unwrap();
        assert!(dir_is_ours(&fresh, "ns"));
        claim_dir(&fresh, "ns").unwrap();
        assert!(claim_dir(&fresh, "other").is_err());
        assert!(!dir_is_ours(&fresh, "other"));
    }

    #[test]
    fn our_own_process_is_not_a_registry() {
        assert!(!is_our_registry(
            std::process::id(),
            Path::new("/x/config.yml")
        ));
        assert!(!is_our_registry(u32::MAX, Path::new("/x/config.yml")));
    }
}
