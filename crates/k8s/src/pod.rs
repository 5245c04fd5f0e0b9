//! Pure builders of the pods the hook creates: the job pod and container-step pods.

use crate::mounts::{
    self, EXTERNALS_VOLUME, FS_INIT_EXTERNALS, Layout, MountError, Placement, Storage, WORK_MOUNT,
};
use crate::names::{
    FS_INIT_CONTAINER, FS_SYNC_CONTAINER, JOB_CONTAINER, ROLE_LABEL, RUNNER_POD_LABEL,
    TOKEN_ANNOTATION,
};
use crate::options::{self, OptionsError};
use hooklib::PrepareJob;
use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvVar, LocalObjectReference, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSecurityContext, PodSpec, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

/// The group id that owns the pods' volumes (the runner image's user).
pub const FS_GROUP: i64 = 1001;
/// The file a copy-mode step pod's `fs-init` waits for before the action may start. The hook's
/// exec writes its own PID into it (atomically, by rename) and `fs-init` exits only once that
/// process is gone: the container never ends under the exec that signals it (an exec still
/// attached to a container that exits is killed, exit 137).
pub const READY_MARKER: &str = "/__w/.hook-ready";
/// The job pod's trusted archiver (copy mode): a container of the runner image sharing the work
/// volume, in which every `tar` of the job pod runs, so the job image's own `tar` (which the job
/// can replace) is never used and images without `tar` work.
pub const ARCHIVER_CONTAINER: &str = "hook-archiver";
/// The archiver's command: idle, and gone at once on SIGTERM so the pod's deletion is quick.
pub const ARCHIVER_SCRIPT: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

/// `fs-init`'s script: wait for [`READY_MARKER`], then for the exec that wrote it to end.
pub fn ready_wait_script() -> String {
    let m = READY_MARKER;
    format!(
        "while [ ! -s {m} ]; do sleep 0.05; done; read pid < {m}; \
         case \"$pid\" in ''|*[!0-9]*) ;; *) while [ -d \"/proc/$pid\" ]; do sleep 0.05; done ;; esac; \
         rm -f {m}"
    )
}

/// The exec that lets a step pod's `fs-init` go: writes the exec's PID into [`READY_MARKER`].
pub fn ready_signal_argv() -> Vec<String> {
    let m = READY_MARKER;
    vec![
        "sh".into(),
        "-c".into(),
        format!("echo $$ > {m}.tmp && mv -f {m}.tmp {m}"),
    ]
}

/// What every generated pod shares.
#[derive(Debug, Clone, PartialEq)]
pub struct PodContext {
    /// The runner pod's name (labels).
    pub runner_pod: String,
    /// The runner pod as owner, so its pods are garbage-collected with it.
    pub owner: Option<OwnerReference>,
    /// A per-invocation token (annotation) recognising our own objects after a retried create.
    pub token: String,
    /// `ACTIONS_RUNNER_IMAGE`.
    pub runner_image: String,
    /// Copy or volume mode.
    pub storage: Storage,
    /// Host paths of the runner's work tree.
    pub layout: Layout,
    /// Cost labels (`arc-context-*`) for the job, service-bearing and step pods; never used as
    /// selectors.
    pub cost_labels: BTreeMap<String, String>,
}

impl PodContext {
    /// The context of this invocation's pods: the runner pod (`runner`, if found) as owner, copy
    /// or volume mode from the settings (volume-mode pods placed by
    /// [`Placement::on_runner_node`]), a fresh token.
    pub fn new(settings: &crate::Settings, runner: Option<&Pod>, layout: Layout) -> Self {
        let storage = match &settings.claim_name {
            None => Storage::Copy,
            Some(claim) => Storage::Volume {
                claim: claim.clone(),
                placement: Placement::on_runner_node(runner, settings.use_kube_scheduler),
            },
        };
        Self {
            runner_pod: settings.runner_pod.clone(),
            owner: runner.and_then(crate::objects::owner_of),
            token: uuid::Uuid::new_v4().to_string(),
            runner_image: settings.runner_image.clone(),
            storage,
            layout,
            cost_labels: settings.pod_cost_labels(),
        }
    }
}

/// Input the hook cannot turn into a pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodSpecError {
    /// Neither a job container nor a service.
    #[error("prepare_job has neither a job container nor services: nothing to run")]
    NothingToRun,
    /// A container without an image.
    #[error("the {0} has no image")]
    NoImage(String),
    /// `createOptions` could not be read.
    #[error("the {0}: {1}")]
    Options(String, OptionsError),
    /// A volume or port.
    #[error("the {0}: {1}")]
    Mount(String, MountError),
    /// Container steps need `GITHUB_WORKSPACE` inside `_work`.
    #[error(
        "GITHUB_WORKSPACE is not set or not inside the runner's work folder: a container step needs it to mount /github/workspace"
    )]
    NoWorkspace,
}

/// A job pod and what the response and the log need to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPod {
    /// The pod to create.
    pub pod: Pod,
    /// Container name of each input service, in input order.
    pub service_names: Vec<String>,
    /// Warnings to print (ignored `createOptions`).
    pub warnings: Vec<String>,
}

impl PodContext {
    fn metadata(&self, name: &str, role: &str) -> ObjectMeta {
        let mut labels = labels(&self.runner_pod, role);
        for (k, v) in &self.cost_labels {
            // The hook's own labels are never overridden.
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                TOKEN_ANNOTATION.to_owned(),
                self.token.clone(),
            )])),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }

    fn base_spec(&self) -> PodSpec {
        let mut spec = PodSpec {
            restart_policy: Some("Never".into()),
            // Job code never gets the namespace's service-account token; a pod template that
            // sets `automountServiceAccountToken` or `serviceAccountName` decides instead.
            automount_service_account_token: Some(false),
            security_context: Some(PodSecurityContext {
                fs_group: Some(FS_GROUP),
                // A PVC full of files is not re-chowned on every job.
                fs_group_change_policy: Some("OnRootMismatch".into()),
                ..PodSecurityContext::default()
            }),
            volumes: Some(mounts::pod_volumes(&self.storage)),
            ..PodSpec::default()
        };
        if let Storage::Volume { placement, .. } = &self.storage {
            place(&mut spec, placement);
        }
        spec
    }

    /// The init container copying the runner's `externals` into the externals volume.
    fn externals_init(&self) -> Container {
        Container {
            name: FS_INIT_CONTAINER.into(),
            image: Some(self.runner_image.clone()),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                format!("cp -a /home/runner/externals/. {FS_INIT_EXTERNALS}/"),
            ]),
            volume_mounts: Some(vec![VolumeMount {
                name: EXTERNALS_VOLUME.into(),
                mount_path: FS_INIT_EXTERNALS.into(),
                ..VolumeMount::default()
            }]),
            ..Container::default()
        }
    }

    /// The job pod's [`ARCHIVER_CONTAINER`]: the runner image, the work volume at `/__w`.
    fn archiver(&self) -> Container {
        Container {
            name: ARCHIVER_CONTAINER.into(),
            image: Some(self.runner_image.clone()),
            command: Some(vec!["sh".into(), "-c".into(), ARCHIVER_SCRIPT.into()]),
            volume_mounts: Some(vec![mounts::work_mount(WORK_MOUNT, None, false)]),
            ..Container::default()
        }
    }
}

/// The labels of every object of the job: `runner-pod` (as upstream) and the object's role.
pub fn labels(runner_pod: &str, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            RUNNER_POD_LABEL.to_owned(),
            crate::names::runner_label_value(runner_pod),
        ),
        (ROLE_LABEL.to_owned(), role.to_owned()),
    ])
}

/// The label selector of everything this runner's jobs created: only the `runner-pod` label,
/// whose value is unique per runner pod ([`crate::names::runner_label_value`]).
pub fn runner_selector(runner_pod: &str) -> String {
    format!(
        "{RUNNER_POD_LABEL}={}",
        crate::names::runner_label_value(runner_pod)
    )
}

/// Puts a pod on its node: `nodeName`, or a required node affinity on the node's name.
pub fn place(spec: &mut PodSpec, placement: &Placement) {
    match placement {
        Placement::NodeName(node) => spec.node_name = Some(node.clone()),
        Placement::Affinity(node) => spec.affinity = Some(node_affinity(node)),
        Placement::Anywhere => {}
    }
}

fn node_affinity(node: &str) -> Affinity {
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_fields: Some(vec![NodeSelectorRequirement {
                        key: "metadata.name".into(),
                        operator: "In".into(),
                        values: Some(vec![node.to_owned()]),
                    }]),
                    ..NodeSelectorTerm::default()
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// The container's environment: the runner's variables, then `GITHUB_ACTIONS=true` and
/// `CI=true` unless given.
fn env(vars: &BTreeMap<String, String>) -> Vec<EnvVar> {
    let mut env: Vec<EnvVar> = vars
        .iter()
        .filter(|(k, _)| k.as_str() != "GITHUB_ACTIONS")
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            ..EnvVar::default()
        })
        .collect();
    env.push(EnvVar {
        name: "GITHUB_ACTIONS".into(),
        value: Some("true".into()),
        ..EnvVar::default()
    });
    if !vars.contains_key("CI") {
        env.push(EnvVar {
            name: "CI".into(),
            value: Some("true".into()),
            ..EnvVar::default()
        });
    }
    env
}

/// A container's `command` and `args`.
type CommandArgs = (Option<Vec<String>>, Option<Vec<String>>);

fn command_and_args(spec: &hooklib::Container) -> CommandArgs {
    let command = spec.entry_point().map(|e| vec![e.to_owned()]);
    (command, non_empty(spec.args.clone()))
}

/// Builds the job pod: the job container (kept alive with `tail -f /dev/null` unless an
/// entrypoint is given), one container per service, in copy mode the [`ARCHIVER_CONTAINER`],
/// the `fs-init` init container, volumes, labels and the owner reference. The template is applied afterwards.
pub fn job_pod(
    ctx: &PodContext,
    name: &str,
    args: &PrepareJob,
    pull_secrets: &[String],
) -> Result<JobPod, PodSpecError> {
    if args.container.is_none() && args.services.is_empty() {
        return Err(PodSpecError::NothingToRun);
    }
    let mut warnings = Vec::new();
    let mut containers = Vec::new();
    if let Some(job) = &args.container {
        let what = "job container".to_owned();
        let image = job
            .image
            .clone()
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| PodSpecError::NoImage(what.clone()))?;
        let (mut command, mut cargs) = command_and_args(job);
        if command.is_none() {
            command = Some(vec!["tail".into()]);
            cargs = Some(vec!["-f".into(), "/dev/null".into()]);
        }
        let opts = options::parse(job.create_options.as_deref())
            .map_err(|e| PodSpecError::Options(what.clone(), e))?;
        if !opts.ignored.is_empty() || opts.readiness.is_some() {
            warnings.push(format!(
                "the job container's options are not supported by the Kubernetes hook and were ignored: {}",
                job.create_options.as_deref().unwrap_or_default()
            ));
        }
        containers.push(Container {
            name: JOB_CONTAINER.into(),
            image: Some(image),
            command,
            args: cargs,
            env: Some(env(&job.environment_variables)),
            ports: non_empty(
                mounts::container_ports(&job.ports)
                    .map_err(|e| PodSpecError::Mount(what.clone(), e))?,
            ),
            working_dir: job.working_directory.clone().filter(|w| !w.is_empty()),
            volume_mounts: Some(
                mounts::job_mounts(&ctx.layout, &job.user_mount_volumes)
                    .map_err(|e| PodSpecError::Mount(what.clone(), e))?,
            ),
            ..Container::default()
        });
    }
    let service_names = crate::names::service_container_names(
        args.services
            .iter()
            .map(|s| s.image.as_deref().unwrap_or_default()),
    );
    for (i, (svc, cname)) in args.services.iter().zip(&service_names).enumerate() {
        let what = format!("service #{} ({cname})", i + 1);
        let image = svc
            .image
            .clone()
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| PodSpecError::NoImage(what.clone()))?;
        let (command, cargs) = command_and_args(svc);
        let opts = options::parse(svc.create_options.as_deref())
            .map_err(|e| PodSpecError::Options(what.clone(), e))?;
        if !opts.ignored.is_empty() {
            warnings.push(format!(
                "service {cname}: options not supported by the Kubernetes hook were ignored: {} (use the pod template's ${cname} container instead)",
                opts.ignored.join(" ")
            ));
        }
        containers.push(Container {
            name: cname.clone(),
            image: Some(image),
            command,
            args: cargs,
            env: Some(env(&svc.environment_variables)),
            ports: non_empty(
                mounts::container_ports(&svc.ports)
                    .map_err(|e| PodSpecError::Mount(what.clone(), e))?,
            ),
            readiness_probe: opts.readiness,
            volume_mounts: Some(
                mounts::service_mounts(&ctx.layout, &svc.user_mount_volumes)
                    .map_err(|e| PodSpecError::Mount(what.clone(), e))?,
            ),
            ..Container::default()
        });
    }
    // Copy mode: the workspace and `_temp` are streamed in and out by the archiver.
    if args.container.is_some() && ctx.storage == Storage::Copy {
        containers.push(ctx.archiver());
    }
    let mut spec = ctx.base_spec();
    spec.containers = containers;
    spec.init_containers = Some(vec![ctx.externals_init()]);
    spec.image_pull_secrets = pull_secret_refs(pull_secrets);
    Ok(JobPod {
        pod: Pod {
            metadata: ctx.metadata(name, "job"),
            spec: Some(spec),
            ..Pod::default()
        },
        service_names,
        warnings,
    })
}

fn pull_secret_refs(names: &[String]) -> Option<Vec<LocalObjectReference>> {
    non_empty(
        names
            .iter()
            .map(|n| LocalObjectReference { name: n.clone() })
            .collect(),
    )
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// Builds a container-step pod running `image` with its own ENTRYPOINT unless the step gives
/// one, the repaired args, the step environment and the `/github/*` mounts.
///
/// In copy mode the pod also has the `fs-init` init container, which waits for the hook to
/// stream the workspace in (it exits when [`READY_MARKER`] appears and its writer is gone), and the `fs-sync`
/// container, which stays up after the action so its file commands can be copied back.
/// `pull_secrets` lets a built image (Kaniko) be pulled from a private registry.
pub fn step_pod(
    ctx: &PodContext,
    name: &str,
    image: &str,
    step: &hooklib::Container,
    pull_secrets: &[String],
) -> Result<Pod, PodSpecError> {
    if ctx.layout.workspace_rel.is_none() {
        return Err(PodSpecError::NoWorkspace);
    }
    let (command, args) = command_and_args(step);
    let action = Container {
        name: JOB_CONTAINER.into(),
        image: Some(image.to_owned()),
        command,
        args,
        env: Some(env(&step.environment_variables)),
        working_dir: step.working_directory.clone().filter(|w| !w.is_empty()),
        volume_mounts: Some(mounts::step_mounts(&ctx.layout)),
        ..Container::default()
    };
    let mut spec = ctx.base_spec();
    spec.image_pull_secrets = pull_secret_refs(pull_secrets);
    match ctx.storage {
        Storage::Copy => {
            let helper = |name: &str, script: String| Container {
                name: name.into(),
                image: Some(ctx.runner_image.clone()),
                command: Some(vec!["sh".into(), "-c".into(), script]),
                volume_mounts: Some(vec![mounts::work_mount(WORK_MOUNT, None, false)]),
                ..Container::default()
            };
            spec.init_containers = Some(vec![helper(FS_INIT_CONTAINER, ready_wait_script())]);
            spec.containers = vec![
                action,
                helper(FS_SYNC_CONTAINER, "exec tail -f /dev/null".into()),
            ];
        }
        // No helpers: the runner's `_work` is mounted directly.
        Storage::Volume { .. } => spec.containers = vec![action],
    }
    // A container action brings its own tools: no externals.
    if let Some(volumes) = spec.volumes.as_mut() {
        volumes.retain(|v| v.name != EXTERNALS_VOLUME);
    }
    Ok(Pod {
        metadata: ctx.metadata(name, "step"),
        spec: Some(spec),
        ..Pod::default()
    })
}
