//! `kubesim`: run the simulator standalone until Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use kubesim::{SimConfig, Simulator};

/// A Kubernetes API simulator whose pods are real Docker containers.
#[derive(Debug, Parser)]
#[command(name = "kubesim", version)]
struct Args {
    /// YAML config file (SimConfig: token, sandboxImage, faults, deny, volumes, ...)
    #[arg(long)]
    config: Option<PathBuf>,
    /// where to write the kubeconfig (default: <state dir>/kubeconfig)
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// port on 127.0.0.1 (default: a free one)
    #[arg(long)]
    port: Option<u16>,
    /// sandbox image (must be in the local engine)
    #[arg(long)]
    sandbox_image: Option<String>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kubesim=info".into()),
        )
        .init();
    if let Err(e) = run(Args::parse()).await {
        eprintln!("kubesim: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg: SimConfig = match &args.config {
        Some(p) => SimConfig::from_file(p)?,
        None => SimConfig::default(),
    };
    if let Some(k) = args.kubeconfig {
        cfg.kubeconfig_path = Some(k);
    }
    if let Some(p) = args.port {
        cfg.port = p;
    }
    if let Some(i) = args.sandbox_image {
        cfg.sandbox_image = i;
    }
    let sim = Simulator::start(cfg).await?;
    println!("{}", sim.kubeconfig_path.display());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    let removed = sim.shutdown().await;
    eprintln!("kubesim: stopped, removed {removed} containers");
    Ok(())
}
