//! What a virtio-blk disk is made of, as the user states it, checked before the VM starts.

use std::collections::HashSet;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Longest serial virtio-blk can report (GET_ID's buffer).
pub const MAX_SERIAL_LEN: usize = virtio_bindings::virtio_blk::VIRTIO_BLK_ID_BYTES as usize;
/// virtio-blk counts capacity and request positions in 512-byte sectors whatever the block
/// size (virtio 1.2, 5.2.4; the kernel header has no name for it).
pub const SECTOR_SIZE: u64 = 512;

/// One disk: a raw image file (sparse files are fine) or a block device.
///
/// Parsed from `PATH[,serial=S][,ro][,block-size=N]` (see [`FromStr`]), or made with
/// [`BlockConfig::new`] and its fields set: plain data, checked when the VM starts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlockConfig {
    pub path: PathBuf,
    /// Shown to the guest through GET_ID; udev makes it `/dev/disk/by-id/virtio-<serial>`.
    pub serial: Option<String>,
    pub read_only: bool,
    /// Logical (and physical) block size: 512 or 4096.
    pub block_size: u32,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockConfigError {
    #[error("disk image {path}: no such file; create it first (e.g. `truncate -s 10G {path}`)")]
    NotFound { path: PathBuf },
    #[error("disk image {path} is a directory, not an image file")]
    IsDirectory { path: PathBuf },
    #[error(
        "disk image {path} is neither a regular file nor a block device; give a raw image file"
    )]
    NotADisk { path: PathBuf },
    #[error("disk image {path}: permission denied opening it {mode}; fix its permissions{hint}")]
    PermissionDenied {
        path: PathBuf,
        mode: &'static str,
        hint: &'static str,
    },
    #[error("disk image {path}: cannot open: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("disk image {path} is already in use by another VM (file lock held)")]
    Locked { path: PathBuf },
    #[error("disk serial {serial:?} is {len} bytes long; virtio-blk allows at most 20")]
    SerialTooLong { serial: String, len: usize },
    #[error("disk serial {serial:?} may only contain printable ASCII without spaces or commas")]
    SerialInvalid { serial: String },
    #[error("disk serial {serial:?} is used by more than one disk ({first} and {second})")]
    DuplicateSerial {
        serial: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("disk block size {value} is not supported; use 512 or 4096")]
    BadBlockSize { value: String },
    #[error("disk spec {spec:?}: {reason} (expected PATH[,serial=S][,ro][,block-size=512|4096])")]
    BadSpec { spec: String, reason: String },
}

impl BlockConfig {
    /// A read-write disk with 512-byte blocks and no serial.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            serial: None,
            read_only: false,
            block_size: 512,
        }
    }

    /// Checks everything that does not need the file: serial and block size.
    pub fn validate_fields(&self) -> Result<(), BlockConfigError> {
        if let Some(s) = &self.serial {
            validate_serial(s)?;
        }
        if self.block_size != 512 && self.block_size != 4096 {
            return Err(BlockConfigError::BadBlockSize {
                value: self.block_size.to_string(),
            });
        }
        Ok(())
    }

    /// Validates the fields and opens the image as the device will use it (read-write unless
    /// `read_only`), taking a lock so two VMs cannot write the same image.
    pub fn open(&self) -> Result<DiskImage, BlockConfigError> {
        self.validate_fields()?;
        let path = &self.path;
        let meta = std::fs::metadata(path).map_err(|e| open_error(path, e, self.read_only))?;
        if meta.is_dir() {
            return Err(BlockConfigError::IsDirectory { path: path.clone() });
        }
        let ft = meta.file_type();
        if !ft.is_file() && !ft.is_block_device() {
            return Err(BlockConfigError::NotADisk { path: path.clone() });
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(!self.read_only)
            .open(path)
            .map_err(|e| open_error(path, e, self.read_only))?;
        // Shared lock for read-only users (several VMs may share a seed), exclusive for writers.
        let op = if self.read_only {
            libc::LOCK_SH
        } else {
            libc::LOCK_EX
        };
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(BlockConfigError::Locked { path: path.clone() });
            }
            return Err(BlockConfigError::Open {
                path: path.clone(),
                source: e,
            });
        }
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(|e| BlockConfigError::Open {
                path: path.clone(),
                source: e,
            })?;
        // Only whole blocks are visible; a trailing partial block is never touched.
        let capacity = len - len % u64::from(self.block_size);
        if capacity != len {
            tracing::warn!(
                "disk image {}: size {len} is not a multiple of {}; the last {} bytes are not visible",
                path.display(),
                self.block_size,
                len - capacity
            );
        }
        let mut serial = [0u8; MAX_SERIAL_LEN];
        if let Some(s) = &self.serial {
            serial[..s.len()].copy_from_slice(s.as_bytes());
        }
        Ok(DiskImage {
            file,
            path: path.clone(),
            capacity,
            read_only: self.read_only,
            block_size: self.block_size,
            serial,
        })
    }
}

/// An opened disk image, ready for a [`super::Block`] device.
#[derive(Debug)]
pub struct DiskImage {
    pub file: File,
    pub path: PathBuf,
    /// Bytes visible to the guest (a multiple of `block_size`).
    pub capacity: u64,
    pub read_only: bool,
    pub block_size: u32,
    /// Zero-padded serial for GET_ID.
    pub serial: [u8; MAX_SERIAL_LEN],
}

fn open_error(path: &Path, e: io::Error, read_only: bool) -> BlockConfigError {
    match e.kind() {
        io::ErrorKind::NotFound => BlockConfigError::NotFound {
            path: path.to_path_buf(),
        },
        io::ErrorKind::PermissionDenied => BlockConfigError::PermissionDenied {
            path: path.to_path_buf(),
            mode: if read_only {
                "for reading"
            } else {
                "for reading and writing"
            },
            hint: if read_only {
                ""
            } else {
                " or add `,ro` if the guest only needs to read it"
            },
        },
        _ if e.raw_os_error() == Some(libc::EISDIR) => BlockConfigError::IsDirectory {
            path: path.to_path_buf(),
        },
        _ => BlockConfigError::Open {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

pub fn validate_serial(s: &str) -> Result<(), BlockConfigError> {
    if s.len() > MAX_SERIAL_LEN {
        return Err(BlockConfigError::SerialTooLong {
            serial: s.to_string(),
            len: s.len(),
        });
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return Err(BlockConfigError::SerialInvalid {
            serial: s.to_string(),
        });
    }
    Ok(())
}

/// Checks a VM's whole disk list: each disk's fields and that no serial is used twice.
/// (Opening, which checks existence and permissions, happens in [`BlockConfig::open`].)
pub fn validate_disks(disks: &[BlockConfig]) -> Result<(), BlockConfigError> {
    let mut seen: HashSet<&str> = HashSet::new();
    for d in disks {
        d.validate_fields()?;
        if let Some(s) = &d.serial
            && !seen.insert(s)
        {
            let first = disks
                .iter()
                .find(|o| o.serial.as_deref() == Some(s))
                .map(|o| o.path.clone())
                .unwrap_or_default();
            return Err(BlockConfigError::DuplicateSerial {
                serial: s.clone(),
                first,
                second: d.path.clone(),
            });
        }
    }
    Ok(())
}

/// Opens every disk after [`validate_disks`]; the first failure names its disk.
pub fn open_disks(disks: &[BlockConfig]) -> Result<Vec<DiskImage>, BlockConfigError> {
    validate_disks(disks)?;
    disks.iter().map(BlockConfig::open).collect()
}

impl FromStr for BlockConfig {
    type Err = BlockConfigError;

    /// `PATH[,serial=S][,ro][,block-size=N]`. Paths containing commas are not expressible
    /// (as with qemu's `-drive`); use the library API for those.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| BlockConfigError::BadSpec {
            spec: spec.to_string(),
            reason,
        };
        let mut parts = spec.split(',');
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            return Err(bad("the image path is empty".into()));
        }
        let mut cfg = BlockConfig::new(path);
        let mut seen = HashSet::new();
        for opt in parts {
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            if !seen.insert(key) {
                return Err(bad(format!("option {key:?} given twice")));
            }
            match (key, value) {
                ("serial", Some(v)) => {
                    validate_serial(v)?;
                    cfg.serial = Some(v.to_string());
                }
                ("ro", None) | ("ro", Some("on" | "true" | "1")) => cfg.read_only = true,
                ("ro", Some("off" | "false" | "0")) => cfg.read_only = false,
                ("block-size", Some(v)) => {
                    cfg.block_size = match v {
                        "512" => 512,
                        "4096" => 4096,
                        _ => {
                            return Err(BlockConfigError::BadBlockSize {
                                value: v.to_string(),
                            });
                        }
                    }
                }
                ("serial" | "block-size", None) => {
                    return Err(bad(format!("option {key:?} needs a value ({key}=...)")));
                }
                _ => return Err(bad(format!("unknown option {opt:?}"))),
            }
        }
        Ok(cfg)
    }
}

impl fmt::Display for BlockConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(s) = &self.serial {
            write!(f, ",serial={s}")?;
        }
        if self.read_only {
            write!(f, ",ro")?;
        }
        if self.block_size != 512 {
            write!(f, ",block-size={}", self.block_size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use vmm_sys_util::tempfile::TempFile;

    #[test]
    fn parses_full_and_minimal_specs() {
        let c: BlockConfig = "/tmp/a.img,serial=disk-a,ro,block-size=4096"
            .parse()
            .unwrap();
        assert_eq!(c.path, PathBuf::from("/tmp/a.img"));
        assert_eq!(c.serial.as_deref(), Some("disk-a"));
        assert!(c.read_only);
        assert_eq!(c.block_size, 4096);
        assert_eq!(c.to_string(), "/tmp/a.img,serial=disk-a,ro,block-size=4096");
        let c: BlockConfig = "x.img".parse().unwrap();
        assert_eq!(c, BlockConfig::new("x.img"));
    }

    #[test]
    fn rejects_bad_specs_with_clear_messages() {
        let err = |s: &str| s.parse::<BlockConfig>().unwrap_err().to_string();
        assert!(err("a,serial=123456789012345678901").contains("21 bytes long"));
        assert!(err("a,serial=has space").contains("printable ASCII"));
        assert!(err("a,block-size=1024").contains("block size 1024"));
        assert!(err("a,block-size=abc").contains("block size abc"));
        assert!(err("a,bogus").contains("unknown option \"bogus\""));
        assert!(err("a,serial").contains("needs a value"));
        assert!(err(",ro").contains("path is empty"));
        assert!(err("a,ro,ro").contains("given twice"));
    }

    #[test]
    fn duplicate_serials_are_rejected_naming_both_disks() {
        let disks: Vec<BlockConfig> = ["a.img,serial=s1", "b.img,serial=s2", "c.img,serial=s1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let e = validate_disks(&disks).unwrap_err().to_string();
        assert!(
            e.contains("\"s1\"") && e.contains("a.img") && e.contains("c.img"),
            "{e}"
        );
        assert!(validate_disks(&disks[..2]).is_ok());
    }

    #[test]
    fn open_reports_missing_directory_and_permission_problems() {
        let e = BlockConfig::new("/nonexistent/disk.img")
            .open()
            .unwrap_err();
        assert!(matches!(e, BlockConfigError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/disk.img"));

        let dir = std::env::temp_dir();
        let e = BlockConfig::new(&dir).open().unwrap_err();
        assert!(matches!(e, BlockConfigError::IsDirectory { .. }), "{e}");

        let e = BlockConfig::new("/dev/null").open().unwrap_err();
        assert!(matches!(e, BlockConfigError::NotADisk { .. }), "{e}");

        // Root ignores file modes, so only check permissions when not root.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            let f = TempFile::new().unwrap();
            std::fs::set_permissions(f.as_path(), std::fs::Permissions::from_mode(0o400)).unwrap();
            let e = BlockConfig::new(f.as_path()).open().unwrap_err();
            assert!(
                matches!(e, BlockConfigError::PermissionDenied { .. }),
                "{e}"
            );
            let mut ro = BlockConfig::new(f.as_path());
            ro.read_only = true;
            ro.open().unwrap();
        }
        // As root, the error mapping is still checked directly.
        let e = open_error(
            Path::new("/x.img"),
            io::Error::from(io::ErrorKind::PermissionDenied),
            false,
        );
        assert!(e.to_string().contains("permission denied") && e.to_string().contains(",ro"));
    }

    #[test]
    fn open_gives_capacity_in_whole_blocks_and_locks() {
        let f = TempFile::new().unwrap();
        f.as_file().set_len(3 * 4096 + 100).unwrap();
        let mut c = BlockConfig::new(f.as_path());
        c.block_size = 4096;
        c.serial = Some("abc".into());
        let img = c.open().unwrap();
        assert_eq!(img.capacity, 3 * 4096);
        assert_eq!(&img.serial[..4], b"abc\0");
        let e = c.open().unwrap_err();
        assert!(matches!(e, BlockConfigError::Locked { .. }), "{e}");
        drop(img);
        c.open().unwrap();
    }
}
