//! Extracting the output disk: the booted guest writes a raw tar stream onto it; the host
//! unpacks that into collect/. The guest is untrusted, so only plain files and
//! directories with relative, `..`-free paths are written, never outside collect/, never
//! through a symlink, and within a size budget. Everything else is listed as rejected.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// What extraction did.
#[derive(Debug, Default)]
pub struct CollectReport {
    pub files: usize,
    pub dirs: usize,
    pub bytes: u64,
    /// Entries not written, with the reason.
    pub rejected: Vec<(String, String)>,
}

/// A safe relative path inside collect/, or why not.
fn safe_relative(p: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    Ok(out)
}

/// Unpacks the tar stream at the start of `disk` into `dest` (which must exist).
/// `max_bytes` bounds what is written in total.
pub fn extract_output_disk(
    disk: &Path,
    dest: &Path,
    max_bytes: u64,
) -> anyhow::Result<CollectReport> {
    let f = std::fs::File::open(disk)
        .map_err(|e| anyhow::anyhow!("cannot open output disk {}: {e}", disk.display()))?;
    extract_tar(std::io::BufReader::new(f), dest, max_bytes)
}

pub fn extract_tar<R: Read>(r: R, dest: &Path, max_bytes: u64) -> anyhow::Result<CollectReport> {
    let mut rep = CollectReport::default();
    let mut ar = tar::Archive::new(r);
    let dest = dest.canonicalize()?;
    let entries = ar
        .entries()
        .map_err(|e| anyhow::anyhow!("output disk holds no tar stream: {e}"))?;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // A truncated or garbled stream ends extraction; what came before stays.
                rep.rejected
                    .push(("<stream>".into(), format!("unreadable tar data: {e}")));
                break;
            }
        };
        let raw_path = entry.path().map(|p| p.into_owned());
        let name = match &raw_path {
            Ok(p) => p.display().to_string(),
            Err(_) => "<non-utf8 name>".into(),
        };
        let Ok(raw_path) = raw_path else {
            rep.rejected.push((name, "unreadable name".into()));
            continue;
        };
        let rel = match safe_relative(&raw_path) {
            Ok(r) => r,
            Err(why) => {
                rep.rejected.push((name, why.into()));
                continue;
            }
        };
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            continue; // "./" itself
        }
        // No parent may be a symlink or a non-directory (we never create symlinks, but the
        // destination could hold one from elsewhere).
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            let mut cur = dest.clone();
            let mut bad = false;
            for c in parent
                .strip_prefix(&dest)
                .unwrap_or(Path::new(""))
                .components()
            {
                cur.push(c);
                if std::fs::symlink_metadata(&cur).is_ok_and(|md| !md.is_dir()) {
                    bad = true;
                    break;
                }
            }
            if bad {
                rep.rejected
                    .push((name, "a parent is not a directory".into()));
                continue;
            }
        }
        match kind {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target)?;
                rep.dirs += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().unwrap_or(u64::MAX);
                if rep.bytes.saturating_add(size) > max_bytes {
                    rep.rejected
                        .push((name, format!("over the {max_bytes}-byte collect budget")));
                    continue;
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                if std::fs::symlink_metadata(&target).is_ok_and(|m| !m.is_file()) {
                    rep.rejected
                        .push((name, "exists and is not a plain file".into()));
                    continue;
                }
                let mut out = std::fs::File::create(&target)?;
                let n = std::io::copy(&mut (&mut entry).take(size), &mut out)?;
                rep.bytes += n;
                rep.files += 1;
            }
            tar::EntryType::Symlink => rep.rejected.push((name, "symlink".into())),
            tar::EntryType::Link => rep.rejected.push((name, "hard link".into())),
            tar::EntryType::Char | tar::EntryType::Block => {
                rep.rejected.push((name, "device node".into()))
            }
            tar::EntryType::Fifo => rep.rejected.push((name, "fifo".into())),
            other => rep.rejected.push((name, format!("entry type {other:?}"))),
        }
    }
    Ok(rep)
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
        assert_eq!(rep.files, 0, "{:?}", rep.rejected);
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
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
