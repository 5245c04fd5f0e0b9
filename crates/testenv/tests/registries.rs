//! The two registries serve the images; the auth registry really checks the password; a second
//! `ensure()` changes nothing.
#![cfg(feature = "e2e")]

mod common;

use bollard::auth::DockerCredentials;
use testenv::{Image, RegistryKind, local_tag};

fn creds(user: &str, password: &str, server: &str) -> Option<DockerCredentials> {
    Some(DockerCredentials {
        username: Some(user.to_owned()),
        password: Some(password.to_owned()),
        serveraddress: Some(server.to_owned()),
        ..Default::default()
    })
}

#[tokio::test]
async fn plain_registry_serves_every_image() {
    let env = testenv::ensure().await.unwrap();
    let docker = common::docker().await;
    for which in Image::ALL {
        let reference = env.image(which);
        assert_eq!(reference, format!("127.0.0.1:5555/{}", local_tag(which)));
        let pulled = common::pull(&docker, &reference, None)
            .await
            .unwrap_or_else(|e| panic!("pull {reference}: {e}"));
        assert_eq!(
            pulled,
            common::image_id(&docker, local_tag(which)).await,
            "{which:?}"
        );
    }
    // And what was pulled runs.
    let (code, out) = common::run(
        &docker,
        &env.image(Image::AlpineLike),
        &["cat", "/etc/os-release"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("\nID=alpine\n"), "{out}");
}

#[tokio::test]
async fn plain_registry_has_no_unknown_images() {
    let env = testenv::ensure().await.unwrap();
    let docker = common::docker().await;
    let missing = format!("{}/{}/no-such-image:1", env.registry, env.namespace);
    let err = common::pull(&docker, &missing, None).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("not found") || format!("{err:#}").contains("unknown"),
        "{err:#}"
    );
}

#[tokio::test]
async fn auth_registry_checks_the_password() {
    let env = testenv::ensure().await.unwrap();
    assert_eq!(env.auth_registry, "127.0.0.1:5556");
    assert_eq!(env.auth_user, "hookuser");
    let docker = common::docker().await;
    let reference = env.auth_image(Image::AlpineLike);
    assert_eq!(reference, "127.0.0.1:5556/hooktest/alpine-like:1");

    let wrong = common::pull(
        &docker,
        &reference,
        creds(&env.auth_user, "not-the-password", &env.auth_registry),
    )
    .await
    .unwrap_err();
    let wrong = format!("{wrong:#}");
    assert!(
        wrong.contains("unauthorized") || wrong.contains("authentication required"),
        "{wrong}"
    );

    let anonymous = format!(
        "{:#}",
        common::pull(&docker, &reference, None).await.unwrap_err()
    );
    assert!(
        anonymous.contains("no basic auth credentials") || anonymous.contains("unauthorized"),
        "{anonymous}"
    );

    let pulled = common::pull(
        &docker,
        &reference,
        creds(&env.auth_user, &env.auth_password, &env.auth_registry),
    )
    .await
    .unwrap();
    assert_eq!(
        pulled,
        common::image_id(&docker, local_tag(Image::AlpineLike)).await
    );
}

#[tokio::test]
async fn ensure_twice_changes_nothing() {
    testenv::ensure().await.unwrap();
    let before = testenv::status().await.unwrap();
    assert!(before.is_up(), "{before}");
    let env = testenv::ensure().await.unwrap();
    let after = testenv::status().await.unwrap();
    // Same image ids (nothing rebuilt), same registry processes (nothing restarted).
    assert_eq!(before, after);
    for kind in RegistryKind::ALL {
        assert!(before.registry(kind).pid.is_some());
    }
    for which in Image::ALL {
        assert_eq!(
            env.image(which),
            format!("127.0.0.1:5555/hooktest/{}:1", which.name())
        );
        assert_eq!(
            env.auth_image(which),
            format!("127.0.0.1:5556/hooktest/{}:1", which.name())
        );
    }
}

#[tokio::test]
async fn concurrent_ensures_agree() {
    // Each call opens its own lock file description, exactly as separate processes do.
    let (a, b, c) = tokio::join!(testenv::ensure(), testenv::ensure(), testenv::ensure());
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(
        (a.registry.as_str(), b.registry.as_str()),
        ("127.0.0.1:5555", "127.0.0.1:5555")
    );
    assert_eq!(c.auth_registry, "127.0.0.1:5556");
    assert!(testenv::status().await.unwrap().is_up());
}
