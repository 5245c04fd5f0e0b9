//! Whole lifecycles on ISOLATED environments (own namespace, ports and directories), so tearing
//! them down never disturbs the shared environment other tests use concurrently.
#![cfg(feature = "e2e")]

mod common;

use std::collections::HashMap;
use std::path::Path;

use bollard::query_parameters::ListImagesOptionsBuilder;
use testenv::{Image, LABEL_NAMESPACE, RegistryKind, Settings};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn isolated(root: &Path) -> Settings {
    let ns = format!(
        "hooktest-iso-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    Settings::isolated(&ns, root, free_port(), free_port())
}

/// Tears the isolated environment down even when an assertion fails half-way.
struct Cleanup(Settings);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let settings = self.0.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(testenv::teardown_with(&settings))
        })
        .join();
    }
}

async fn labelled_images(namespace: &str) -> usize {
    let docker = common::docker().await;
    let filter = format!("{LABEL_NAMESPACE}={namespace}");
    let filters = HashMap::from([("label", vec![filter.as_str()])]);
    docker
        .list_images(Some(
            ListImagesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .unwrap()
        .len()
}

fn kill(pid: u32) {
    let ok = std::process::Command::new("/bin/busybox")
        .args(["kill", "-s", "KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test]
async fn up_again_recover_and_down() {
    let root = tempfile::tempdir().unwrap();
    let s = isolated(root.path());
    let _cleanup = Cleanup(s.clone());
    assert!(testenv::status_with(&s).await.unwrap().is_gone());

    let env = testenv::ensure_with(&s).await.unwrap();
    let up = testenv::status_with(&s).await.unwrap();
    assert!(up.is_up(), "{up}");
    assert_eq!(env.registry, s.plain.addr.to_string());
    assert_eq!(
        env.image(Image::Runner),
        format!("{}/{}/runner:1", s.plain.addr, s.namespace)
    );
    assert_eq!(labelled_images(&s.namespace).await, Image::ALL.len());

    let docker = common::docker().await;
    let pulled = common::pull(&docker, &env.image(Image::Healthy), None)
        .await
        .unwrap();
    assert_eq!(Some(&pulled), up.image(Image::Healthy).id.as_ref());
    // Leave a digest-only reference behind (pull by digest, no tag): teardown must remove it too.
    let digest_ref = docker
        .inspect_image(&env.image(Image::Healthy))
        .await
        .unwrap()
        .repo_digests
        .unwrap()
        .into_iter()
        .find(|d| d.starts_with(&env.registry))
        .unwrap();
    let untag = bollard::query_parameters::RemoveImageOptionsBuilder::new()
        .noprune(true)
        .build();
    docker
        .remove_image(&env.image(Image::Healthy), Some(untag), None)
        .await
        .unwrap();
    let (repo, digest) = digest_ref.split_once('@').unwrap();
    let opts = bollard::query_parameters::CreateImageOptionsBuilder::new()
        .from_image(&format!("{repo}@{digest}"))
        .build();
    futures::TryStreamExt::try_for_each(docker.create_image(Some(opts), None, None), |_| async {
        Ok(())
    })
    .await
    .unwrap();
    let refs = docker.inspect_image(&digest_ref).await.unwrap();
    assert!(refs.repo_digests.unwrap().contains(&digest_ref));

    // Warm: nothing rebuilt, nothing restarted.
    testenv::ensure_with(&s).await.unwrap();
    assert_eq!(testenv::status_with(&s).await.unwrap(), up);

    // A crashed registry is restarted on the next ensure; its data survived, no image rebuilt.
    let old_plain = up.registry(RegistryKind::Plain).pid.unwrap();
    kill(old_plain);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while testenv::status_with(&s)
        .await
        .unwrap()
        .registry(RegistryKind::Plain)
        .pid
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "registry {old_plain} did not die"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    testenv::ensure_with(&s).await.unwrap();
    let recovered = testenv::status_with(&s).await.unwrap();
    assert!(recovered.is_up(), "{recovered}");
    assert_ne!(recovered.registry(RegistryKind::Plain).pid, Some(old_plain));
    assert_eq!(
        recovered.registry(RegistryKind::Auth).pid,
        up.registry(RegistryKind::Auth).pid
    );
    assert_eq!(recovered.images, up.images);

    // Teardown never forces: an image a container still uses stays, and the error says so.
    let user = common::start_detached(&docker, &env.local(Image::Unhealthy))
        .await
        .unwrap();
    let err = testenv::teardown_with(&s).await.unwrap_err().to_string();
    common::remove_container(&docker, &user).await;
    assert_eq!(
        err,
        format!(
            "teardown incomplete: {} is still used by a container",
            env.local(Image::Unhealthy)
        )
    );
    let partly = testenv::status_with(&s).await.unwrap();
    assert!(partly.image(Image::Unhealthy).id.is_some(), "{partly}");
    assert!(partly.image(Image::Busybox).id.is_none(), "{partly}");
    assert!(!s.plain.dir.exists() && !s.auth.dir.exists());

    testenv::teardown_with(&s).await.unwrap();
    let gone = testenv::status_with(&s).await.unwrap();
    assert!(gone.is_gone(), "{gone}");
    assert!(!s.plain.dir.exists() && !s.auth.dir.exists());
    assert_eq!(labelled_images(&s.namespace).await, 0);
    // Idempotent.
    testenv::teardown_with(&s).await.unwrap();
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error_and_nothing_is_created() {
    let root = tempfile::tempdir().unwrap();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut s = isolated(root.path());
    s.auth.addr = squatter.local_addr().unwrap();
    let _cleanup = Cleanup(s.clone());

    let err = testenv::ensure_with(&s).await.unwrap_err().to_string();
    assert!(
        err.contains("auth registry address")
            && err.contains("in use by a process testenv did not start"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    assert!(testenv::status_with(&s).await.unwrap().is_gone());
    assert_eq!(labelled_images(&s.namespace).await, 0);
}

#[tokio::test]
async fn foreign_state_dirs_are_neither_used_nor_deleted() {
    let root = tempfile::tempdir().unwrap();
    let s = isolated(root.path());
    let _cleanup = Cleanup(s.clone());
    std::fs::create_dir_all(&s.auth.dir).unwrap();
    let precious = s.auth.dir.join("precious");
    std::fs::write(&precious, "keep me").unwrap();

    let err = testenv::ensure_with(&s).await.unwrap_err().to_string();
    assert!(err.contains("was not created by testenv"), "{err}");
    assert!(!s.plain.dir.exists());
    assert_eq!(labelled_images(&s.namespace).await, 0);

    let err = testenv::teardown_with(&s).await.unwrap_err().to_string();
    assert!(err.contains("not removing"), "{err}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
}

#[tokio::test]
async fn a_missing_tool_is_a_clear_error_and_nothing_is_created() {
    let root = tempfile::tempdir().unwrap();
    let mut s = isolated(root.path());
    s.tools.docker_registry = root.path().join("no-docker-registry");
    let _cleanup = Cleanup(s.clone());
    let err = testenv::ensure_with(&s).await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "docker-registry not found at {}",
            s.tools.docker_registry.display()
        )
    );
    assert!(!s.plain.dir.exists() && !s.auth.dir.exists());
    assert_eq!(labelled_images(&s.namespace).await, 0);
}

const CHILD_ENV: &str = "HOOKTEST_TESTENV_CHILD";

/// Run as a separate process by `ensures_from_several_processes_are_serialised`.
#[tokio::test]
#[ignore = "child process of ensures_from_several_processes_are_serialised"]
async fn child_process_ensure() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let s = Settings::isolated(
        parts[0],
        Path::new(parts[1]),
        parts[2].parse().unwrap(),
        parts[3].parse().unwrap(),
    );
    testenv::ensure_with(&s).await.unwrap();
}

#[tokio::test]
async fn ensures_from_several_processes_are_serialised() {
    let root = tempfile::tempdir().unwrap();
    let s = isolated(root.path());
    let _cleanup = Cleanup(s.clone());
    let spec = format!(
        "{}|{}|{}|{}",
        s.namespace,
        root.path().display(),
        s.plain.addr.port(),
        s.auth.addr.port()
    );
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            tokio::process::Command::new(&exe)
                .args(["--exact", "child_process_ensure", "--ignored", "--quiet"])
                .env(CHILD_ENV, &spec)
                .output()
        })
        .collect();
    for out in futures::future::join_all(children).await {
        let out = out.unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Without the lock, the losers would have found the ports taken (or pushed twice).
    let st = testenv::status_with(&s).await.unwrap();
    assert!(st.is_up(), "{st}");
}
