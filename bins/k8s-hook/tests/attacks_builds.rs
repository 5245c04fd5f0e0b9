//! The threat model of Dockerfile-action builds, attack by attack, through the real binary on
//! kubesim (whose kubelet performs the Kaniko, BuildKit and crane containers for real with the
//! Docker Engine and the password-protected test registry).
//!
//! A Dockerfile is job code: its `RUN` lines execute inside the builder container. The push
//! credentials must therefore never be where they can read them: not mounted into, and not in
//! the environment of, any container that runs the builder image. Only the pusher (crane, no
//! job code) holds them; the image it pushes is the one the builder built.
#![cfg(feature = "e2e")]

mod support;
mod support_kaniko;

use k8s_openapi::api::core::v1::{Container, Pod};
use support::{Runner, testenv};
use support_kaniko::{
    Action, PodWatch, PulledImages, SECRET, announced_image, builder_pods, configure,
    configure_pull_secret, create_secret, dockerfile_step, manifest, spawn_dockerfile_step,
    step_image,
};

fn runner(test: &str) -> Runner {
    let mut r = Runner::new(test);
    configure(&mut r);
    create_secret(&r, &testenv().auth_password);
    r
}

/// The containers of `pod`, init containers first.
fn containers(pod: &Pod) -> Vec<&Container> {
    let spec = pod.spec.as_ref().unwrap();
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .collect()
}

/// The names of the volumes of `pod` that project secret `name`.
fn secret_volumes<'a>(pod: &'a Pod, name: &str) -> Vec<&'a str> {
    pod.spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(name))
        .map(|v| v.name.as_str())
        .collect()
}

/// Every container running `builder_image` mounts no volume of the push secret and has no
/// credential in its environment; the push secret is mounted in exactly one container, which
/// runs another image.
fn push_secret_only_in_the_pusher(pod: &Pod, builder_image: &str) {
    let password = testenv().auth_password;
    let push_volumes = secret_volumes(pod, SECRET);
    assert_eq!(push_volumes.len(), 1, "{:#?}", pod.spec);
    let mut holders = Vec::new();
    let mut builders = 0;
    for c in containers(pod) {
        let mounts_push = c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| push_volumes.contains(&m.name.as_str()));
        if mounts_push {
            holders.push(c.name.clone());
        }
        if c.image.as_deref() == Some(builder_image) {
            builders += 1;
            assert!(!mounts_push, "{} mounts the push secret", c.name);
            assert!(c.env_from.is_none(), "{}: envFrom", c.name);
            for e in c.env.iter().flatten() {
                assert!(
                    e.value_from.is_none(),
                    "{}: {} comes from a secret",
                    c.name,
                    e.name
                );
                let v = e.value.clone().unwrap_or_default();
                assert!(
                    !v.contains(password.as_str()) && !v.to_lowercase().contains("auth"),
                    "{}: {}={v}",
                    c.name,
                    e.name
                );
            }
        }
    }
    assert!(builders > 0, "no container runs {builder_image}");
    assert_eq!(
        holders,
        ["push"],
        "the push secret belongs to the pusher only"
    );
}

/// The Dockerfile's `RUN` lines look for credentials where a builder would have them.
const SNOOP: &str = "RUN cat /kaniko/.docker/config.json || true; cat /home/user/.docker/config.json || true; env\nRUN echo \"built-$(cat /ctx/nonce)\" > /built-marker";

#[test]
fn kaniko_run_lines_see_no_push_credentials_and_the_pushed_image_is_the_built_one() {
    let pulled = PulledImages::default();
    let runner = runner("atk-kaniko");
    let action = Action::write(&runner, "acme", "snoop", "v1", "hi");
    action.add_lines(SNOOP);
    let watch = PodWatch::start(&runner);
    let s = dockerfile_step(&runner, None, &action, &[], &[]);
    pulled.note(&s.run);
    assert_eq!(s.run.code, 0, "{:#?}", s.run);
    // The build log (with the RUN lines' output) is in the job log, without a credential.
    assert!(s.run.stderr.contains("PATH="), "env ran: {:#?}", s.run);
    let pw = testenv().auth_password;
    assert!(
        !s.run.stderr.contains(pw.as_str()) && !s.run.stdout.contains(pw.as_str()),
        "{:#?}",
        s.run
    );
    assert!(!s.run.stderr.contains("\"auths\""), "{:#?}", s.run);
    // The builder pod as the API server had it.
    let created = watch.created();
    assert_eq!(created.len(), 1, "{created:#?}");
    push_secret_only_in_the_pusher(
        &created[0],
        container_hooks_k8s::BuildSettings::default().image.as_str(),
    );
    // The pushed image: the digest the pusher reported is the registry's, and the step pod ran
    // it; what it contains is what the build made.
    let image = announced_image(&s.run);
    let (status, digest) = manifest(&image);
    assert_eq!(status, 200);
    let digest = digest.unwrap();
    assert!(
        s.run
            .stderr
            .contains(&format!("built and pushed {image}@{digest}")),
        "{:#?}",
        s.run
    );
    assert!(step_image(&s.run).ends_with(&format!("@{digest}")));
    assert!(builder_pods(&runner).is_empty());
}

#[test]
fn buildkit_containers_see_no_push_credentials() {
    let pulled = PulledImages::default();
    let mut runner = runner("atk-buildkit");
    runner.extra_env.push((
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER".into(),
        "buildkit".into(),
    ));
    let action = Action::write(&runner, "acme", "snoopbk", "v1", "hi");
    action.add_lines(SNOOP);
    let watch = PodWatch::start(&runner);
    let s = dockerfile_step(&runner, None, &action, &[], &[]);
    pulled.note(&s.run);
    assert_eq!(s.run.code, 0, "{:#?}", s.run);
    let pw = testenv().auth_password;
    assert!(!s.run.stderr.contains(pw.as_str()), "{:#?}", s.run);
    let created = watch.created();
    assert_eq!(created.len(), 1, "{created:#?}");
    push_secret_only_in_the_pusher(
        &created[0],
        container_hooks_k8s::Builder::BuildKit.default_image(),
    );
    let (status, digest) = manifest(&announced_image(&s.run));
    assert_eq!(status, 200);
    assert!(step_image(&s.run).ends_with(&format!("@{}", digest.unwrap())));
}

#[test]
fn base_images_need_the_separate_pull_secret() {
    let pulled = PulledImages::default();
    // Without it, the builder has no credentials at all: a base image from the
    // password-protected registry cannot be pulled (the push secret is not there to help).
    let without = runner("atk-pull-none");
    let action = Action::write(&without, "acme", "authbase", "v1", "x");
    action.use_auth_base();
    let s = dockerfile_step(&without, None, &action, &[], &[]);
    pulled.note(&s.run);
    assert_eq!(s.run.code, 1, "{:#?}", s.run);
    assert!(
        s.run.errors()[0].contains("the Kaniko build of"),
        "{:#?}",
        s.run
    );
    // With it, the builder pulls the base image; the pusher still alone has the push secret.
    let mut runner = runner("atk-pull-set");
    configure_pull_secret(&mut runner);
    let action = Action::write(&runner, "acme", "authbase2", "v1", "x");
    action.use_auth_base();
    let watch = PodWatch::start(&runner);
    let s = dockerfile_step(&runner, None, &action, &[], &[]);
    pulled.note(&s.run);
    assert_eq!(s.run.code, 0, "{:#?}", s.run);
    let created = watch.created();
    push_secret_only_in_the_pusher(
        &created[0],
        container_hooks_k8s::BuildSettings::default().image.as_str(),
    );
    let pull = secret_volumes(&created[0], support_kaniko::PULL_SECRET);
    let kaniko = &created[0]
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .as_ref()
        .unwrap()[0];
    assert!(
        kaniko
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| pull.contains(&m.name.as_str()) && m.mount_path == "/kaniko/.docker"),
        "{kaniko:#?}"
    );
}

#[test]
fn a_cancelled_build_deletes_its_builder_pod() {
    let runner = runner("atk-cancel");
    let action = Action::write(&runner, "acme", "slow", "v1", "x");
    action.add_lines("RUN sleep 60");
    let mut child = spawn_dockerfile_step(&runner, &action);
    // The build has started once the builder pod's Kaniko container runs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let running = builder_pods(&runner).iter().any(|name| {
            runner
                .get_pod(name)
                .and_then(|p| p.status)
                .and_then(|s| s.init_container_statuses)
                .into_iter()
                .flatten()
                .any(|c| c.state.and_then(|s| s.running).is_some())
        });
        if running {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the build never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Let the context reach the builder and the RUN start.
    std::thread::sleep(std::time::Duration::from_secs(2));
    child.signal("INT");
    let run = child.finish();
    assert_eq!(run.code, 130, "{run:#?}");
    let stderr = run.stderr;
    assert!(
        stderr.contains("::error::The step was cancelled (SIGINT)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("builder pod") && stderr.contains("deleted"),
        "{stderr}"
    );
    assert!(builder_pods(&runner).is_empty(), "{stderr}");
}
