//! The runner administrator's image policy, shared by both hooks (GitLab Runner's
//! `allowed_images` / `allowed_services` are the model).
//!
//! Three lists of glob patterns, one per kind of container: the job container
//! ([`JOB_IMAGES`]), services ([`SERVICE_IMAGES`]) and container steps ([`STEP_IMAGES`]; for a
//! Dockerfile action, every base image of its `FROM` lines). An unset list allows every image
//! (drop-in); a set list allows only the images one of its patterns matches.
//!
//! Matching is done on *normalised* references, so the way a workflow spells an image does not
//! matter: `alpine`, `library/alpine:latest` and `docker.io/library/alpine:latest` are the same
//! image. Patterns are normalised the same way, so `alpine`, `*/*:*` or `ghcr.io/acme/**` mean
//! what they look like:
//!
//! - A reference is read as an [`ImageRef`] (`[registry/]path[:tag][@digest]`, Docker's
//!   registry rule, `docker.io` and `library/` by default, registries in lower case). An image
//!   without tag or digest is `:latest`.
//! - A pattern whose first component contains `**` is matched as written (`**` alone allows
//!   everything; `**/acme/*` is `acme/*` on any registry). Any other pattern is normalised like
//!   an image, except that no tag is added.
//! - A pattern without a tag or digest matches the *repository* whatever the tag or digest
//!   (`alpine` allows `alpine:3.20` and `alpine@sha256:…`; GitLab needs two entries for that).
//!   A pattern with a tag (`node:22-*`) or digest matches the full reference; an image with both
//!   a tag and a digest also matches by `repo:tag` and by `repo@digest`.
//! - Globs: `*` and `?` never match `/`; `**` as a whole component matches any number of
//!   components; `[…]` and `{a,b}` as usual (the `globset` crate).
//!
//! Lists are separated by commas, white space or new lines (a comma inside `{…}` belongs to the
//! pattern).

use crate::image_ref::ImageRef;
use globset::{GlobBuilder, GlobMatcher};

/// Allowed job-container images.
pub const JOB_IMAGES: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_IMAGES";
/// Allowed service images.
pub const SERVICE_IMAGES: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_SERVICES";
/// Allowed container-step images (and Dockerfile actions' base images).
pub const STEP_IMAGES: &str = "ACTIONS_RUNNER_CONTAINER_HOOKS_ALLOWED_STEP_IMAGES";

/// What an image is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRole {
    /// The job container.
    Job,
    /// A service container.
    Service,
    /// A container step (or a base image of a Dockerfile action).
    Step,
}

/// A policy setting could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}={value:?} is invalid: pattern {pattern:?}: {reason}")]
pub struct PolicyError {
    /// The variable.
    pub setting: &'static str,
    /// Its whole value.
    pub value: String,
    /// The pattern that is wrong.
    pub pattern: String,
    /// Why.
    pub reason: String,
}

/// An image the policy does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the image {image:?} ({normalized}) is not allowed on this runner: {setting} allows only {allowed}"
)]
pub struct ImageRefused {
    /// The image as the workflow wrote it.
    pub image: String,
    /// Its normalised reference.
    pub normalized: String,
    /// The setting that refused it.
    pub setting: &'static str,
    /// The setting's patterns, as written.
    pub allowed: String,
}

/// A Dockerfile whose base images cannot all be checked or are not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerfileRefused {
    /// A base image is not allowed.
    #[error("base image of the Dockerfile: {0}")]
    Image(#[from] ImageRefused),
    /// A `FROM` line the hook cannot resolve (a build argument names the image).
    #[error(
        "the Dockerfile's line `{line}` names its base image through a build argument, which {setting} cannot check: write the image in the FROM line"
    )]
    Unresolvable {
        /// The `FROM` line.
        line: String,
        /// The setting that is in force.
        setting: &'static str,
    },
}

/// A container the administrator's policy refuses, named for the job log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAllowed {
    /// The container's image.
    #[error("{what}: {source}")]
    Image {
        /// Which container, e.g. `the job container (node:22)`.
        what: String,
        /// The image and the setting.
        source: ImageRefused,
    },
    /// A base image of a Dockerfile action.
    #[error("cannot build the action image from {dockerfile}: {source}")]
    Dockerfile {
        /// The Dockerfile's host path.
        dockerfile: String,
        /// The base image and the setting.
        source: DockerfileRefused,
    },
    /// A Dockerfile the policy has to check cannot be read.
    #[error("cannot build the action image from {dockerfile}: {reason}")]
    DockerfileUnreadable {
        /// The Dockerfile's host path.
        dockerfile: String,
        /// Why.
        reason: String,
    },
}

/// Normalises an image reference (`alpine` → `docker.io/library/alpine:latest` when
/// displayed). `None` for a blank reference; the rules are [`ImageRef`]'s.
pub fn normalize(image: &str) -> Option<ImageRef> {
    ImageRef::parse(image)
}

/// One compiled pattern.
#[derive(Debug, Clone)]
struct Pattern {
    matcher: GlobMatcher,
    /// Whether the pattern names a tag or digest (else it matches the repository).
    with_tag: bool,
}

impl Pattern {
    fn new(text: &str) -> Result<Self, String> {
        let first = text.split('/').next().unwrap_or(text);
        let (glob, with_tag) = if first.contains("**") {
            let last = text.rsplit('/').next().unwrap_or(text);
            (text.to_owned(), last.contains(':') || text.contains('@'))
        } else {
            let r = ImageRef::parse(text).ok_or("has no repository")?;
            let mut glob = r.repository();
            if let Some(t) = r.tag() {
                glob.push(':');
                glob.push_str(t);
            }
            if let Some(d) = r.digest() {
                glob.push('@');
                glob.push_str(d);
            }
            (glob, r.tag().is_some() || r.digest().is_some())
        };
        let matcher = GlobBuilder::new(&glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| e.kind().to_string())?
            .compile_matcher();
        Ok(Self { matcher, with_tag })
    }

    fn matches(&self, r: &ImageRef) -> bool {
        let repository = r.repository();
        if !self.with_tag {
            return self.matcher.is_match(&repository);
        }
        let mut forms = vec![r.to_string()];
        if let (Some(t), Some(d)) = (r.tag(), r.digest()) {
            forms.push(format!("{repository}:{t}"));
            forms.push(format!("{repository}@{d}"));
        }
        forms.iter().any(|f| self.matcher.is_match(f))
    }
}

/// Splits a list on commas and white space outside `{…}`.
fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            c if c.is_whitespace() && depth == 0 => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.retain(|p| !p.is_empty());
    out
}

/// One setting's allowed images: unset allows everything.
#[derive(Debug, Clone)]
pub struct AllowedImages {
    setting: &'static str,
    /// `None`: unset.
    patterns: Option<Vec<(String, Pattern)>>,
}

impl AllowedImages {
    /// Every image allowed (the setting is unset).
    pub fn any(setting: &'static str) -> Self {
        Self {
            setting,
            patterns: None,
        }
    }

    /// Parses the value of `setting`; `None` or blank allows everything.
    pub fn parse(setting: &'static str, value: Option<&str>) -> Result<Self, PolicyError> {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return Ok(Self::any(setting));
        };
        let patterns = split_list(value)
            .into_iter()
            .map(|p| match Pattern::new(&p) {
                Ok(compiled) => Ok((p, compiled)),
                Err(reason) => Err(PolicyError {
                    setting,
                    value: value.to_owned(),
                    pattern: p,
                    reason,
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            setting,
            patterns: Some(patterns),
        })
    }

    /// Whether the setting restricts anything.
    pub fn is_restricted(&self) -> bool {
        self.patterns.is_some()
    }

    /// The variable this list comes from.
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// Whether `image` is allowed. A blank image is allowed only when nothing is restricted.
    pub fn allows(&self, image: &str) -> bool {
        let Some(patterns) = &self.patterns else {
            return true;
        };
        let Some(r) = normalize(image) else {
            return false;
        };
        patterns.iter().any(|(_, p)| p.matches(&r))
    }

    /// `Ok` when `image` is allowed, else the refusal naming the setting.
    pub fn check(&self, image: &str) -> Result<(), ImageRefused> {
        if self.allows(image) {
            return Ok(());
        }
        let patterns = self.patterns.as_deref().unwrap_or_default();
        Err(ImageRefused {
            image: image.to_owned(),
            normalized: normalize(image).map_or_else(|| "no image".to_owned(), |r| r.to_string()),
            setting: self.setting,
            allowed: patterns
                .iter()
                .map(|(text, _)| text.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// The administrator's image policy: one list per [`ImageRole`].
#[derive(Debug, Clone)]
pub struct ImagePolicy {
    /// [`JOB_IMAGES`].
    pub job: AllowedImages,
    /// [`SERVICE_IMAGES`].
    pub services: AllowedImages,
    /// [`STEP_IMAGES`].
    pub steps: AllowedImages,
}

impl Default for ImagePolicy {
    fn default() -> Self {
        Self::allow_all()
    }
}

impl PartialEq for ImagePolicy {
    /// Policies are equal when they were read from the same patterns.
    fn eq(&self, other: &Self) -> bool {
        let texts = |a: &AllowedImages| {
            a.patterns
                .as_ref()
                .map(|p| p.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>())
        };
        [(&self.job, &other.job), (&self.services, &other.services)]
            .into_iter()
            .chain([(&self.steps, &other.steps)])
            .all(|(a, b)| texts(a) == texts(b))
    }
}

impl Eq for ImagePolicy {}

impl ImagePolicy {
    /// No restriction (every setting unset).
    pub fn allow_all() -> Self {
        Self {
            job: AllowedImages::any(JOB_IMAGES),
            services: AllowedImages::any(SERVICE_IMAGES),
            steps: AllowedImages::any(STEP_IMAGES),
        }
    }

    /// Reads the three settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, PolicyError> {
        Ok(Self {
            job: AllowedImages::parse(JOB_IMAGES, lookup(JOB_IMAGES).as_deref())?,
            services: AllowedImages::parse(SERVICE_IMAGES, lookup(SERVICE_IMAGES).as_deref())?,
            steps: AllowedImages::parse(STEP_IMAGES, lookup(STEP_IMAGES).as_deref())?,
        })
    }

    /// The list for `role`.
    pub fn list(&self, role: ImageRole) -> &AllowedImages {
        match role {
            ImageRole::Job => &self.job,
            ImageRole::Service => &self.services,
            ImageRole::Step => &self.steps,
        }
    }

    /// Whether `image` may be used as `role`.
    pub fn allows(&self, role: ImageRole, image: &str) -> bool {
        self.list(role).allows(image)
    }

    /// `Ok` when `image` may be used as `role`.
    pub fn check(&self, role: ImageRole, image: &str) -> Result<(), ImageRefused> {
        self.list(role).check(image)
    }

    /// Checks every base image of a Dockerfile action against the step list. Unrestricted: `Ok`
    /// without reading anything.
    pub fn check_dockerfile(&self, dockerfile: &str) -> Result<(), DockerfileRefused> {
        if !self.steps.is_restricted() {
            return Ok(());
        }
        for base in base_images(dockerfile) {
            match base {
                BaseImage::Image(image) => self.steps.check(&image)?,
                BaseImage::Variable(line) => {
                    return Err(DockerfileRefused::Unresolvable {
                        line,
                        setting: self.steps.setting,
                    });
                }
            }
        }
        Ok(())
    }

    /// `Ok` when the container `what` (e.g. `the job container (node:22)`) may use `image` as
    /// `role`.
    pub fn check_container(
        &self,
        role: ImageRole,
        what: &str,
        image: &str,
    ) -> Result<(), NotAllowed> {
        self.check(role, image).map_err(|source| NotAllowed::Image {
            what: what.to_owned(),
            source,
        })
    }

    /// A container step `what`: its `image`, or else — when the step list is restricted — every
    /// base image of its Dockerfile at the host path `dockerfile`, read with [`read_dockerfile`].
    pub fn check_step(
        &self,
        what: &str,
        image: Option<&str>,
        dockerfile: Option<&str>,
    ) -> Result<(), NotAllowed> {
        if let Some(image) = image {
            return self.check_container(ImageRole::Step, what, image);
        }
        let Some(path) = dockerfile.filter(|_| self.steps.is_restricted()) else {
            return Ok(());
        };
        let text = read_dockerfile(std::path::Path::new(path)).map_err(|reason| {
            NotAllowed::DockerfileUnreadable {
                dockerfile: path.to_owned(),
                reason,
            }
        })?;
        self.check_dockerfile(&text)
            .map_err(|source| NotAllowed::Dockerfile {
                dockerfile: path.to_owned(),
                source,
            })
    }
}

/// A `FROM` line's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseImage {
    /// An image pulled by the build.
    Image(String),
    /// The image is named through a variable: the whole line.
    Variable(String),
}

/// The images a Dockerfile's `FROM` lines pull, in order: `scratch` and earlier stages
/// (`FROM build AS final`) are not images. Comments, line continuations (`\`) and
/// `--platform=…` are understood.
pub fn base_images(dockerfile: &str) -> Vec<BaseImage> {
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in dockerfile.lines() {
        let t = line.trim();
        if t.starts_with('#') {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                logical.push(std::mem::take(&mut cur));
            }
        }
    }
    logical.push(cur);
    let mut stages: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in logical {
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
        let Some(image) = rest.first() else {
            continue;
        };
        let earlier_stage = stages.contains(&image.to_ascii_lowercase());
        if image.contains('$') {
            out.push(BaseImage::Variable(line.trim().to_owned()));
        } else if !image.eq_ignore_ascii_case("scratch") && !earlier_stage {
            out.push(BaseImage::Image((*image).to_owned()));
        }
        if let [_, as_kw, name, ..] = rest.as_slice()
            && as_kw.eq_ignore_ascii_case("AS")
        {
            stages.push(name.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests;

/// The largest Dockerfile whose base images are checked against the policy.
pub const DOCKERFILE_CAP: u64 = 1 << 20;

/// Reads at most [`DOCKERFILE_CAP`] bytes of the Dockerfile at `path` (a file of the action,
/// so of the workflow's choosing: bounded). The error says why, in words for the job log.
pub fn read_dockerfile(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(DOCKERFILE_CAP + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > DOCKERFILE_CAP {
        return Err(format!(
            "it is larger than {DOCKERFILE_CAP} bytes, too large to check its base images"
        ));
    }
    Ok(text)
}
