//! Getting a vCPU thread out of `KVM_RUN`: a real-time signal with an empty handler makes
//! the ioctl return `EINTR`. The handler is installed once per process, so several VMs (or
//! an embedding program) can share it.

use std::sync::OnceLock;

use libc::{c_int, c_void, siginfo_t};
use vmm_sys_util::signal::{SIGRTMIN, register_signal_handler};

extern "C" fn on_kick(_: c_int, _: *mut siginfo_t, _: *mut c_void) {}

pub fn kick_signal() -> c_int {
    SIGRTMIN()
}

/// Installs the handler (once). Must happen before any vCPU thread can be kicked.
pub fn install() -> Result<(), String> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            register_signal_handler(kick_signal(), on_kick)
                .map_err(|e| format!("installing the vCPU kick signal handler: {e}"))
        })
        .clone()
}
