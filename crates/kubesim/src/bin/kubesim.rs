//! `kubesim`: run the simulator standalone until Ctrl-C.

use clap::Parser;
use kubesim::standalone::{self, Options};

/// A Kubernetes API simulator whose pods are real Docker containers.
#[derive(Debug, Parser)]
#[command(name = "kubesim", version)]
struct Args {
    #[command(flatten)]
    options: Options,
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
    if let Err(e) = run(Args::parse().options).await {
        eprintln!("kubesim: {e:#}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> anyhow::Result<()> {
    let cfg = options.sim_config()?;
    let removed = standalone::serve_until_ctrl_c(cfg, |sim| {
        println!("{}", sim.kubeconfig_path.display());
    })
    .await?;
    eprintln!("kubesim: stopped, removed {removed} containers");
    Ok(())
}
