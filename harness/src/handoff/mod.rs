//! The installed system's boot entry, handed off by the install environment on a disk of
//! its own, for a boot phase without firmware (the builtin microVM; qemu for 4 KiB-sector
//! disks under BIOS, or with `VMTEST_QEMU_BOOT=direct`).
//!
//! At the end of the install phase `harness/installer/handoff.sh` (the script installer's
//! last step; a curtin `late_commands` step) reads the installed system through its
//! mounted target and writes grub.cfg and every kernel and initrd its menu entries name
//! onto the handoff disk ([`format`]). The host then picks grub's default entry from that
//! grub.cfg ([`crate::bootinfo::parse_grub_cfg`]) and copies its kernel and initrd out. So
//! /boot on RAID, LVM, xfs, btrfs or dm-crypt boots as a plain ext4 /boot does: the host
//! never opens a filesystem the guest made.
//!
//! The guest wrote all of it: the header is bounded and checked ([`format::parse`]), sizes
//! are capped by kind before anything is read, nothing is allocated beyond a capped
//! grub.cfg, the kernel and initrd are streamed to their files, every entry's SHA-256 is
//! checked (a write cut short fails by name), and the command line must be short plain
//! text. Each problem is one [`HandoffError`] naming it.

pub mod format;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use format::{Entry, Header};

/// Serial of the handoff disk; the guest sees `/dev/disk/by-id/virtio-vmtest-handoff`.
pub const HANDOFF_DISK_SERIAL: &str = "vmtest-handoff";
/// The handoff disk's file under the test's disks/.
pub const HANDOFF_DISK_FILE: &str = "handoff.img";
/// Its size: sparse, so only what the guest writes takes space. Room for several kernels
/// and initrds of the sizes [`format::FILE_CAP`] allows.
pub const HANDOFF_DISK_SIZE: u64 = 1 << 30;
/// Largest kernel handed on. A distribution bzImage is ~10 MiB.
pub const KERNEL_CAP: u64 = 128 << 20;
/// Longest command line handed on: x86 Linux takes 2048 bytes (COMMAND_LINE_SIZE), and
/// the harness adds `BOOT_IMAGE=...` in front and `panic=-1` behind, as grub and the
/// harness do.
pub const MAX_CMDLINE: usize = 1536;

/// What the boot phase boots.
#[derive(Debug, Clone, PartialEq)]
pub struct BootEntry {
    /// The kernel, copied out of the handoff.
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// The kernel's command line as grub would give it (`BOOT_IMAGE=<path>` and the
    /// entry's `linux` arguments).
    pub cmdline: String,
    /// For messages: the kernel's path as grub.cfg names it.
    pub source: String,
}

/// Why the handoff cannot be booted. Every variant but [`HandoffError::Open`] and
/// [`HandoffError::Output`] is about what the guest wrote.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("cannot read the handoff disk {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the handoff disk is blank: the install environment wrote no handoff (its serial log's `vmtest-handoff:` lines say why)"
    )]
    Blank,
    #[error("the handoff header is not valid: {0}")]
    Header(String),
    #[error("the handoff header's line {line} is not valid: {why}")]
    Line { line: usize, why: String },
    #[error("the handoff header's line {line} names {path:?}, which is {why}")]
    Path {
        line: usize,
        path: String,
        why: &'static str,
    },
    #[error(
        "the handoff's {what} {path} is {size} bytes, over the {cap}-byte limit (not a plausible installed system's file)"
    )]
    TooLarge {
        path: String,
        what: &'static str,
        size: u64,
        cap: u64,
    },
    #[error(
        "the handoff's {path} ({size} bytes at {offset}) runs past the end of the {disk_len}-byte handoff disk"
    )]
    PastEnd {
        path: String,
        offset: u64,
        size: u64,
        disk_len: u64,
    },
    #[error(
        "the handoff's {path} does not match its SHA-256: the install environment's write did not complete"
    )]
    Checksum { path: String },
    #[error("the handoff's {path} cannot be read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the installed system's grub.cfg has no menu entry with a `linux` line")]
    NoMenuEntry,
    #[error(
        "grub's default entry boots {path} as its {what}, which is not in the handoff (it holds: {held})"
    )]
    Missing {
        path: String,
        what: &'static str,
        held: String,
    },
    #[error("grub's default entry's command line is not usable: {0}")]
    Cmdline(String),
    #[error("cannot write {}: {source}", path.display())]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads and checks the header of a handoff disk of `disk_len` bytes.
pub fn read_header<R: Read + Seek>(r: &mut R, disk_len: u64) -> Result<Header, HandoffError> {
    let mut buf = [0u8; format::HEADER_LEN];
    let n = usize::try_from(disk_len.min(format::HEADER_LEN as u64)).unwrap_or(0);
    r.seek(SeekFrom::Start(0))
        .and_then(|_| r.read_exact(&mut buf[..n]))
        .map_err(|source| HandoffError::Read {
            path: "header".into(),
            source,
        })?;
    format::parse(&buf[..n], disk_len)
}

/// Streams an entry's bytes to `sink` in pieces, then checks its SHA-256. The entry was
/// checked to lie inside the disk; a disk shorter than that still ends the copy.
pub fn copy_entry<R: Read + Seek>(
    r: &mut R,
    e: &Entry,
    mut sink: impl FnMut(&[u8]) -> Result<(), HandoffError>,
) -> Result<(), HandoffError> {
    let read_err = |source| HandoffError::Read {
        path: e.path.clone(),
        source,
    };
    r.seek(SeekFrom::Start(e.offset)).map_err(read_err)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut left = e.size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(buf.len()));
        r.read_exact(&mut buf[..want]).map_err(read_err)?;
        hash.update(&buf[..want]);
        sink(&buf[..want])?;
        left -= want as u64;
    }
    if hash.finalize().as_slice() != e.sha256 {
        return Err(HandoffError::Checksum {
            path: e.path.clone(),
        });
    }
    Ok(())
}

/// What grub's default entry boots, resolved against the handoff's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub kernel: Entry,
    pub initrd: Option<Entry>,
    /// The entry's `linux` arguments, checked.
    pub args: String,
}

/// Reads the handoff's grub.cfg (capped by the header's check), picks grub's default
/// entry and finds its kernel and initrd among the handoff's files.
pub fn resolve<R: Read + Seek>(r: &mut R, h: &Header) -> Result<Resolved, HandoffError> {
    let cfg = h.grub_cfg();
    // At most GRUB_CFG_CAP, checked when the header was parsed.
    let mut text = Vec::with_capacity(cfg.size as usize);
    copy_entry(r, cfg, |b| {
        text.extend_from_slice(b);
        Ok(())
    })?;
    let text = String::from_utf8_lossy(&text);
    let (kernel, initrd, args) =
        crate::bootinfo::parse_grub_cfg(&text).ok_or(HandoffError::NoMenuEntry)?;
    let find = |path: &str, what: &'static str| {
        h.file(path).cloned().ok_or_else(|| HandoffError::Missing {
            path: path.chars().take(format::MAX_PATH).collect(),
            what,
            held: h.file_paths().join(", "),
        })
    };
    let kernel = find(&kernel, "kernel")?;
    if kernel.size > KERNEL_CAP {
        return Err(HandoffError::TooLarge {
            path: kernel.path,
            what: "kernel",
            size: kernel.size,
            cap: KERNEL_CAP,
        });
    }
    let initrd = initrd.map(|p| find(&p, "initrd")).transpose()?;
    check_cmdline(&args)?;
    Ok(Resolved {
        kernel,
        initrd,
        args,
    })
}

/// A command line the harness hands to a kernel: at most [`MAX_CMDLINE`] bytes of
/// printable ASCII.
fn check_cmdline(args: &str) -> Result<(), HandoffError> {
    if args.len() > MAX_CMDLINE {
        return Err(HandoffError::Cmdline(format!(
            "{} bytes, over the {MAX_CMDLINE}-byte limit",
            args.len()
        )));
    }
    if let Some(c) = args.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        return Err(HandoffError::Cmdline(format!(
            "it holds {c:?}, not printable ASCII"
        )));
    }
    Ok(())
}

/// Copies an entry to `out` (removed again when the copy fails).
fn copy_out<R: Read + Seek>(r: &mut R, e: &Entry, out: &Path) -> Result<(), HandoffError> {
    let output = |source| HandoffError::Output {
        path: out.to_path_buf(),
        source,
    };
    let mut w = std::io::BufWriter::new(File::create(out).map_err(output)?);
    let copied = copy_entry(r, e, |b| w.write_all(b).map_err(output));
    let flushed = w.flush();
    if copied.is_err() || flushed.is_err() {
        let _ = std::fs::remove_file(out);
    }
    copied?;
    flushed.map_err(output)
}

/// The boot entry the handoff disk at `disk` hands off: its kernel and initrd copied into
/// `out_dir` (`vmlinuz`, `initrd.img`), its command line as grub would give it.
pub fn boot_entry(disk: &Path, out_dir: &Path) -> Result<BootEntry, HandoffError> {
    let open = |source| HandoffError::Open {
        path: disk.to_path_buf(),
        source,
    };
    let mut f = File::open(disk).map_err(open)?;
    let disk_len = f.metadata().map_err(open)?.len();
    let header = read_header(&mut f, disk_len)?;
    let resolved = resolve(&mut f, &header)?;
    let kernel = out_dir.join("vmlinuz");
    copy_out(&mut f, &resolved.kernel, &kernel)?;
    let initrd = match &resolved.initrd {
        Some(e) => {
            let out = out_dir.join("initrd.img");
            copy_out(&mut f, e, &out)?;
            Some(out)
        }
        None => None,
    };
    // grub's `linux` command puts BOOT_IMAGE=<path> before the entry's arguments.
    let cmdline = format!("BOOT_IMAGE={} {}", resolved.kernel.path, resolved.args)
        .trim_end()
        .to_string();
    Ok(BootEntry {
        kernel,
        initrd,
        cmdline,
        source: format!("{} from the handoff", resolved.kernel.path),
    })
}

/// Writes a handoff disk image the way `handoff.sh` does, from (kind, path, bytes):
/// for tests, benchmarks and fuzz seeds. `entries` must hold one grub.cfg.
pub fn write_image(
    out: &mut (impl Write + Seek),
    entries: &[(format::Kind, &str, &[u8])],
) -> std::io::Result<()> {
    let mut header = format!("{} {}\n", format::MAGIC, format::VERSION);
    let mut at = format::DATA_ALIGN;
    for (kind, path, data) in entries {
        let sum: String = Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        header.push_str(&format!("{} {} {sum} {path}\n", kind.name(), data.len()));
        out.seek(SeekFrom::Start(at))?;
        out.write_all(data)?;
        at = (at + data.len() as u64).div_ceil(format::DATA_ALIGN) * format::DATA_ALIGN;
    }
    header.push_str("end\n");
    let mut block = header.into_bytes();
    block.resize(format::HEADER_LEN.max(block.len()), 0);
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&block)
}

#[cfg(test)]
mod tests;
