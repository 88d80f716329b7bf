//! What the store removes, and what it never touches: links are removed as links (their
//! targets survive), stray files in `.partial/` are no reason to fail, and nothing mounted
//! outside a build's own tree is ever unmounted.
//!
//! The mount tests need to mount a tmpfs. Each runs in a fresh mount namespace (`unshare`
//! from util-linux; with a user namespace as well when not root), so nothing they mount or
//! unmount is seen by the host, whatever the code under test does.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use images::store::Verify;

mod fake_store;
use fake_store::{fake_image, store};

/// A directory beside the store holding a canary file that must survive.
fn canary_dir(t: &Path) -> PathBuf {
    let outside = t.join("outside");
    fs::create_dir_all(outside.join("sub")).unwrap();
    fs::write(outside.join("sub/canary"), "keep me").unwrap();
    outside
}

fn canary_alive(outside: &Path) -> bool {
    fs::read_to_string(outside.join("sub/canary")).is_ok_and(|t| t == "keep me")
}

#[test]
fn prune_removes_a_link_in_partial_never_its_target() {
    let (t, store) = store();
    let outside = canary_dir(t.path());
    let kept = fake_image(&store, "bookworm", "a");
    let partial = store.dir().join(".partial");
    // One link to a directory outside the store, one to an image inside it, and one deeper
    // in a dead build's tree.
    symlink(&outside, partial.join("bookworm-amd64")).unwrap();
    symlink(&kept, partial.join("trixie-amd64")).unwrap();
    fs::create_dir_all(partial.join("sid-amd64/rootfs")).unwrap();
    symlink(&outside, partial.join("sid-amd64/rootfs/escape")).unwrap();

    let r = store.prune(1).unwrap();

    assert!(canary_alive(&outside), "the link's target was deleted");
    assert!(
        kept.join("squashfs").exists(),
        "the image a link pointed at was deleted"
    );
    assert!(store.find_newest("bookworm", "amd64").is_ok());
    for name in ["bookworm-amd64", "trixie-amd64", "sid-amd64"] {
        assert!(
            fs::symlink_metadata(partial.join(name)).is_err(),
            "{name} is still there"
        );
        assert!(
            r.removed
                .iter()
                .any(|(w, _)| *w == format!(".partial/{name}")),
            "{r:?}"
        );
    }
}

#[test]
fn a_stray_file_in_partial_fails_neither_prune_nor_a_build() {
    let (_t, store) = store();
    store.ensure_writable().unwrap();
    let partial = store.dir().join(".partial");
    fs::write(partial.join("notes.txt"), "stray").unwrap();
    // A file exactly where the next build's staging directory goes.
    fs::write(partial.join("bookworm-amd64"), "stray").unwrap();

    let dir = fake_image(&store, "bookworm", "a");
    assert!(dir.join("squashfs").exists());
    fs::write(partial.join("bookworm-amd64"), "stray again").unwrap();
    let r = store.prune(1).unwrap();
    assert!(
        r.removed.iter().any(|(w, _)| w == ".partial/notes.txt"),
        "{r:?}"
    );
    assert!(fs::read_dir(&partial).unwrap().next().is_none());
    assert_eq!(store.list(Verify::Cached).unwrap().len(), 1);
}

#[test]
fn a_build_never_stages_through_a_link() {
    let (t, store) = store();
    let outside = canary_dir(t.path());
    store.ensure_writable().unwrap();
    symlink(&outside, store.dir().join(".partial/bookworm-amd64")).unwrap();
    let dir = fake_image(&store, "bookworm", "a");
    assert!(dir.starts_with(store.dir()));
    assert!(canary_alive(&outside));
    assert!(
        !outside.join("out").exists(),
        "the build wrote through the link"
    );
}

// ---- mounts ----

/// Runs the test named `name` again in its own mount namespace (and user namespace when
/// not root), unless this already is that run; returns whether the caller should go on.
fn in_own_mount_namespace(name: &str) -> bool {
    if std::env::var_os("IMAGES_TEST_MOUNT_NS").is_some() {
        return true;
    }
    let mut cmd = Command::new("unshare");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd.args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env("IMAGES_TEST_MOUNT_NS", "1");
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run unshare (util-linux) for a mount test: {e}; install util-linux")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} in its own mount namespace failed (needs unshare and user namespaces, or root):\n{text}"
    );
    false
}

fn mount_tmpfs(at: &Path) {
    fs::create_dir_all(at).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "vmtest-test"])
        .arg(at)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs at {}", at.display());
}

fn is_mounted(at: &Path) -> bool {
    let at = fs::canonicalize(at).unwrap_or_else(|_| at.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4).map(Path::new) == Some(at.as_path()))
}

#[test]
fn prune_never_unmounts_what_a_link_in_partial_points_at() {
    if !in_own_mount_namespace("prune_never_unmounts_what_a_link_in_partial_points_at") {
        return;
    }
    let (t, store) = store();
    let outside = canary_dir(t.path());
    mount_tmpfs(&outside.join("mnt"));
    fs::write(outside.join("mnt/canary"), "keep me").unwrap();
    store.ensure_writable().unwrap();
    symlink(&outside, store.dir().join(".partial/bookworm-amd64")).unwrap();

    store.prune(1).unwrap();

    assert!(
        is_mounted(&outside.join("mnt")),
        "a mount outside the store was detached"
    );
    assert_eq!(
        fs::read_to_string(outside.join("mnt/canary")).unwrap(),
        "keep me"
    );
    assert!(canary_alive(&outside));
}

#[test]
fn prune_detaches_what_a_dead_build_left_mounted_in_its_tree() {
    if !in_own_mount_namespace("prune_detaches_what_a_dead_build_left_mounted_in_its_tree") {
        return;
    }
    let (_t, store) = store();
    store.ensure_writable().unwrap();
    let rootfs = store.dir().join(".partial/bookworm-amd64/rootfs");
    for m in ["proc", "sys/fs/cgroup", "dev"] {
        mount_tmpfs(&rootfs.join(m));
        fs::write(rootfs.join(m).join("file"), "x").unwrap();
    }
    // One more mount stacked on a mount inside the tree.
    mount_tmpfs(&rootfs.join("sys"));

    let r = store.prune(1).unwrap();

    assert!(
        r.removed
            .iter()
            .any(|(w, _)| w == ".partial/bookworm-amd64"),
        "{r:?}"
    );
    assert!(!rootfs.exists());
    assert!(!is_mounted(&rootfs.join("proc")));
}

#[test]
fn prune_leaves_an_image_with_something_mounted_inside() {
    if !in_own_mount_namespace("prune_leaves_an_image_with_something_mounted_inside") {
        return;
    }
    let (_t, store) = store();
    let old = fake_image(&store, "bookworm", "old");
    let new = fake_image(&store, "bookworm", "new");
    // Nothing of ours mounts inside a published image: whoever did, it is theirs.
    mount_tmpfs(&old.join("mnt"));
    fs::write(old.join("mnt/data"), "theirs").unwrap();

    let r = store.prune(1).unwrap();

    assert!(is_mounted(&old.join("mnt")));
    assert_eq!(fs::read_to_string(old.join("mnt/data")).unwrap(), "theirs");
    assert!(
        old.join("squashfs").exists(),
        "the refused image was partly removed"
    );
    assert!(
        r.skipped.iter().any(
            |(w, why)| w.ends_with(old.file_name().unwrap().to_str().unwrap())
                && why.contains("mounted")
        ),
        "{r:?}"
    );
    assert!(new.join("squashfs").exists());
}
