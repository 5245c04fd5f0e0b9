//! The emulated BuildKit rootless image: `tar` (an init container unpacking the context from
//! stdin into a volume) and `buildctl-daemonless.sh build …` (the rootless daemon's
//! requirements checked on the pod: uid 1000, seccomp and AppArmor unconfined,
//! `--oci-worker-no-process-sandbox`; the build and push through the engine, or the export of a
//! docker-format tarball (`--output type=docker,dest=`); `--metadata-file`).

use std::collections::HashMap;

use super::{Process, engine, fs};

/// The image's user's home.
const HOME: &str = "/home/user";

fn fail(p: &Process, msg: &str) -> i64 {
    p.log.line(msg);
    1
}

/// Runs the container's command; returns its exit code.
pub async fn run(p: Process) -> i64 {
    let argv = p.argv();
    match argv.first().map(String::as_str) {
        Some("tar") => tar(p, &argv[1..]).await,
        Some("buildctl-daemonless.sh") => buildctl(p, &argv[1..]).await,
        Some(other) => {
            p.log.line(&format!(
                "kubesim emulates `tar` and `buildctl-daemonless.sh` in the BuildKit image, not {other:?}"
            ));
            127
        }
        None => fail(
            &p,
            "kubesim does not emulate a long-running buildkitd (the image's default command)",
        ),
    }
}

/// `tar -xzf - -C DIR` (also `xzf`, separate flags, `--directory=DIR`).
async fn tar(mut p: Process, args: &[String]) -> i64 {
    let mut extract = false;
    let mut gzip = false;
    let mut file = None;
    let mut dir = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if let Some(d) = a.strip_prefix("--directory=") {
            dir = Some(d.to_string());
            continue;
        }
        let letters = match a.strip_prefix('-') {
            Some(l) => l,
            None if i == 1 => a.as_str(),
            None => return fail(&p, &format!("tar: {a}: not found in archive")),
        };
        for c in letters.chars() {
            match c {
                'x' => extract = true,
                'z' => gzip = true,
                'v' | 'o' | 'p' => {}
                'f' | 'C' => {
                    let Some(v) = args.get(i) else {
                        return fail(&p, &format!("tar: option requires an argument -- '{c}'"));
                    };
                    i += 1;
                    if c == 'f' {
                        file = Some(v.clone())
                    } else {
                        dir = Some(v.clone())
                    }
                }
                _ => return fail(&p, &format!("tar: unrecognized option: {c}")),
            }
        }
    }
    if !extract || file.as_deref() != Some("-") {
        return fail(&p, "kubesim emulates `tar -x[z]f - [-C DIR]` only");
    }
    let data = match p.read_stdin().await {
        Ok(d) => d,
        Err(e) => return fail(&p, &format!("tar: {e}")),
    };
    let data = if gzip {
        match fs::gunzip(&data, 4 << 30) {
            Ok(d) => d,
            Err(e) => return fail(&p, &format!("tar: {e}")),
        }
    } else {
        data
    };
    let dir = dir.unwrap_or_else(|| HOME.into());
    if let Some((_, true)) = p.mounts.resolve(&dir) {
        return fail(
            &p,
            &format!("tar: can't create {dir}: Read-only file system"),
        );
    }
    let host = match p.host_path(&dir) {
        Ok(h) => h,
        Err(e) => return fail(&p, &format!("tar: {e}")),
    };
    match fs::unpack(&data, &host) {
        Ok(_) => 0,
        Err(e) => fail(&p, &e),
    }
}

/// Whether the pod grants rootless BuildKit what it needs (or the annotation for AppArmor).
fn relaxation_problems(p: &Process) -> Vec<&'static str> {
    let mut problems = Vec::new();
    let spec = p.pod.as_ref().and_then(|x| x.spec.as_ref());
    let psc = spec.and_then(|s| s.security_context.as_ref());
    let csc = p
        .container
        .as_ref()
        .and_then(|c| c.security_context.as_ref());
    let seccomp = csc
        .and_then(|c| c.seccomp_profile.as_ref())
        .or(psc.and_then(|c| c.seccomp_profile.as_ref()));
    let privileged = csc.and_then(|c| c.privileged) == Some(true);
    if !privileged && seccomp.map(|s| s.type_.as_str()) != Some("Unconfined") {
        problems.push("seccomp: rootlesskit needs seccompProfile Unconfined (or user namespaces)");
    }
    let name = p
        .container
        .as_ref()
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let annotation = p
        .pod
        .as_ref()
        .and_then(|x| x.metadata.annotations.as_ref())
        .and_then(|a| {
            a.get(&format!(
                "container.apparmor.security.beta.kubernetes.io/{name}"
            ))
        })
        .is_some_and(|v| v == "unconfined");
    let apparmor = csc
        .and_then(|c| c.app_armor_profile.as_ref())
        .or(psc.and_then(|c| c.app_armor_profile.as_ref()));
    if !privileged && !annotation && apparmor.map(|a| a.type_.as_str()) != Some("Unconfined") {
        problems.push("AppArmor: rootlesskit needs appArmorProfile Unconfined");
    }
    let uid = p
        .user
        .as_deref()
        .and_then(|u| u.split(':').next())
        .unwrap_or("1000");
    if uid != "1000" {
        problems.push("user: the rootless image runs as uid 1000 (runAsUser 1000)");
    }
    let flags = p.env.get("BUILDKITD_FLAGS").cloned().unwrap_or_default();
    if !privileged
        && !flags
            .split_whitespace()
            .any(|f| f == "--oci-worker-no-process-sandbox")
    {
        problems.push("procfs: without privilege buildkitd needs BUILDKITD_FLAGS=--oci-worker-no-process-sandbox");
    }
    problems
}

#[derive(Debug, Default)]
struct Build {
    frontend: Option<String>,
    locals: HashMap<String, String>,
    opts: HashMap<String, String>,
    outputs: Vec<String>,
    metadata_file: Option<String>,
}

fn parse(args: &[String]) -> Result<Build, String> {
    if args.first().map(String::as_str) != Some("build") {
        return Err(format!(
            "kubesim emulates `buildctl build` only, not {:?}",
            args.first().cloned().unwrap_or_default()
        ));
    }
    let mut b = Build::default();
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let (name, inline) = match a.trim_start_matches('-').split_once('=') {
            Some((n, v)) if a.starts_with('-') => (n.to_string(), Some(v.to_string())),
            _ if a.starts_with('-') => (a.trim_start_matches('-').to_string(), None),
            _ => return Err(format!("Incorrect Usage: unexpected argument {a:?}")),
        };
        let bool_flag = matches!(name.as_str(), "no-cache" | "trace");
        let value = match inline {
            Some(v) => v,
            None if bool_flag => "true".into(),
            None => {
                let v = args
                    .get(i)
                    .ok_or_else(|| format!("Incorrect Usage: flag needs an argument: -{name}"))?;
                i += 1;
                v.clone()
            }
        };
        let kv = |v: &str| {
            v.split_once('=')
                .map(|(k, x)| (k.to_string(), x.to_string()))
                .ok_or_else(|| format!("invalid value {v:?} for --{name}: want key=value"))
        };
        match name.as_str() {
            "frontend" => b.frontend = Some(value),
            "local" => {
                let (k, v) = kv(&value)?;
                b.locals.insert(k, v);
            }
            "opt" => {
                let (k, v) = kv(&value)?;
                b.opts.insert(k, v);
            }
            "output" | "o" => b.outputs.push(value),
            "metadata-file" => b.metadata_file = Some(value),
            "export-cache" | "import-cache" | "progress" | "no-cache" | "trace" | "secret"
            | "ssh" | "allow" => {}
            _ => {
                return Err(format!(
                    "Incorrect Usage: flag provided but not defined: -{name}"
                ));
            }
        }
    }
    Ok(b)
}

fn csv(s: &str) -> HashMap<String, String> {
    s.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

async fn buildctl(p: Process, args: &[String]) -> i64 {
    let problems = relaxation_problems(&p);
    if !problems.is_empty() {
        p.log
            .line("[rootlesskit:parent] error: failed to start the child: operation not permitted");
        for pr in problems {
            p.log.line(&format!("  {pr}"));
        }
        return 1;
    }
    let b = match parse(args) {
        Ok(b) => b,
        Err(e) => return fail(&p, &e),
    };
    if b.frontend.as_deref() != Some("dockerfile.v0") {
        return fail(
            &p,
            "error: kubesim emulates the dockerfile.v0 frontend only",
        );
    }
    let (Some(ctx_dir), Some(df_dir)) = (b.locals.get("context"), b.locals.get("dockerfile"))
    else {
        return fail(
            &p,
            "error: failed to solve: the dockerfile.v0 frontend needs --local context=DIR and --local dockerfile=DIR",
        );
    };
    let output = b.outputs.first().map(|o| csv(o)).unwrap_or_default();
    let kind = output.get("type").map(String::as_str);
    let dest = output.get("dest").filter(|_| kind == Some("docker"));
    let Some(name) = output
        .get("name")
        .filter(|_| kind == Some("image") || dest.is_some())
    else {
        return fail(
            &p,
            "error: kubesim emulates --output type=image,name=REF[,push=true] and type=docker,name=REF,dest=FILE only",
        );
    };
    if let Some(dest) = dest
        && let Some((_, true)) = p.mounts.resolve(dest)
    {
        return fail(&p, &format!("error: open {dest}: read-only file system"));
    }
    let push = kind == Some("image") && output.get("push").map(String::as_str) == Some("true");
    let filename = b
        .opts
        .get("filename")
        .cloned()
        .unwrap_or_else(|| "Dockerfile".into());
    let (ctx_host, df_host) = match (
        p.host_path(ctx_dir),
        p.host_path(&format!("{}/{filename}", df_dir.trim_end_matches('/'))),
    ) {
        (Ok(c), Ok(d)) => (c, d),
        (Err(e), _) | (_, Err(e)) => return fail(&p, &e),
    };
    let dockerfile = match std::fs::read(&df_host) {
        Ok(d) => d,
        Err(e) => {
            return fail(
                &p,
                &format!("error: failed to solve: failed to read dockerfile: open {filename}: {e}"),
            );
        }
    };
    const EXTRA: &str = ".kubesim-dockerfile";
    let tar = match fs::pack_dir(&ctx_host, Some((EXTRA, &dockerfile))) {
        Ok(t) => t,
        Err(e) => return fail(&p, &format!("error: {e}")),
    };
    let credentials = match p.config_credentials(&p.home_docker_dir(HOME)) {
        Ok(c) => c,
        Err(e) => return fail(&p, &format!("error: {e}")),
    };
    p.log
        .line("#1 [internal] load build definition from Dockerfile");
    let local = format!("kubesim-buildkit/{}:build", uuid::Uuid::new_v4().simple());
    let opts = |prefix: &str| -> HashMap<String, String> {
        b.opts
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .collect()
    };
    p.note_tag(&local);
    p.note_tag(name);
    let req = engine::BuildRequest {
        context: tar,
        dockerfile: EXTRA.into(),
        tag: local.clone(),
        build_args: opts("build-arg:"),
        target: b.opts.get("target").cloned().unwrap_or_default(),
        labels: opts("label:"),
        credentials: credentials.clone(),
    };
    if let Err(e) = engine::build(&p.docker, req, &p.log, "#2 ").await {
        engine::untag(&p.docker, &local).await;
        return fail(&p, &format!("error: failed to solve: {e}"));
    }
    let mut digest = String::new();
    if push {
        p.log.line(&format!("#3 pushing {name}"));
        let pushed = async {
            engine::tag(&p.docker, &local, name).await?;
            engine::push(&p.docker, name, &credentials).await
        }
        .await;
        engine::untag(&p.docker, name).await;
        match pushed {
            Ok(d) => digest = d,
            Err(e) => {
                engine::untag(&p.docker, &local).await;
                return fail(
                    &p,
                    &format!("error: failed to solve: failed to push {name}: {e}"),
                );
            }
        }
        p.log
            .line(&format!("#3 pushing manifest for {name}@{digest} done"));
    }
    if let Some(dest) = dest {
        p.log
            .line(&format!("#3 exporting to docker image format {dest}"));
        let saved = async {
            engine::tag(&p.docker, &local, name).await?;
            digest = engine::image_id(&p.docker, name).await?;
            let host = p.host_path(dest)?;
            if let Some(parent) = host.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{dest}: {e}"))?;
            }
            engine::save(&p.docker, &[name.as_str()], &host).await
        }
        .await;
        engine::untag(&p.docker, name).await;
        if let Err(e) = saved {
            engine::untag(&p.docker, &local).await;
            return fail(
                &p,
                &format!("error: failed to solve: exporting to {dest}: {e}"),
            );
        }
        p.log
            .line(&format!("#3 exporting to docker image format {dest} done"));
    }
    engine::untag(&p.docker, &local).await;
    if let Some(file) = &b.metadata_file {
        let meta = serde_json::json!({
            "containerimage.digest": digest,
            "containerimage.descriptor": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": digest},
            "image.name": name,
        });
        if let Err(e) = p.write_file(file, meta.to_string().as_bytes()) {
            return fail(&p, &format!("error: {e}"));
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildctl_arguments() {
        let a: Vec<String> = [
            "build",
            "--frontend",
            "dockerfile.v0",
            "--local",
            "context=/c",
            "--local=dockerfile=/c",
            "--opt",
            "filename=D",
            "--output",
            "type=image,name=r/a:1,push=true",
            "--metadata-file",
            "/m",
            "--no-cache",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let b = parse(&a).unwrap();
        assert_eq!(b.locals["dockerfile"], "/c");
        assert_eq!(b.opts["filename"], "D");
        assert_eq!(csv(&b.outputs[0])["name"], "r/a:1");
        assert!(
            parse(&["build".into(), "--bogus".into(), "x".into()])
                .unwrap_err()
                .contains("flag provided but not defined: -bogus")
        );
        assert!(parse(&["prune".into()]).is_err());
    }
}
