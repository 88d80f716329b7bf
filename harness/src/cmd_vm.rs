//! `vmtest vm`: boot one VM on the builtin VMM.

#[derive(Debug, clap::Args)]
pub struct VmArgs {}

pub fn run(_args: VmArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not built yet")
}
