//! Starting a VM process (qemu) so that it dies with the harness, whatever kills the
//! harness, and inherits exactly the descriptors it is handed.
//!
//! The kernel's parent-death signal does the first: the child asks for SIGKILL when its
//! parent goes (`PR_SET_PDEATHSIG`), set between fork and exec. If the harness died in the
//! window before the request, the child would already be an orphan and never get the
//! signal, so it checks its parent afterwards and gives up if that changed. The signal
//! follows the *thread* that forked: the backends spawn and wait from the same thread, which
//! outlives the child.
//!
//! Everything the harness opens is close-on-exec (Rust's default); the descriptors to hand
//! on (qemu's NIC sockets, its QMP socket) have the flag cleared in the child only, so a
//! concurrent spawn on another thread never inherits them.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Spawns `cmd` with `keep` inherited (same numbers) and the parent-death signal set.
pub fn spawn(cmd: &mut Command, keep: &[RawFd]) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    let keep = keep.to_vec();
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions
    // (fcntl, prctl, getppid) and builds errors from raw codes, which does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &keep {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // The harness is already gone: nobody would ever stop this child.
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    /// The child's exit status within `secs` seconds; else it is killed and the test fails
    /// with `why`.
    fn wait_at_most(
        child: &mut std::process::Child,
        secs: u64,
        why: &str,
    ) -> std::process::ExitStatus {
        let start = std::time::Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if start.elapsed() > std::time::Duration::from_secs(secs) {
                let _ = child.kill();
                let _ = child.wait(); // reaping a killed child returns at once
                panic!("{why} (waited {secs} s)");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn the_child_is_killed_when_the_thread_that_started_it_ends() {
        use std::os::unix::process::ExitStatusExt;
        // The death signal follows the forking thread: a thread that ends plays a harness
        // that dies, without killing the test.
        let mut child = std::thread::spawn(|| {
            let mut cmd = Command::new("sleep");
            cmd.arg("60");
            spawn(&mut cmd, &[]).unwrap()
        })
        .join()
        .unwrap();
        let status = wait_at_most(&mut child, 10, "the child outlived its parent");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn only_the_named_descriptors_are_inherited() {
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let (_other_ours, other_theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let script = format!(
            "echo hi >&{fd}; [ -e /proc/self/fd/{other} ] && echo leaked >&{fd}; exit 0",
            fd = theirs.as_raw_fd(),
            other = other_theirs.as_raw_fd()
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]);
        let mut child = spawn(&mut cmd, &[theirs.as_raw_fd()]).unwrap();
        drop(theirs);
        assert!(wait_at_most(&mut child, 10, "sh did not end").success());
        let mut got = String::new();
        ours.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hi\n");
    }
}
