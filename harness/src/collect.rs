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
//!
//! One job; past 600 lines only by its tests (about half: one or more per way a guest's
//! tar stream can be hostile).

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
mod tests {
    use super::*;

    /// Builds a tar with raw headers so hostile names are written unchanged.
    fn hostile_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_gnu();
            {
                let raw = h.as_old_mut();
                raw.name[..name.len()].copy_from_slice(name.as_bytes());
            }
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if let Some(l) = link {
                let raw = h.as_old_mut();
                raw.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
            h.set_cksum();
            b.append(&h, data).unwrap();
        };
        add("./", tar::EntryType::Directory, b"", None);
        add(
            "./fstab",
            tar::EntryType::Regular,
            b"UUID=1 / ext4 defaults 0 1\n",
            None,
        );
        add("./sub/", tar::EntryType::Directory, b"", None);
        add("./sub/f", tar::EntryType::Regular, b"ok", None);
        add("../escape", tar::EntryType::Regular, b"bad", None);
        add("./a/../../escape2", tar::EntryType::Regular, b"bad", None);
        add(
            "/tmp/abs_escape_vmtest",
            tar::EntryType::Regular,
            b"bad",
            None,
        );
        add("./link", tar::EntryType::Symlink, b"", Some("/etc"));
        add("./link/passwd", tar::EntryType::Regular, b"bad", None);
        add("./hard", tar::EntryType::Link, b"", Some("/etc/passwd"));
        add("./dev", tar::EntryType::Block, b"", None);
        add("./chr", tar::EntryType::Char, b"", None);
        add("./fifo", tar::EntryType::Fifo, b"", None);
        b.into_inner().unwrap()
    }

    #[test]
    fn rejects_hostile_entries() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("collect");
        std::fs::create_dir(&dest).unwrap();
        let rep = extract_tar(&hostile_tar()[..], &dest, 1 << 20).unwrap();
        // ./link was refused, so ./link/passwd lands in a plain directory inside collect/.
        assert_eq!(rep.files, 3);
        assert_eq!(std::fs::read(dest.join("fstab")).unwrap().len(), 27);
        assert_eq!(std::fs::read(dest.join("sub/f")).unwrap(), b"ok");
        assert!(!d.path().join("escape").exists());
        assert!(!d.path().join("escape2").exists());
        assert!(!Path::new("/tmp/abs_escape_vmtest").exists());
        let names: Vec<&str> = rep.rejected.iter().map(|(n, _)| n.as_str()).collect();
        for n in [
            "../escape",
            "./a/../../escape2",
            "/tmp/abs_escape_vmtest",
            "./link",
            "./hard",
            "./dev",
            "./chr",
            "./fifo",
        ] {
            assert!(names.contains(&n), "{n} not rejected: {:?}", rep.rejected);
        }
        // Nothing but the two files and a directory was written.
        let mut all: Vec<_> = walk(&dest);
        all.sort();
        assert_eq!(all, vec!["fstab", "link", "link/passwd", "sub", "sub/f"]);
    }

    #[test]
    fn never_writes_through_an_existing_symlink() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        let dest = d.path().join("collect");
        std::fs::create_dir(&outside).unwrap();
        std::fs::create_dir(&dest).unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("evil")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), dest.join("evilfile")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        for name in ["evil/x", "evilfile"] {
            let mut h = tar::Header::new_gnu();
            h.set_path(name).unwrap();
            h.set_size(1);
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
        }
        let rep = extract_tar(&b.into_inner().unwrap()[..], &dest, 1 << 20).unwrap();
        // evil/x is refused; evilfile replaces the link with a plain file inside collect/.
        assert_eq!(rep.files, 1, "{:?}", rep.rejected);
        assert_eq!(rep.rejected.len(), 1, "{:?}", rep.rejected);
        assert!(rep.rejected[0].1.contains("not a directory"));
        assert!(dest.join("evilfile").symlink_metadata().unwrap().is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    /// A tar with entries whose names are written raw (GNU long names when over 100
    /// bytes), so names no `tar` would produce can be tested.
    fn raw_tar(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if name.len() < 100 {
                h.as_old_mut().name[..name.len()].copy_from_slice(name);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            } else {
                let mut l = tar::Header::new_gnu();
                l.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
                l.set_entry_type(tar::EntryType::GNULongName);
                l.set_size(name.len() as u64 + 1);
                l.set_cksum();
                let mut long = name.to_vec();
                long.push(0);
                b.append(&l, &long[..]).unwrap();
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn extract(tar: &[u8], limits: &CollectLimits) -> (tempfile::TempDir, CollectReport) {
        let d = tempfile::tempdir().unwrap();
        let rep = extract_tar_with(tar, d.path(), limits).unwrap();
        (d, rep)
    }

    fn reason<'a>(rep: &'a CollectReport, name_start: &str) -> &'a str {
        rep.rejected
            .iter()
            .find(|(n, _)| n.starts_with(name_start))
            .map(|(_, why)| why.as_str())
            .unwrap_or_else(|| panic!("{name_start} not rejected: {:?}", rep.rejected))
    }

    /// A file then a directory of the same name, and the other way round: each later
    /// entry is rejected and extraction goes on (it used to end with an error).
    #[test]
    fn same_name_conflicts_reject_the_entry_only() {
        let tar = raw_tar(&[
            (b"a", tar::EntryType::Regular, b"file"),
            (b"a/", tar::EntryType::Directory, b""),
            (b"a/b", tar::EntryType::Regular, b"x"),
            (b"d/", tar::EntryType::Directory, b""),
            (b"d", tar::EntryType::Regular, b"file"),
            (b"after", tar::EntryType::Regular, b"still here"),
            (b"after", tar::EntryType::Regular, b"later wins"),
        ]);
        let (d, rep) = extract(&tar, &CollectLimits::with_budget(1 << 20));
        assert!(reason(&rep, "a/").contains("not a directory"));
        assert!(reason(&rep, "a/b").contains("not a directory"));
        assert!(reason(&rep, "d").contains("is a directory"));
        assert_eq!(std::fs::read(d.path().join("a")).unwrap(), b"file");
        assert_eq!(
            std::fs::read(d.path().join("after")).unwrap(),
            b"later wins"
        );
        assert_eq!(rep.files, 3);
    }

    /// A name of a few MB (GNU long name) cost hours in the old per-prefix check; it is
    /// now rejected by length before any file system call. So are over-long components,
    /// over-deep paths and NUL bytes, each alone.
    #[test]
    fn long_deep_and_odd_names_are_rejected_per_entry() {
        let huge: Vec<u8> = b"a/".repeat(2 << 20);
        let long_name = [b"x".repeat(256), b"/f".to_vec()].concat();
        let deep = b"d/"
            .repeat(64)
            .into_iter()
            .chain(*b"f")
            .collect::<Vec<u8>>();
        let ok_deep = b"d/"
            .repeat(63)
            .into_iter()
            .chain(*b"f")
            .collect::<Vec<u8>>();
        let tar = raw_tar(&[
            (&huge, tar::EntryType::Regular, b"x"),
            (&long_name, tar::EntryType::Regular, b"x"),
            (&deep, tar::EntryType::Regular, b"x"),
            (b"nul\0/x/y/z/0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789", tar::EntryType::Regular, b"x"),
            (&ok_deep, tar::EntryType::Regular, b"deep"),
            (b"fine", tar::EntryType::Regular, b"ok"),
        ]);
        let (d, rep) = extract(&tar, &CollectLimits::with_budget(1 << 20));
        assert!(reason(&rep, "a/a/").contains("longer than 4096"));
        assert!(reason(&rep, "xxx").contains("256 bytes is longer than 255"));
        assert!(reason(&rep, "d/d/").contains("65 levels deep"));
        assert!(reason(&rep, r"nul\u{0}").contains("NUL"));
        // Rejection records stay short whatever the name.
        assert!(
            rep.rejected.iter().all(|(n, _)| n.len() < 300),
            "{:?}",
            rep.rejected
        );
        assert_eq!(rep.files, 2, "{:?}", rep.rejected);
        assert_eq!(std::fs::read(d.path().join("fine")).unwrap(), b"ok");
        let deep_file = d.path().join(std::str::from_utf8(&ok_deep).unwrap());
        assert_eq!(std::fs::read(deep_file).unwrap(), b"deep");
    }

    /// Past the entry cap the stream is not read further: one record says so.
    #[test]
    fn entry_count_is_capped() {
        let names: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
        let entries: Vec<(&[u8], tar::EntryType, &[u8])> = names
            .iter()
            .map(|n| (n.as_bytes(), tar::EntryType::Regular, &b"x"[..]))
            .collect();
        let limits = CollectLimits {
            max_entries: 20,
            ..CollectLimits::with_budget(1 << 20)
        };
        let (_d, rep) = extract(&raw_tar(&entries), &limits);
        assert_eq!(rep.files, 20);
        assert_eq!(rep.rejected.len(), 1);
        assert!(rep.rejected[0].1.contains("more than 20 entries"));
    }

    /// Names with newlines or tabs cannot forge lines of collect-rejected.txt.
    #[test]
    fn rejected_names_are_printable() {
        assert_eq!(shown_name(b"a\nb\tc"), "a\\nb\\tc");
        assert_eq!(shown_name(b"\x01\n\t"), "\\u{1}\\n\\t");
        let long = shown_name(&[b'y'; 10_000]);
        assert!(
            long.len() < 250 && long.ends_with("(10000 bytes)"),
            "{long}"
        );
    }

    /// The tar reader's errors quote the entry's name: a name with a newline in a header
    /// whose checksum is not a number forged a second line of collect-rejected.txt
    /// (found by the collect_tar fuzz target).
    #[test]
    fn stream_errors_quoting_a_name_stay_one_line() {
        let mut h = tar::Header::new_ustar();
        let name = b"evil\nforged line\t";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().cksum = [0; 8];
        let mut tar = h.as_bytes().to_vec();
        tar.extend_from_slice(&[0u8; 1024]);
        let (_d, rep) = extract(&tar, &CollectLimits::with_budget(1 << 20));
        assert_eq!(rep.rejected.len(), 1, "{:?}", rep.rejected);
        let (name, why) = &rep.rejected[0];
        assert_eq!(name, "<stream>");
        assert!(why.contains("evil\\nforged line\\t"), "{why}");
        assert!(!why.contains('\n') && !why.contains('\t'), "{why:?}");
        let long = shown_reason(&"y".repeat(10_000));
        assert!(
            long.len() < 450 && long.ends_with("(10000 bytes)"),
            "{long}"
        );
    }

    fn walk(d: &Path) -> Vec<String> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            if e.file_type().unwrap().is_dir() {
                v.extend(walk(&e.path()).into_iter().map(|s| format!("{name}/{s}")));
            }
            v.push(name);
        }
        v
    }

    #[test]
    fn budget_and_garbage() {
        let d = tempfile::tempdir().unwrap();
        let rep = extract_tar(&hostile_tar()[..], d.path(), 10).unwrap();
        assert_eq!(
            rep.files, 2,
            "fstab (27 bytes) is over budget, the small ones fit"
        );
        // A disk of zeros is an empty archive; random bytes are reported, not a panic.
        let rep = extract_tar(&[0u8; 4096][..], d.path(), 10).unwrap();
        assert_eq!(rep.files, 0);
        let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        let rep = extract_tar(&junk[..], d.path(), 10);
        if let Ok(rep) = rep {
            assert_eq!(rep.files, 0);
        }
    }
}
