//! `cargo xtask testenv up|down|status` — the shared test environment (crates/testenv).

use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use testenv::Image;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask testenv",
    about = "Local test images and registries (127.0.0.1:5555 plain, 127.0.0.1:5556 basic auth)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build the test images, start both registries, push the images (idempotent).
    Up,
    /// Stop the registries, remove their data and the test images.
    Down,
    /// Show what exists; exits non-zero unless everything is up.
    Status,
}

/// Runs `testenv <args>`; `args` are the words after `testenv` (a leading `testenv` is skipped).
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let words = args.iter().skip_while(|a| a.as_str() == "testenv").cloned();
    let cli = match Cli::try_parse_from(std::iter::once("testenv".to_owned()).chain(words)) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help / --version
            print!("{e}");
            return Ok(());
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            bail!(
                "{} (try: up, down, status)",
                first.trim_start_matches("error: ")
            )
        }
    };
    // Own runtime on its own thread: works whether or not the caller already runs tokio.
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?
                .block_on(execute(cli.cmd))
        })
        .join()
        .unwrap_or_else(|_| bail!("testenv task panicked"))
    })
}

async fn execute(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Up => {
            let started = Instant::now();
            let env = testenv::ensure().await?;
            let took = started.elapsed();
            println!("{}", testenv::status().await?);
            println!("testenv up in {:.2}s", took.as_secs_f64());
            println!(
                "plain registry {}   auth registry {} (user {}, password in docs/testing.md)",
                env.registry, env.auth_registry, env.auth_user
            );
            for which in Image::ALL {
                println!("  {:<12} {}", which.name(), env.image(which));
            }
            println!(
                "hint: docker run --rm {} cat /etc/os-release",
                testenv::local_tag(Image::Busybox)
            );
            Ok(())
        }
        Cmd::Down => {
            let started = Instant::now();
            testenv::teardown().await?;
            println!("testenv down in {:.2}s", started.elapsed().as_secs_f64());
            Ok(())
        }
        Cmd::Status => {
            let status = testenv::status().await?;
            println!("{status}");
            if !status.is_up() {
                bail!("testenv is not (fully) up; run `cargo xtask testenv up`");
            }
            Ok(())
        }
    }
}
