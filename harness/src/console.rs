//! The interactive serial console of the builtin VMM: this terminal's keystrokes go to the
//! guest's ttyS0, with QEMU's escape keys so nobody has to learn new ones:
//!
//! - `Ctrl-A x` leaves: the VM is stopped (`ExitReason::Stopped`).
//! - `Ctrl-A h` (or `Ctrl-A ?`) prints the keys.
//! - `Ctrl-A Ctrl-A` sends one Ctrl-A to the guest.
//! - Any other key after Ctrl-A is ignored, as QEMU does.
//!
//! On a terminal, stdin is put in raw mode (as QEMU's `-chardev stdio` does: no line
//! editing, no echo, Ctrl-C goes to the guest; output processing stays on) and restored
//! when the console ends, on every way out: normal end, error, panic (the guard's `Drop`),
//! and SIGTERM/SIGHUP/SIGINT sent from outside (a handler restores, then lets the signal
//! do what it would have). From a pipe, bytes pass through unchanged and the escape keys
//! still work, for scripts and tests; end of input leaves the VM running.
//!
//! The guest's output is not handled here: the VMM writes it to stdout and the serial log.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// Printed (on stderr) when the console attaches.
pub const ATTACH_LINE: &str = "console attached: Ctrl-A x to leave, Ctrl-A h for help";

/// The escape byte, Ctrl-A (as in QEMU).
pub const ESCAPE: u8 = 0x01;

/// What `Ctrl-A h` prints.
pub const HELP: &str = "\
Ctrl-A h        print this help
Ctrl-A x        leave the console and stop the VM
Ctrl-A Ctrl-A   send Ctrl-A to the guest
";

/// What the keys typed at the console ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// Bytes for the guest.
    Guest(Vec<u8>),
    /// Ctrl-A h: show the keys.
    Help,
    /// Ctrl-A x: leave and stop the VM.
    Leave,
}

/// Splits console input into bytes for the guest and escape commands. Sequences may be
/// split across reads: a Ctrl-A at the end of one read is completed by the next.
#[derive(Debug, Default)]
pub struct EscapeParser {
    after_escape: bool,
}

impl EscapeParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events in `input`, in order; consecutive guest bytes come as one event.
    pub fn feed(&mut self, input: &[u8]) -> Vec<ConsoleEvent> {
        let mut events = Vec::new();
        let mut guest = Vec::new();
        for &b in input {
            if self.after_escape {
                self.after_escape = false;
                let event = match b {
                    ESCAPE => {
                        guest.push(ESCAPE);
                        continue;
                    }
                    b'x' | b'X' => ConsoleEvent::Leave,
                    b'h' | b'H' | b'?' => ConsoleEvent::Help,
                    _ => continue, // unknown: swallowed, as QEMU does
                };
                if !guest.is_empty() {
                    events.push(ConsoleEvent::Guest(std::mem::take(&mut guest)));
                }
                events.push(event);
            } else if b == ESCAPE {
                self.after_escape = true;
            } else {
                guest.push(b);
            }
        }
        if !guest.is_empty() {
            events.push(ConsoleEvent::Guest(guest));
        }
        events
    }
}

/// Whether `fd` is a terminal.
pub fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The saved settings of a terminal, written back when this is dropped.
pub struct TerminalGuard {
    fd: RawFd,
    saved: libc::termios,
    signals: Option<SignalRestore>,
}

impl TerminalGuard {
    /// Saves `fd`'s settings; `None` when `fd` is no terminal.
    pub fn save(fd: RawFd) -> io::Result<Option<TerminalGuard>> {
        if !is_tty(fd) {
            return Ok(None);
        }
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open and `saved` is a valid termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(TerminalGuard {
            fd,
            saved,
            signals: None,
        }))
    }

    /// Saves `fd`'s settings and switches it to raw input (`None` when `fd` is no
    /// terminal). Also installs handlers so a terminating signal restores the terminal.
    pub fn raw(fd: RawFd) -> io::Result<Option<TerminalGuard>> {
        let Some(mut guard) = Self::save(fd)? else {
            return Ok(None);
        };
        let mut raw = guard.saved;
        raw_input(&mut raw);
        guard.signals = Some(SignalRestore::install(fd, &guard.saved));
        // SAFETY: fd is an open terminal and `raw` a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(guard))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        // SAFETY: fd was a terminal when saved; a failure (terminal gone) is harmless.
        unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved) };
        drop(self.signals.take());
    }
}

/// The settings QEMU's stdio console uses: every byte is read as typed (no line editing,
/// no echo, no signals from Ctrl-C/Ctrl-Z/Ctrl-\, no flow control, no CR→NL), output
/// processing kept so `\n` still starts a new line.
pub fn raw_input(t: &mut libc::termios) {
    t.c_iflag &= !(libc::IGNBRK
        | libc::BRKINT
        | libc::PARMRK
        | libc::ISTRIP
        | libc::INLCR
        | libc::IGNCR
        | libc::ICRNL
        | libc::IXON);
    t.c_oflag |= libc::OPOST;
    t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG | libc::IEXTEN);
    t.c_cflag &= !(libc::CSIZE | libc::PARENB);
    t.c_cflag |= libc::CS8;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
}

// What the signal handler restores: one raw-mode terminal at a time (there is one stdin).
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);
static mut SIGNAL_TERMIOS: std::mem::MaybeUninit<libc::termios> = std::mem::MaybeUninit::uninit();

const RESTORING_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGHUP, libc::SIGINT];

extern "C" fn restore_and_reraise(sig: libc::c_int) {
    let fd = SIGNAL_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: SIGNAL_TERMIOS was written before SIGNAL_FD was set; tcsetattr, signal
        // and raise are async-signal-safe.
        unsafe {
            libc::tcsetattr(
                fd,
                libc::TCSANOW,
                (&raw const SIGNAL_TERMIOS).cast::<libc::termios>(),
            );
        }
    }
    // SAFETY: back to the default action, then the signal does what it would have done.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Handlers for terminating signals while the terminal is raw; the previous ones come
/// back on drop.
struct SignalRestore {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalRestore {
    fn install(fd: RawFd, saved: &libc::termios) -> SignalRestore {
        // SAFETY: no handler reads SIGNAL_TERMIOS while SIGNAL_FD is -1.
        unsafe {
            SIGNAL_FD.store(-1, Ordering::SeqCst);
            (&raw mut SIGNAL_TERMIOS)
                .cast::<libc::termios>()
                .write(*saved);
        }
        SIGNAL_FD.store(fd, Ordering::SeqCst);
        let mut previous = Vec::new();
        for sig in RESTORING_SIGNALS {
            // SAFETY: sigaction structs are plain data, filled or read by the kernel.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                    continue;
                }
                // A signal the program ignores stays ignored.
                if old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = restore_and_reraise as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut new.sa_mask);
                if libc::sigaction(sig, &new, std::ptr::null_mut()) == 0 {
                    previous.push((sig, old));
                }
            }
        }
        SignalRestore { previous }
    }
}

impl Drop for SignalRestore {
    fn drop(&mut self) {
        for (sig, old) in &self.previous {
            // SAFETY: `old` came from sigaction.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
        SIGNAL_FD.store(-1, Ordering::SeqCst);
    }
}

/// An attached console: a thread reading stdin, the terminal's saved settings, and a pipe
/// that tells the thread to finish. Dropping it detaches (joins the thread) and restores
/// the terminal.
pub struct Console {
    wake: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
    _terminal: Option<TerminalGuard>,
}

impl Console {
    /// Attaches this process's stdin: guest bytes go to `input`, Ctrl-A x calls `leave`.
    /// Prints [`ATTACH_LINE`] on stderr.
    pub fn attach_stdin(
        input: vmm::SerialInput,
        leave: impl FnOnce() + Send + 'static,
    ) -> io::Result<Console> {
        Self::attach(libc::STDIN_FILENO, input, leave)
    }

    /// Attaches `fd` (raw mode when it is a terminal). `fd` must stay open until the
    /// console is dropped.
    pub fn attach(
        fd: RawFd,
        input: vmm::SerialInput,
        leave: impl FnOnce() + Send + 'static,
    ) -> io::Result<Console> {
        let terminal = TerminalGuard::raw(fd)?;
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors are new and owned here.
        let (wake_rx, wake_tx) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let thread = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || read_loop(fd, wake_rx, input, leave))?;
        eprintln!("{ATTACH_LINE}");
        Ok(Console {
            wake: Some(wake_tx),
            thread: Some(thread),
            _terminal: terminal,
        })
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        // Closing the pipe's write end wakes the reader's poll.
        drop(self.wake.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The terminal guard restores the settings after the reader is gone.
    }
}

fn read_loop(fd: RawFd, wake: OwnedFd, input: vmm::SerialInput, leave: impl FnOnce()) {
    let mut leave = Some(leave);
    let mut parser = EscapeParser::new();
    let mut buf = [0u8; 4096];
    let mut stdin_open = true;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let n_fds = if stdin_open { 2 } else { 1 };
        // SAFETY: `fds` holds `n_fds` valid pollfd entries.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), n_fds, -1) };
        if r < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::warn!("console: poll failed: {}", io::Error::last_os_error());
            return;
        }
        if fds[0].revents != 0 {
            return; // detached
        }
        if !stdin_open || fds[1].revents == 0 {
            continue;
        }
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ) {
                continue;
            }
            // A terminal that went away (EIO): nothing more to read; the VM runs on.
            tracing::debug!("console: input ended: {e}");
            stdin_open = false;
            continue;
        }
        if n == 0 {
            // End of input (a pipe): the guest keeps running until it ends or times out.
            stdin_open = false;
            continue;
        }
        for event in parser.feed(&buf[..n as usize]) {
            match event {
                ConsoleEvent::Guest(bytes) => input.send(&bytes),
                ConsoleEvent::Help => {
                    let mut out = io::stdout().lock();
                    let _ = out.write_all(format!("\n{HELP}").as_bytes());
                    let _ = out.flush();
                }
                ConsoleEvent::Leave => {
                    if let Some(leave) = leave.take() {
                        leave();
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConsoleEvent::*;

    fn feed_all(parts: &[&[u8]]) -> Vec<ConsoleEvent> {
        let mut p = EscapeParser::new();
        parts.iter().flat_map(|part| p.feed(part)).collect()
    }

    #[test]
    fn plain_bytes_pass_through() {
        assert_eq!(feed_all(&[b"root\r"]), vec![Guest(b"root\r".to_vec())]);
        // Ctrl-C, Ctrl-D, Ctrl-Z and the like are the guest's.
        assert_eq!(
            feed_all(&[b"\x03\x04\x1a"]),
            vec![Guest(b"\x03\x04\x1a".to_vec())]
        );
        assert_eq!(feed_all(&[b""]), vec![]);
    }

    #[test]
    fn ctrl_a_x_leaves_and_ctrl_a_h_asks_for_help() {
        assert_eq!(
            feed_all(&[b"ab\x01hcd\x01x"]),
            vec![Guest(b"ab".to_vec()), Help, Guest(b"cd".to_vec()), Leave]
        );
        assert_eq!(feed_all(&[b"\x01?"]), vec![Help]);
        assert_eq!(feed_all(&[b"\x01X"]), vec![Leave]);
    }

    #[test]
    fn ctrl_a_ctrl_a_sends_one_ctrl_a() {
        assert_eq!(feed_all(&[b"a\x01\x01b"]), vec![Guest(b"a\x01b".to_vec())]);
        assert_eq!(
            feed_all(&[b"\x01\x01\x01\x01"]),
            vec![Guest(b"\x01\x01".to_vec())]
        );
    }

    #[test]
    fn sequences_split_across_reads() {
        assert_eq!(
            feed_all(&[b"ls\x01", b"x"]),
            vec![Guest(b"ls".to_vec()), Leave]
        );
        assert_eq!(
            feed_all(&[b"\x01", b"\x01", b"z"]),
            vec![Guest(vec![ESCAPE]), Guest(b"z".to_vec())]
        );
        assert_eq!(feed_all(&[b"\x01", b"", b"h"]), vec![Help]);
    }

    #[test]
    fn unknown_keys_after_ctrl_a_are_swallowed() {
        assert_eq!(
            feed_all(&[b"a\x01qb\x01", b"c"]),
            vec![Guest(b"ab".to_vec())]
        );
        assert_eq!(feed_all(&[b"\x01\r"]), vec![]);
    }

    #[test]
    fn raw_input_settings() {
        // SAFETY: termios is plain data.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        t.c_lflag = libc::ICANON | libc::ECHO | libc::ISIG;
        t.c_iflag = libc::ICRNL | libc::IXON;
        raw_input(&mut t);
        assert_eq!(t.c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG), 0);
        assert_eq!(t.c_iflag & (libc::ICRNL | libc::IXON), 0);
        assert_ne!(t.c_oflag & libc::OPOST, 0);
        assert_eq!(t.c_cc[libc::VMIN], 1);
    }

    #[test]
    fn a_pipe_feeds_the_input_and_ctrl_a_x_calls_leave() {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a writable array of two descriptors, as pipe(2) needs.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: new descriptors, owned here.
        let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut tx = std::fs::File::from(tx);
        let input = vmm::SerialInput::new();
        let (left_tx, left_rx) = std::sync::mpsc::channel();
        let console = Console::attach(rx.as_raw_fd(), input.clone(), move || {
            left_tx.send(()).unwrap();
        })
        .unwrap();
        tx.write_all(b"echo hi\r\x01\x01").unwrap();
        tx.write_all(b"\x01x").unwrap();
        left_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("Ctrl-A x reached leave");
        drop(console);
        assert_eq!(input.backlog(), b"echo hi\r\x01".len());
    }

    #[test]
    fn end_of_input_leaves_the_vm_running_and_detach_returns() {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a writable array of two descriptors, as pipe(2) needs.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: new descriptors, owned here.
        let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let (left_tx, left_rx) = std::sync::mpsc::channel::<()>();
        let console = Console::attach(rx.as_raw_fd(), vmm::SerialInput::new(), move || {
            left_tx.send(()).unwrap();
        })
        .unwrap();
        drop(tx);
        assert_eq!(
            left_rx.recv_timeout(std::time::Duration::from_millis(300)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout),
            "EOF is not a request to leave"
        );
        let start = std::time::Instant::now();
        drop(console);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
