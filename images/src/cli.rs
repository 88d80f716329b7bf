//! `vmtest images ...`

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {}

pub fn run(_args: ImagesArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet (issue 4)")
}
