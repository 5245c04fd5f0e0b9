//! The emulated Kaniko executor: its command line (cobra/pflag rules and messages), the
//! `tar://stdin` and `dir://` contexts, the Dockerfile lookup, the build (base images pulled
//! with `/kaniko/.docker/config.json`), `--tar-path` (the image as a docker-format tarball on
//! a volume), `--no-push` or the push with the same config, and `--digest-file` (the pushed
//! digest; with `--no-push`, the local image ID).

use std::collections::HashMap;

use super::{Process, engine, fs};

/// Where Kaniko unpacks a `tar://stdin` context.
const BUILD_CONTEXT: &str = "/kaniko/buildcontext";
/// Kaniko's `DOCKER_CONFIG`.
const DOCKER_CONFIG: &str = "/kaniko/.docker";
/// The executor binary (the image's ENTRYPOINT).
const EXECUTOR: &str = "/kaniko/executor";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Str,
    Multi,
    Int,
    Duration,
}

/// Kaniko's flags (v1.2x), with shorthands.
const FLAGS: &[(&str, Option<char>, Ty)] = &[
    ("dockerfile", Some('f'), Ty::Str),
    ("context", Some('c'), Ty::Str),
    ("destination", Some('d'), Ty::Multi),
    ("digest-file", None, Ty::Str),
    ("build-arg", None, Ty::Multi),
    ("target", None, Ty::Str),
    ("label", None, Ty::Multi),
    ("no-push", None, Ty::Bool),
    ("no-push-cache", None, Ty::Bool),
    ("cache", None, Ty::Bool),
    ("cache-repo", None, Ty::Str),
    ("cache-dir", None, Ty::Str),
    ("cache-ttl", None, Ty::Duration),
    ("cache-copy-layers", None, Ty::Bool),
    ("cache-run-layers", None, Ty::Bool),
    ("compressed-caching", None, Ty::Bool),
    ("insecure", None, Ty::Bool),
    ("insecure-pull", None, Ty::Bool),
    ("insecure-registry", None, Ty::Multi),
    ("skip-tls-verify", None, Ty::Bool),
    ("skip-tls-verify-pull", None, Ty::Bool),
    ("skip-tls-verify-registry", None, Ty::Multi),
    ("registry-mirror", None, Ty::Multi),
    ("registry-certificate", None, Ty::Multi),
    ("skip-default-registry-fallback", None, Ty::Bool),
    ("skip-push-permission-check", None, Ty::Bool),
    ("skip-unused-stages", None, Ty::Bool),
    ("single-snapshot", None, Ty::Bool),
    ("snapshot-mode", None, Ty::Str),
    ("reproducible", None, Ty::Bool),
    ("use-new-run", None, Ty::Bool),
    ("cleanup", None, Ty::Bool),
    ("custom-platform", None, Ty::Str),
    ("context-sub-path", None, Ty::Str),
    ("image-name-with-digest-file", None, Ty::Str),
    ("image-name-tag-with-digest-file", None, Ty::Str),
    ("oci-layout-path", None, Ty::Str),
    ("tar-path", None, Ty::Str),
    ("push-retry", None, Ty::Int),
    ("image-fs-extract-retry", None, Ty::Int),
    ("image-download-retry", None, Ty::Int),
    ("ignore-path", None, Ty::Multi),
    ("ignore-var-run", None, Ty::Bool),
    ("force", None, Ty::Bool),
    ("verbosity", Some('v'), Ty::Str),
    ("log-format", None, Ty::Str),
    ("log-timestamp", None, Ty::Bool),
];

/// Parsed flags: name → values (bools as "true"/"false").
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flags(HashMap<&'static str, Vec<String>>);

impl Flags {
    fn one(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.last()).map(String::as_str)
    }
    fn all(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
    fn on(&self, name: &str) -> bool {
        self.one(name) == Some("true")
    }
}

fn check_value(name: &str, ty: Ty, value: &str) -> Result<String, String> {
    let invalid = |why: String| format!("invalid argument {value:?} for \"--{name}\" flag: {why}");
    match ty {
        Ty::Bool => match value {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok("true".into()),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok("false".into()),
            _ => Err(invalid(format!(
                "strconv.ParseBool: parsing {value:?}: invalid syntax"
            ))),
        },
        Ty::Int => value
            .parse::<i64>()
            .map(|_| value.to_string())
            .map_err(|_| {
                invalid(format!(
                    "strconv.ParseInt: parsing {value:?}: invalid syntax"
                ))
            }),
        Ty::Duration => {
            let ok = !value.is_empty()
                && value
                    .trim_start_matches(|c: char| {
                        c.is_ascii_digit() || c == '.' || "hmsuµn".contains(c)
                    })
                    .is_empty()
                && value.chars().any(|c| c.is_ascii_alphabetic());
            if ok {
                Ok(value.to_string())
            } else {
                Err(invalid(format!("time: invalid duration {value:?}")))
            }
        }
        Ty::Str | Ty::Multi => Ok(value.to_string()),
    }
}

/// Parses the executor's arguments like pflag; errors are cobra's messages.
pub fn parse(args: &[String]) -> Result<Flags, String> {
    let mut flags = Flags::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let (spec, inline) = if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let spec = FLAGS
                .iter()
                .find(|(n, _, _)| *n == name)
                .ok_or_else(|| format!("unknown flag: --{name}"))?;
            (spec, inline)
        } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            let c = short.chars().next().unwrap_or('-');
            let spec = FLAGS
                .iter()
                .find(|(_, s, _)| *s == Some(c))
                .ok_or_else(|| format!("unknown shorthand flag: '{c}' in {a}"))?;
            let rest = &short[c.len_utf8()..];
            let inline = if rest.is_empty() {
                None
            } else {
                Some(rest.strip_prefix('=').unwrap_or(rest).to_string())
            };
            (spec, inline)
        } else {
            return Err(format!("unknown command {a:?} for \"executor\""));
        };
        let (name, _, ty) = *spec;
        let value = match (ty, inline) {
            (_, Some(v)) => v,
            (Ty::Bool, None) => "true".into(),
            (_, None) => {
                let v = args
                    .get(i)
                    .ok_or_else(|| format!("flag needs an argument: --{name}"))?;
                i += 1;
                v.clone()
            }
        };
        let value = check_value(name, ty, &value)?;
        let slot = flags.0.entry(name).or_default();
        if ty != Ty::Multi {
            slot.clear();
        }
        slot.push(value);
    }
    Ok(flags)
}

fn fail(p: &Process, msg: &str) -> i64 {
    p.log.line(&format!("Error: {msg}"));
    1
}

fn info(p: &Process, started: std::time::Instant, msg: &str) {
    p.log
        .line(&format!("INFO[{:04}] {msg}", started.elapsed().as_secs()));
}

/// Runs the executor; returns its exit code.
pub async fn run(mut p: Process) -> i64 {
    let started = std::time::Instant::now();
    if let Some(cmd) = &p.command
        && cmd.first().map(String::as_str) != Some(EXECUTOR)
    {
        // The non-debug image has nothing but the executor.
        let c = cmd.first().cloned().unwrap_or_default();
        p.log.line(&format!("exec {c}: no such file or directory"));
        return 127;
    }
    let flags = match parse(&p.arguments()) {
        Ok(f) => f,
        Err(e) => return fail(&p, &e),
    };
    let destinations = flags.all("destination").to_vec();
    if destinations.is_empty() && !flags.on("no-push") {
        return fail(&p, "you must provide --destination, or use --no-push");
    }
    let context = flags.one("context").unwrap_or("/workspace/").to_string();
    let dockerfile = flags.one("dockerfile").unwrap_or("Dockerfile").to_string();
    let credentials = match p.config_credentials(DOCKER_CONFIG) {
        Ok(c) => c,
        Err(e) => return fail(&p, &format!("error building image: {e}")),
    };
    // The context.
    let (tar, context_dir) = if context == "tar://stdin" {
        info(&p, started, "To simulate EOF and exit, press 'Ctrl+D'");
        let gz = match p.read_stdin().await {
            Ok(d) => d,
            Err(e) => return fail(&p, &format!("error building image: {e}")),
        };
        match fs::gunzip(&gz, 4 << 30) {
            Ok(t) => (t, BUILD_CONTEXT.to_string()),
            Err(e) => {
                return fail(
                    &p,
                    &format!("error building image: getting build context from stdin: {e}"),
                );
            }
        }
    } else if let Some(dir) = context
        .strip_prefix("dir://")
        .or_else(|| (!context.contains("://")).then_some(context.as_str()))
    {
        let host = match p.host_path(dir) {
            Ok(h) => h,
            Err(e) => return fail(&p, &e),
        };
        match fs::pack_dir(&host, None) {
            Ok(t) => (t, dir.trim_end_matches('/').to_string()),
            Err(e) => return fail(&p, &format!("error building image: {e}")),
        }
    } else {
        return fail(
            &p,
            &format!("kubesim emulates the tar://stdin and dir:// contexts only, not {context}"),
        );
    };
    let entries = match fs::entries(&tar) {
        Ok(e) => e,
        Err(e) => return fail(&p, &format!("error building image: {e}")),
    };
    // --dockerfile: absolute inside the context, or relative to it.
    let rel = match dockerfile.strip_prefix(&format!("{context_dir}/")) {
        Some(r) => Some(r.to_string()),
        None if !dockerfile.starts_with('/') => {
            fs::normalize(&format!("/{dockerfile}")).map(|s| s.trim_start_matches('/').to_string())
        }
        None => None,
    };
    let Some(rel) = rel.filter(|r| entries.iter().any(|e| e == r)) else {
        return fail(
            &p,
            "error resolving dockerfile path: please provide a valid path to a Dockerfile within the build context with --dockerfile",
        );
    };
    info(
        &p,
        started,
        &format!("Using dockerfile: {context_dir}/{rel}"),
    );
    info(
        &p,
        started,
        &format!("Build context: {} entries", entries.len()),
    );
    let kv = |name: &str| -> HashMap<String, String> {
        flags
            .all(name)
            .iter()
            .map(|a| {
                a.split_once('=')
                    .map_or((a.clone(), String::new()), |(k, v)| (k.into(), v.into()))
            })
            .collect()
    };
    let local = destinations
        .first()
        .cloned()
        .unwrap_or_else(|| format!("kubesim-kaniko/{}:build", uuid::Uuid::new_v4().simple()));
    for t in destinations.iter().chain(std::iter::once(&local)) {
        p.note_tag(t);
    }
    let req = engine::BuildRequest {
        context: tar,
        dockerfile: rel,
        tag: local.clone(),
        build_args: kv("build-arg"),
        target: flags.one("target").unwrap_or_default().to_string(),
        labels: kv("label"),
        credentials: credentials.clone(),
    };
    if let Err(e) = engine::build(&p.docker, req, &p.log, "").await {
        engine::untag(&p.docker, &local).await;
        return fail(&p, &format!("error building image: {e}"));
    }
    let mut digest = String::new();
    let result = async {
        if let Some(tar_path) = flags.one("tar-path") {
            // Kaniko's DoPush: the tarball names the image after the destinations.
            if destinations.is_empty() {
                return Err(
                    "must provide at least one destination when tarPath is specified".to_string(),
                );
            }
            if let Some((_, true)) = p.mounts.resolve(tar_path) {
                return Err(format!("open {tar_path}: read-only file system"));
            }
            for dest in &destinations {
                if dest != &local {
                    engine::tag(&p.docker, &local, dest).await?;
                }
            }
            let host = p.host_path(tar_path)?;
            if let Some(parent) = host.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{tar_path}: {e}"))?;
            }
            let refs: Vec<&str> = destinations.iter().map(String::as_str).collect();
            let size = engine::save(&p.docker, &refs, &host).await?;
            info(
                &p,
                started,
                &format!("Wrote the image to the tarball {tar_path} ({size} bytes)"),
            );
        }
        if flags.on("no-push") {
            // Nothing pushed: the digest file gets the local image's ID.
            digest = engine::image_id(&p.docker, &local).await?;
            info(
                &p,
                started,
                "Skipping push to container registry due to --no-push flag",
            );
            return Ok(());
        }
        for dest in &destinations {
            if dest != &local {
                engine::tag(&p.docker, &local, dest).await?;
            }
            info(&p, started, &format!("Pushing image to {dest}"));
            let d = engine::push(&p.docker, dest, &credentials)
                .await
                .map_err(|e| {
                    format!("error pushing image: failed to push to destination {dest}: {e}")
                })?;
            let repo = dest
                .rsplit_once(':')
                .filter(|(_, t)| !t.contains('/'))
                .map_or(dest.as_str(), |(r, _)| r);
            info(&p, started, &format!("Pushed {repo}@{d}"));
            digest = d;
        }
        Ok::<_, String>(())
    }
    .await;
    for dest in destinations.iter().chain(std::iter::once(&local)) {
        engine::untag(&p.docker, dest).await;
    }
    if let Err(e) = result {
        return fail(&p, &format!("error building image: {e}"));
    }
    if let Some(file) = flags.one("digest-file")
        && let Err(e) = p.write_file(file, digest.as_bytes())
    {
        return fail(
            &p,
            &format!("error building image: writing digest to file failed: {e}"),
        );
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_like_pflag() {
        let f = parse(&v(&[
            "--dockerfile=Dockerfile",
            "-c",
            "tar://stdin",
            "--destination",
            "r/a:1",
            "-d=r/b:2",
            "--cache",
            "--cache-ttl=6h",
            "--insecure=false",
            "--build-arg=A=b c",
            "-vdebug",
        ]))
        .unwrap();
        assert_eq!(f.one("context"), Some("tar://stdin"));
        assert_eq!(f.all("destination"), ["r/a:1", "r/b:2"]);
        assert!(f.on("cache") && !f.on("insecure"));
        assert_eq!(f.one("verbosity"), Some("debug"));
        assert_eq!(f.all("build-arg"), ["A=b c"]);
    }

    #[test]
    fn errors_like_cobra() {
        for (args, msg) in [
            (&["--nope"][..], "unknown flag: --nope"),
            (&["-x"][..], "unknown shorthand flag: 'x' in -x"),
            (
                &["--dockerfile"][..],
                "flag needs an argument: --dockerfile",
            ),
            (
                &["--cache=yes"][..],
                "invalid argument \"yes\" for \"--cache\" flag",
            ),
            (&["--push-retry=a"][..], "strconv.ParseInt"),
            (&["--cache-ttl=6"][..], "time: invalid duration"),
            (&["build"][..], "unknown command \"build\" for \"executor\""),
        ] {
            let e = parse(&v(args)).unwrap_err();
            assert!(e.contains(msg), "{args:?}: {e}");
        }
    }
}
