//! The simulator run standalone (the `kubesim` binary, `cargo xtask kubesim`): a config file
//! with the command line's settings over it, served until Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;

use crate::config::{ConfigError, SimConfig};
use crate::sim::Simulator;

/// What a standalone run's command line sets.
#[derive(Debug, Default, Clone, PartialEq, Eq, clap::Args)]
pub struct Options {
    /// YAML config file (SimConfig: token, sandboxImage, faults, deny, volumes, ...)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// where to write the kubeconfig (default: <state dir>/kubeconfig)
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// port on 127.0.0.1 (default: a free one)
    #[arg(long)]
    pub port: Option<u16>,
    /// sandbox image (must be in the local engine)
    #[arg(long)]
    pub sandbox_image: Option<String>,
}

impl Options {
    /// The config file's settings (the defaults without one) with the command line's over them.
    pub fn sim_config(self) -> Result<SimConfig, ConfigError> {
        let mut cfg = match &self.config {
            Some(p) => SimConfig::from_file(p)?,
            None => SimConfig::default(),
        };
        if let Some(k) = self.kubeconfig {
            cfg.kubeconfig_path = Some(k);
        }
        if let Some(p) = self.port {
            cfg.port = p;
        }
        if let Some(i) = self.sandbox_image {
            cfg.sandbox_image = i;
        }
        Ok(cfg)
    }
}

/// Starts the simulator, hands it to `started` (which tells where it is), serves until Ctrl-C,
/// then removes every container it created; returns how many.
pub async fn serve_until_ctrl_c(
    cfg: SimConfig,
    started: impl FnOnce(&Simulator),
) -> anyhow::Result<usize> {
    let sim = Simulator::start(cfg).await?;
    started(&sim);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(sim.shutdown().await)
}
