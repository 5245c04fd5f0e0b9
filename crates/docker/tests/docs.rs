//! The docker side of the documentation tests (the rest is `crates/k8s/tests/docs.rs`):
//!
//! - `examples/runner.Dockerfile` builds on the real engine from a release-shaped archive and
//!   installs each hook where `ACTIONS_RUNNER_CONTAINER_HOOKS` points, and the hook then runs
//!   the way the runner runs it (`sh -e <path>`, one JSON line on stdin, exit code through);
//! - the docker quick start's runner settings are valid docker-hook settings and name the path
//!   the Dockerfile installs;
//! - `docs/reference.md` states docker-hook's defaults.
//!
//! The test image is busybox-based without glibc, so the archive's binary is a shell stand-in
//! that reports how it was started; the launcher is the real `bins/index.sh`.

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, WaitContainerOptionsBuilder,
};
use container_hooks_docker::{COST_LABELS, DEFAULT_HEALTH_TIMEOUT, REFUSE_PRIVILEGED, Settings};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Label on everything this test creates (value: the run id).
const LABEL: &str = "container-hooks.docs-test";

/// What the stand-in binary does: say how it was started, then exit 7.
const STAND_IN: &str = "#!/bin/sh\n\
IFS= read -r line\n\
printf 'stand-in %s: args=[%s] stdin=%s\\n' \"$(basename \"$0\")\" \"$*\" \"$line\"\n\
exit 7\n";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The fenced blocks of a Markdown text with their info word.
fn fenced(md: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in md.lines() {
        let t = line.trim_start();
        match &mut open {
            None if t.starts_with("```") => {
                open = Some((t.trim_start_matches('`').trim().to_owned(), String::new()));
            }
            None => {}
            Some((lang, text)) if t.starts_with("```") => {
                out.push((std::mem::take(lang), std::mem::take(text)));
                open = None;
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    out
}

fn tar_entry(tar: &mut tar::Builder<impl Write>, path: &str, mode: u32, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, path, data).unwrap();
}

/// A `.tar.gz` laid out like `cargo xtask dist` makes it: `<hook>/{<hook>,index.sh,LICENSE,README.md}`.
fn release_archive(hook: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let launcher = read("bins/index.sh").replace("@BIN@", hook);
    tar_entry(
        &mut tar,
        &format!("{hook}/{hook}"),
        0o755,
        STAND_IN.as_bytes(),
    );
    tar_entry(
        &mut tar,
        &format!("{hook}/index.sh"),
        0o755,
        launcher.as_bytes(),
    );
    tar_entry(
        &mut tar,
        &format!("{hook}/LICENSE"),
        0o644,
        read("LICENSE").as_bytes(),
    );
    tar_entry(
        &mut tar,
        &format!("{hook}/README.md"),
        0o644,
        b"# stand-in\n",
    );
    tar.into_inner().unwrap().finish().unwrap()
}

/// The build context: the Dockerfile and the archive under the name it expects by default.
fn context(hook: &str) -> Vec<u8> {
    let dockerfile = read("examples/runner.Dockerfile");
    let arg = |name: &str| {
        dockerfile
            .lines()
            .find_map(|l| l.strip_prefix(&format!("ARG {name}=")))
            .unwrap_or_else(|| panic!("the Dockerfile has no default for {name}"))
            .to_owned()
    };
    let name = format!("{hook}-{}-{}.tar.gz", arg("HOOK_VERSION"), arg("TARGET"));
    let mut tar = tar::Builder::new(Vec::new());
    tar_entry(&mut tar, "runner.Dockerfile", 0o644, dockerfile.as_bytes());
    tar_entry(&mut tar, &name, 0o644, &release_archive(hook));
    tar.into_inner().unwrap()
}

struct Run {
    env: Vec<String>,
    output: String,
    status: i64,
}

/// Builds the example Dockerfile for `hook` on `base`, then starts the hook like the runner.
async fn build_and_run(docker: &Docker, base: &str, hook: &str, tag: &str, run_id: &str) -> Run {
    let labels = HashMap::from([(LABEL, run_id)]);
    let args = HashMap::from([("RUNNER_IMAGE", base), ("HOOK", hook)]);
    let options = BuildImageOptionsBuilder::new()
        .dockerfile("runner.Dockerfile")
        .t(tag)
        .buildargs(&args)
        .labels(&labels)
        .rm(true)
        .forcerm(true)
        .build();
    let mut log = String::new();
    let mut build = docker.build_image(
        options,
        None,
        Some(bollard::body_full(context(hook).into())),
    );
    while let Some(item) = build.next().await {
        let info = item.unwrap_or_else(|e| panic!("building {tag}: {e}\n{log}"));
        log.push_str(info.stream.as_deref().unwrap_or_default());
    }
    let env = docker
        .inspect_image(tag)
        .await
        .unwrap()
        .config
        .and_then(|c| c.env)
        .unwrap_or_default();
    // The runner: `sh -e <ACTIONS_RUNNER_CONTAINER_HOOKS>` with one JSON line on stdin.
    let input = read("examples/cleanup_job.json");
    let body = ContainerCreateBody {
        image: Some(tag.to_owned()),
        user: Some("1001".into()),
        env: Some(vec![format!("INPUT={}", input.trim())]),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "printf '%s\\n' \"$INPUT\" | sh -e \"$ACTIONS_RUNNER_CONTAINER_HOOKS\"; echo \"status=$?\""
                .into(),
        ]),
        labels: Some(HashMap::from([(LABEL.to_owned(), run_id.to_owned())])),
        ..ContainerCreateBody::default()
    };
    let name = format!("{tag}-run").replace([':', '/'], "-");
    let create = CreateContainerOptionsBuilder::new().name(&name).build();
    let id = docker
        .create_container(Some(create), body)
        .await
        .unwrap()
        .id;
    docker.start_container(&id, None).await.unwrap();
    let wait = WaitContainerOptionsBuilder::new().build();
    let status = match docker.wait_container(&id, Some(wait)).next().await {
        Some(Ok(r)) => r.status_code,
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        other => panic!("waiting for {name}: {other:?}"),
    };
    let logs = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
    let output: Vec<String> = docker
        .logs(&id, Some(logs))
        .map_ok(|o| o.to_string())
        .try_collect()
        .await
        .unwrap();
    Run {
        env,
        output: output.concat(),
        status,
    }
}

/// Removes this run's containers and images when the test ends, also when it panics.
struct Cleanup {
    run_id: String,
    tags: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (run_id, tags) = (self.run_id.clone(), self.tags.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(docker) = Docker::connect_with_local_defaults() {
                    remove_everything(&docker, &run_id, &tags).await;
                }
            });
        })
        .join();
    }
}

async fn remove_everything(docker: &Docker, run_id: &str, tags: &[String]) {
    let filter = HashMap::from([("label", vec![format!("{LABEL}={run_id}")])]);
    let list = bollard::query_parameters::ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filter)
        .build();
    for c in docker.list_containers(Some(list)).await.unwrap_or_default() {
        let rm = RemoveContainerOptionsBuilder::new().force(true).build();
        let _ = docker
            .remove_container(&c.id.unwrap_or_default(), Some(rm))
            .await;
    }
    for tag in tags {
        let rm = RemoveImageOptionsBuilder::new().force(true).build();
        let _ = docker.remove_image(tag, Some(rm), None).await;
    }
}

#[tokio::test]
async fn runner_dockerfile_installs_each_hook_where_the_runner_starts_it() {
    let env = testenv::ensure().await.unwrap();
    let base = env.local(testenv::Image::Runner);
    let docker = Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let hooks = ["docker-hook", "k8s-hook"];
    let tags: Vec<String> = hooks
        .iter()
        .map(|h| format!("docs-test-runner-{run_id}-{h}:1"))
        .collect();
    let _cleanup = Cleanup {
        run_id: run_id.clone(),
        tags: tags.clone(),
    };
    let runs = futures::future::join_all(
        hooks
            .iter()
            .zip(&tags)
            .map(|(hook, tag)| build_and_run(&docker, &base, hook, tag, &run_id)),
    )
    .await;
    let input = read("examples/cleanup_job.json");
    for (hook, run) in hooks.iter().zip(&runs) {
        let path = format!("/home/runner/{hook}/index.sh");
        assert!(
            run.env
                .contains(&format!("ACTIONS_RUNNER_CONTAINER_HOOKS={path}")),
            "{hook}: {:?}",
            run.env
        );
        assert!(
            path.ends_with(".sh"),
            "the runner only accepts .sh, .js, .ps1"
        );
        let want = format!(
            "stand-in {hook}: args=[] stdin={}\nstatus=7\n",
            input.trim()
        );
        assert_eq!(run.output, want, "{hook}");
        assert_eq!(run.status, 0);
    }
}

#[test]
fn docker_quickstart_settings_are_valid() {
    let md = read("docs/quickstart.md");
    let vars: HashMap<String, String> = fenced(&md)
        .into_iter()
        .filter(|(lang, text)| lang == "sh" && text.contains("docker-hook/index.sh"))
        .flat_map(|(_, text)| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .filter(|(k, _)| k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        vars.get("ACTIONS_RUNNER_CONTAINER_HOOKS")
            .map(String::as_str),
        Some("/home/runner/docker-hook/index.sh"),
        "{vars:?}"
    );
    // The runner adds RUNNER_NAME; nothing else is needed.
    let settings = Settings::from_lookup(|k| match k {
        "RUNNER_NAME" => Some("runner-1".into()),
        k => vars.get(k).cloned(),
    })
    .unwrap();
    assert_eq!(settings, Settings::new("runner-1"));
}

#[test]
fn reference_states_docker_defaults() {
    let md = read("docs/reference.md");
    let default_of = |name: &str| -> String {
        md.lines()
            .find_map(|l| {
                let cells: Vec<&str> = l.trim().trim_matches('|').split('|').collect();
                (cells.first().map(|c| c.trim()) == Some(&format!("`{name}`")))
                    .then(|| cells[1].trim().to_owned())
            })
            .unwrap_or_else(|| panic!("{name} is not in docs/reference.md"))
    };
    let timeout = default_of("ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS");
    assert_eq!(timeout, format!("`{}`", DEFAULT_HEALTH_TIMEOUT.as_secs()));
    assert!(default_of("ACTIONS_RUNNER_NETWORK_DRIVER").starts_with("unset"));
    assert!(Settings::new("r").network.is_none());
    assert!(default_of("RUNNER_NAME").contains("required"));
    assert_eq!(default_of(REFUSE_PRIVILEGED), "`false`");
    assert!(!Settings::new("r").refuse_privileged);
    assert_eq!(default_of(COST_LABELS), "`true`");
    let with_github = Settings::from_lookup(|k| match k {
        "RUNNER_NAME" => Some("r".into()),
        "GITHUB_RUN_ID" => Some("1".into()),
        _ => None,
    })
    .unwrap();
    assert!(
        !with_github.cost_labels.is_empty(),
        "cost labels are on by default"
    );
    for list in [
        "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_IMAGES",
        "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_SERVICES",
        "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_STEP_IMAGES",
    ] {
        assert!(default_of(list).starts_with("unset"), "{list}");
    }
    assert_eq!(Settings::new("r").images, hooklib::ImagePolicy::allow_all());
    assert!(
        Settings::from_lookup(|_| None).is_err(),
        "RUNNER_NAME is required"
    );
}
