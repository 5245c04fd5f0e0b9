use super::*;

fn list(value: &str) -> AllowedImages {
    AllowedImages::parse(JOB_IMAGES, Some(value)).unwrap()
}

#[test]
fn references_are_normalised_like_docker_does() {
    for (image, want) in [
        ("alpine", "docker.io/library/alpine:latest"),
        ("alpine:3.20", "docker.io/library/alpine:3.20"),
        ("library/alpine", "docker.io/library/alpine:latest"),
        ("docker.io/alpine", "docker.io/library/alpine:latest"),
        (
            "index.docker.io/library/alpine:3",
            "docker.io/library/alpine:3",
        ),
        ("acme/tool:1", "docker.io/acme/tool:1"),
        ("ghcr.io/acme/tool", "ghcr.io/acme/tool:latest"),
        ("GHCR.io/acme/tool:1", "ghcr.io/acme/tool:1"),
        ("localhost/x", "localhost/x:latest"),
        ("localhost:5000/a/b:2", "localhost:5000/a/b:2"),
        (
            "127.0.0.1:5555/hooktest/busybox:1",
            "127.0.0.1:5555/hooktest/busybox:1",
        ),
        ("redis@sha256:abc", "docker.io/library/redis@sha256:abc"),
        ("redis:7@sha256:abc", "docker.io/library/redis:7@sha256:abc"),
        ("  node:22 ", "docker.io/library/node:22"),
    ] {
        assert_eq!(normalize(image).unwrap().to_string(), want, "{image}");
    }
    assert_eq!(normalize(" "), None);
    assert_eq!(normalize(":tag"), None);
}

#[test]
fn unset_or_blank_allows_everything() {
    for value in [None, Some(""), Some("  ")] {
        let l = AllowedImages::parse(JOB_IMAGES, value).unwrap();
        assert!(!l.is_restricted());
        assert!(l.allows("anything/at:all"));
        assert!(l.allows(""));
    }
    let p = ImagePolicy::from_lookup(|_| None).unwrap();
    assert_eq!(p, ImagePolicy::allow_all());
    assert!(p.check_dockerfile("FROM $X").is_ok());
}

#[test]
fn a_pattern_without_tag_allows_the_repository_with_any_tag() {
    let l = list("alpine");
    for ok in [
        "alpine",
        "alpine:3.20",
        "docker.io/library/alpine",
        "alpine@sha256:abc",
        "index.docker.io/library/alpine:edge",
    ] {
        assert!(l.allows(ok), "{ok}");
    }
    for no in [
        "alpine/git",
        "evil/alpine",
        "ghcr.io/library/alpine",
        "alpinex",
        "",
    ] {
        assert!(!l.allows(no), "{no}");
    }
}

#[test]
fn a_pattern_with_a_tag_matches_the_full_reference() {
    let l = list("node:22-*, postgres:16");
    assert!(l.allows("node:22-bookworm"));
    assert!(l.allows("docker.io/library/node:22-alpine"));
    assert!(!l.allows("node:20"));
    assert!(!l.allows("node"), "node is node:latest");
    assert!(l.allows("postgres:16"));
    assert!(!l.allows("postgres:16.1"));
    assert!(!l.allows("postgres@sha256:abc"), "a digest is not the tag");
    assert!(l.allows("postgres:16@sha256:abc"), "tag and digest: by tag");
    let l = list("redis@sha256:abc");
    assert!(l.allows("redis@sha256:abc"));
    assert!(l.allows("redis:7@sha256:abc"));
    assert!(!l.allows("redis:7"));
}

#[test]
fn globs_do_not_cross_path_components_unless_double_star() {
    let l = list("ghcr.io/acme/*");
    assert!(l.allows("ghcr.io/acme/tool:1"));
    assert!(!l.allows("ghcr.io/acme/team/tool:1"));
    assert!(!l.allows("ghcr.io/acmeevil/tool"));
    let l = list("ghcr.io/acme/**");
    assert!(l.allows("ghcr.io/acme/team/tool:1"));
    assert!(l.allows("ghcr.io/acme/tool"));
    assert!(!l.allows("ghcr.io/other/tool"));
    assert!(!l.allows("ghcr.io.evil.com/acme/tool"));
    // Docker Hub patterns are normalised too: GitLab's `*/*:*` now also allows `debian`.
    let l = list("*/*:*");
    assert!(l.allows("debian"));
    assert!(l.allows("acme/tool:1"));
    assert!(!l.allows("ghcr.io/acme/tool:1"));
    let l = list("*");
    assert!(l.allows("debian:12"), "* is every official image");
    assert!(!l.allows("acme/tool"));
}

#[test]
fn double_star_patterns_are_matched_as_written() {
    let l = list("**");
    for image in ["alpine", "ghcr.io/a/b/c:1", "localhost:5000/x@sha256:1"] {
        assert!(l.allows(image), "{image}");
    }
    let l = list("**/acme/*");
    assert!(l.allows("ghcr.io/acme/tool"));
    assert!(l.allows("acme/tool:2"));
    assert!(!l.allows("ghcr.io/other/tool"));
}

#[test]
fn lists_split_on_commas_and_space_but_not_inside_braces() {
    let l = list("alpine,\n  ghcr.io/acme/{tool,lint}:*  busybox");
    assert!(l.allows("alpine:3"));
    assert!(l.allows("ghcr.io/acme/tool:1"));
    assert!(l.allows("ghcr.io/acme/lint:2"));
    assert!(!l.allows("ghcr.io/acme/other:2"));
    assert!(l.allows("busybox"));
}

#[test]
fn a_bad_pattern_names_the_setting_and_pattern() {
    let e = AllowedImages::parse(SERVICE_IMAGES, Some("redis, [oops"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_SERVICES=\"redis, [oops\" is invalid: pattern \"[oops\""),
        "{e}"
    );
}

#[test]
fn a_refusal_names_image_setting_and_patterns() {
    let p = ImagePolicy::from_lookup(|k| (k == STEP_IMAGES).then(|| "ghcr.io/acme/*".to_owned()))
        .unwrap();
    assert!(p.check(ImageRole::Job, "evil").is_ok());
    let e = p.check(ImageRole::Step, "evil:1").unwrap_err().to_string();
    assert_eq!(
        e,
        "the image \"evil:1\" (docker.io/library/evil:1) is not allowed on this runner: ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_STEP_IMAGES allows only ghcr.io/acme/*"
    );
}

#[test]
fn dockerfile_base_images() {
    let text = "# syntax=docker/dockerfile:1\n\
        ARG V=1\n\
        FROM --platform=linux/amd64 golang:1.22 AS build\n\
        RUN go build\n\
        from \\\n  alpine:3 as Final\n\
        COPY --from=build /x /x\n\
        FROM build\n\
        FROM final AS again\n\
        FROM scratch\n\
        FROM ghcr.io/$OWNER/base\n";
    assert_eq!(
        base_images(text),
        [
            BaseImage::Image("golang:1.22".into()),
            BaseImage::Image("alpine:3".into()),
            BaseImage::Variable("FROM ghcr.io/$OWNER/base".into()),
        ]
    );
    // A stage name used before it is defined is an image.
    assert_eq!(
        base_images("FROM later\nFROM alpine AS later\n"),
        [
            BaseImage::Image("later".into()),
            BaseImage::Image("alpine".into())
        ]
    );
}

#[test]
fn dockerfiles_are_checked_against_the_step_list() {
    let p = ImagePolicy {
        steps: AllowedImages::parse(STEP_IMAGES, Some("alpine golang")).unwrap(),
        ..ImagePolicy::allow_all()
    };
    assert!(
        p.check_dockerfile("FROM golang AS b\nFROM alpine:3\nCOPY --from=b / /\n")
            .is_ok()
    );
    let e = p
        .check_dockerfile("FROM alpine\nFROM evil/miner\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("base image of the Dockerfile: the image \"evil/miner\""),
        "{e}"
    );
    let e = p
        .check_dockerfile("ARG IMG=alpine\nFROM ${IMG}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`FROM ${IMG}`"), "{e}");
    assert!(e.contains(STEP_IMAGES), "{e}");
}
