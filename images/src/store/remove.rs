//! Removing a tree inside the store without ever following a symbolic link or reaching past
//! a mount point.
//!
//! `std::fs::remove_dir_all` does not follow links inside the tree, but it resolves every
//! leading component of its path (a `.partial` that is a link takes the removal elsewhere)
//! and deletes the contents of whatever is mounted inside. So the walk here is our own, on
//! directory file descriptors: from the store's directory each component is opened with
//! `O_NOFOLLOW | O_DIRECTORY` relative to its parent, entries are examined with
//! `AT_SYMLINK_NOFOLLOW`, and a link anywhere is removed as a link. No path is resolved
//! twice, so nothing swapped in between a check and its use can redirect the removal.
//!
//! Mounts: a build's root tree can hold /proc, /sys and /dev left mounted by an interrupted
//! mmdebstrap. With [`Mounts::Detach`] those are detached first, each one reached by the same
//! link-free walk from the tree's own descriptor and checked to be the mount listed, and
//! unmounted through `/proc/self/fd`, so nothing outside the tree can be unmounted. With
//! [`Mounts::Refuse`] (published images: nothing of ours mounts there) the removal stops.
//! Either way the walk compares every directory's mount id with the tree's and stops before
//! entering another filesystem.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, StatxFlags};
use rustix::io::Errno;
use rustix::mount::UnmountFlags;

use super::StoreError;

/// What a removal does about filesystems mounted inside the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mounts {
    /// Detach them first: the tree is a build's scratch space, where mmdebstrap (run by our
    /// build) mounts /proc, /sys and /dev inside the root it makes.
    Detach,
    /// Remove nothing and say so: nothing of ours mounts there.
    Refuse,
}

/// Deepest directory nesting a removal walks (each level holds one descriptor open).
const MAX_DEPTH: usize = 256;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Removes `root/rel` and everything below it, following no symbolic link at or below
/// `root` (a link is removed itself, never its target) and never reaching into another
/// filesystem (see the module docs for `mounts`). `root` itself may be reached through
/// links: it is the store directory the user chose. A missing `rel` is not an error.
pub fn remove_below(root: &Path, rel: &Path, mounts: Mounts) -> Result<(), StoreError> {
    let shown = root.join(rel);
    let unsafe_err = |why: String| StoreError::Unsafe {
        path: shown.clone(),
        why,
    };
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            _ => return Err(unsafe_err("not a plain path inside the store".into())),
        }
    }
    let Some((last, leading)) = parts.split_last() else {
        return Err(unsafe_err("refusing to remove the store itself".into()));
    };
    let mut dir = match rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io_err(root, e)),
    };
    let mut at = root.to_path_buf();
    for p in leading {
        at.push(p);
        dir = match rustix::fs::openat(&dir, *p, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(StoreError::Unsafe {
                    path: at,
                    why: "is not a directory (a symbolic link?); the store does not follow links \
                          when removing: make it a real directory"
                        .into(),
                });
            }
            Err(e) => return Err(io_err(&at, e)),
        };
    }
    remove_entry(&dir, last, &shown, None, mounts, 0)
}

/// Removes `name` in `parent`: a directory with its contents, anything else (links included)
/// by unlinking it. `parent_mount` is the mount the removal started in (`None` for the top
/// entry, which must not be a mount point itself).
fn remove_entry(
    parent: &OwnedFd,
    name: &OsStr,
    shown: &Path,
    parent_mount: Option<MountId>,
    mounts: Mounts,
    depth: usize,
) -> Result<(), StoreError> {
    let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io_err(shown, e)),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return unlink(parent, name, shown, AtFlags::empty());
    }
    if depth > MAX_DEPTH {
        return Err(StoreError::Unsafe {
            path: shown.to_path_buf(),
            why: format!("nested deeper than {MAX_DEPTH} directories; not removing"),
        });
    }
    let dir = match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        // Replaced by a link or a file since the stat: remove that instead.
        Err(Errno::LOOP | Errno::NOTDIR) => return unlink(parent, name, shown, AtFlags::empty()),
        Err(e) => return Err(io_err(shown, e)),
    };
    let here = mount_id(&dir).map_err(|e| io_err(shown, e))?;
    let home = match parent_mount {
        Some(m) => m,
        None => {
            let above = mount_id(parent).map_err(|e| io_err(shown, e))?;
            if here != above {
                return Err(mounted(shown, "it is itself a mount point"));
            }
            match mounts {
                Mounts::Detach => detach_mounts_inside(&dir, shown)?,
                // Before anything is removed, so a refused tree stays whole.
                Mounts::Refuse => {
                    if real_path(&dir).is_some_and(|real| !mounts_below(&real).is_empty()) {
                        return Err(mounted(shown, "something is mounted inside"));
                    }
                }
            }
            here
        }
    };
    if here != home {
        return Err(mounted(shown, "a filesystem is mounted here"));
    }
    for child in entry_names(&dir).map_err(|e| io_err(shown, e))? {
        let child_name = OsStr::from_bytes(child.to_bytes());
        remove_entry(
            &dir,
            child_name,
            &shown.join(child_name),
            Some(home),
            mounts,
            depth + 1,
        )?;
    }
    drop(dir);
    unlink(parent, name, shown, AtFlags::REMOVEDIR)
}

fn unlink(parent: &OwnedFd, name: &OsStr, shown: &Path, flags: AtFlags) -> Result<(), StoreError> {
    match rustix::fs::unlinkat(parent, name, flags) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io_err(shown, e)),
    }
}

fn entry_names(dir: &OwnedFd) -> rustix::io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Identifies the mount a directory belongs to: the kernel's mount id where `statx` gives it
/// (Linux 5.8+), else the device number (which a bind mount of the same filesystem shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MountId {
    Id(u64),
    Dev(u64),
}

fn mount_id(fd: &OwnedFd) -> rustix::io::Result<MountId> {
    match rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID) {
        Ok(stx) if StatxFlags::from_bits_retain(stx.stx_mask).contains(StatxFlags::MNT_ID) => {
            Ok(MountId::Id(stx.stx_mnt_id))
        }
        Ok(stx) => Ok(MountId::Dev(rustix::fs::makedev(
            stx.stx_dev_major,
            stx.stx_dev_minor,
        ))),
        Err(Errno::NOSYS) => Ok(MountId::Dev(rustix::fs::fstat(fd)?.st_dev)),
        Err(e) => Err(e),
    }
}

/// Detaches everything mounted below `tree`, reaching each mount point by a link-free walk
/// from `tree` and unmounting it only when the walk ends on the very mount listed.
fn detach_mounts_inside(tree: &OwnedFd, shown: &Path) -> Result<(), StoreError> {
    let Some(real) = real_path(tree) else {
        // Without /proc the mounts cannot be listed; the walk still stops at any of them.
        return Ok(());
    };
    // A mount hidden under another one is reachable only once the upper one is gone: go
    // round until a pass detaches nothing more.
    loop {
        let mut inside: Vec<(usize, MountEntry)> =
            mounts_below(&real).into_iter().enumerate().collect();
        if inside.is_empty() {
            return Ok(());
        }
        // Deepest first; at one mount point, the later (upper) mount first.
        inside.sort_by_key(|(i, m)| {
            (
                std::cmp::Reverse(m.point.components().count()),
                std::cmp::Reverse(*i),
            )
        });
        let mut detached = false;
        for (_, m) in &inside {
            let Ok(rel) = m.point.strip_prefix(&real) else {
                continue;
            };
            // Listed under the tree but not reached through real directories from it (hidden,
            // or already gone with a parent mount): left for the next pass, or alone.
            let Some(fd) = walk(tree, rel) else { continue };
            if !mount_id(&fd).is_ok_and(|id| m.is(id)) {
                continue;
            }
            let target = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
            if let Err(e) = rustix::mount::unmount(target.as_str(), UnmountFlags::DETACH) {
                return Err(StoreError::Unsafe {
                    path: m.point.clone(),
                    why: format!(
                        "still mounted inside {} and cannot be unmounted ({}); unmount it by hand before removing",
                        shown.display(),
                        std::io::Error::from(e)
                    ),
                });
            }
            detached = true;
        }
        if !detached {
            return Err(mounted(shown, "has mounts below it that cannot be reached"));
        }
    }
}

/// Opens `rel` below `dir`, following no link; `None` if any component is missing or not a
/// real directory.
fn walk(dir: &OwnedFd, rel: &Path) -> Option<OwnedFd> {
    let mut fd = rustix::fs::openat(dir, c".", DIR_FLAGS, Mode::empty()).ok()?;
    for c in rel.components() {
        let Component::Normal(p) = c else { return None };
        fd = rustix::fs::openat(&fd, p, DIR_FLAGS, Mode::empty()).ok()?;
    }
    Some(fd)
}

/// Where `fd` is, as the kernel names it (the same namespace as mountinfo's mount points).
fn real_path(fd: &OwnedFd) -> Option<PathBuf> {
    let link = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    let p = rustix::fs::readlink(link.as_str(), Vec::new()).ok()?;
    Some(PathBuf::from(OsString::from_vec(p.into_bytes())))
}

/// One line of /proc/self/mountinfo, as far as it matters here.
#[derive(Debug, Clone)]
struct MountEntry {
    id: u64,
    dev: u64,
    point: PathBuf,
}

impl MountEntry {
    /// Whether a directory on mount `id` is the root of this mount (by device number where
    /// the kernel gives no mount ids).
    fn is(&self, id: MountId) -> bool {
        match id {
            MountId::Id(i) => i == self.id,
            MountId::Dev(d) => d == self.dev,
        }
    }
}

/// Mounts at or below `dir`, from /proc/self/mountinfo, in the kernel's order.
fn mounts_below(dir: &Path) -> Vec<MountEntry> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    parse_mounts(&text, dir)
}

fn parse_mounts(mountinfo: &str, dir: &Path) -> Vec<MountEntry> {
    mountinfo
        .lines()
        .filter_map(|l| {
            // mount_id parent_id major:minor root mount_point ...
            let mut f = l.split(' ');
            let id = f.next()?.parse().ok()?;
            let (major, minor) = f.nth(1)?.split_once(':')?;
            let dev = rustix::fs::makedev(major.parse().ok()?, minor.parse().ok()?);
            let point = unescape_mount(f.nth(1)?);
            point
                .starts_with(dir)
                .then_some(MountEntry { id, dev, point })
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape_mount(s: &str) -> PathBuf {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

fn mounted(path: &Path, what: &str) -> StoreError {
    StoreError::Unsafe {
        path: path.to_path_buf(),
        why: format!("{what}; not removing anything mounted (unmount it by hand if it should go)"),
    }
}

fn io_err(path: &Path, e: Errno) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_unescape() {
        assert_eq!(unescape_mount("/a\\040b"), PathBuf::from("/a b"));
    }

    #[test]
    fn mountinfo_lines_below_a_directory() {
        let text = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
61 22 0:55 / /srv/images/.partial/b\\040x/rootfs/proc rw - proc proc rw
62 61 0:56 / /srv/images/.partial/b\\040x/rootfs/proc/sys rw - tmpfs t rw
63 22 0:57 / /srv/images/.partial/b rw - tmpfs t rw
";
        let m = parse_mounts(text, Path::new("/srv/images/.partial/b x"));
        let got: Vec<(u64, u64, &Path)> =
            m.iter().map(|m| (m.id, m.dev, m.point.as_path())).collect();
        assert_eq!(
            got,
            [
                (
                    61,
                    rustix::fs::makedev(0, 55),
                    Path::new("/srv/images/.partial/b x/rootfs/proc")
                ),
                (
                    62,
                    rustix::fs::makedev(0, 56),
                    Path::new("/srv/images/.partial/b x/rootfs/proc/sys")
                ),
            ]
        );
        assert!(m[0].is(MountId::Id(61)) && m[0].is(MountId::Dev(rustix::fs::makedev(0, 55))));
        assert!(!m[0].is(MountId::Id(62)));
    }
}
