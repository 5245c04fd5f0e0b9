//! What an emulated builder does with the Docker Engine: build from the context it received,
//! push to the destination with the credentials it found in its docker config, untag.

use std::collections::HashMap;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::BuildInfo;
use bollard::query_parameters::{
    BuildImageOptions, PushImageOptions, RemoveImageOptions, TagImageOptions,
};
use futures::StreamExt;

use super::logbuf::LogBuf;
use crate::kubelet::pull::{entry_credentials, normalize, registry_of};

/// Credentials per registry host from a docker `config.json` (`auths`), like the real builders
/// read `/kaniko/.docker/config.json` or `~/.docker/config.json`.
pub fn docker_config_credentials(doc: &[u8]) -> Result<HashMap<String, DockerCredentials>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(doc).map_err(|e| format!("reading docker config: {e}"))?;
    let mut out = HashMap::new();
    for (key, entry) in v["auths"].as_object().into_iter().flatten() {
        let host = normalize(key);
        out.insert(host.clone(), entry_credentials(entry, host));
    }
    Ok(out)
}

/// One build.
#[derive(Debug, Default)]
pub struct BuildRequest {
    /// The context (uncompressed tar).
    pub context: Vec<u8>,
    /// The Dockerfile's path in it.
    pub dockerfile: String,
    /// The local tag to give the result.
    pub tag: String,
    /// `--build-arg`s.
    pub build_args: HashMap<String, String>,
    /// `--target`.
    pub target: String,
    /// `--label`s.
    pub labels: HashMap<String, String>,
    /// Base-image pull credentials.
    pub credentials: HashMap<String, DockerCredentials>,
}

/// Builds with the engine, writing its output to `log` as the builder would print it.
pub async fn build(
    docker: &Docker,
    req: BuildRequest,
    log: &LogBuf,
    prefix: &str,
) -> Result<(), String> {
    let options = BuildImageOptions {
        dockerfile: req.dockerfile.clone(),
        t: Some(req.tag.clone()),
        rm: true,
        forcerm: true,
        // Builders fetch base images from their registry, never from a local daemon.
        pull: Some("true".into()),
        buildargs: (!req.build_args.is_empty()).then_some(req.build_args),
        labels: (!req.labels.is_empty()).then_some(req.labels),
        target: req.target,
        ..Default::default()
    };
    let creds = (!req.credentials.is_empty()).then_some(req.credentials);
    let mut stream =
        docker.build_image(options, creds, Some(bollard::body_full(req.context.into())));
    let mut pending = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(BuildInfo {
                stream: Some(text), ..
            }) => {
                pending.push_str(&text);
                while let Some(i) = pending.find('\n') {
                    let line: String = pending.drain(..=i).collect();
                    let line = line.trim_end();
                    if !line.is_empty() {
                        log.line(&format!("{prefix}{line}"));
                    }
                }
            }
            Ok(BuildInfo {
                error_detail: Some(d),
                ..
            }) => return Err(d.message.unwrap_or_default().trim().to_string()),
            Ok(BuildInfo {
                status: Some(s), ..
            }) => log.line(&format!("{prefix}{s}")),
            Ok(_) => {}
            Err(e) => return Err(engine_message(&e)),
        }
    }
    if !pending.trim().is_empty() {
        log.line(&format!("{prefix}{}", pending.trim_end()));
    }
    match docker.inspect_image(&req.tag).await {
        Ok(_) => Ok(()),
        Err(_) => Err("the build produced no image".into()),
    }
}

/// The engine's own words.
pub fn engine_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            message.trim().to_string()
        }
        bollard::errors::Error::DockerStreamError { error } => error.trim().to_string(),
        other => other.to_string(),
    }
}

fn split_tag(reference: &str) -> (&str, &str) {
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], &reference[slash + i + 1..]),
        None => (reference, "latest"),
    }
}

/// Tags `source` as `destination`.
pub async fn tag(docker: &Docker, source: &str, destination: &str) -> Result<(), String> {
    let (repo, tag) = split_tag(destination);
    docker
        .tag_image(
            source,
            Some(TagImageOptions {
                repo: Some(repo.into()),
                tag: Some(tag.into()),
            }),
        )
        .await
        .map_err(|e| engine_message(&e))
}

/// Pushes `destination` with the credentials for its registry; returns the manifest digest.
pub async fn push(
    docker: &Docker,
    destination: &str,
    credentials: &HashMap<String, DockerCredentials>,
) -> Result<String, String> {
    let (repo, tag) = split_tag(destination);
    let creds = credentials.get(&registry_of(destination)).cloned();
    let mut stream = docker.push_image(
        repo,
        Some(PushImageOptions {
            tag: Some(tag.into()),
            ..Default::default()
        }),
        creds,
    );
    let mut digest = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| engine_message(&e))?;
        if let Some(d) = info.error_detail.and_then(|d| d.message) {
            return Err(d);
        }
        if let Some(s) = info.status
            && let Some(rest) = s.split("digest: ").nth(1)
        {
            digest = rest.split_whitespace().next().map(str::to_string);
        }
    }
    match digest {
        Some(d) => Ok(d),
        None => {
            // Older engines: the repo digest recorded after the push.
            let info = docker
                .inspect_image(destination)
                .await
                .map_err(|e| engine_message(&e))?;
            info.repo_digests
                .unwrap_or_default()
                .iter()
                .find_map(|r| r.strip_prefix(&format!("{repo}@")).map(str::to_string))
                .ok_or_else(|| format!("the push of {destination} reported no digest"))
        }
    }
}

/// Writes `references` as one docker-format image tarball (`docker save`: `manifest.json` with
/// the references as `RepoTags`, what Kaniko's `--tar-path` and BuildKit's `type=docker`
/// write) to the host file `path`, streamed.
pub async fn save(
    docker: &Docker,
    references: &[&str],
    path: &std::path::Path,
) -> Result<u64, String> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut stream = docker.export_images(references);
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| engine_message(&e))?;
        n += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    file.flush().await.map_err(|e| e.to_string())?;
    Ok(n)
}

/// Loads a docker-format image tarball from the host file `path` (`docker load`, streamed);
/// returns the references it loaded (`RepoTags`, else image IDs).
pub async fn load(docker: &Docker, path: &std::path::Path) -> Result<Vec<String>, String> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let body = tokio_util::io::ReaderStream::new(file);
    let mut stream = docker.import_image_stream(
        bollard::query_parameters::ImportImageOptions {
            quiet: true,
            ..Default::default()
        },
        body,
        None,
    );
    let mut loaded = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| engine_message(&e))?;
        if let Some(d) = info.error_detail.and_then(|d| d.message) {
            return Err(d);
        }
        for line in info.stream.iter().flat_map(|s| s.lines()) {
            if let Some(r) = line
                .strip_prefix("Loaded image: ")
                .or_else(|| line.strip_prefix("Loaded image ID: "))
            {
                loaded.push(r.trim().to_string());
            }
        }
    }
    if loaded.is_empty() {
        return Err(format!("{}: the tarball holds no image", path.display()));
    }
    Ok(loaded)
}

/// The engine's ID (config digest) of a local image.
pub async fn image_id(docker: &Docker, reference: &str) -> Result<String, String> {
    docker
        .inspect_image(reference)
        .await
        .map_err(|e| engine_message(&e))?
        .id
        .ok_or_else(|| format!("{reference} has no ID"))
}

/// Removes a local tag (builders leave nothing behind on the node).
pub async fn untag(docker: &Docker, reference: &str) {
    let _ = docker
        .remove_image(
            reference,
            Some(RemoveImageOptions {
                force: false,
                noprune: false,
                ..Default::default()
            }),
            None,
        )
        .await;
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn config_credentials() {
        let doc = serde_json::json!({"auths": {
            "127.0.0.1:5556": {"auth": base64::engine::general_purpose::STANDARD.encode("u:p")},
            "http://localhost:5556/v2/": {"username": "u2", "password": "p2"},
        }});
        let c = docker_config_credentials(doc.to_string().as_bytes()).unwrap();
        assert_eq!(c["127.0.0.1:5556"].password.as_deref(), Some("p"));
        assert_eq!(c["localhost:5556"].username.as_deref(), Some("u2"));
        assert!(docker_config_credentials(b"{").is_err());
        assert_eq!(
            split_tag("127.0.0.1:5556/a/b:t"),
            ("127.0.0.1:5556/a/b", "t")
        );
        assert_eq!(
            split_tag("127.0.0.1:5556/a/b"),
            ("127.0.0.1:5556/a/b", "latest")
        );
    }
}
