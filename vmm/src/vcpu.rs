//! The vCPU thread: runs `KVM_RUN` and dispatches exits to the buses until the VM ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use devices::{Bus, ResetSource};
use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::cpu;
use crate::exit::{CrashReport, ExitReason};
use crate::vm::ExitState;

pub struct Vcpu {
    pub id: u32,
    pub fd: VcpuFd,
    pub io_bus: Arc<Bus>,
    pub mmio_bus: Arc<Bus>,
    pub exit: Arc<ExitState>,
    /// Set when the thread has left its loop, so the kicker knows when to stop.
    pub finished: Arc<AtomicBool>,
}

/// What one exit asks the loop to do next.
enum Next {
    Continue,
    Stop(ExitReason),
    Crash(String),
}

/// Makes sure the VM ends even if this thread panics or returns without a reason.
struct EndGuard {
    id: u32,
    exit: Arc<ExitState>,
    finished: Arc<AtomicBool>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.exit.set(ExitReason::Crash(CrashReport {
                reason: "the vCPU thread panicked (a VMM bug: see the log)".into(),
                vcpu: Some(self.id),
                registers: None,
            }));
        }
        self.finished.store(true, Ordering::SeqCst);
    }
}

impl Vcpu {
    pub fn run(mut self) {
        let _guard = EndGuard {
            id: self.id,
            exit: self.exit.clone(),
            finished: self.finished.clone(),
        };
        while !self.exit.is_set() {
            match self.step() {
                Next::Continue => {}
                Next::Stop(reason) => {
                    self.exit.set(reason);
                    break;
                }
                Next::Crash(reason) => {
                    let registers = cpu::dump_registers(&self.fd);
                    tracing::error!(vcpu = self.id, "{reason}\n{registers}");
                    self.exit.set(ExitReason::Crash(CrashReport {
                        reason,
                        vcpu: Some(self.id),
                        registers: Some(registers),
                    }));
                    break;
                }
            }
        }
    }

    fn step(&mut self) -> Next {
        let exit = match self.fd.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                // Kicked: the loop condition decides whether to go on.
                self.fd.set_kvm_immediate_exit(0);
                return Next::Continue;
            }
            Err(e) => return Next::Crash(format!("KVM_RUN failed: {e}")),
        };
        match exit {
            VcpuExit::IoIn(port, data) => {
                if !self.io_bus.read(u64::from(port), data) {
                    data.fill(0xff); // nothing there: the bus floats high
                }
                Next::Continue
            }
            VcpuExit::IoOut(port, data) => {
                if !self.io_bus.write(u64::from(port), data) {
                    tracing::trace!(port, ?data, "write to an unclaimed port");
                }
                Next::Continue
            }
            VcpuExit::MmioRead(addr, data) => {
                if !self.mmio_bus.read(addr, data) {
                    data.fill(0xff);
                }
                Next::Continue
            }
            VcpuExit::MmioWrite(addr, data) => {
                if !self.mmio_bus.write(addr, data) {
                    tracing::trace!(addr, "write to unclaimed MMIO");
                }
                Next::Continue
            }
            // Only without an in-kernel irqchip; keep going so an interrupt can wake it.
            VcpuExit::Hlt => Next::Continue,
            VcpuExit::Shutdown => Next::Stop(ExitReason::Reboot(ResetSource::TripleFault)),
            VcpuExit::SystemEvent(kind, _) => match kind {
                kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => Next::Stop(ExitReason::PowerOff),
                kvm_bindings::KVM_SYSTEM_EVENT_RESET => {
                    Next::Stop(ExitReason::Reboot(ResetSource::TripleFault))
                }
                other => Next::Crash(format!("KVM system event {other}")),
            },
            VcpuExit::FailEntry(reason, cpu) => Next::Crash(format!(
                "VM entry failed (hardware reason {reason:#x}, cpu {cpu})"
            )),
            VcpuExit::InternalError => {
                // SAFETY: KVM filled the `internal` member for this exit reason.
                let (suberror, ndata) = unsafe {
                    let internal = self.fd.get_kvm_run().__bindgen_anon_1.internal;
                    (internal.suberror, internal.ndata)
                };
                let what = match suberror {
                    1 => "instruction emulation failed",
                    2 => "simultaneous exceptions",
                    3 => "delivery event failed",
                    _ => "internal error",
                };
                Next::Crash(format!(
                    "KVM internal error: {what} (suberror {suberror}, {ndata} data words)"
                ))
            }
            other => Next::Crash(format!("unexpected KVM exit: {other:?}")),
        }
    }
}
