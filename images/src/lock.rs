//! Advisory file locks (`flock(2)`), released when the [`FileLock`] is dropped.
//!
//! flock locks belong to the open file description, so two opens of the same lock file in
//! one process contend just like two processes do (the store tests rely on that). A
//! directory can be locked too (opened read-only), as curtin's image tools lock IMAGE_DIR.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Shared,
    Exclusive,
}

/// A held lock on a file. Dropping it (closing the file) releases the lock.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
    kind: LockKind,
}

impl FileLock {
    /// Waits for the lock. Creates the lock file if `create` is set (needs write access).
    pub fn acquire(path: &Path, kind: LockKind, create: bool) -> io::Result<FileLock> {
        let file = open(path, create)?;
        flock(&file, kind, false)?;
        Ok(FileLock {
            file,
            path: path.to_path_buf(),
            kind,
        })
    }

    /// Takes the lock only if nobody holds a conflicting one: `Ok(None)` when busy.
    pub fn try_acquire(path: &Path, kind: LockKind, create: bool) -> io::Result<Option<FileLock>> {
        let file = open(path, create)?;
        match flock(&file, kind, true) {
            Ok(()) => Ok(Some(FileLock {
                file,
                path: path.to_path_buf(),
                kind,
            })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for the lock for at most `timeout` (for ever when `None`): `Ok(None)` when it
    /// stayed busy that long. Polls every 50 ms: `flock` itself has no timeout.
    pub fn acquire_within(
        path: &Path,
        kind: LockKind,
        create: bool,
        timeout: Option<Duration>,
    ) -> io::Result<Option<FileLock>> {
        let Some(timeout) = timeout else {
            return FileLock::acquire(path, kind, create).map(Some);
        };
        let file = open(path, create)?;
        let deadline = Instant::now() + timeout;
        loop {
            match flock(&file, kind, true) {
                Ok(()) => {
                    return Ok(Some(FileLock {
                        file,
                        path: path.to_path_buf(),
                        kind,
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn kind(&self) -> LockKind {
        self.kind
    }

    /// Writes a short note (e.g. the holder's pid) into the lock file, for error messages.
    pub fn note_holder(&self, text: &str) {
        use std::io::Write;
        let _ = self.file.set_len(0);
        let _ = (&self.file).write_all(text.as_bytes());
    }
}

fn open(path: &Path, create: bool) -> io::Result<File> {
    if create {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    } else {
        File::open(path)
    }
}

fn flock(file: &File, kind: LockKind, nonblocking: bool) -> io::Result<()> {
    let mut op = match kind {
        LockKind::Shared => libc::LOCK_SH,
        LockKind::Exclusive => libc::LOCK_EX,
    };
    if nonblocking {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
