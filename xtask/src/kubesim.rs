//! `cargo xtask kubesim [--config FILE] [--kubeconfig PATH] [--port N] [--sandbox-image IMAGE]`:
//! run the Kubernetes API simulator standalone (after making sure the test images exist), print
//! the kubeconfig path, serve until Ctrl-C, then remove every container it created. The flags
//! are the `kubesim` binary's (`kubesim::standalone::Options`).
//!
//! Wiring (xtask's Cargo.toml needs `kubesim.workspace = true`): `mod kubesim;` in main.rs and
//! dispatch `kubesim` to `kubesim::run(&rest_of_args)`.

use anyhow::Context;
use clap::Parser;
use kubesim::standalone::{self, Options};

/// The command line: kubesim's own standalone options.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask kubesim")]
struct Args {
    #[command(flatten)]
    options: Options,
}

/// Parsed command line (pure).
fn parse(args: &[String]) -> anyhow::Result<Options> {
    let argv = std::iter::once("cargo xtask kubesim").chain(args.iter().map(String::as_str));
    Ok(Args::try_parse_from(argv)?.options)
}

/// Run the simulator until Ctrl-C.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let options = parse(args)?;
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    rt.block_on(async move {
        let default_sandbox = options.sandbox_image.is_none();
        let cfg = options.sim_config()?;
        if default_sandbox {
            // the default sandbox image is the shared test environment's busybox
            testenv::ensure()
                .await
                .context("preparing the test images (testenv)")?;
        }
        let removed = standalone::serve_until_ctrl_c(cfg, |sim| {
            println!("{}", sim.kubeconfig_path.display());
            eprintln!("kubesim: serving {} (Ctrl-C to stop)", sim.server);
        })
        .await?;
        eprintln!("kubesim: stopped, removed {removed} containers");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
