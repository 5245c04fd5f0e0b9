//! The images `ensure()` builds: run real containers from them and look inside.
#![cfg(feature = "e2e")]

mod common;

use bollard::models::HealthStatusEnum;
use testenv::{FAKE_NODE_VERSION, Image, REQUIRED_APPLETS, local_tag};

fn os_release_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("ID="))
        .unwrap_or_else(|| panic!("no ID= in {out:?}"))
        .trim_matches('"')
        .to_owned()
}

#[tokio::test]
async fn os_release_identifies_the_distribution() {
    testenv::ensure().await.unwrap();
    let docker = common::docker().await;
    for (which, want) in [
        (Image::Busybox, "debian"),
        (Image::AlpineLike, "alpine"),
        (Image::Healthy, "debian"),
        (Image::Unhealthy, "debian"),
        (Image::Runner, "debian"),
    ] {
        let (code, out) = common::run(&docker, local_tag(which), &["cat", "/etc/os-release"], None)
            .await
            .unwrap();
        assert_eq!(code, 0, "{which:?}: {out}");
        assert_eq!(os_release_id(&out), want, "{which:?}");
    }
}

#[tokio::test]
async fn applets_users_and_tmp() {
    testenv::ensure().await.unwrap();
    let docker = common::docker().await;
    let script = format!(
        "for a in {}; do command -v $a >/dev/null || echo MISSING $a; done; \
         stat -c '%a %U' /tmp /home/runner; echo PATH=$PATH",
        REQUIRED_APPLETS.join(" ")
    );
    let (code, out) = common::run(
        &docker,
        local_tag(Image::AlpineLike),
        &["sh", "-c", &script],
        None,
    )
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("MISSING"), "{out}");
    assert!(out.contains("1777 root\n"), "{out}");
    assert!(out.contains("755 runner\n"), "{out}");
    assert!(
        out.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "{out}"
    );

    let (code, out) = common::run(
        &docker,
        local_tag(Image::Busybox),
        &[
            "sh",
            "-c",
            "id -u; whoami; touch /tmp/x && echo tmp-writable",
        ],
        Some("1001"),
    )
    .await
    .unwrap();
    assert_eq!((code, out.as_str()), (0, "1001\nrunner\ntmp-writable\n"));

    // An exit code is data: a failing command reports its code.
    let (code, _) = common::run(
        &docker,
        local_tag(Image::Busybox),
        &["sh", "-c", "exit 7"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(code, 7);
}

#[tokio::test]
async fn runner_image_has_an_externals_tree() {
    testenv::ensure().await.unwrap();
    let docker = common::docker().await;
    let (code, out) = common::run(
        &docker,
        local_tag(Image::Runner),
        &[
            "sh",
            "-c",
            "cd /home/runner/externals && ls && stat -c '%U' node20/bin/node && \
             node20/bin/node --version && node20/bin/node /x/index.js a1",
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!("README\nnode20\nrunner\n{FAKE_NODE_VERSION}\nfake-node20 /x/index.js a1\n")
    );
    // The plain busybox image has no externals.
    let (code, _) = common::run(
        &docker,
        local_tag(Image::Busybox),
        &["test", "-e", "/home/runner/externals"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(code, 1);
}

#[tokio::test]
async fn healthy_image_turns_healthy_after_starting() {
    testenv::ensure().await.unwrap();
    let docker = common::docker().await;
    let seen = common::watch_health(
        &docker,
        local_tag(Image::Healthy),
        HealthStatusEnum::HEALTHY,
    )
    .await
    .unwrap();
    assert_eq!(seen.first(), Some(&HealthStatusEnum::STARTING), "{seen:?}");
    assert!(!seen.contains(&HealthStatusEnum::UNHEALTHY), "{seen:?}");
}

#[tokio::test]
async fn unhealthy_image_turns_unhealthy() {
    testenv::ensure().await.unwrap();
    let docker = common::docker().await;
    let seen = common::watch_health(
        &docker,
        local_tag(Image::Unhealthy),
        HealthStatusEnum::UNHEALTHY,
    )
    .await
    .unwrap();
    assert!(!seen.contains(&HealthStatusEnum::HEALTHY), "{seen:?}");
}

#[tokio::test]
async fn images_carry_the_ownership_labels() {
    testenv::ensure().await.unwrap();
    let docker = common::docker().await;
    for which in Image::ALL {
        let labels = docker
            .inspect_image(local_tag(which))
            .await
            .unwrap()
            .config
            .unwrap()
            .labels
            .unwrap();
        assert_eq!(labels[testenv::LABEL_NAMESPACE], "hooktest");
        assert_eq!(labels[testenv::LABEL_IMAGE], which.name());
        assert_eq!(labels[testenv::LABEL_FINGERPRINT].len(), 64);
    }
}
