//! `vmtest images ...`: build, list, sync, prune and verify ephemeral images.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::build::{self, BuildOptions};
use crate::store::{ImageEntry, ImageOrigin, ImageStore, Verify};

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Image store directory.
    #[arg(long, env = "IMAGE_DIR", default_value = crate::store::DEFAULT_IMAGE_DIR, global = true)]
    pub image_dir: PathBuf,
    /// Seconds to wait for curtin's image sync to release IMAGE_DIR (its
    /// vmtest-images.lock) before giving up; negative: wait for ever.
    #[arg(
        long,
        env = "CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT",
        value_name = "SECONDS",
        value_parser = lock_timeout,
        allow_negative_numbers = true,
        global = true
    )]
    pub lock_timeout: Option<LockTimeout>,
    #[command(subcommand)]
    pub command: ImagesCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ImagesCommand {
    /// Build a new image from Debian packages (needs root and network access to a mirror).
    Build(BuildArgs),
    /// List the images in the store and whether each is valid.
    List {
        /// Re-hash every file instead of trusting unchanged files' cached hashes.
        #[arg(long)]
        verify: bool,
    },
    /// Build when CURTIN_VMTEST_IMAGE_SYNC is true or no usable image exists, then prune.
    Sync {
        #[command(flatten)]
        build: BuildArgs,
        /// Images to keep per release.
        #[arg(long, env = "IMAGES_TO_KEEP", default_value_t = 1)]
        keep: usize,
    },
    /// Remove all but the newest IMAGES_TO_KEEP valid images per release, broken images and
    /// leftovers of failed builds. Images in use are kept.
    Prune {
        #[arg(long, env = "IMAGES_TO_KEEP", default_value_t = 1)]
        keep: usize,
    },
    /// Re-hash every image; fails naming each corrupt file.
    Verify,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// Debian release (suite or codename).
    #[arg(long, default_value = "bookworm")]
    pub release: String,
    /// Architecture.
    #[arg(long, default_value = "amd64")]
    pub arch: String,
    /// Debian mirror (URL or a full "deb ..." line; repeatable). Default: deb.debian.org with
    /// the release's updates and security suites.
    #[arg(long)]
    pub mirror: Vec<String>,
    /// SOURCE_DATE_EPOCH for a reproducible build (default: midnight UTC today).
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    pub source_date_epoch: Option<u64>,
    /// Extra packages for the root filesystem (repeatable).
    #[arg(long = "package")]
    pub packages: Vec<String>,
}

impl BuildArgs {
    fn options(&self) -> BuildOptions {
        let mut o = BuildOptions::new(&self.release, &self.arch);
        o.mirrors = self.mirror.clone();
        o.source_date_epoch = self.source_date_epoch;
        o.extra_packages = self.packages.clone();
        o
    }
}

/// A wait limit for curtin's lock (`None`: for ever), as `--lock-timeout` gives it.
#[derive(Debug, Clone, Copy)]
pub struct LockTimeout(pub Option<Duration>);

fn lock_timeout(v: &str) -> Result<LockTimeout, String> {
    crate::store::parse_lock_timeout(v).map(LockTimeout)
}

pub fn run(args: ImagesArgs) -> Result<()> {
    let store =
        ImageStore::open(&args.image_dir)?.with_lock_timeout(args.lock_timeout.and_then(|t| t.0));
    match args.command {
        ImagesCommand::Build(b) => {
            let built = build::build(&store, &b.options())?;
            print_built(&built);
        }
        ImagesCommand::List { verify } => {
            let entries = store.list(if verify { Verify::Full } else { Verify::Cached })?;
            if entries.is_empty() {
                println!(
                    "no images in {}: run `vmtest images build --release bookworm`",
                    store.dir().display()
                );
            } else {
                print_table(&entries);
            }
        }
        ImagesCommand::Sync { build: b, keep } => {
            let want = crate::env_bool("CURTIN_VMTEST_IMAGE_SYNC", false);
            if store.build_running(&b.release, &b.arch) {
                eprintln!(
                    "another build of {}/{} is running: waiting for it before deciding whether to build",
                    b.release, b.arch
                );
                store.wait_for_build(&b.release, &b.arch)?;
            }
            let have = store.has_valid(&b.release, &b.arch)?;
            let (missing, old_recipe) = if have {
                (
                    store.missing_packages(&b.release, &b.arch, &b.options().carried())?,
                    store.outdated_recipe(&b.release, &b.arch, crate::build::IMAGE_RECIPE)?,
                )
            } else {
                (Vec::new(), None)
            };
            if want || !have || !missing.is_empty() || old_recipe.is_some() {
                let why = if want {
                    "CURTIN_VMTEST_IMAGE_SYNC is set".to_string()
                } else if !have {
                    "no usable image".to_string()
                } else if let Some(old) = old_recipe {
                    format!(
                        "the newest image is of recipe {old}, this builder makes recipe {} (see IMAGE_RECIPE in images/src/build.rs)",
                        crate::build::IMAGE_RECIPE
                    )
                } else {
                    let more = match missing.len() {
                        n if n > 4 => format!(" and {} more", n - 4),
                        _ => String::new(),
                    };
                    format!(
                        "the newest image lacks {}{more} (built by an older builder)",
                        missing
                            .iter()
                            .take(4)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                eprintln!("building {}/{}: {why}", b.release, b.arch);
                let built = build::build(&store, &b.options())?;
                print_built(&built);
            } else {
                eprintln!(
                    "{}/{} is present; set CURTIN_VMTEST_IMAGE_SYNC=1 to build a fresh one",
                    b.release, b.arch
                );
            }
            prune(&store, keep)?;
        }
        ImagesCommand::Prune { keep } => prune(&store, keep)?,
        ImagesCommand::Verify => {
            let entries = store.verify()?;
            print_table(&entries);
            let bad: Vec<&ImageEntry> = entries.iter().filter(|e| !e.is_valid()).collect();
            if !bad.is_empty() {
                for e in &bad {
                    eprintln!(
                        "{}/{}/{}: {}",
                        e.release,
                        e.arch,
                        e.version,
                        e.problem.as_ref().unwrap()
                    );
                }
                bail!(
                    "{} image(s) failed verification: run `vmtest images prune` and `vmtest images build`",
                    bad.len()
                );
            }
        }
    }
    Ok(())
}

fn prune(store: &ImageStore, keep: usize) -> Result<()> {
    let r = store.prune(keep).context("pruning images")?;
    for (what, why) in &r.removed {
        println!("removed {what}: {why}");
    }
    for what in &r.in_use {
        println!("kept {what}: in use (would be pruned)");
    }
    for what in &r.kept {
        println!("kept {what}");
    }
    for (what, why) in &r.skipped {
        println!("not removed {what}: {why}");
    }
    Ok(())
}

fn print_built(b: &build::Built) {
    println!("built {} in {:.0}s", b.dir.display(), b.seconds);
    for (name, item) in &b.index.items {
        println!(
            "  {name:<12} {:>10}  {}",
            build::human(item.size),
            item.path
        );
    }
}

fn print_table(entries: &[ImageEntry]) {
    println!(
        "{:<10} {:<6} {:<12} {:<24} {:>10}  {:<8} STATUS",
        "RELEASE", "ARCH", "VERSION", "KERNEL", "SIZE", "SOURCE"
    );
    for e in entries {
        let origin = match &e.origin {
            ImageOrigin::Vmtest { .. } => "vmtest",
            ImageOrigin::Simplestreams { .. } => "streams",
        };
        let status = match &e.problem {
            None if e.in_use => "ok (in use)".to_string(),
            None => "ok".to_string(),
            Some(p) => format!("BROKEN: {p}"),
        };
        println!(
            "{:<10} {:<6} {:<12} {:<24} {:>10}  {:<8} {status}",
            e.release,
            e.arch,
            e.version,
            e.kernel_release,
            build::human(e.size),
            origin
        );
    }
}
