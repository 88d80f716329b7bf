//! Ending a run when the harness is asked to (SIGTERM, SIGINT, SIGHUP): every VM running
//! is stopped, no new one starts, the runner writes what it has (each test in flight ends
//! as interrupted), and `vmtest run` exits with 128 + the signal's number. A second signal
//! ends the process at once.
//!
//! Nothing here is needed for the VMs to die with the process: qemu gets SIGKILL from the
//! kernel when the harness goes (see `backend::child`) and the builtin VMM runs inside it.
//! This is the orderly way out: qemu reaped, results and logs written, data kept.
//!
//! The signals are watched by a thread (signal-hook), never in a signal handler, so the
//! stop actions may lock and allocate. Backends register a stop action for each VM while
//! it runs ([`on_shutdown`]). A library user that wants the same calls [`install`] (the
//! CLI does), or [`Shutdown::request`] on [`global`] from its own handling.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The run was interrupted: no new VM starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the run was interrupted by {}: no new VM starts", signal_name(*.signal))]
pub struct Interrupted {
    pub signal: i32,
}

type StopAction = Box<dyn Fn() + Send + Sync>;

/// Whether a run was interrupted, and how to stop what runs. The process has one
/// ([`global`]); tests make their own.
pub struct Shutdown {
    /// The first signal received (0: none yet).
    signal: AtomicI32,
    next_id: AtomicU64,
    stops: Mutex<Vec<(u64, StopAction)>>,
}

/// SIGTERM, SIGINT, SIGHUP by name (for messages).
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

impl Shutdown {
    pub const fn new() -> Self {
        Self {
            signal: AtomicI32::new(0),
            next_id: AtomicU64::new(1),
            stops: Mutex::new(Vec::new()),
        }
    }

    fn stops(&self) -> MutexGuard<'_, Vec<(u64, StopAction)>> {
        self.stops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The signal that interrupted the run, if one did.
    pub fn requested(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Interrupts the run as `signal` would: stops every registered VM (the first
    /// request only; later ones change nothing).
    pub fn request(&self, signal: i32) {
        // The flag first, then the actions under the lock: a VM registering concurrently
        // either sees the flag (and does not start) or is in the list by now.
        if self
            .signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        for (_, stop) in self.stops().iter() {
            stop();
        }
    }

    /// Registers how to stop a VM about to start; `Err` when the run is already
    /// interrupted (then the VM must not start).
    pub fn on_shutdown(
        &self,
        stop: impl Fn() + Send + Sync + 'static,
    ) -> Result<Registration<'_>, Interrupted> {
        let mut list = self.stops();
        if let Some(signal) = self.requested() {
            return Err(Interrupted { signal });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        list.push((id, Box::new(stop)));
        Ok(Registration { owner: self, id })
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

/// While this lives, the VM's stop action runs on interruption.
#[must_use = "the action is unregistered when this is dropped"]
pub struct Registration<'a> {
    owner: &'a Shutdown,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.owner.stops().retain(|(id, _)| *id != self.id);
    }
}

/// The process's.
pub fn global() -> &'static Shutdown {
    static GLOBAL: Shutdown = Shutdown::new();
    &GLOBAL
}

/// The signal that interrupted this process's run, if one did.
pub fn requested() -> Option<i32> {
    global().requested()
}

/// Registers a VM's stop action with the process ([`Shutdown::on_shutdown`]).
pub fn on_shutdown(
    stop: impl Fn() + Send + Sync + 'static,
) -> Result<Registration<'static>, Interrupted> {
    global().on_shutdown(stop)
}

const SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Whether [`install`] watches the signals (then they end the run in order; the console
/// only restores its terminal).
pub fn installed() -> bool {
    matches!(INSTALLED.get(), Some(Ok(())))
}

/// Watches SIGTERM, SIGINT and SIGHUP for the rest of the process (once; later calls
/// return the first result). The first interrupts the run ([`request`]); a second one
/// ends the process with 128 + its number.
pub fn install() -> Result<(), String> {
    INSTALLED
        .get_or_init(|| {
            let again = Arc::new(AtomicBool::new(false));
            for sig in SIGNALS {
                // In this order: a signal finding `again` set exits, else sets it.
                signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, again.clone())
                    .and_then(|_| signal_hook::flag::register(sig, again.clone()))
                    .map_err(|e| format!("cannot watch {}: {e}", signal_name(sig)))?;
            }
            let mut signals = signal_hook::iterator::Signals::new(SIGNALS)
                .map_err(|e| format!("cannot watch terminating signals: {e}"))?;
            std::thread::Builder::new()
                .name("shutdown".into())
                .spawn(move || {
                    for sig in signals.forever() {
                        eprintln!(
                            "vmtest: {}: stopping the VMs and writing the results (again to quit at once)",
                            signal_name(sig)
                        );
                        global().request(sig);
                    }
                })
                .map_err(|e| format!("cannot start the signal thread: {e}"))?;
            Ok(())
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_request_stops_registered_vms_and_refuses_new_ones() {
        let sd = Shutdown::new();
        let stopped = Arc::new(AtomicUsize::new(0));
        let gone = {
            let s = stopped.clone();
            sd.on_shutdown(move || {
                s.fetch_add(100, Ordering::SeqCst);
            })
            .unwrap()
        };
        drop(gone); // a VM that ended is not stopped again
        let running = {
            let s = stopped.clone();
            sd.on_shutdown(move || {
                s.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap()
        };
        assert_eq!(sd.requested(), None);
        sd.request(libc::SIGTERM);
        sd.request(libc::SIGINT); // the first signal is the one reported
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
        assert_eq!(sd.requested(), Some(libc::SIGTERM));
        let e = sd
            .on_shutdown(|| {})
            .err()
            .expect("no new VM after a request");
        assert_eq!(e.signal, libc::SIGTERM);
        assert!(e.to_string().contains("SIGTERM"), "{e}");
        drop(running);
    }
}
