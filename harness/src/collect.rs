//! Extracting the output disk: the booted guest writes a raw tar stream onto it; the host
//! unpacks that into collect/. The guest is untrusted, so only plain files and
//! directories with relative, `..`-free paths are written, never outside collect/, never
//! through a symlink, and within [`CollectLimits`]: total bytes, entries, path length,
//! name length and depth. Every problem with one entry rejects that entry (listed with
//! the reason) and extraction goes on; only an unreadable stream or the entry cap ends it.
//!
//! Files and directories are created relative to open directory descriptors (`openat`,
//! `mkdirat` with `O_NOFOLLOW`), never by joining paths: nothing already in collect/
//! can redirect a write, and the work per entry is linear in its path. The descriptors of
//! the last entry's directories are kept, so entries of one directory cost one `openat`.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

/// What extraction accepts from the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectLimits {
    /// Bytes of file data written in total.
    pub max_bytes: u64,
    /// Tar entries read (written or rejected); the rest of the stream is not read.
    pub max_entries: usize,
    /// Bytes in one entry's path (Linux's PATH_MAX).
    pub max_path_bytes: usize,
    /// Bytes in one path component (Linux's NAME_MAX).
    pub max_name_bytes: usize,
    /// Components in one path.
    pub max_depth: usize,
}

impl CollectLimits {
    /// Default limits with a byte budget. 65536 entries is far beyond what collect
    /// scripts write (hundreds to a few thousand files); 64 levels is far beyond the
    /// deepest tree they copy (~15 under /sys).
    pub fn with_budget(max_bytes: u64) -> Self {
        CollectLimits {
            max_bytes,
            max_entries: 65_536,
            max_path_bytes: 4096,
            max_name_bytes: 255,
            max_depth: 64,
        }
    }
}

/// What extraction did.
#[derive(Debug, Default)]
pub struct CollectReport {
    pub files: usize,
    pub dirs: usize,
    pub bytes: u64,
    /// Entries not written, with the reason. Names are shown printable and shortened.
    pub rejected: Vec<(String, String)>,
}

/// Longest name kept in a rejection record.
const SHOWN_NAME_CHARS: usize = 200;
/// Longest reason kept in a rejection record (the tar reader's errors quote the entry's
/// name, which the guest chose).
const SHOWN_REASON_CHARS: usize = 400;

/// An entry name for the rejection list: control characters escaped (one record per
/// line in logs/collect-rejected.txt) and at most [`SHOWN_NAME_CHARS`] characters.
fn shown_name(bytes: &[u8]) -> String {
    shown(bytes, SHOWN_NAME_CHARS)
}

/// A reason for the rejection list, made printable and short the same way.
fn shown_reason(why: &str) -> String {
    shown(why.as_bytes(), SHOWN_REASON_CHARS)
}

/// `bytes` as one printable line of at most `max_chars` characters (plus a note of the
/// full length when cut).
fn shown(bytes: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max_chars * 4)]);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push_str(&format!("... ({} bytes)", bytes.len()));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The components of a safe relative path, or why it is not one. Linear in its length.
fn safe_components<'a>(raw: &'a [u8], limits: &CollectLimits) -> Result<Vec<&'a OsStr>, String> {
    if raw.len() > limits.max_path_bytes {
        return Err(format!(
            "path of {} bytes is longer than {}",
            raw.len(),
            limits.max_path_bytes
        ));
    }
    if raw.contains(&0) {
        return Err("NUL byte in the name".into());
    }
    let mut out = Vec::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => {
                if n.len() > limits.max_name_bytes {
                    return Err(format!(
                        "a name of {} bytes is longer than {}",
                        n.len(),
                        limits.max_name_bytes
                    ));
                }
                out.push(n);
            }
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains `..`".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    if out.len() > limits.max_depth {
        return Err(format!(
            "{} levels deep, more than {}",
            out.len(),
            limits.max_depth
        ));
    }
    Ok(out)
}

/// Open directories from collect/ down to the last entry's directory.
struct DirCursor {
    root: OwnedFd,
    /// (name, descriptor) per level below root.
    open: Vec<(OsString, OwnedFd)>,
}

impl DirCursor {
    fn new(dest: &Path) -> std::io::Result<Self> {
        let root = rustix::fs::open(
            dest,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(DirCursor {
            root,
            open: Vec::new(),
        })
    }

    fn current(&self) -> BorrowedFd<'_> {
        self.open
            .last()
            .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd())
    }

    /// Makes `dirs` (below root) the current directory, creating what is missing. Fails
    /// when one of them exists as anything but a directory (a symlink included).
    fn enter(&mut self, dirs: &[&OsStr]) -> Result<(), String> {
        let common = self
            .open
            .iter()
            .zip(dirs)
            .take_while(|((open, _), want)| open.as_os_str() == **want)
            .count();
        self.open.truncate(common);
        for name in &dirs[common..] {
            let parent = self.current();
            match rustix::fs::mkdirat(parent, *name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(format!("cannot create directory: {e}")),
            }
            let fd = rustix::fs::openat(
                parent,
                *name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| match e {
                Errno::NOTDIR | Errno::LOOP => {
                    format!("`{}` exists and is not a directory", name.to_string_lossy())
                }
                e => format!("cannot open directory: {e}"),
            })?;
            self.open.push(((*name).to_owned(), fd));
        }
        Ok(())
    }

    /// Creates `name` in the current directory as a new plain file, replacing a plain
    /// file of that name (a later tar entry wins) but nothing else.
    fn create_file(&self, name: &OsStr) -> Result<std::fs::File, String> {
        let dir = self.current();
        match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::ISDIR) | Err(Errno::PERM) => {
                return Err("exists and is a directory".into());
            }
            Err(e) => return Err(format!("cannot replace it: {e}")),
        }
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| format!("cannot create: {e}"))?;
        Ok(std::fs::File::from(fd))
    }
}

/// Why nothing could be extracted (a problem with one entry rejects only that entry).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("cannot open output disk {}: {source}", path.display())]
    OpenDisk {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open {}: {source}", path.display())]
    OpenDest {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("output disk holds no tar stream: {0}")]
    NoTarStream(std::io::Error),
}

/// Unpacks the tar stream at the start of `disk` into `dest` (which must exist).
/// `max_bytes` bounds what is written in total; the other limits are the defaults.
pub fn extract_output_disk(
    disk: &Path,
    dest: &Path,
    max_bytes: u64,
) -> Result<CollectReport, CollectError> {
    let f = std::fs::File::open(disk).map_err(|source| CollectError::OpenDisk {
        path: disk.to_path_buf(),
        source,
    })?;
    extract_tar(std::io::BufReader::new(f), dest, max_bytes)
}

/// [`extract_tar_with`] the default limits and a byte budget.
pub fn extract_tar<R: Read>(
    r: R,
    dest: &Path,
    max_bytes: u64,
) -> Result<CollectReport, CollectError> {
    extract_tar_with(r, dest, &CollectLimits::with_budget(max_bytes))
}

/// Unpacks a tar stream into `dest` (which must exist) within `limits`. `Err` only when
/// `dest` cannot be opened or holds no tar stream at all.
pub fn extract_tar_with<R: Read>(
    r: R,
    dest: &Path,
    limits: &CollectLimits,
) -> Result<CollectReport, CollectError> {
    let mut rep = CollectReport::default();
    let mut cursor = DirCursor::new(dest).map_err(|source| CollectError::OpenDest {
        path: dest.to_path_buf(),
        source,
    })?;
    let mut ar = tar::Archive::new(r);
    let entries = ar.entries().map_err(CollectError::NoTarStream)?;
    for (seen, entry) in entries.enumerate() {
        if seen == limits.max_entries {
            rep.rejected.push((
                "<stream>".into(),
                format!(
                    "more than {} entries: the rest was not read",
                    limits.max_entries
                ),
            ));
            break;
        }
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // A truncated or garbled stream ends extraction; what came before stays.
                rep.rejected.push((
                    "<stream>".into(),
                    shown_reason(&format!("unreadable tar data: {e}")),
                ));
                break;
            }
        };
        let raw = entry.path_bytes().into_owned();
        if let Err(why) = extract_entry(&mut entry, &raw, &mut cursor, limits, &mut rep) {
            rep.rejected.push((shown_name(&raw), shown_reason(&why)));
        }
    }
    Ok(rep)
}

/// Writes one entry, or says why not.
fn extract_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    raw: &[u8],
    cursor: &mut DirCursor,
    limits: &CollectLimits,
    rep: &mut CollectReport,
) -> Result<(), String> {
    let comps = safe_components(raw, limits)?;
    let Some((last, parents)) = comps.split_last() else {
        return Ok(()); // "./" itself
    };
    match entry.header().entry_type() {
        tar::EntryType::Directory => {
            cursor.enter(&comps)?;
            rep.dirs += 1;
            Ok(())
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let size = entry.header().size().unwrap_or(u64::MAX);
            if rep.bytes.saturating_add(size) > limits.max_bytes {
                return Err(format!("over the {}-byte collect budget", limits.max_bytes));
            }
            cursor.enter(parents)?;
            let mut out = cursor.create_file(last)?;
            let n = std::io::copy(&mut entry.take(size), &mut out)
                .map_err(|e| format!("cannot write: {e}"))?;
            rep.bytes += n;
            rep.files += 1;
            Ok(())
        }
        tar::EntryType::Symlink => Err("symlink".into()),
        tar::EntryType::Link => Err("hard link".into()),
        tar::EntryType::Char | tar::EntryType::Block => Err("device node".into()),
        tar::EntryType::Fifo => Err("fifo".into()),
        other => Err(format!("entry type {other:?}")),
    }
}

#[cfg(test)]
mod tests;
