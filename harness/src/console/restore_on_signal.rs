//! Puts a raw terminal back when SIGTERM, SIGHUP or SIGINT arrives, then lets the signal
//! do what it would have done.
//!
//! The signals are registered with signal-hook once, when a console first goes raw, and
//! stay registered: signal-hook cannot hand a signal back to its default action. So a
//! thread receives them, restores a raw terminal, and then decides, as if we had never
//! been there:
//! - the harness's orderly shutdown watches the signals ([`crate::shutdown`], `vmtest
//!   run`): it stops the VMs (which detaches the console) and exits 128+N; nothing more;
//! - a terminal was raw: the default action (the process ends by the signal, as the
//!   console always made it);
//! - none was raw and the program had a handler of its own when we registered
//!   (signal-hook has already called it): nothing more;
//! - none was raw and the program had none: the default action.
//!
//! Signals the program ignored when we came (nohup's SIGHUP, SIGINT in a background job)
//! are not registered and stay ignored. What the program had is read from
//! /proc/self/status (SigIgn, SigCgt).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Mutex, MutexGuard, OnceLock};

use rustix::termios::{self, OptionalActions, Termios};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use signal_hook::low_level::emulate_default_handler;

const SIGNALS: [i32; 3] = [SIGTERM, SIGHUP, SIGINT];

/// The raw terminal to put back, if any: its descriptor and its saved settings.
static RAW: Mutex<Option<(OwnedFd, Termios)>> = Mutex::new(None);
/// Set once the signals are registered: the mask of those the program handled itself
/// at that time, or why registering failed.
static REGISTERED: OnceLock<Result<u64, String>> = OnceLock::new();

fn raw() -> MutexGuard<'static, Option<(OwnedFd, Termios)>> {
    RAW.lock().unwrap_or_else(|e| e.into_inner())
}

/// From now until [`disarm`], a terminating signal restores `saved` on `fd` first.
pub fn arm(fd: &OwnedFd, saved: &Termios) -> io::Result<()> {
    if let Err(e) = REGISTERED.get_or_init(register) {
        return Err(io::Error::other(format!(
            "cannot watch terminating signals to restore the terminal: {e}"
        )));
    }
    *raw() = Some((fd.try_clone()?, saved.clone()));
    Ok(())
}

pub fn disarm() {
    *raw() = None;
}

/// A signal mask line of /proc/self/status (`SigIgn:`, `SigCgt:`): bit N-1 is signal N.
pub fn status_mask(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

pub fn bit(signal: i32) -> u64 {
    1 << (signal - 1)
}

fn register() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let ignored = status_mask(&status, "SigIgn");
    let handled = status_mask(&status, "SigCgt");
    let wanted: Vec<i32> = SIGNALS
        .into_iter()
        .filter(|s| ignored & bit(*s) == 0)
        .collect();
    let mut signals = Signals::new(&wanted).map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("console-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let restored = raw().take().map(|(fd, saved)| {
                    let _ = termios::tcsetattr(&fd, OptionalActions::Now, &saved);
                });
                if crate::shutdown::installed() {
                    continue;
                }
                if restored.is_some() || handled & bit(signal) == 0 {
                    let _ = emulate_default_handler(signal);
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(handled)
}
