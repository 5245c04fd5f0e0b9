//! The emulated crane (go-containerregistry) pusher image: `crane push PATH IMAGE` with its
//! cobra/pflag command line, the docker-format tarball read from the container's volume, the
//! push with the credentials of `$DOCKER_CONFIG/config.json` (else `$HOME/.docker`), the pushed
//! reference `<repository>@<digest>` on stdout and in the `--image-refs` file.

use super::{Process, engine};

/// The image's user's home (distroless `nonroot`).
const HOME: &str = "/home/nonroot";

#[derive(Debug, Default, PartialEq, Eq)]
struct Push {
    path: String,
    image: String,
    image_refs: Option<String>,
    insecure: bool,
}

fn parse(args: &[String]) -> Result<Push, String> {
    let mut positional = Vec::new();
    let mut push = Push::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let Some(flag) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            positional.push(a.clone());
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let mut value = || {
            inline.clone().map_or_else(
                || {
                    let v = args
                        .get(i)
                        .cloned()
                        .ok_or_else(|| format!("flag needs an argument: --{name}"));
                    i += 1;
                    v
                },
                Ok,
            )
        };
        match name {
            "image-refs" => push.image_refs = Some(value()?),
            "platform" => {
                value()?;
            }
            "insecure" => push.insecure = inline.as_deref() != Some("false"),
            "index" | "v" | "verbose" | "allow-nondistributable-artifacts" => {}
            _ => return Err(format!("unknown flag: --{name}")),
        }
    }
    match positional.first().map(String::as_str) {
        Some("push") => {}
        Some(other) => return Err(format!("unknown command \"{other}\" for \"crane\"")),
        None => return Err("crane: a subcommand is required (kubesim emulates `push`)".into()),
    }
    if positional.len() != 3 {
        return Err(format!(
            "accepts 2 arg(s), received {}",
            positional.len().saturating_sub(1)
        ));
    }
    push.path = positional[1].clone();
    push.image = positional[2].clone();
    Ok(push)
}

fn fail(p: &Process, msg: &str) -> i64 {
    p.log.line(&format!("Error: {msg}"));
    1
}

/// Runs the container's command; returns its exit code.
pub async fn run(p: Process) -> i64 {
    let push = match parse(&p.arguments()) {
        Ok(x) => x,
        Err(e) => return fail(&p, &e),
    };
    let credentials = match p.config_credentials(&p.home_docker_dir(HOME)) {
        Ok(c) => c,
        Err(e) => return fail(&p, &e),
    };
    let host = match p.host_path(&push.path) {
        Ok(h) => h,
        Err(e) => return fail(&p, &e),
    };
    if !host.is_file() {
        return fail(
            &p,
            &format!(
                "loading {} as tarball: open {}: no such file or directory",
                push.path, push.path
            ),
        );
    }
    let loaded = match engine::load(&p.docker, &host).await {
        Ok(l) => l,
        Err(e) => return fail(&p, &format!("loading {} as tarball: {e}", push.path)),
    };
    // crane pushes the tarball's single image to IMAGE, whatever it was tagged as.
    if loaded.len() != 1 {
        for l in &loaded {
            p.note_tag(l);
        }
        return fail(
            &p,
            &format!(
                "loading {} as tarball: tarball must contain only a single image to be used with tarball.Image",
                push.path
            ),
        );
    }
    for t in loaded.iter().chain(std::iter::once(&push.image)) {
        p.note_tag(t);
    }
    if loaded[0] != push.image
        && let Err(e) = engine::tag(&p.docker, &loaded[0], &push.image).await
    {
        return fail(&p, &e);
    }
    let repo = push
        .image
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map_or(push.image.as_str(), |(r, _)| r)
        .to_string();
    let digest = match engine::push(&p.docker, &push.image, &credentials).await {
        Ok(d) => d,
        Err(e) => return fail(&p, &format!("pushing image {}: {e}", push.image)),
    };
    let reference = format!("{repo}@{digest}");
    p.log.line(&format!("pushed {}", push.image));
    p.log.line(&reference);
    if let Some(file) = &push.image_refs
        && let Err(e) = p.write_file(file, format!("{reference}\n").as_bytes())
    {
        return fail(&p, &e);
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
    fn push_arguments() {
        let p = parse(&v(&[
            "push",
            "/workspace/image.tar",
            "r:5000/a/b:t",
            "--image-refs=/dev/termination-log",
            "--insecure",
        ]))
        .unwrap();
        assert_eq!(
            p,
            Push {
                path: "/workspace/image.tar".into(),
                image: "r:5000/a/b:t".into(),
                image_refs: Some("/dev/termination-log".into()),
                insecure: true,
            }
        );
        let p = parse(&v(&["push", "--image-refs", "/f", "x.tar", "r/a:1"])).unwrap();
        assert_eq!(p.image_refs.as_deref(), Some("/f"));
        for (args, msg) in [
            (&["push", "a"][..], "accepts 2 arg(s), received 1"),
            (&["pull", "a", "b"][..], "unknown command \"pull\""),
            (&["push", "a", "b", "--nope"][..], "unknown flag: --nope"),
            (&["push", "a", "b", "--image-refs"][..], "needs an argument"),
        ] {
            let e = parse(&v(args)).unwrap_err();
            assert!(e.contains(msg), "{args:?}: {e}");
        }
    }
}
