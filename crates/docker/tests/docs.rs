//! The docker side of the documentation tests (the rest is `crates/k8s/tests/docs.rs`):
//!
//! - `examples/runner.Dockerfile` builds on the real engine from an overlay shaped like the one
//!   `cargo xtask dist` writes, on top of a stand-in of GitHub's runner image that already has
//!   its own `k8s` and `k8s-novolume` hooks: each folder's launcher then starts the right binary
//!   the way the runner does (`sh -e <path>`, one JSON line on stdin, exit code through) and
//!   tells it its folder, GitHub's files are replaced and `/home/runner` keeps its owner;
//! - the docker quick start's runner settings are valid docker-hook settings and name a path
//!   the overlay installs;
//! - `docs/reference.md` states docker-hook's defaults.
//!
//! The test image is busybox-based without glibc or node, so the overlay's binaries are a shell
//! stand-in that reports how it was started; the launchers are the real `bins/index.sh` and
//! `bins/index.js` (`node <path>/index.js` itself is tested in `bins/docker-hook/tests/launcher.rs`).

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

/// What the stand-in binary does: say how and from which folder it was started, then exit 7.
const STAND_IN: &str = "#!/bin/sh\n\
IFS= read -r line\n\
printf 'stand-in %s from %s: args=[%s] stdin=%s\\n' \"$(basename \"$0\")\" \
\"$(basename \"$CONTAINER_HOOKS_LAUNCHER_DIR\")\" \"$*\" \"$line\"\n\
exit 7\n";

/// The overlay's folders under /home/runner and their hooks (`xtask/src/dist.rs`'s `OVERLAY`).
const OVERLAY: [(&str, &str); 3] = [
    ("k8s", "k8s-hook"),
    ("k8s-novolume", "k8s-hook"),
    ("docker", "docker-hook"),
];

/// What GitHub's runner image has in its hook folders (stand-in).
const GITHUB_HOOK: &str = "// GitHub's bundled hook\n";

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

/// The launchers of `hook`: file name and text.
fn launchers(hook: &str) -> [(&'static str, String); 2] {
    [
        ("index.sh", read("bins/index.sh").replace("@BIN@", hook)),
        ("index.js", read("bins/index.js").replace("@BIN@", hook)),
    ]
}

/// A `.tar.gz` laid out like the overlay of `cargo xtask dist`: `home/runner/<folder>/` with
/// the launchers, `LICENSE` and the binary or a link to the first folder's.
fn overlay_archive() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut first: Vec<(&str, &str)> = Vec::new();
    for (folder, hook) in OVERLAY {
        let dir = format!("home/runner/{folder}");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        tar.append_data(&mut h, format!("{dir}/"), std::io::empty())
            .unwrap();
        for (name, text) in launchers(hook) {
            tar_entry(&mut tar, &format!("{dir}/{name}"), 0o755, text.as_bytes());
        }
        tar_entry(
            &mut tar,
            &format!("{dir}/LICENSE"),
            0o644,
            read("LICENSE").as_bytes(),
        );
        match first.iter().find(|(_, h)| *h == hook) {
            Some((owner, _)) => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                tar.append_link(
                    &mut h,
                    format!("{dir}/{hook}"),
                    format!("../{owner}/{hook}"),
                )
                .unwrap();
            }
            None => {
                tar_entry(
                    &mut tar,
                    &format!("{dir}/{hook}"),
                    0o755,
                    STAND_IN.as_bytes(),
                );
                first.push((folder, hook));
            }
        }
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Builds the `Dockerfile` among `files` (the whole build context) as `tag`.
async fn build(
    docker: &Docker,
    tag: &str,
    run_id: &str,
    args: &HashMap<&str, &str>,
    files: &[(&str, u32, &[u8])],
) {
    let labels = HashMap::from([(LABEL, run_id)]);
    let options = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(tag)
        .buildargs(args)
        .labels(&labels)
        .rm(true)
        .forcerm(true)
        .build();
    let mut context = tar::Builder::new(Vec::new());
    for (path, mode, data) in files {
        tar_entry(&mut context, path, *mode, data);
    }
    let context = context.into_inner().unwrap();
    let mut log = String::new();
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = build.next().await {
        let info = item.unwrap_or_else(|e| panic!("building {tag}: {e}\n{log}"));
        log.push_str(info.stream.as_deref().unwrap_or_default());
    }
}

/// Runs `script` with `sh -c` in `image` as the runner user; returns its output and status.
async fn run_in(
    docker: &Docker,
    image: &str,
    run_id: &str,
    env: Vec<String>,
    script: &str,
) -> (String, i64) {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        user: Some("1001".into()),
        env: Some(env),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        labels: Some(HashMap::from([(LABEL.to_owned(), run_id.to_owned())])),
        ..ContainerCreateBody::default()
    };
    let name = format!("{image}-run").replace([':', '/'], "-");
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
    (output.concat(), status)
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
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "Docker tier: needs the Docker Engine; `cargo xtask ci` runs it"
)]
async fn runner_dockerfile_replaces_the_runner_images_hooks() {
    let env = testenv::ensure().await.unwrap();
    let docker = Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let github = format!("docs-test-github-runner-{run_id}:1");
    let ours = format!("docs-test-runner-{run_id}:1");
    let _cleanup = Cleanup {
        run_id: run_id.clone(),
        tags: vec![ours.clone(), github.clone()],
    };
    // GitHub's runner image, as far as hooks go: its own k8s and k8s-novolume hooks, owned by
    // the runner user like /home/runner.
    let base = env.local(testenv::Image::Runner);
    let github_dockerfile = format!("FROM {base}\nCOPY --chown=1001:1001 home/ /home/\n");
    build(
        &docker,
        &github,
        &run_id,
        &HashMap::new(),
        &[
            ("Dockerfile", 0o644, github_dockerfile.as_bytes()),
            ("home/runner/k8s/index.js", 0o644, GITHUB_HOOK.as_bytes()),
            (
                "home/runner/k8s-novolume/index.js",
                0o644,
                GITHUB_HOOK.as_bytes(),
            ),
        ],
    )
    .await;
    let dockerfile = read("examples/runner.Dockerfile");
    let overlay = overlay_archive();
    build(
        &docker,
        &ours,
        &run_id,
        &HashMap::from([("RUNNER_IMAGE", github.as_str())]),
        &[
            ("Dockerfile", 0o644, dockerfile.as_bytes()),
            ("container-hooks-overlay.tar.gz", 0o644, &overlay),
        ],
    )
    .await;
    // The runner: `sh -e <ACTIONS_RUNNER_CONTAINER_HOOKS>` with one JSON line on stdin.
    let input = read("examples/cleanup_job.json");
    let script = "for f in k8s k8s-novolume docker; do\n\
         echo \"== $f\"\n\
         printf '%s\\n' \"$INPUT\" | sh -e \"/home/runner/$f/index.sh\"; echo \"status=$?\"\n\
         cat \"/home/runner/$f/index.js\"\n\
         done\n\
         set -- $(ls -lnd /home/runner); echo \"home=$3:$4\"\n";
    let (output, status) = run_in(
        &docker,
        &ours,
        &run_id,
        vec![format!("INPUT={}", input.trim())],
        script,
    )
    .await;
    let mut want = String::new();
    for (folder, hook) in OVERLAY {
        want.push_str(&format!(
            "== {folder}\nstand-in {hook} from {folder}: args=[] stdin={}\nstatus=7\n",
            input.trim()
        ));
        want.push_str(&launchers(hook)[1].1);
    }
    want.push_str("home=1001:1001\n");
    assert_eq!(output, want);
    assert_eq!(status, 0);
    // Nothing to set: the image's env names no hook (ARC's chart or the runner's .env does).
    let image_env = docker
        .inspect_image(&ours)
        .await
        .unwrap()
        .config
        .and_then(|c| c.env)
        .unwrap_or_default();
    assert!(
        !image_env
            .iter()
            .any(|e| e.starts_with("ACTIONS_RUNNER_CONTAINER_HOOKS=")),
        "{image_env:?}"
    );
}

#[test]
fn docker_quickstart_settings_are_valid() {
    let md = read("docs/quickstart.md");
    let vars: HashMap<String, String> = fenced(&md)
        .into_iter()
        .filter(|(lang, text)| lang == "sh" && text.contains("/home/runner/docker/index.js"))
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
        Some("/home/runner/docker/index.js"),
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
