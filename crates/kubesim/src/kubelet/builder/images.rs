//! Which images are emulated builders (`SimConfig::builders`).

use serde::{Deserialize, Serialize};

/// Default Kaniko images the kubelet emulates (keep the first in step with the k8s hook's
/// default builder image).
pub const DEFAULT_KANIKO_IMAGES: [&str; 2] = [
    "docker.io/martizih/kaniko:v1.27.6",
    "gcr.io/kaniko-project/executor:v1.24.0",
];
/// Default BuildKit images the kubelet emulates.
pub const DEFAULT_BUILDKIT_IMAGES: [&str; 1] = ["docker.io/moby/buildkit:v0.29.0-rootless"];
/// Default pusher images the kubelet emulates (crane; keep the first in step with the k8s
/// hook's default pusher image).
pub const DEFAULT_PUSHER_IMAGES: [&str; 1] = ["gcr.io/go-containerregistry/crane:v0.20.6"];
/// Which images are builders (configured in `SimConfig::builders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuilderImages {
    /// Images run as an emulated Kaniko executor.
    #[serde(default = "default_kaniko")]
    pub kaniko: Vec<String>,
    /// Images run as emulated BuildKit rootless (`buildctl-daemonless.sh`, and `tar` in init
    /// containers).
    #[serde(default = "default_buildkit")]
    pub buildkit: Vec<String>,
    /// Images run as an emulated `crane` (the pusher of the builder pods).
    #[serde(default = "default_pusher")]
    pub crane: Vec<String>,
}

fn default_kaniko() -> Vec<String> {
    DEFAULT_KANIKO_IMAGES
        .iter()
        .map(|s| s.to_string())
        .collect()
}
fn default_buildkit() -> Vec<String> {
    DEFAULT_BUILDKIT_IMAGES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn default_pusher() -> Vec<String> {
    DEFAULT_PUSHER_IMAGES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl Default for BuilderImages {
    fn default() -> Self {
        Self {
            kaniko: default_kaniko(),
            buildkit: default_buildkit(),
            crane: default_pusher(),
        }
    }
}

/// `docker.io/library/x` = `library/x` = `x`.
fn normalize_image(image: &str) -> String {
    let i = image
        .strip_prefix("docker.io/")
        .or_else(|| image.strip_prefix("index.docker.io/"))
        .unwrap_or(image);
    i.strip_prefix("library/").unwrap_or(i).to_string()
}

/// The emulated builders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuilderKind {
    /// Kaniko executor.
    Kaniko,
    /// BuildKit rootless.
    BuildKit,
    /// crane (go-containerregistry), the pusher.
    Crane,
}

impl BuilderImages {
    /// Whether `image` is an emulated builder, and which.
    pub fn kind_of(&self, image: &str) -> Option<BuilderKind> {
        let n = normalize_image(image);
        if self.kaniko.iter().any(|k| normalize_image(k) == n) {
            Some(BuilderKind::Kaniko)
        } else if self.buildkit.iter().any(|k| normalize_image(k) == n) {
            Some(BuilderKind::BuildKit)
        } else if self.crane.iter().any(|k| normalize_image(k) == n) {
            Some(BuilderKind::Crane)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_images() {
        let b = BuilderImages::default();
        assert_eq!(
            b.kind_of("martizih/kaniko:v1.27.6"),
            Some(BuilderKind::Kaniko)
        );
        assert_eq!(
            b.kind_of("docker.io/martizih/kaniko:v1.27.6"),
            Some(BuilderKind::Kaniko)
        );
        assert_eq!(
            b.kind_of("gcr.io/kaniko-project/executor:v1.24.0"),
            Some(BuilderKind::Kaniko)
        );
        assert_eq!(
            b.kind_of("moby/buildkit:v0.29.0-rootless"),
            Some(BuilderKind::BuildKit)
        );
        assert_eq!(b.kind_of("martizih/kaniko:v1.27.5"), None);
        assert_eq!(
            b.kind_of("gcr.io/go-containerregistry/crane:v0.20.6"),
            Some(BuilderKind::Crane)
        );
        let c: BuilderImages = serde_yaml_ng::from_str("kaniko: [my/kaniko:1]").unwrap();
        assert_eq!(c.kind_of("my/kaniko:1"), Some(BuilderKind::Kaniko));
        assert_eq!(c.buildkit, default_buildkit());
    }
}
