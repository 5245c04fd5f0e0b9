//! A container step's files in copy mode: the runner's `_temp` and the workspace into the step
//! pod before the action starts (then the go-ahead to `fs-init`), the workspace and the file
//! commands back after it ends. The workspace lives in the job pod when there is one (copied by
//! its archiver, never by the job image's tar), else on the runner.

use crate::State;
use crate::copy::{self, Endpoint};
use crate::error::Error;
use crate::exec;
use crate::mounts::{Layout, WORK_MOUNT};
use crate::names::{FS_INIT_CONTAINER, FS_SYNC_CONTAINER};
use crate::objects::Cluster;
use crate::pod::{self, ARCHIVER_CONTAINER};
use crate::script_step::{file_commands_back, temp_source};
use crate::settings::CopyBack;
use crate::tarball::Source;

/// The files of one step pod.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepFiles<'a> {
    pub cluster: &'a Cluster,
    /// The step pod.
    pub pod: &'a str,
    pub state: &'a State,
    pub layout: &'a Layout,
    /// The workspace, relative to `_work`.
    pub ws_rel: &'a str,
    /// The administrator's caps on what comes back.
    pub copy_back: CopyBack,
}

impl StepFiles<'_> {
    /// The job pod's archiver, when the workspace lives in the job pod.
    fn job_archiver(&self) -> Option<Endpoint<'_>> {
        match (&self.state.job_pod, self.state.job_container) {
            (Some(job_pod), true) => Some(self.cluster.endpoint(job_pod, ARCHIVER_CONTAINER)),
            _ => None,
        }
    }

    /// The workspace from one pod's `_work` to the other's (both trusted containers).
    async fn workspace_between(
        &self,
        what: &str,
        from: Endpoint<'_>,
        to: Endpoint<'_>,
    ) -> Result<copy::CopyReport, copy::CopyError> {
        let cluster = self.cluster;
        copy::between(
            &cluster.client,
            cluster.heartbeat,
            what,
            from,
            WORK_MOUNT,
            self.ws_rel,
            to,
            WORK_MOUNT,
        )
        .await
    }

    /// `_temp` and the workspace into the step pod's `fs-init`, then its go-ahead.
    pub(crate) async fn copy_in(&self) -> Result<(), Error> {
        let (cluster, ws_rel) = (self.cluster, self.ws_rel);
        let init = cluster.endpoint(self.pod, FS_INIT_CONTAINER);
        let temp = copy::to_pod(
            &cluster.client,
            cluster.heartbeat,
            init,
            "the runner's _temp",
            vec![temp_source(&self.layout.temp())],
            WORK_MOUNT,
        );
        let workspace = async {
            match self.job_archiver() {
                Some(archiver) => {
                    self.workspace_between("the workspace", archiver, init)
                        .await
                }
                None => {
                    copy::to_pod(
                        &cluster.client,
                        cluster.heartbeat,
                        init,
                        "the workspace",
                        vec![Source {
                            dir: self.layout.work_root.join(ws_rel),
                            name: ws_rel.to_owned(),
                            exclude: Vec::new(),
                        }],
                        WORK_MOUNT,
                    )
                    .await
                }
            }
        };
        let (temp, workspace) = tokio::join!(temp, workspace);
        eprintln!("_temp: {}", temp?);
        eprintln!("workspace: {}", workspace?);
        // fs-init exits once the marker is there *and* this exec is gone (see pod::READY_MARKER).
        let go = exec::Command {
            namespace: &cluster.namespace,
            pod: self.pod,
            container: FS_INIT_CONTAINER,
            argv: pod::ready_signal_argv(),
        };
        let (code, _, err) = exec::output(&cluster.client, cluster.heartbeat, &go, 1024).await?;
        if code != 0 {
            return Err(Error::StepNotStarted {
                pod: self.pod.to_owned(),
                marker: pod::READY_MARKER,
                code,
                stderr: err,
            });
        }
        Ok(())
    }

    /// The file commands and the workspace back from the step pod's `fs-sync`.
    pub(crate) async fn copy_out(&self) -> Result<(), Error> {
        let (cluster, ws_rel) = (self.cluster, self.ws_rel);
        let sync = cluster.endpoint(self.pod, FS_SYNC_CONTAINER);
        let temp = self.layout.temp();
        let file_commands =
            file_commands_back(cluster, sync, &temp, self.copy_back.file_commands, &[]);
        let workspace = async {
            match self.job_archiver() {
                Some(archiver) => {
                    self.workspace_between("the workspace back", sync, archiver)
                        .await
                }
                None => {
                    copy::from_pod(
                        &cluster.client,
                        cluster.heartbeat,
                        sync,
                        "the workspace back",
                        WORK_MOUNT,
                        ws_rel,
                        &self.layout.work_root,
                        self.copy_back.workspace,
                        &[],
                    )
                    .await
                }
            }
        };
        let (fc, ws) = tokio::join!(file_commands, workspace);
        eprintln!("file commands: {}", fc?);
        eprintln!("workspace: {}", ws?);
        Ok(())
    }
}
