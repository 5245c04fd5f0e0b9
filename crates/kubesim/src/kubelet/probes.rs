//! Exec startup / readiness / liveness probes (`pkg/kubelet/prober`). Non-exec probes (httpGet,
//! tcpSocket, grpc) are counted as successful: the host must not reach pod IPs directly.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Probe;

use super::runtime::ExecRequest;
use super::worker::{Slot, Worker};

/// Waits out the probe's `initialDelaySeconds`; returns its period.
async fn initial_delay(p: &Probe) -> Duration {
    let delay = p.initial_delay_seconds.unwrap_or(0).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(delay)).await;
    Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64)
}

impl Worker {
    async fn probe_once(&self, id: &str, p: &Probe) -> bool {
        let Some(cmd) = p.exec.as_ref().and_then(|e| e.command.clone()) else {
            return true;
        };
        let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
        let run = async {
            let req = ExecRequest {
                command: cmd,
                stdin: false,
                stdout: true,
                stderr: true,
                tty: false,
            };
            let mut s = self.kl.runtime.exec(id, req).await.ok()?;
            while s.output.next().await.is_some() {}
            let exec_id = s.exec_id.clone()?;
            self.kl.runtime.exec_exit_code(&exec_id).await.ok()
        };
        matches!(tokio::time::timeout(timeout, run).await, Ok(Some(0)))
    }

    /// Run probes of app container `i` (container `id`) until aborted.
    pub(super) async fn probe_loop(self: Arc<Self>, i: usize, id: String) {
        let c = self.pod.spec.clone().unwrap_or_default().containers[i].clone();
        let slot = Slot::App(i);
        if let Some(p) = &c.startup_probe {
            let period = initial_delay(p).await;
            let mut failures = 0;
            loop {
                if self.probe_once(&id, p).await {
                    break;
                }
                failures += 1;
                if failures >= p.failure_threshold.unwrap_or(3) {
                    let _ = self.kl.runtime.kill(&id, "SIGKILL").await;
                    return;
                }
                tokio::time::sleep(period).await;
            }
        }
        self.set_slot(slot, |s| s.started = true);
        let liveness = c.liveness_probe.clone();
        if let Some(lp) = liveness {
            let me = self.clone();
            let id2 = id.clone();
            tokio::spawn(async move {
                let period = initial_delay(&lp).await;
                let mut failures = 0;
                loop {
                    if me.probe_once(&id2, &lp).await {
                        failures = 0;
                    } else {
                        failures += 1;
                        if failures >= lp.failure_threshold.unwrap_or(3) {
                            let _ = me.kl.runtime.kill(&id2, "SIGKILL").await;
                            return;
                        }
                    }
                    tokio::time::sleep(period).await;
                }
            });
        }
        let Some(p) = c.readiness_probe.clone() else {
            self.set_slot(slot, |s| s.ready = true);
            self.flush();
            return;
        };
        self.flush();
        let period = initial_delay(&p).await;
        let (mut ok_run, mut fail_run) = (0, 0);
        loop {
            let ok = self.probe_once(&id, &p).await;
            if ok {
                ok_run += 1;
                fail_run = 0;
            } else {
                fail_run += 1;
                ok_run = 0;
            }
            let mut changed = false;
            if ok_run >= p.success_threshold.unwrap_or(1) {
                self.set_slot(slot, |s| {
                    changed = !s.ready;
                    s.ready = true;
                });
            } else if fail_run >= p.failure_threshold.unwrap_or(3) || (!ok && ok_run == 0) {
                let threshold_hit = fail_run >= p.failure_threshold.unwrap_or(3);
                self.set_slot(slot, |s| {
                    if threshold_hit && s.ready {
                        changed = true;
                        s.ready = false;
                    }
                });
            }
            if changed {
                self.flush();
            }
            tokio::time::sleep(period).await;
        }
    }
}
