//! `vmtest doctor`: what this host can do.

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {}

pub fn run(_args: DoctorArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not built yet")
}
