//! Helpers of the Kaniko end-to-end tests: actions written into the runner's `_actions`, the
//! registry secret, Dockerfile steps as the runner sends them, and a direct look at the
//! password-protected test registry.

#![allow(dead_code)]

use crate::support::spawn::{Program, Started, start};
use crate::support::{Run, Runner, StepRun, container, rt, testenv};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::PathBuf;
use testenv::runner::STEP_FILE_COMMANDS;

/// The repository path below the registry hosts.
pub const REPO_PREFIX: &str = "kanikotest";
/// The registry secret's name (the push; the pusher's only).
pub const SECRET: &str = "regcred";
/// The optional base-image pull secret's name (the builder's).
pub const PULL_SECRET: &str = "basecred";

/// Base64 (through k8s-openapi's `ByteString`, which serializes as base64).
pub fn b64(text: &str) -> String {
    match serde_json::to_value(ByteString(text.as_bytes().to_vec())).unwrap() {
        Value::String(s) => s,
        other => panic!("{other}"),
    }
}

/// The push host (what the builder uses) and the pull host (what the kubelet uses): two
/// addresses of one registry.
pub fn push_host() -> String {
    format!("{}/{REPO_PREFIX}", testenv().auth_registry)
}

pub fn pull_host() -> String {
    format!(
        "{}/{REPO_PREFIX}",
        testenv().auth_registry.replace("127.0.0.1", "localhost")
    )
}

/// The runner's environment for Kaniko builds into the password-protected registry.
pub fn configure(runner: &mut Runner) {
    for (k, v) in [
        (
            "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST_PUSH",
            push_host(),
        ),
        (
            "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST_PULL",
            pull_host(),
        ),
        (
            "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_SECRET_NAME",
            SECRET.to_owned(),
        ),
    ] {
        runner.extra_env.push((k.to_owned(), v));
    }
}

/// Creates the dockerconfigjson secret with `password` for both addresses of the registry.
pub fn create_secret(runner: &Runner, password: &str) {
    let env = testenv();
    let pull_registry = env.auth_registry.replace("127.0.0.1", "localhost");
    create_secret_for(runner, password, &[&env.auth_registry, &pull_registry]);
}

/// Creates the dockerconfigjson secret with `password` for these registry addresses.
pub fn create_secret_for(runner: &Runner, password: &str, registries: &[&str]) {
    create_named_secret(runner, SECRET, password, registries);
}

/// Creates the base-image pull secret (the registry's real password, for the builder) and
/// configures the runner to mount it into the builder.
pub fn configure_pull_secret(runner: &mut Runner) {
    let env = testenv();
    create_named_secret(
        runner,
        PULL_SECRET,
        &env.auth_password,
        &[&env.auth_registry],
    );
    runner.extra_env.push((
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_PULL_SECRET_NAME".into(),
        PULL_SECRET.into(),
    ));
}

/// Creates a dockerconfigjson secret `name` with `password` for these registry addresses.
pub fn create_named_secret(runner: &Runner, name: &str, password: &str, registries: &[&str]) {
    let env = testenv();
    let secret: Secret = serde_json::from_value(testenv::registry_secret(
        name,
        &env.auth_user,
        password,
        registries,
    ))
    .unwrap();
    let api: Api<Secret> = Api::namespaced(runner.client.clone(), &runner.ns);
    rt().block_on(api.create(&PostParams::default(), &secret))
        .unwrap();
}

/// An action checked out by the runner: `_work/_actions/<owner>/<repo>/<ref>/`.
pub struct Action {
    pub dir: PathBuf,
}

impl Action {
    /// A Dockerfile action whose entrypoint echoes its args, sets an output, lists its build
    /// context and exits with `$EXIT_CODE`. `nonce` makes its content (and so its tag) unique
    /// to this test run. Its base image is in the plain registry (the builder has no
    /// credentials unless a pull secret is configured: see [`Action::use_auth_base`]).
    pub fn write(runner: &Runner, owner: &str, repo: &str, git_ref: &str, greeting: &str) -> Self {
        let dir = runner
            .work()
            .join("_actions")
            .join(owner)
            .join(repo)
            .join(git_ref);
        std::fs::create_dir_all(&dir).unwrap();
        let env = testenv();
        std::fs::write(
            dir.join("Dockerfile"),
            format!(
                "FROM {}\nCOPY . /ctx\nCOPY entrypoint.sh /entrypoint.sh\nENTRYPOINT [\"/entrypoint.sh\"]\n",
                env.image(testenv::Image::Busybox)
            ),
        )
        .unwrap();
        let a = Self { dir };
        a.set_entrypoint(greeting);
        std::fs::write(a.dir.join("nonce"), uuid::Uuid::new_v4().to_string()).unwrap();
        std::fs::write(a.dir.join(".dockerignore"), "ignored-*\n").unwrap();
        std::fs::write(
            a.dir.join("ignored-secret.txt"),
            "must not be in the image\n",
        )
        .unwrap();
        a
    }

    /// Rewrites the entrypoint with another greeting (a changed action).
    pub fn set_entrypoint(&self, greeting: &str) {
        let script = format!(
            "#!/bin/sh\n\
             echo \"{greeting}: $*\"\n\
             echo \"who=$INPUT_WHO\" >> \"$GITHUB_OUTPUT\"\n\
             echo \"context: $(ls -A /ctx | tr '\\n' ' ')\"\n\
             exit \"${{EXIT_CODE:-0}}\"\n"
        );
        let p = self.dir.join("entrypoint.sh");
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }

    pub fn dockerfile(&self) -> PathBuf {
        self.dir.join("Dockerfile")
    }

    /// Takes the base image from the password-protected registry (needs the pull secret).
    pub fn use_auth_base(&self) {
        let env = testenv();
        self.edit(|t| {
            t.replace(
                &env.image(testenv::Image::Busybox),
                &env.auth_image(testenv::Image::Busybox),
            )
        });
    }

    /// Adds Dockerfile lines after `COPY . /ctx`.
    pub fn add_lines(&self, lines: &str) {
        self.edit(|t| t.replace("COPY . /ctx\n", &format!("COPY . /ctx\n{lines}\n")));
    }

    fn edit(&self, f: impl FnOnce(&str) -> String) {
        let df = self.dockerfile();
        let text = std::fs::read_to_string(&df).unwrap();
        std::fs::write(&df, f(&text)).unwrap();
    }
}

/// A Dockerfile action step as the runner sends it (`image: null`, `dockerfile: <path>`).
pub fn dockerfile_step(
    runner: &Runner,
    state: Option<&Value>,
    action: &Action,
    args: &[&str],
    env: &[(&str, &str)],
) -> StepRun {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let fc = runner
        .create_file_commands(&id, STEP_FILE_COMMANDS, &["set_output"])
        .unwrap();
    let mut vars = fc.vars.clone();
    vars.insert("GITHUB_WORKSPACE".into(), json!("/github/workspace"));
    for (k, v) in env {
        vars.insert((*k).into(), json!(v));
    }
    let mut spec = container("");
    spec["image"] = Value::Null;
    spec["dockerfile"] = json!(action.dockerfile());
    spec["entryPointArgs"] = json!(args);
    spec["workingDirectory"] = json!("/github/workspace");
    spec["environmentVariables"] = Value::Object(vars);
    StepRun::read(runner.call("run_container_step", spec, state), &fc)
}

/// The `<push host>/<name>:<tag>` the hook announced for the build.
pub fn announced_image(run: &Run) -> String {
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("Dockerfile action ") && l.contains(", image "))
        .unwrap_or_else(|| panic!("no image announced: {run:#?}"));
    line.rsplit(", image ").next().unwrap().trim().to_owned()
}

/// The image the step pod ran (from the hook's "Starting container step pod" line).
pub fn step_image(run: &Run) -> String {
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("Starting container step pod"))
        .unwrap_or_else(|| panic!("no step pod: {run:#?}"));
    line.rsplit_once('(')
        .unwrap()
        .1
        .trim_end_matches(')')
        .to_owned()
}

/// HEAD of a manifest in the password-protected registry: the HTTP status and the digest.
pub fn manifest(reference: &str) -> (u16, Option<String>) {
    let env = testenv();
    let rest = reference
        .strip_prefix(&format!("{}/", env.auth_registry))
        .unwrap();
    let (repo, tag) = rest.rsplit_once(':').unwrap();
    let auth = b64(&format!("{}:{}", env.auth_user, env.auth_password));
    let mut s = std::net::TcpStream::connect(&env.auth_registry).unwrap();
    write!(
        s,
        "HEAD /v2/{repo}/manifests/{tag} HTTP/1.0\r\nHost: {}\r\nAuthorization: Basic {auth}\r\nAccept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json\r\n\r\n",
        env.auth_registry
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let digest = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("docker-content-digest")
            .then(|| v.trim().to_owned())
    });
    (status, digest)
}

/// Names of this runner's builder pods (by their role label).
pub fn builder_pods(runner: &Runner) -> Vec<String> {
    let api: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(runner.client.clone(), &runner.ns);
    let lp = kube::api::ListParams::default().labels(&format!(
        "runner-pod={},container-hooks/role=builder",
        runner.name
    ));
    rt().block_on(api.list(&lp))
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

/// Removes the images the step pods pulled (`<pull host>/<name>@<digest>`) when dropped.
#[derive(Default)]
pub struct PulledImages(pub std::cell::RefCell<Vec<String>>);

impl PulledImages {
    /// Remembers the image a run's step pod pulled.
    pub fn note(&self, run: &Run) {
        if run.stderr.contains("Starting container step pod") {
            self.0.borrow_mut().push(step_image(run));
        }
    }
}

impl Drop for PulledImages {
    fn drop(&mut self) {
        // The step pods' containers go away asynchronously: retry while the image is in use.
        for image in self.0.borrow().iter() {
            for _ in 0..40 {
                let out = std::process::Command::new("docker")
                    .args(["rmi", image])
                    .output();
                match out {
                    Ok(o) if o.status.success() => break,
                    Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No such image") => break,
                    Err(_) => break,
                    _ => std::thread::sleep(std::time::Duration::from_millis(250)),
                }
            }
        }
    }
}

/// Watches this runner's builder pods from before a step: every version the API server sent
/// (so a pod deleted after a successful build can still be inspected).
pub struct PodWatch {
    seen: std::sync::Arc<std::sync::Mutex<Vec<k8s_openapi::api::core::v1::Pod>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    pub fn start(runner: &Runner) -> Self {
        use futures::StreamExt;
        let api: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(runner.client.clone(), &runner.ns);
        let selector = format!("runner-pod={},container-hooks/role=builder", runner.name);
        let lp = kube::api::ListParams::default().labels(&selector);
        let rv = rt()
            .block_on(api.list(&lp))
            .unwrap()
            .metadata
            .resource_version
            .unwrap_or_default();
        let wp = kube::api::WatchParams::default()
            .labels(&selector)
            .timeout(290);
        let stream = rt().block_on(api.watch(&wp, &rv)).unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = seen.clone();
        let task = rt().spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(event)) = stream.next().await {
                if let kube::api::WatchEvent::Added(p) | kube::api::WatchEvent::Modified(p) = event
                {
                    out.lock().unwrap().push(p);
                }
            }
        });
        Self { seen, task }
    }

    /// The first version of each builder pod seen (as created).
    pub fn created(&self) -> Vec<k8s_openapi::api::core::v1::Pod> {
        let mut names = std::collections::BTreeSet::new();
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|p| names.insert(p.metadata.name.clone()))
            .cloned()
            .collect()
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a Dockerfile step through the binary without waiting for it (for signals).
pub fn spawn_dockerfile_step(runner: &Runner, action: &Action) -> Started {
    let mut spec = container("");
    spec["image"] = Value::Null;
    spec["dockerfile"] = json!(action.dockerfile());
    spec["workingDirectory"] = json!("/github/workspace");
    start(runner, &Program::Binary, "run_container_step", spec, None)
}
