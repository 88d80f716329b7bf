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
//! and SIGTERM/SIGHUP/SIGINT sent from outside (see [`restore_on_signal`]: the terminal is
//! put back, then the signal does what it would have). From a pipe, bytes pass through
//! unchanged and the escape keys still work, for scripts and tests; end of input leaves the
//! VM running.
//!
//! The keys are read all the time, even while the guest reads nothing: typed bytes wait
//! (up to [`PENDING_LIMIT`] beyond the VMM's own input backlog) and what does not fit is
//! dropped with a notice, so Ctrl-A x always gets through.
//!
//! The guest's output is not handled here: the VMM writes it to stdout and the serial log.

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::termios::{
    self, ControlModes, InputModes, LocalModes, OptionalActions, OutputModes, SpecialCodeIndex,
    Termios,
};

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

/// Typed bytes the console holds while the VMM's input backlog is full (the guest is not
/// reading). Beyond it keys are still read, for Ctrl-A x, but bytes for the guest are
/// dropped.
pub const PENDING_LIMIT: usize = 64 << 10;

/// How often held bytes are offered to the VMM again while its backlog is full.
const RETRY: Duration = Duration::from_millis(10);

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

/// The saved settings of a terminal, written back when this is dropped.
pub struct TerminalGuard {
    /// A duplicate of the terminal's descriptor, so the guard never outlives what it
    /// restores.
    fd: OwnedFd,
    saved: Termios,
    /// Registered with [`restore_on_signal`] (raw mode).
    armed: bool,
}

impl TerminalGuard {
    /// Saves `fd`'s settings; `None` when `fd` is no terminal.
    pub fn save(fd: impl AsFd) -> io::Result<Option<TerminalGuard>> {
        let fd = fd.as_fd();
        if !fd.is_terminal() {
            return Ok(None);
        }
        let saved = termios::tcgetattr(fd)?;
        Ok(Some(TerminalGuard {
            fd: fd.try_clone_to_owned()?,
            saved,
            armed: false,
        }))
    }

    /// Saves `fd`'s settings and switches it to raw input (`None` when `fd` is no
    /// terminal). Until the guard is dropped, a terminating signal restores the terminal
    /// first.
    pub fn raw(fd: impl AsFd) -> io::Result<Option<TerminalGuard>> {
        let Some(mut guard) = Self::save(fd)? else {
            return Ok(None);
        };
        let mut raw = guard.saved.clone();
        raw_input(&mut raw);
        restore_on_signal::arm(&guard.fd, &guard.saved)?;
        guard.armed = true;
        termios::tcsetattr(&guard.fd, OptionalActions::Drain, &raw)?;
        Ok(Some(guard))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        // A failure (the terminal went away) leaves nothing to restore.
        let _ = termios::tcsetattr(&self.fd, OptionalActions::Drain, &self.saved);
        if self.armed {
            restore_on_signal::disarm();
        }
    }
}

/// The settings QEMU's stdio console uses: every byte is read as typed (no line editing,
/// no echo, no signals from Ctrl-C/Ctrl-Z/Ctrl-\, no flow control, no CR→NL), output
/// processing kept so `\n` still starts a new line.
pub fn raw_input(t: &mut Termios) {
    t.input_modes.remove(
        InputModes::IGNBRK
            | InputModes::BRKINT
            | InputModes::PARMRK
            | InputModes::ISTRIP
            | InputModes::INLCR
            | InputModes::IGNCR
            | InputModes::ICRNL
            | InputModes::IXON,
    );
    t.output_modes.insert(OutputModes::OPOST);
    t.local_modes.remove(
        LocalModes::ECHO
            | LocalModes::ECHONL
            | LocalModes::ICANON
            | LocalModes::ISIG
            | LocalModes::IEXTEN,
    );
    t.control_modes
        .remove(ControlModes::CSIZE | ControlModes::PARENB);
    t.control_modes.insert(ControlModes::CS8);
    t.special_codes[SpecialCodeIndex::VMIN] = 1;
    t.special_codes[SpecialCodeIndex::VTIME] = 0;
}

pub mod restore_on_signal;

/// An attached console: a thread reading the input, the terminal's saved settings, and a
/// pipe that tells the thread to finish. Dropping it detaches (joins the thread) and
/// restores the terminal.
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
        Self::attach(io::stdin().as_fd().try_clone_to_owned()?, input, leave)
    }

    /// Attaches `fd` (raw mode when it is a terminal).
    pub fn attach(
        fd: OwnedFd,
        input: vmm::SerialInput,
        leave: impl FnOnce() + Send + 'static,
    ) -> io::Result<Console> {
        let terminal = TerminalGuard::raw(&fd)?;
        let (wake_rx, wake_tx) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
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

/// Bytes for the guest on their way into the VMM's input, held while its backlog is full.
struct Outbox {
    input: vmm::SerialInput,
    held: VecDeque<u8>,
    /// Bytes dropped since the guest last took some (for one notice per stall).
    dropped: usize,
}

impl Outbox {
    /// Hands over what the VMM takes now; true when nothing is held any more.
    fn flush(&mut self) -> bool {
        while !self.held.is_empty() {
            let (front, _) = self.held.as_slices();
            let taken = self.input.try_send(front);
            self.held.drain(..taken);
            if taken == 0 {
                return false;
            }
            self.dropped = 0;
        }
        true
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = PENDING_LIMIT - self.held.len();
        self.held.extend(&bytes[..bytes.len().min(room)]);
        if bytes.len() > room {
            if self.dropped == 0 {
                // Raw mode: the line needs its own carriage return.
                eprint!(
                    "\r\nconsole: the guest is not reading its input; typed bytes are dropped (Ctrl-A x still leaves)\r\n"
                );
            }
            self.dropped += bytes.len() - room;
        }
        self.flush();
    }
}

fn read_loop(fd: OwnedFd, wake: OwnedFd, input: vmm::SerialInput, leave: impl FnOnce()) {
    let mut leave = Some(leave);
    let mut parser = EscapeParser::new();
    let mut outbox = Outbox {
        input,
        held: VecDeque::new(),
        dropped: 0,
    };
    let mut buf = [0u8; 4096];
    let mut input_open = true;
    let retry = Timespec::try_from(RETRY).expect("a small duration");
    loop {
        let idle = outbox.flush();
        let mut fds = [
            PollFd::new(&wake, PollFlags::IN),
            PollFd::new(&fd, PollFlags::IN),
        ];
        let watched = if input_open { 2 } else { 1 };
        // While bytes are held, wake up now and then to offer them again.
        let timeout = if idle { None } else { Some(&retry) };
        match poll(&mut fds[..watched], timeout) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => {
                tracing::warn!("console: poll failed: {e}");
                return;
            }
        }
        if !fds[0].revents().is_empty() {
            return; // detached
        }
        if !input_open || fds[1].revents().is_empty() {
            continue;
        }
        let n = match rustix::io::read(&fd, &mut buf) {
            Ok(0) => {
                // End of input (a pipe): the guest keeps running until it ends or times out.
                input_open = false;
                continue;
            }
            Ok(n) => n,
            Err(Errno::INTR | Errno::AGAIN) => continue,
            Err(e) => {
                // A terminal that went away (EIO): nothing more to read; the VM runs on.
                tracing::debug!("console: input ended: {e}");
                input_open = false;
                continue;
            }
        };
        for event in parser.feed(&buf[..n]) {
            match event {
                ConsoleEvent::Guest(bytes) => outbox.push(&bytes),
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
    use std::io::Write;

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

    /// A terminal's settings as a pseudo-terminal starts with them (cooked mode).
    fn cooked() -> Termios {
        let pty =
            rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY)
                .expect("a pseudo-terminal");
        termios::tcgetattr(&pty).expect("its settings")
    }

    #[test]
    fn raw_input_settings() {
        let mut t = cooked();
        t.local_modes
            .insert(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG);
        t.input_modes.insert(InputModes::ICRNL | InputModes::IXON);
        raw_input(&mut t);
        assert!(
            !t.local_modes
                .intersects(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG)
        );
        assert!(
            !t.input_modes
                .intersects(InputModes::ICRNL | InputModes::IXON)
        );
        assert!(t.output_modes.contains(OutputModes::OPOST));
        assert_eq!(t.special_codes[SpecialCodeIndex::VMIN], 1);
    }

    #[test]
    fn signal_masks_are_read_from_proc_status() {
        use restore_on_signal::{bit, status_mask};
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let status = "Name:\tvmtest\nSigIgn:\t0000000000000001\nSigCgt:\t0000000000004002\n";
        assert_eq!(status_mask(status, "SigIgn"), bit(SIGHUP));
        assert_eq!(status_mask(status, "SigCgt"), bit(SIGINT) | bit(SIGTERM));
        assert_eq!(status_mask("", "SigCgt"), 0);
    }

    /// A console reading a pipe: the console, the pipe's write end, the input it feeds and
    /// a receiver told when `leave` is called.
    fn piped_console() -> (
        Console,
        std::fs::File,
        vmm::SerialInput,
        std::sync::mpsc::Receiver<()>,
    ) {
        let (rx, tx) = rustix::pipe::pipe().unwrap();
        let input = vmm::SerialInput::new();
        let (left_tx, left_rx) = std::sync::mpsc::channel();
        let console = Console::attach(rx, input.clone(), move || {
            left_tx.send(()).unwrap();
        })
        .unwrap();
        (console, std::fs::File::from(tx), input, left_rx)
    }

    #[test]
    fn a_pipe_feeds_the_input_and_ctrl_a_x_calls_leave() {
        let (console, mut tx, input, left_rx) = piped_console();
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
        let (console, tx, _input, left_rx) = piped_console();
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

    #[test]
    fn ctrl_a_x_gets_through_while_the_guest_reads_nothing() {
        // No VM reads this input: its backlog fills, then the console's own holding space,
        // and still the keys are read and Ctrl-A x reaches `leave`.
        let (console, mut tx, input, left_rx) = piped_console();
        let flood = vm_limit() + PENDING_LIMIT + (64 << 10);
        let writer = std::thread::spawn(move || {
            tx.write_all(&vec![b'a'; flood]).unwrap();
            tx.write_all(b"\x01x").unwrap();
            tx
        });
        left_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("Ctrl-A x reached leave behind a full backlog");
        drop(console);
        drop(writer.join().unwrap());
        assert_eq!(input.backlog(), vm_limit());
    }

    fn vm_limit() -> usize {
        vmm::testing::INPUT_BACKLOG_LIMIT
    }
}
