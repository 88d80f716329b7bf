//! The vCPU thread: runs `KVM_RUN` and dispatches exits to the buses until the VM ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use devices::{Bus, ResetSource};
use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::exit::{CrashReport, ExitReason};
use crate::memory::GuestMemoryMmap;
use crate::vm::ExitState;
use crate::{cpu, emulated_kvm};

pub struct Vcpu {
    pub id: u32,
    pub fd: VcpuFd,
    pub io_bus: Arc<Bus>,
    pub mmio_bus: Arc<Bus>,
    pub exit: Arc<ExitState>,
    /// Set when the thread has left its loop, so the kicker knows when to stop.
    pub finished: Arc<AtomicBool>,
    /// Guest memory, for the emulated-KVM assist (reading the failing instruction).
    pub mem: GuestMemoryMmap,
    /// Deliver int3 ourselves where KVM's emulator cannot (see `emulated_kvm`).
    pub emulated_kvm_assist: bool,
    /// Confine this thread with the vCPU seccomp filter before the guest runs.
    pub seccomp: bool,
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
    fn port_io(&mut self) -> Next {
        let run = self.fd.get_kvm_run();
        // SAFETY: the exit reason is KVM_EXIT_IO, so `io` is the valid union member.
        let io = unsafe { run.__bindgen_anon_1.io };
        let (size, count) = (usize::from(io.size), io.count as usize);
        if !matches!(size, 1 | 2 | 4) || count == 0 {
            return Next::Crash(format!("KVM reported port I/O of size {size} x {count}"));
        }
        // SAFETY: KVM places `count * size` bytes at `data_offset` inside the kvm_run
        // mapping (which spans the whole run area, not just the struct) for this exit.
        let data = unsafe {
            let base = (run as *mut kvm_bindings::kvm_run).cast::<u8>();
            std::slice::from_raw_parts_mut(base.add(io.data_offset as usize), size * count)
        };
        let port = u64::from(io.port);
        for access in data.chunks_mut(size) {
            if u32::from(io.direction) == kvm_bindings::KVM_EXIT_IO_IN {
                if !self.io_bus.read(port, access) {
                    access.fill(0xff); // nothing there: the bus floats high
                }
            } else if !self.io_bus.write(port, access) {
                tracing::trace!(port, "write to an unclaimed port");
            }
        }
        Next::Continue
    }

    pub fn run(mut self) {
        let _guard = EndGuard {
            id: self.id,
            exit: self.exit.clone(),
            finished: self.finished.clone(),
        };
        if self.seccomp
            && let Err(e) = crate::seccomp::install(crate::seccomp::ThreadKind::Vcpu)
        {
            // Never run a guest unconfined by accident.
            self.exit.set(ExitReason::Crash(CrashReport {
                reason: e.to_string(),
                vcpu: Some(self.id),
                registers: None,
            }));
            return;
        }
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
        // Where was the guest when the watchdog fired? Say it, for hung-guest reports.
        if self.exit.reason() == Some(ExitReason::Timeout) {
            tracing::warn!(
                vcpu = self.id,
                "stopped at the timeout:\n{}",
                cpu::dump_registers(&self.fd)
            );
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
            // String I/O (`rep outsb` and friends) arrives as one exit carrying `count`
            // accesses of `size` bytes; the exit's slice hides the size, so read kvm_run.
            VcpuExit::IoIn(..) | VcpuExit::IoOut(..) => self.port_io(),
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
                if suberror == kvm_bindings::KVM_INTERNAL_ERROR_EMULATION
                    && self.emulated_kvm_assist
                    && let Some(done) = emulated_kvm::complete_instruction(&self.fd, &self.mem)
                {
                    tracing::debug!(
                        vcpu = self.id,
                        "completed a {done} KVM's emulator could not"
                    );
                    return Next::Continue;
                }
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
