//! The store and curtin's own image tools in one IMAGE_DIR: a second process takes curtin's
//! locks the way curtin's `tools/vmtest-sync-images` (exclusive: the directory, then
//! `vmtest-images.lock`) and `tools/jenkins-runner` (shared: the directory while taking
//! the file, then the file for the whole run) take them, with `flock(1)` on descriptors as
//! those tools do; the store waits for a sync, gives up after its timeout, makes a sync wait
//! for an image in use, and runs beside curtin's test runners.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use images::store::{CURTIN_LOCK, StoreError, Verify};

mod fake_store;
use fake_store::{fake_image, store};

/// Long enough that an operation which does not wait has finished (these take
/// milliseconds); only ever used to show that something is still waiting.
const STILL_WAITING: Duration = Duration::from_millis(700);
/// Generous bound for what must finish once the way is free.
const DONE: Duration = Duration::from_secs(20);

/// A second process holding curtin's locks; releases them when dropped (or `release`d).
struct CurtinTool {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl CurtinTool {
    /// Runs `script` (sh) with `$1` = IMAGE_DIR and `$2` = its vmtest-images.lock. The
    /// script prints progress lines and holds its locks until its stdin closes.
    fn start(dir: &Path, script: &str) -> CurtinTool {
        let mut child = Command::new("sh")
            .args(["-c", script, "curtin-tool"])
            .arg(dir)
            .arg(dir.join(CURTIN_LOCK))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh and flock (util-linux)");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let stdin = child.stdin.take();
        CurtinTool {
            child,
            stdin,
            lines,
        }
    }

    /// vmtest-sync-images: the directory exclusively, then the lock file exclusively.
    fn sync(dir: &Path) -> CurtinTool {
        let t = CurtinTool::start(
            dir,
            "exec 8<\"$1\"; flock -x 8; echo dir-locked; \
             exec 9>\"$2\"; flock -x 9; echo locked; read _",
        );
        t.expect("dir-locked");
        t
    }

    /// jenkins-runner: the directory shared while taking the lock file shared, which it
    /// keeps for its whole run.
    fn runner(dir: &Path) -> CurtinTool {
        let t = CurtinTool::start(
            dir,
            "exec 8<\"$1\"; flock -s 8; exec 9>\"$2\"; flock -s 9; exec 8<&-; \
             echo locked; read _",
        );
        t.expect("locked");
        t
    }

    fn expect(&self, line: &str) {
        let got = self.lines.recv_timeout(DONE);
        assert_eq!(got.as_deref(), Ok(line), "curtin tool did not say {line:?}");
    }

    fn has_said(&self, line: &str, within: Duration) -> bool {
        self.lines.recv_timeout(within).as_deref() == Ok(line)
    }

    fn release(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"\n");
        }
    }
}

impl Drop for CurtinTool {
    fn drop(&mut self) {
        self.release();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` on a thread; the receiver gets its name when it returns.
fn run(name: &'static str, f: impl FnOnce() + Send + 'static) -> Receiver<&'static str> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        f();
        let _ = tx.send(name);
    });
    rx
}

#[test]
fn lookups_publishing_and_pruning_wait_while_curtin_syncs() {
    let (_t, store) = store();
    fake_image(&store, "bookworm", "a");
    let mut sync = CurtinTool::sync(store.dir());
    sync.expect("locked");

    let waiting = [
        run("find_newest", {
            let s = store.clone();
            move || drop(s.find_newest("bookworm", "amd64").unwrap())
        }),
        run("list", {
            let s = store.clone();
            move || drop(s.list(Verify::Cached).unwrap())
        }),
        run("prune", {
            let s = store.clone();
            move || drop(s.prune(1).unwrap())
        }),
        run("publish", {
            let s = store.clone();
            move || drop(fake_image(&s, "bookworm", "b"))
        }),
    ];
    for w in &waiting {
        assert!(
            w.recv_timeout(STILL_WAITING).is_err(),
            "went ahead while curtin's sync held IMAGE_DIR"
        );
    }
    sync.release();
    for w in &waiting {
        w.recv_timeout(DONE)
            .expect("never got the lock after the sync");
    }
    assert!(store.find_newest("bookworm", "amd64").is_ok());
}

#[test]
fn a_lock_timeout_gives_up_with_a_clear_error() {
    let (_t, store) = store();
    fake_image(&store, "bookworm", "a");
    let mut sync = CurtinTool::sync(store.dir());
    sync.expect("locked");
    let impatient = store
        .clone()
        .with_lock_timeout(Some(Duration::from_millis(300)));
    let err = impatient.find_newest("bookworm", "amd64").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::CurtinBusy { .. }), "{msg}");
    assert!(msg.contains("curtin's image sync"), "{msg}");
    assert!(msg.contains(&store.dir().display().to_string()), "{msg}");
    assert!(msg.contains("CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT"), "{msg}");
    assert!(matches!(
        impatient.prune(0),
        Err(StoreError::CurtinBusy { .. })
    ));
    sync.release();
    drop(sync);
    // Nothing was removed while it waited, and the way is free again.
    assert!(impatient.find_newest("bookworm", "amd64").is_ok());
}

#[test]
fn curtin_sync_waits_for_an_image_in_use() {
    let (_t, store) = store();
    fake_image(&store, "bookworm", "a");
    let image = store.find_newest("bookworm", "amd64").unwrap();
    // The sync takes the directory, then waits for the lock file: a test runs.
    let sync = CurtinTool::sync(store.dir());
    assert!(
        !sync.has_said("locked", STILL_WAITING),
        "curtin's sync went ahead while an image was in use"
    );
    // This process's next look-ups share its hold rather than queue behind the sync (which
    // waits for this process: that would never end).
    let more = run("second look-up", {
        let s = store.clone();
        move || {
            let second = s.find_newest("bookworm", "amd64").unwrap();
            s.list(Verify::Cached).unwrap();
            drop(second);
        }
    });
    more.recv_timeout(DONE)
        .expect("a look-up in the process holding an image waited for the sync");
    drop(image);
    assert!(
        sync.has_said("locked", DONE),
        "curtin's sync never got the lock after the image was dropped"
    );
}

#[test]
fn curtin_runners_and_this_store_share_the_directory() {
    let (_t, store) = store();
    fake_image(&store, "bookworm", "a");
    let _runner = CurtinTool::runner(store.dir());
    let ours = run("look-up, publish, prune", {
        let s = store.clone();
        move || {
            let img = s.find_newest("bookworm", "amd64").unwrap();
            fake_image(&s, "bookworm", "b");
            s.prune(1).unwrap();
            drop(img);
        }
    });
    ours.recv_timeout(DONE)
        .expect("the store waited for one of curtin's test runners");
    // And a curtin runner starts while one of our images is in use.
    let _image = store.find_newest("bookworm", "amd64").unwrap();
    let second = CurtinTool::start(
        store.dir(),
        "exec 8<\"$1\"; flock -n -s 8 && exec 9>\"$2\" && flock -n -s 9 && echo locked; read _",
    );
    assert!(
        second.has_said("locked", DONE),
        "a curtin runner could not start"
    );
}
