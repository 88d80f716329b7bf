use std::fmt;

use devices::ResetSource;

/// How the guest ended. Every run ends in exactly one of these, and by then every vCPU
/// thread has been joined.
///
/// Deliberately exhaustive: every caller decides what each ending means (a test result, a
/// process exit code), so a new one must be a compile error there, not a silent default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// ACPI S5: the guest shut itself down.
    PowerOff,
    /// The guest asked for a reset (ACPI reset register, i8042 or a triple fault). The VMM
    /// does not restart it: a reboot during a test is a result to report.
    Reboot(ResetSource),
    /// The guest or the hypervisor failed: KVM internal/emulation error, failed VM entry,
    /// a guest panic reported through pvpanic, or a vCPU thread that died.
    Crash(CrashReport),
    /// The watchdog the caller set expired; the VM was stopped.
    Timeout,
    /// The host asked the VM to stop through a [`crate::StopHandle`] (e.g. the user left
    /// the interactive console with Ctrl-A x).
    Stopped,
}

/// What is known about a crash: a one-line reason and, when a vCPU was involved, its
/// register state (also written to the log).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrashReport {
    pub reason: String,
    pub vcpu: Option<u32>,
    pub registers: Option<String>,
}

impl CrashReport {
    /// A crash known only by its reason (no vCPU, no registers).
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            vcpu: None,
            registers: None,
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::PowerOff => write!(f, "power-off"),
            ExitReason::Reboot(ResetSource::AcpiResetRegister) => {
                write!(f, "reboot (ACPI reset register)")
            }
            ExitReason::Reboot(ResetSource::I8042) => write!(f, "reboot (i8042 reset line)"),
            ExitReason::Reboot(ResetSource::TripleFault) => write!(f, "reboot (triple fault)"),
            ExitReason::Crash(c) => match c.vcpu {
                Some(v) => write!(f, "crash on vCPU {v}: {}", c.reason),
                None => write!(f, "crash: {}", c.reason),
            },
            ExitReason::Timeout => write!(f, "timeout"),
            ExitReason::Stopped => write!(f, "stopped by the host"),
        }
    }
}
