//! Volumes, mounts and ports of the generated pods (pure).

use hooklib::Mount;
use hooklib::ports::PortMapping;
use k8s_openapi::api::core::v1::{
    ContainerPort, EmptyDirVolumeSource, PersistentVolumeClaimVolumeSource, Volume, VolumeMount,
};
use std::path::{Path, PathBuf};

/// The volume holding `_work` (an emptyDir in copy mode, the PVC in volume mode).
pub const WORK_VOLUME: &str = "work";
/// The emptyDir `fs-init` fills with the runner's `externals`.
pub const EXTERNALS_VOLUME: &str = "externals";
/// Where `_work` is mounted in job containers (and in the helpers of step pods).
pub const WORK_MOUNT: &str = "/__w";
/// Where `externals` is mounted in job containers.
pub const EXTERNALS_MOUNT: &str = "/__e";
/// Where `fs-init` sees the externals volume.
pub const FS_INIT_EXTERNALS: &str = "/mnt/externals";

/// Where the job's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `_work` is streamed into an emptyDir of each pod (the default, `kubernetes-novolume`).
    Copy,
    /// `_work` is the PVC `claim`, shared with the runner pod.
    Volume {
        /// The PersistentVolumeClaim's name.
        claim: String,
        /// How pods are kept on the runner's node.
        placement: Placement,
    },
}

/// How a volume-mode pod lands on the node holding the PVC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// `spec.nodeName`: bypasses the scheduler.
    NodeName(String),
    /// Required node affinity on the node's name: the scheduler still runs.
    Affinity(String),
    /// The runner's node is unknown: let the scheduler place the pod (RWX volumes).
    Anywhere,
}

impl Placement {
    /// The one placement rule of volume mode: on the runner pod's node — by `nodeName`, or by
    /// required node affinity with the kube scheduler — or anywhere when that node is unknown.
    pub fn on_runner_node(
        runner: Option<&k8s_openapi::api::core::v1::Pod>,
        kube_scheduler: bool,
    ) -> Self {
        match runner
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.node_name.clone())
        {
            Some(n) if kube_scheduler => Self::Affinity(n),
            Some(n) => Self::NodeName(n),
            None => Self::Anywhere,
        }
    }
}

/// Host paths of the runner's work tree, and where the workspace sits in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `_work` on the runner (parent of `RUNNER_TEMP`).
    pub work_root: PathBuf,
    /// `GITHUB_WORKSPACE` relative to `_work`, e.g. `repo/repo`.
    pub workspace_rel: Option<String>,
}

/// Bad mount or port input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// A user volume outside `_work`.
    #[error(
        "volume {0:?} is outside the runner's work folder {1}: the Kubernetes hook can only mount folders of _work (or use the pod template for other volumes)"
    )]
    OutsideWork(String, String),
    /// A port range (valid, but a pod has no port ranges).
    #[error("invalid port mapping {0:?}: port ranges are not supported by the Kubernetes hook")]
    PortRange(String),
}

impl Layout {
    /// The layout from `RUNNER_TEMP` (or, without it, the parent of `RUNNER_WORKSPACE`) and
    /// `GITHUB_WORKSPACE`.
    pub fn new(
        runner_temp: Option<&Path>,
        runner_workspace: Option<&Path>,
        github_workspace: Option<&Path>,
    ) -> Option<Self> {
        let work_root = runner_temp
            .and_then(Path::parent)
            .or_else(|| runner_workspace.and_then(Path::parent))?
            .to_path_buf();
        let workspace_rel = github_workspace
            .and_then(|w| w.strip_prefix(&work_root).ok())
            .map(|r| r.to_string_lossy().trim_matches('/').to_owned())
            .filter(|r| !r.is_empty());
        Some(Self {
            work_root,
            workspace_rel,
        })
    }

    /// `_work/_temp` on the runner.
    pub fn temp(&self) -> PathBuf {
        self.work_root.join("_temp")
    }

    /// A host path as a path relative to `_work`, when it is inside it.
    pub fn relative(&self, host: &str) -> Option<String> {
        Path::new(host)
            .strip_prefix(&self.work_root)
            .ok()
            .map(|r| r.to_string_lossy().trim_matches('/').to_owned())
    }
}

/// The pod's volumes: `work` and `externals`.
pub fn pod_volumes(storage: &Storage) -> Vec<Volume> {
    let work = match storage {
        Storage::Copy => Volume {
            name: WORK_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        Storage::Volume { claim, .. } => Volume {
            name: WORK_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            }),
            ..Volume::default()
        },
    };
    vec![
        work,
        Volume {
            name: EXTERNALS_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ]
}

/// A mount of (a sub-folder of) the work volume.
pub fn work_mount(path: &str, sub_path: Option<&str>, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: WORK_VOLUME.into(),
        mount_path: path.into(),
        sub_path: sub_path.filter(|s| !s.is_empty()).map(Into::into),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// The job container's mounts: `_work` at `/__w`, `externals` at `/__e`, and `/github/home`,
/// `/github/workflow` from `_work/_temp` (so whatever reaches `_temp` reaches them), then the
/// workflow's own volumes.
pub fn job_mounts(layout: &Layout, user: &[Mount]) -> Result<Vec<VolumeMount>, MountError> {
    let mut mounts = vec![
        work_mount(WORK_MOUNT, None, false),
        VolumeMount {
            name: EXTERNALS_VOLUME.into(),
            mount_path: EXTERNALS_MOUNT.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        work_mount("/github/home", Some("_temp/_github_home"), false),
        work_mount("/github/workflow", Some("_temp/_github_workflow"), false),
    ];
    mounts.extend(user_mounts(layout, user)?);
    Ok(mounts)
}

/// A service container's mounts: `_work` at `/__w` and the service's own volumes.
pub fn service_mounts(layout: &Layout, user: &[Mount]) -> Result<Vec<VolumeMount>, MountError> {
    let mut mounts = vec![work_mount(WORK_MOUNT, None, false)];
    mounts.extend(user_mounts(layout, user)?);
    Ok(mounts)
}

/// The action container's mounts in a step pod, as the runner lays them out for docker.
pub fn step_mounts(layout: &Layout) -> Vec<VolumeMount> {
    vec![
        work_mount("/github/workspace", layout.workspace_rel.as_deref(), false),
        work_mount("/github/home", Some("_temp/_github_home"), false),
        work_mount("/github/workflow", Some("_temp/_github_workflow"), false),
        work_mount(
            "/github/file_commands",
            Some("_temp/_runner_file_commands"),
            false,
        ),
        work_mount("/github/runner_temp", Some("_temp"), false),
    ]
}

/// The workflow's `volumes:` as sub-paths of `_work` (absolute sources must lie inside it;
/// relative ones are taken relative to it).
fn user_mounts(layout: &Layout, user: &[Mount]) -> Result<Vec<VolumeMount>, MountError> {
    user.iter()
        .map(|m| {
            let source = m.source_volume_path.as_deref().unwrap_or_default();
            let sub = if source.starts_with('/') {
                layout.relative(source).ok_or_else(|| {
                    MountError::OutsideWork(
                        m.user_provided_value
                            .clone()
                            .unwrap_or_else(|| source.to_owned()),
                        layout.work_root.display().to_string(),
                    )
                })?
            } else {
                source.trim_matches('/').to_owned()
            };
            Ok(work_mount(&m.target_volume_path, Some(&sub), m.read_only))
        })
        .collect()
}

/// Container ports from the `ports:` (`80`, `8080:80`, `127.0.0.1:8080:80/udp`, parsed by hooklib).
///
/// No `hostPort` is set: every container of the pod shares its network, so the job reaches a
/// service on `localhost:<containerPort>`, and host ports would collide between jobs on a node.
pub fn container_ports(mappings: &[PortMapping]) -> Result<Vec<ContainerPort>, MountError> {
    let mut ports: Vec<ContainerPort> = Vec::new();
    for m in mappings {
        if !m.container.is_single() {
            return Err(MountError::PortRange(m.to_string()));
        }
        let port = i32::from(m.container.first);
        let protocol = m.protocol.as_str().to_ascii_uppercase();
        if !ports
            .iter()
            .any(|p| p.container_port == port && p.protocol.as_deref() == Some(&protocol))
        {
            ports.push(ContainerPort {
                container_port: port,
                protocol: Some(protocol),
                ..ContainerPort::default()
            });
        }
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(
            Some(Path::new("/home/runner/_work/_temp")),
            None,
            Some(Path::new("/home/runner/_work/repo/repo")),
        )
        .unwrap()
    }

    #[test]
    fn layout_from_runner_paths() {
        let l = layout();
        assert_eq!(l.work_root, Path::new("/home/runner/_work"));
        assert_eq!(l.workspace_rel.as_deref(), Some("repo/repo"));
        assert_eq!(
            l.relative("/home/runner/_work/repo/repo/x"),
            Some("repo/repo/x".into())
        );
        assert_eq!(l.relative("/etc"), None);
    }

    #[test]
    fn volume_mode_places_pods_on_the_runners_node() {
        let runner: k8s_openapi::api::core::v1::Pod = serde_json::from_value(
            serde_json::json!({"spec": {"containers": [], "nodeName": "n1"}}),
        )
        .unwrap();
        assert_eq!(
            Placement::on_runner_node(Some(&runner), false),
            Placement::NodeName("n1".into())
        );
        assert_eq!(
            Placement::on_runner_node(Some(&runner), true),
            Placement::Affinity("n1".into())
        );
        assert_eq!(Placement::on_runner_node(None, false), Placement::Anywhere);
    }

    #[test]
    fn ports() {
        let parse = |specs: &[&str]| -> Vec<PortMapping> {
            specs
                .iter()
                .map(|s| PortMapping::parse(s).unwrap())
                .collect()
        };
        let p = container_ports(&parse(&["80", "8080:80", "127.0.0.1:5353:53/udp"])).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].container_port, p[0].host_port), (80, None));
        assert_eq!(
            (p[1].container_port, p[1].protocol.as_deref()),
            (53, Some("UDP"))
        );
        assert_eq!(
            container_ports(&parse(&["8000-8001:8000-8001"])).unwrap_err(),
            MountError::PortRange("8000-8001:8000-8001/tcp".into())
        );
    }

    #[test]
    fn user_volumes_must_be_in_work() {
        let inside = Mount {
            source_volume_path: Some("/home/runner/_work/cache".into()),
            target_volume_path: "/cache".into(),
            read_only: true,
            ..Mount::default()
        };
        let m = job_mounts(&layout(), &[inside]).unwrap();
        let last = m.last().unwrap();
        assert_eq!(last.sub_path.as_deref(), Some("cache"));
        assert_eq!(last.read_only, Some(true));
        let outside = Mount {
            source_volume_path: Some("/var/lib/data".into()),
            target_volume_path: "/data".into(),
            ..Mount::default()
        };
        let e = job_mounts(&layout(), &[outside]).unwrap_err();
        assert!(e.to_string().contains("/var/lib/data"), "{e}");
    }
}
