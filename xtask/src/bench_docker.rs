//! Placeholder until this task lands.

pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("`cargo xtask bench_docker` is not available yet")
}
