//! cloud-init NoCloud seed images.
//!
//! cloud-init's NoCloud datasource looks for a filesystem labelled `cidata` holding
//! `user-data`, `meta-data` and optionally `network-config` / `vendor-data`. vmtest attaches
//! such an image as a read-only disk (install and boot phases). [`SeedImage`] collects the
//! files in memory and writes them into a VFAT image with the pure-Rust `fatfs` crate, so no
//! `mkfs.vfat`, `mtools` or root privileges are needed.
//!
//! ```no_run
//! # fn main() -> Result<(), seed::SeedError> {
//! seed::SeedImage::new()
//!     .file("meta-data", "instance-id: iid-vmtest\n")
//!     .file("user-data", "#cloud-config\npower_state: {mode: poweroff}\n")
//!     .write_vfat(std::path::Path::new("/tmp/seed.img"))?;
//! # Ok(()) }
//! ```
//!
//! The image is deterministic: the same files give the same bytes (fixed volume id and file
//! times), so seeds can be cached and compared.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The volume label cloud-init's NoCloud datasource searches for.
pub const LABEL: &str = "cidata";

/// Errors while building a seed image.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{path} already exists: refusing to overwrite it (remove it, or use .overwrite(true))")]
    Exists { path: PathBuf },
    #[error("invalid file name {name:?} in seed: {why}")]
    BadName { name: String, why: &'static str },
    #[error("writing seed image {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// A NoCloud seed (`cidata`) under construction: a set of files, written out in one go.
#[derive(Debug, Clone, Default)]
pub struct SeedImage {
    files: BTreeMap<String, Vec<u8>>,
    overwrite: bool,
}

impl SeedImage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file. `name` may contain `/` to place it in a sub-directory.
    pub fn file(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.insert(name.to_string(), contents.into());
        self
    }

    /// Whether [`write_vfat`](Self::write_vfat) may replace an existing file (default: no).
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// The files in the seed, by name.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Size of the image that [`write_vfat`](Self::write_vfat) creates: the contents rounded
    /// up to clusters plus room for the FAT structures, at least 1 MiB, in whole MiB.
    pub fn vfat_size(&self) -> u64 {
        const CLUSTER: u64 = 4096;
        const MIB: u64 = 1 << 20;
        let data: u64 = self
            .files
            .values()
            .map(|c| (c.len() as u64).div_ceil(CLUSTER).max(1) * CLUSTER)
            .sum();
        // Directories, FATs and slack: generous, since a seed is tiny anyway.
        let dirs = (self.files.len() as u64 + 1) * CLUSTER;
        let raw = data + dirs + data / 8 + 256 * 1024;
        raw.div_ceil(MIB).max(1) * MIB
    }

    /// Writes a VFAT image labelled `cidata` to `path`.
    ///
    /// The image is built in a temporary file beside `path` and moved into place at the end,
    /// so a failure never leaves a half-written seed at `path`. An existing `path` is only
    /// replaced when [`overwrite(true)`](Self::overwrite) was set.
    pub fn write_vfat(&self, path: &Path) -> Result<(), SeedError> {
        for name in self.files.keys() {
            check_name(name)?;
        }
        if !self.overwrite && fs::symlink_metadata(path).is_ok() {
            return Err(SeedError::Exists {
                path: path.to_path_buf(),
            });
        }
        let io_err = |source| SeedError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file_name = path.file_name().ok_or_else(|| {
            io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path has no file name",
            ))
        })?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let result = self.write_vfat_to(&tmp).and_then(|()| {
            if self.overwrite {
                fs::rename(&tmp, path)
            } else {
                // hard_link fails if `path` appeared meanwhile: never clobber.
                fs::hard_link(&tmp, path).and_then(|()| fs::remove_file(&tmp))
            }
        });
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Err(SeedError::Exists {
                        path: path.to_path_buf(),
                    })
                } else {
                    Err(io_err(e))
                }
            }
        }
    }

    fn write_vfat_to(&self, tmp: &Path) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(tmp)?;
        file.set_len(self.vfat_size())?;
        let mut label = [b' '; 11];
        label[..LABEL.len()].copy_from_slice(LABEL.as_bytes());
        fatfs::format_volume(
            &mut file,
            fatfs::FormatVolumeOptions::new()
                .volume_label(label)
                .volume_id(0x5eed_0001),
        )?;
        file.seek(SeekFrom::Start(0))?;
        {
            let opts = fatfs::FsOptions::new()
                .update_accessed_date(false)
                .time_provider(&FIXED_TIME);
            let fs = fatfs::FileSystem::new(&mut file, opts)?;
            {
                let root = fs.root_dir();
                for (name, contents) in &self.files {
                    let mut dir = root.clone();
                    let mut parts: Vec<&str> = name.split('/').collect();
                    let leaf = parts.pop().unwrap_or_default();
                    for part in parts {
                        dir = match dir.open_dir(part) {
                            Ok(d) => d,
                            Err(_) => dir.create_dir(part)?,
                        };
                    }
                    let mut f = dir.create_file(leaf)?;
                    f.truncate()?;
                    f.write_all(contents)?;
                    f.flush()?;
                }
            }
            fs.unmount()?;
        }
        file.sync_all()?;
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), SeedError> {
    let bad = |why| {
        Err(SeedError::BadName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 200 {
        return bad("longer than 200 bytes");
    }
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return bad("empty, '.' or '..' path component");
        }
        if part
            .chars()
            .any(|c| c.is_control() || "\\:*?\"<>|".contains(c))
        {
            return bad("character not allowed on VFAT");
        }
    }
    Ok(())
}

/// File times are fixed so the image depends only on its contents (1 Jan 2000, 00:00).
#[derive(Debug)]
struct FixedTime;

static FIXED_TIME: FixedTime = FixedTime;

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        fatfs::Date {
            year: 2000,
            month: 1,
            day: 1,
        }
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        fatfs::DateTime {
            date: self.get_current_date(),
            time: fatfs::Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read_back(path: &Path) -> (String, BTreeMap<String, Vec<u8>>) {
        let file = fs::File::open(path).unwrap();
        let fs = fatfs::FileSystem::new(file, fatfs::FsOptions::new()).unwrap();
        let label = fs.volume_label();
        let mut out = BTreeMap::new();
        fn walk<T: fatfs::ReadWriteSeek>(
            dir: fatfs::Dir<'_, T>,
            prefix: &str,
            out: &mut BTreeMap<String, Vec<u8>>,
        ) {
            for e in dir.iter() {
                let e = e.unwrap();
                let name = e.file_name();
                if name == "." || name == ".." {
                    continue;
                }
                let full = format!("{prefix}{name}");
                if e.is_dir() {
                    walk(e.to_dir(), &format!("{full}/"), out);
                } else {
                    let mut buf = Vec::new();
                    e.to_file().read_to_end(&mut buf).unwrap();
                    out.insert(full, buf);
                }
            }
        }
        walk(fs.root_dir(), "", &mut out);
        (label, out)
    }

    #[test]
    fn writes_cidata_with_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.img");
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        SeedImage::new()
            .file("meta-data", "instance-id: iid-1\n")
            .file("user-data", "#cloud-config\n")
            .file("network-config", "version: 2\n")
            .file("scripts/payload.bin", big.clone())
            .write_vfat(&path)
            .unwrap();
        let (label, files) = read_back(&path);
        assert_eq!(label, "cidata");
        assert_eq!(files["meta-data"], b"instance-id: iid-1\n");
        assert_eq!(files["user-data"], b"#cloud-config\n");
        assert_eq!(files["network-config"], b"version: 2\n");
        assert_eq!(files["scripts/payload.bin"], big);
        assert_eq!(files.len(), 4);
        // Nothing else left behind in the directory (no temp files).
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn refuses_to_overwrite_unless_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.img");
        fs::write(&path, b"precious").unwrap();
        let seed = SeedImage::new().file("meta-data", "x");
        let err = seed.write_vfat(&path).unwrap_err();
        assert!(matches!(err, SeedError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("seed.img"));
        assert_eq!(fs::read(&path).unwrap(), b"precious");
        seed.overwrite(true).write_vfat(&path).unwrap();
        let (_, files) = read_back(&path);
        assert_eq!(files["meta-data"], b"x");
    }

    #[test]
    fn same_files_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.img");
        let b = dir.path().join("b.img");
        let seed = SeedImage::new()
            .file("user-data", "#cloud-config\n")
            .file("meta-data", "instance-id: x\n");
        seed.write_vfat(&a).unwrap();
        seed.write_vfat(&b).unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    }

    #[test]
    fn rejects_bad_names_and_missing_dir() {
        let dir = tempfile::tempdir().unwrap();
        let err = SeedImage::new()
            .file("../escape", "x")
            .write_vfat(&dir.path().join("s.img"))
            .unwrap_err();
        assert!(matches!(err, SeedError::BadName { .. }), "{err}");
        let err = SeedImage::new()
            .file("meta-data", "x")
            .write_vfat(&dir.path().join("no/such/dir/s.img"))
            .unwrap_err();
        assert!(matches!(err, SeedError::Io { .. }), "{err}");
        assert!(err.to_string().contains("no/such/dir/s.img"), "{err}");
    }

    #[test]
    fn empty_seed_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.img");
        SeedImage::new().write_vfat(&path).unwrap();
        let (label, files) = read_back(&path);
        assert_eq!(label, "cidata");
        assert!(files.is_empty());
    }
}
