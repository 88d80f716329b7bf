//! CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT as `vmtest images sync` reads it from its environment
//! (given here, never the host's): with curtin's image sync holding IMAGE_DIR, the sync
//! gives up after that long with an error naming the lock and the variable, instead of
//! waiting for ever. (The run's own look-ups: `runner::images`' unit test.)

use std::process::{Command, Stdio};

use images::lock::{FileLock, LockKind};
use images::store::CURTIN_LOCK;

/// Seconds: far more than a 0 s timeout needs; a sync still waiting by then ignored the
/// variable, and coreutils' `timeout` ends it (status 124).
const GIVE_UP_WITHIN: &str = "60";

#[test]
fn images_sync_gives_up_after_the_lock_timeout() {
    let d = tempfile::tempdir().unwrap();
    // curtin's vmtest-sync-images holds its lock file exclusively while it works.
    let _sync = FileLock::acquire(&d.path().join(CURTIN_LOCK), LockKind::Exclusive, true).unwrap();
    let out = Command::new("timeout")
        .arg(GIVE_UP_WITHIN)
        .arg(env!("CARGO_BIN_EXE_vmtest"))
        .args(["images", "sync"])
        .env("IMAGE_DIR", d.path())
        .env("CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT", "0")
        .env_remove("CURTIN_VMTEST_IMAGE_SYNC")
        .stdin(Stdio::null())
        .output()
        .expect("coreutils' timeout runs vmtest");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(124),
        "`vmtest images sync` still waited for the lock after {GIVE_UP_WITHIN} s"
    );
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("curtin's image sync") && err.contains("CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT"),
        "{err}"
    );
}
