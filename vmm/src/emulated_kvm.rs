//! Help for hosts whose KVM runs ordinary guests in its instruction emulator (PVM hosts;
//! see `host::probe_kvm`). That emulator cannot deliver a software breakpoint in
//! protected or long mode: an `int3` ends in an emulation-failure exit. Linux executes one
//! on purpose at boot (the alternatives self-test) and expects its #BP handler to run.
//!
//! When enabled (only where KVM is emulated), the VMM recognises an emulation failure at
//! an `int3` and injects the #BP itself with RIP past the instruction, as the CPU would
//! have. Nothing else is touched; any other failure stays a crash.

use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

use crate::memory::GuestMemoryMmap;

const INT3: u8 = 0xcc;
const BP_VECTOR: u8 = 3;

/// Delivers #BP if the vCPU stopped at an `int3`. Returns true when it did.
pub fn deliver_int3(vcpu: &VcpuFd, mem: &GuestMemoryMmap) -> bool {
    let Ok(mut regs) = vcpu.get_regs() else {
        return false;
    };
    let Ok(t) = vcpu.translate_gva(regs.rip) else {
        return false;
    };
    if t.valid == 0 {
        return false;
    }
    let Ok(byte) = mem.read_obj::<u8>(GuestAddress(t.physical_address)) else {
        return false;
    };
    if byte != INT3 {
        return false;
    }
    let Ok(mut events) = vcpu.get_vcpu_events() else {
        return false;
    };
    // #BP is a trap: the frame's RIP is the instruction after the int3.
    regs.rip += 1;
    events.exception.injected = 1;
    events.exception.nr = BP_VECTOR;
    events.exception.has_error_code = 0;
    events.exception.pending = 0;
    vcpu.set_regs(&regs).is_ok() && vcpu.set_vcpu_events(&events).is_ok()
}
