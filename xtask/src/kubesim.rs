//! `cargo xtask kubesim [--config FILE] [--kubeconfig PATH] [--port N]`: run the Kubernetes API
//! simulator standalone (after making sure the test images exist), print the kubeconfig path,
//! serve until Ctrl-C, then remove every container it created.
//!
//! Wiring (xtask's Cargo.toml needs `kubesim.workspace = true`): `mod kubesim;` in main.rs and
//! dispatch `kubesim` to `kubesim::run(&rest_of_args)`.

use std::path::PathBuf;

use anyhow::{Context, bail};

fn usage() -> &'static str {
    "usage: cargo xtask kubesim [--config FILE] [--kubeconfig PATH] [--port N] [--sandbox-image IMAGE]"
}

/// Parsed command line (pure).
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    config: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    port: Option<u16>,
    sandbox_image: Option<String>,
}

fn parse(args: &[String]) -> anyhow::Result<Args> {
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value\n{}", usage()))
        };
        match a.as_str() {
            "--config" => out.config = Some(value("--config")?.into()),
            "--kubeconfig" => out.kubeconfig = Some(value("--kubeconfig")?.into()),
            "--port" => {
                let v = value("--port")?;
                out.port = Some(
                    v.parse()
                        .with_context(|| format!("--port: not a port number: {v}"))?,
                );
            }
            "--sandbox-image" => out.sandbox_image = Some(value("--sandbox-image")?),
            "-h" | "--help" => bail!("{}", usage()),
            other => bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    Ok(out)
}

/// Run the simulator until Ctrl-C.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let args = parse(args)?;
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    rt.block_on(async move {
        let mut cfg = match &args.config {
            Some(p) => ::kubesim::SimConfig::from_file(p)?,
            None => ::kubesim::SimConfig::default(),
        };
        if let Some(k) = args.kubeconfig {
            cfg.kubeconfig_path = Some(k);
        }
        if let Some(p) = args.port {
            cfg.port = p;
        }
        if let Some(i) = args.sandbox_image {
            cfg.sandbox_image = i;
        } else {
            // the default sandbox image is the shared test environment's busybox
            testenv::ensure()
                .await
                .context("preparing the test images (testenv)")?;
        }
        let sim = ::kubesim::Simulator::start(cfg).await?;
        println!("{}", sim.kubeconfig_path.display());
        eprintln!("kubesim: serving {} (Ctrl-C to stop)", sim.server);
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        let removed = sim.shutdown().await;
        eprintln!("kubesim: stopped, removed {removed} containers");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let a = parse(&[
            "--port".into(),
            "6443".into(),
            "--config".into(),
            "k.yaml".into(),
        ])
        .unwrap();
        assert_eq!(a.port, Some(6443));
        assert_eq!(a.config, Some(PathBuf::from("k.yaml")));
        assert!(parse(&["--port".into(), "x".into()]).is_err());
        assert!(parse(&["--bogus".into()]).is_err());
    }
}
