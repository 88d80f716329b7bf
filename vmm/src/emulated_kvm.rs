//! Help for hosts whose KVM runs ordinary guests in its instruction emulator (PVM hosts;
//! see `host::probe_kvm`). That emulator lacks a few instructions a Linux kernel executes
//! at boot; each ends in an emulation-failure exit. When enabled (only where KVM is
//! emulated), the VMM completes exactly these, with their architectural effect, and lets
//! the guest go on:
//!
//! - `int3`: inject #BP with RIP past the instruction (Linux's alternatives self-test
//!   executes one on purpose);
//! - `fwait`: a no-op unless an unmasked x87 exception is pending (FSW.ES), then #MF;
//! - `clac` / `stac`: clear / set RFLAGS.AC (SMAP's user-access brackets).
//!
//! Anything else stays a crash. Instructions the emulator lacks that are not this simple
//! (POPCNT, XSAVE, ...) are avoided from the guest's side instead (see the README).

use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

use crate::memory::GuestMemoryMmap;

const BP_VECTOR: u8 = 3;
const MF_VECTOR: u8 = 16;
const RFLAGS_AC: u64 = 1 << 18;
const FSW_ES: u16 = 1 << 7;

/// Reads `N` instruction bytes at the guest-virtual `rip`, page by page.
fn fetch<const N: usize>(vcpu: &VcpuFd, mem: &GuestMemoryMmap, rip: u64) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        let t = vcpu.translate_gva(rip.wrapping_add(i as u64)).ok()?;
        if t.valid == 0 {
            return None;
        }
        *b = mem.read_obj(GuestAddress(t.physical_address)).ok()?;
    }
    Some(out)
}

fn inject(vcpu: &VcpuFd, vector: u8) -> bool {
    let Ok(mut events) = vcpu.get_vcpu_events() else {
        return false;
    };
    events.exception.injected = 1;
    events.exception.nr = vector;
    events.exception.has_error_code = 0;
    events.exception.pending = 0;
    vcpu.set_vcpu_events(&events).is_ok()
}

/// Completes the instruction the vCPU stopped at, if it is one of those above. Returns a
/// short name of what was done, or None to leave the failure as it is.
pub fn complete_instruction(vcpu: &VcpuFd, mem: &GuestMemoryMmap) -> Option<&'static str> {
    let mut regs = vcpu.get_regs().ok()?;
    let bytes: [u8; 3] = fetch(vcpu, mem, regs.rip)
        .or_else(|| fetch::<1>(vcpu, mem, regs.rip).map(|[b]| [b, 0, 0]))?;
    let done = match bytes {
        [0xcc, ..] => {
            // #BP is a trap: the frame's RIP is the next instruction.
            regs.rip += 1;
            vcpu.set_regs(&regs).ok()?;
            inject(vcpu, BP_VECTOR).then_some("int3")?
        }
        [0x9b, ..] => {
            let fpu = vcpu.get_fpu().ok()?;
            if fpu.fsw & FSW_ES != 0 {
                // #MF is a fault: RIP stays on the fwait.
                inject(vcpu, MF_VECTOR).then_some("fwait (#MF)")?
            } else {
                regs.rip += 1;
                vcpu.set_regs(&regs).ok()?;
                "fwait"
            }
        }
        [0x0f, 0x01, op @ (0xca | 0xcb)] => {
            if op == 0xca {
                regs.rflags &= !RFLAGS_AC;
            } else {
                regs.rflags |= RFLAGS_AC;
            }
            regs.rip += 3;
            vcpu.set_regs(&regs).ok()?;
            if op == 0xca { "clac" } else { "stac" }
        }
        _ => return None,
    };
    Some(done)
}
