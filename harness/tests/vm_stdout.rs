//! The builtin VMM's watchdog ends a run even when stdout, where the serial console is
//! copied, is not read: the echo probe sends more output than the pipe holds into a
//! stdout nobody reads, and `vmtest vm --timeout 3` still ends (code 4, timeout) promptly.
//! Before, the vCPU thread blocked in its write and the watchdog waited for it for ever.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn an_unread_stdout_does_not_stop_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    // Input for the echo probe with no terminator: it echoes every byte back.
    let input = dir.path().join("input");
    std::fs::write(&input, vec![b'a'; 256 << 10]).unwrap();
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors on success.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both are new and owned here.
    let (unread, stdout) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // The smallest pipe (one page), so a few KiB of echo fill it.
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmtest"))
        .args([
            "vm",
            "--console",
            "--timeout",
            "3",
            "--memory",
            "64M",
            "--kernel",
        ])
        .arg(probes::pvh_elf())
        .args(["--append", "action=echo"])
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vmtest vm hung with an unread stdout (timeout 3 s)");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(4), "timed out, as asked: {err}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    drop(unread);
}
