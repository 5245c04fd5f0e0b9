//! Placeholder until this task lands.

pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("`cargo xtask testenv` is not available yet")
}
