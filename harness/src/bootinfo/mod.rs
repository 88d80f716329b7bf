//! Finding what grub would boot, from the installed disks on the host, for a boot phase
//! without firmware (the builtin microVM boots kernels directly). Reads the partition
//! table (MBR or GPT), opens each ext2/3/4 partition read-only with ext4-view, finds
//! `grub/grub.cfg` (in `/boot` of the root or at the top of a separate /boot), takes its
//! default menu entry's `linux` and `initrd` lines, and copies those files out.
//! No root, no loop devices, no mounting. A /boot inside LVM, RAID or an encrypted volume
//! cannot be read this way and is reported as such.
//!
//! The disks were written by the guest, so nothing here trusts a size found on them:
//! partition tables are read with bounded counts ([`partition`]), a filesystem must fit its
//! partition and have at most [`MAX_BLOCK_GROUPS`] block groups before ext4-view (which
//! allocates per group) sees it, every file is read up to a cap chosen for it
//! ([`GRUB_CFG_CAP`], [`BOOT_FILE_CAP`]) and the kernel and initrd are streamed to their
//! output files, and each step may read at most [`METADATA_READ_BUDGET`] bytes of
//! filesystem metadata besides the file itself.

use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, bail};

mod grub_cfg;
pub mod partition;

pub use grub_cfg::parse_grub_cfg;
pub use partition::{Extent, PartitionError, read_partitions};

/// Largest grub.cfg read. grub-mkconfig writes 5-30 KiB; a megabyte leaves room for many
/// kernels and custom entries.
pub const GRUB_CFG_CAP: u64 = 1 << 20;
/// Largest kernel or initrd copied out. Distribution kernels are ~10 MiB and initrds
/// 30-150 MiB (with firmware); 512 MiB is well above any of them.
pub const BOOT_FILE_CAP: u64 = 512 << 20;
/// Most block groups a filesystem may have to be opened (ext4-view holds every group
/// descriptor in memory): 2^18 groups are 32 TiB with 4 KiB blocks.
pub const MAX_BLOCK_GROUPS: u64 = 1 << 18;
/// Most filesystem metadata (superblock, group descriptors, journal, inodes, directories,
/// extent trees) read in one step, on top of the file being read: bounds the time a
/// hostile filesystem can cost.
pub const METADATA_READ_BUDGET: u64 = 256 << 20;

/// What the boot phase boots.
#[derive(Debug, Clone, PartialEq)]
pub struct BootEntry {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    /// Where it was found (for messages): disk, partition, grub.cfg path.
    pub source: String,
}

/// Why a file on an installed disk was not read.
#[derive(Debug, thiserror::Error)]
pub enum BootFileError {
    #[error(
        "{place}: {path} is {size} bytes, over the {cap}-byte limit for a {what} (the installed system's file is not plausible)"
    )]
    TooLarge {
        place: String,
        path: String,
        what: &'static str,
        size: u64,
        cap: u64,
    },
    #[error("{place}: cannot read {path}: {error}")]
    Unreadable {
        place: String,
        path: String,
        error: String,
    },
    #[error("cannot write {path}: {error}")]
    Output {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Partitions of a disk image (the whole disk when it has no partition table).
pub fn partitions(disk: &Path, block_size: u32) -> anyhow::Result<Vec<Extent>> {
    let mut f = File::open(disk).with_context(|| format!("cannot open {}", disk.display()))?;
    let size = f.metadata()?.len();
    read_partitions(&mut f, size, block_size).with_context(|| format!("{}", disk.display()))
}

/// ext4-view reader over a byte range of a file, drawing on a read budget.
struct SliceReader {
    f: File,
    ext: Extent,
    budget: Rc<Cell<u64>>,
}

impl ext4_view::Ext4Read for SliceReader {
    fn read(
        &mut self,
        start: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        if start.saturating_add(dst.len() as u64) > self.ext.len {
            return Err("read past the end of the partition".into());
        }
        let left = self.budget.get();
        if dst.len() as u64 > left {
            return Err(
                "read budget exhausted (a filesystem this costly to read is not plausible)".into(),
            );
        }
        self.budget.set(left - dst.len() as u64);
        self.f.seek(SeekFrom::Start(self.ext.start + start))?;
        self.f.read_exact(dst)?;
        Ok(())
    }
}

/// Checks an ext2/3/4 superblock against its partition before ext4-view loads it: the
/// filesystem must fit the partition and its group count must be bounded.
fn check_superblock(f: &mut File, ext: Extent) -> Result<(), String> {
    let mut sb = [0u8; 1024];
    if ext.len < 2048 {
        return Err("too small for ext2/3/4".into());
    }
    f.seek(SeekFrom::Start(ext.start + 1024))
        .and_then(|_| f.read_exact(&mut sb))
        .map_err(|e| format!("cannot read its superblock: {e}"))?;
    let u32_at = |at: usize| u32::from_le_bytes(sb[at..at + 4].try_into().unwrap());
    if sb[0x38..0x3a] != [0x53, 0xef] {
        return Err("not ext2/3/4".into());
    }
    let log_block = u32_at(0x18);
    if log_block > 6 {
        return Err(format!("block size 2^{} is not ext4's", 10 + log_block));
    }
    let block_size = 1024u64 << log_block;
    let is_64bit = u32_at(0x60) & 0x80 != 0;
    let hi = if is_64bit {
        u64::from(u32_at(0x150))
    } else {
        0
    };
    let blocks = (hi << 32) | u64::from(u32_at(0x4));
    let fits = blocks
        .checked_mul(block_size)
        .is_some_and(|bytes| bytes <= ext.len);
    if !fits {
        return Err(format!(
            "ext2/3/4 claiming {blocks} blocks of {block_size} bytes does not fit its {}-byte partition",
            ext.len
        ));
    }
    let per_group = u64::from(u32_at(0x20)).max(1);
    let groups = blocks
        .saturating_sub(u64::from(u32_at(0x14)))
        .div_ceil(per_group);
    if groups > MAX_BLOCK_GROUPS {
        return Err(format!(
            "ext2/3/4 with {groups} block groups (more than the {MAX_BLOCK_GROUPS} read)"
        ));
    }
    Ok(())
}

/// An open filesystem and the budget its reader draws on.
struct Fs {
    fs: ext4_view::Ext4,
    budget: Rc<Cell<u64>>,
    /// For messages: disk and partition.
    name: String,
}

impl Fs {
    fn open(disk: &Path, ext: Extent, name: String) -> Result<Fs, String> {
        let mut f = File::open(disk).map_err(|e| format!("cannot open: {e}"))?;
        check_superblock(&mut f, ext)?;
        let budget = Rc::new(Cell::new(METADATA_READ_BUDGET));
        let reader = SliceReader {
            f,
            ext,
            budget: budget.clone(),
        };
        let fs = ext4_view::Ext4::load(Box::new(reader)).map_err(|e| format!("{e}"))?;
        Ok(Fs { fs, budget, name })
    }

    /// Opens `path` if it is a regular file of at most `cap` bytes. `Ok(None)`: not there.
    fn open_capped(
        &self,
        path: &str,
        cap: u64,
        what: &'static str,
    ) -> Result<Option<(ext4_view::File, u64)>, BootFileError> {
        self.budget.set(METADATA_READ_BUDGET.saturating_add(cap));
        let file = match self.fs.open(path) {
            Ok(f) => f,
            Err(ext4_view::Ext4Error::NotFound) => return Ok(None),
            Err(e) => {
                return Err(BootFileError::Unreadable {
                    place: self.name.clone(),
                    path: path.into(),
                    error: e.to_string(),
                });
            }
        };
        let size = file.metadata().len();
        if size > cap {
            return Err(BootFileError::TooLarge {
                place: self.name.clone(),
                path: path.into(),
                what,
                size,
                cap,
            });
        }
        Ok(Some((file, size)))
    }

    /// Feeds the first `size` bytes of `file` to `sink` in pieces of at most a block.
    fn stream(
        &self,
        path: &str,
        mut file: ext4_view::File,
        size: u64,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), BootFileError> {
        let mut buf = vec![0u8; 64 << 10];
        let mut done = 0u64;
        while done < size {
            let n = file
                .read_bytes(&mut buf)
                .map_err(|e| BootFileError::Unreadable {
                    place: self.name.clone(),
                    path: path.into(),
                    error: e.to_string(),
                })?;
            if n == 0 {
                break;
            }
            done += n as u64;
            sink(&buf[..n]).map_err(|e| BootFileError::Unreadable {
                place: self.name.clone(),
                path: path.into(),
                error: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// The text of a grub.cfg (`Ok(None)` when absent), at most [`GRUB_CFG_CAP`] bytes.
    fn read_grub_cfg(&self, path: &str) -> Result<Option<String>, BootFileError> {
        let Some((file, size)) = self.open_capped(path, GRUB_CFG_CAP, "grub.cfg")? else {
            return Ok(None);
        };
        // `size` is at most the cap: reserving it is bounded.
        let mut text = Vec::with_capacity(size as usize);
        self.stream(path, file, size, |b| {
            text.extend_from_slice(b);
            Ok(())
        })?;
        Ok(Some(String::from_utf8_lossy(&text).into_owned()))
    }

    /// Copies a kernel or initrd of at most [`BOOT_FILE_CAP`] bytes to `out`, in pieces.
    fn copy_out(&self, path: &str, what: &'static str, out: &Path) -> Result<(), BootFileError> {
        let Some((file, size)) = self.open_capped(path, BOOT_FILE_CAP, what)? else {
            return Err(BootFileError::Unreadable {
                place: self.name.clone(),
                path: path.into(),
                error: "no such file".into(),
            });
        };
        let output = |error| BootFileError::Output {
            path: out.to_path_buf(),
            error,
        };
        let mut w = std::io::BufWriter::new(File::create(out).map_err(output)?);
        let copied = self.stream(path, file, size, |b| w.write_all(b));
        let flushed = w.flush();
        if copied.is_err() || flushed.is_err() {
            let _ = std::fs::remove_file(out);
        }
        copied?;
        flushed.map_err(output)
    }
}

/// Finds the default grub entry on `disks` ((path, block size)) and copies its kernel and
/// initrd into `out_dir`.
pub fn find_boot(disks: &[(PathBuf, u32)], out_dir: &Path) -> anyhow::Result<BootEntry> {
    let mut looked = Vec::new();
    for (disk, bs) in disks {
        let parts = match partitions(disk, *bs) {
            Ok(p) => p,
            Err(e) => {
                looked.push(format!("{e:#}"));
                continue;
            }
        };
        for (i, ext) in parts.iter().enumerate() {
            let name = format!("{} partition {}", disk.display(), i + 1);
            let fs = match Fs::open(disk, *ext, name.clone()) {
                Ok(fs) => fs,
                Err(why) => {
                    looked.push(format!("{name}: {why}"));
                    continue;
                }
            };
            for cfg in ["/boot/grub/grub.cfg", "/grub/grub.cfg"] {
                let text = match fs.read_grub_cfg(cfg) {
                    Ok(Some(text)) => text,
                    Ok(None) => continue,
                    Err(e @ BootFileError::TooLarge { .. }) => return Err(e.into()),
                    // A path that does not resolve (a dangling link, a file for a
                    // directory) is a place grub.cfg is not.
                    Err(e) => {
                        looked.push(e.to_string());
                        continue;
                    }
                };
                let Some((kernel, initrd, cmdline)) = parse_grub_cfg(&text) else {
                    bail!("{name}: {cfg} has no menu entry with a `linux` line");
                };
                let kernel_out = out_dir.join("vmlinuz");
                fs.copy_out(&kernel, "kernel", &kernel_out)?;
                let initrd = match initrd {
                    Some(p) => {
                        let out = out_dir.join("initrd.img");
                        fs.copy_out(&p, "initrd", &out)?;
                        Some(out)
                    }
                    None => None,
                };
                return Ok(BootEntry {
                    kernel: kernel_out,
                    initrd,
                    cmdline,
                    source: format!("{name} {cfg}"),
                });
            }
            looked.push(format!("{name}: ext4 without grub/grub.cfg"));
        }
    }
    bail!(
        "no grub.cfg on a plain ext2/3/4 partition of the installed disks (a /boot inside LVM, RAID or \
         dm-crypt cannot be read from the host); looked at: {}",
        looked.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use grub_cfg::tests::CFG;
    use std::process::Command;

    /// An msdos disk whose second partition is a separate /boot made by mkfs.ext4 -d
    /// (e2fsprogs): no root needed.
    #[test]
    fn finds_kernel_on_a_separate_boot_partition() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("grub")).unwrap();
        std::fs::write(tree.join("grub/grub.cfg"), CFG).unwrap();
        std::fs::write(tree.join("vmlinuz-6.1"), b"KERNEL").unwrap();
        std::fs::write(tree.join("initrd.img-6.1"), b"INITRD").unwrap();
        let disk = d.path().join("disk.img");
        std::fs::File::create(&disk)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        {
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&disk)
                .unwrap();
            let mut mbr = mbrman::MBR::new_from(&mut f, 512, [1, 2, 3, 4]).unwrap();
            mbr[1] = mbrman::MBRPartitionEntry {
                boot: mbrman::BOOT_INACTIVE,
                first_chs: mbrman::CHS::empty(),
                sys: 0x83,
                last_chs: mbrman::CHS::empty(),
                starting_lba: 2048,
                sectors: 16384,
            };
            mbr[2] = mbrman::MBRPartitionEntry {
                boot: mbrman::BOOT_ACTIVE,
                first_chs: mbrman::CHS::empty(),
                sys: 0x83,
                last_chs: mbrman::CHS::empty(),
                starting_lba: 20480,
                sectors: 40960,
            };
            mbr.write_into(&mut f).unwrap();
        }
        let ok = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", &format!("offset={}", 20480 * 512), "-d"])
            .arg(&tree)
            .arg(&disk)
            .arg("20M")
            .status()
            .expect("prerequisite missing: mkfs.ext4 (Debian package e2fsprogs)");
        assert!(ok.success());
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let b = find_boot(&[(disk.clone(), 512)], &out).unwrap();
        assert_eq!(std::fs::read(&b.kernel).unwrap(), b"KERNEL");
        assert_eq!(
            std::fs::read(b.initrd.as_ref().unwrap()).unwrap(),
            b"INITRD"
        );
        assert_eq!(b.cmdline, "root=UUID=abc ro console=ttyS0");
        assert!(b.source.contains("partition 2"), "{}", b.source);

        // A disk without any grub.cfg says where it looked.
        let blank = d.path().join("blank.img");
        std::fs::File::create(&blank)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let e = find_boot(&[(blank, 512)], &out).unwrap_err().to_string();
        assert!(e.contains("no grub.cfg") && e.contains("blank.img"), "{e}");
    }

    /// A whole-disk ext4 image (no partition table) of `tree`, made by mkfs.ext4 -d, which
    /// keeps sparse files sparse: the image stays a few MiB whatever the files claim.
    fn ext4_image(dir: &Path, tree: &Path, size: &str) -> PathBuf {
        let disk = dir.join("disk.img");
        let ok = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "4096", "-O", "^metadata_csum", "-d"])
            .arg(tree)
            .arg(&disk)
            .arg(size)
            .status()
            .expect("prerequisite missing: mkfs.ext4 (Debian package e2fsprogs)");
        assert!(ok.success());
        disk
    }

    fn tree_with(dir: &Path, cfg_len: Option<u64>, kernel_len: u64) -> PathBuf {
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("boot/grub")).unwrap();
        let cfg = tree.join("boot/grub/grub.cfg");
        std::fs::write(
            &cfg,
            "menuentry 'x' {\n linux /boot/vmlinuz root=/dev/vda1\n initrd /boot/initrd\n}\n",
        )
        .unwrap();
        if let Some(len) = cfg_len {
            File::options()
                .write(true)
                .open(&cfg)
                .unwrap()
                .set_len(len)
                .unwrap();
        }
        let k = File::create(tree.join("boot/vmlinuz")).unwrap();
        k.set_len(kernel_len).unwrap();
        std::fs::write(tree.join("boot/initrd"), b"INITRD").unwrap();
        tree
    }

    /// `truncate -s 15T /boot/grub/grub.cfg` in the guest: ext4-view's `read` would
    /// allocate 15 TiB at once and abort the process; the capped read refuses it by name.
    #[test]
    fn a_huge_sparse_grub_cfg_is_an_error_not_an_abort() {
        let d = tempfile::tempdir().unwrap();
        let tree = tree_with(d.path(), Some(15 << 40), 4096);
        let disk = ext4_image(d.path(), &tree, "64M");
        assert!(
            std::fs::metadata(&disk).unwrap().len() <= 64 << 20,
            "the image itself stays small"
        );
        let e = find_boot(&[(disk, 512)], d.path()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/boot/grub/grub.cfg")
                && msg.contains(&(15u64 << 40).to_string())
                && msg.contains(&GRUB_CFG_CAP.to_string()),
            "{msg}"
        );
        assert!(matches!(
            e.downcast_ref::<BootFileError>(),
            Some(BootFileError::TooLarge { .. })
        ));
    }

    /// A kernel over the cap is refused (and nothing is left behind); one under it is
    /// streamed out in pieces, byte for byte.
    #[test]
    fn kernels_are_capped_and_streamed() {
        let d = tempfile::tempdir().unwrap();
        let tree = tree_with(d.path(), None, BOOT_FILE_CAP + 1);
        let disk = ext4_image(d.path(), &tree, "64M");
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let msg = find_boot(&[(disk.clone(), 512)], &out)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("/boot/vmlinuz")
                && msg.contains("kernel")
                && msg.contains(&BOOT_FILE_CAP.to_string()),
            "{msg}"
        );
        assert!(!out.join("vmlinuz").exists());

        let d = tempfile::tempdir().unwrap();
        let tree = tree_with(d.path(), None, 0);
        let kernel: Vec<u8> = (0..3_000_017u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(tree.join("boot/vmlinuz"), &kernel).unwrap();
        let disk = ext4_image(d.path(), &tree, "64M");
        let b = find_boot(&[(disk, 512)], &out).unwrap();
        assert!(std::fs::read(&b.kernel).unwrap() == kernel);
        assert_eq!(std::fs::read(b.initrd.unwrap()).unwrap(), b"INITRD");
    }

    /// Superblocks claiming more than their partition holds, or more block groups than
    /// the cap, are refused before ext4-view allocates for them.
    #[test]
    fn implausible_superblocks_are_refused_before_loading() {
        let d = tempfile::tempdir().unwrap();
        let tree = tree_with(d.path(), None, 10);
        let disk = ext4_image(d.path(), &tree, "8M");
        let patch = |at: u64, v: u32| {
            let mut f = File::options().write(true).open(&disk).unwrap();
            f.seek(SeekFrom::Start(1024 + at)).unwrap();
            f.write_all(&v.to_le_bytes()).unwrap();
        };
        // 2^32 - 1 blocks in an 8 MiB image.
        patch(0x4, u32::MAX);
        let msg = find_boot(&[(disk.clone(), 512)], d.path())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("does not fit"), "{msg}");
        // As many 1 KiB blocks as fit in a sparse 1 GiB image, one per group.
        File::options()
            .write(true)
            .open(&disk)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        patch(0x18, 0);
        patch(0x4, 1 << 20);
        patch(0x20, 1);
        let msg = find_boot(&[(disk.clone(), 512)], d.path())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("block groups"), "{msg}");
    }
}
