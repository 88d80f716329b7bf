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

/// Linux feature bits (word * 32 + bit, as the kernel's `clearcpuid=` takes them) whose
/// instructions KVM's emulator cannot execute, found by booting Debian's 6.1 cloud kernel on
/// a PVM host and reading where it stopped each time.
pub const LINUX_FEATURES_EMULATOR_LACKS: &[(&str, u32)] = &[
    ("popcnt", 4 * 32 + 23),
    ("movbe", 4 * 32 + 22),
    ("aes", 4 * 32 + 25),
    ("avx", 4 * 32 + 28),
    ("f16c", 4 * 32 + 29),
    ("rdrand", 4 * 32 + 30),
    ("fma", 4 * 32 + 12),
    ("pcid", 4 * 32 + 17),
    ("sse4_1", 4 * 32 + 19),
    ("sse4_2", 4 * 32 + 20),
    ("fsgsbase", 9 * 32),
    ("bmi1", 9 * 32 + 3),
    ("avx2", 9 * 32 + 5),
    ("bmi2", 9 * 32 + 8),
    ("invpcid", 9 * 32 + 10),
    ("rdseed", 9 * 32 + 18),
    ("adx", 9 * 32 + 19),
    ("sha_ni", 9 * 32 + 29),
    ("rdpid", 16 * 32 + 22),
    // SIMD paths the kernel picks at boot (BLAKE2s/ChaCha for the RNG, CRCs) start with
    // kernel_fpu_begin's ldmxcsr, which the emulator lacks too.
    ("ssse3", 4 * 32 + 9),
    ("sse3", 4 * 32),
    ("pclmulqdq", 4 * 32 + 1),
];

impl crate::VmConfig {
    /// Adapts a Linux guest's configuration to a host whose KVM emulates guests (call it
    /// only there: `host::probe_kvm().is_emulated()` or `host::kvm_module_is_pvm()`).
    /// Hides CX16 through CPUID (PVM hosts honour that mask but ignore most others), tells
    /// the kernel not to use XSAVE or the features above, turns off the soft-lockup
    /// watchdog and RCU stall warnings the slow emulated CPU trips, speculation mitigations and crypto self-tests
    /// (pure instruction cost in a throwaway test VM), restarts through the ACPI reset
    /// register, lets the VMM complete int3, fwait and clac/stac, and enters a bzImage
    /// through PVH (its decompressor alone takes about a minute in the emulator;
    /// distribution kernels carry the PVH note).
    pub fn adapt_linux_guest_to_emulated_kvm(&mut self) {
        if self.boot_path == crate::BootPath::Auto {
            self.boot_path = crate::BootPath::Pvh;
        }
        if let Ok(cx16) = "cx16".parse() {
            self.cpuid_mask.push(cx16);
        }
        let bits: Vec<String> = LINUX_FEATURES_EMULATOR_LACKS
            .iter()
            .map(|(_, bit)| bit.to_string())
            .collect();
        // mitigations=off: every `ret` otherwise goes through a return thunk, and each
        // instruction costs microseconds here. cryptomgr.notests: the crypto self-tests'
        // RSA arithmetic alone takes many minutes of emulated time. reboot=acpi: on a
        // hardware-reduced ACPI machine without EFI, Linux restarts (and, with panic=-1,
        // ends a panic) through the BIOS path, which drops to real mode to reach the reset
        // vector; the emulator here cannot run real mode, while the ACPI reset register
        // needs one port write. rcupdate.rcu_cpu_stall_suppress: RCU's 21 s stall
        // detector fires on work that takes that long only because it is emulated
        // (write-protecting the kernel's text with two vCPUs), and prints a stack dump.
        self.cmdline.push_str(&format!(
            " noxsave clearcpuid={} nosoftlockup rcupdate.rcu_cpu_stall_suppress=1 mitigations=off cryptomgr.notests",
            bits.join(",")
        ));
        if !self
            .cmdline
            .split_whitespace()
            .any(|w| w.starts_with("reboot="))
        {
            self.cmdline.push_str(" reboot=acpi");
        }
        self.emulated_kvm_assist = true;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_recipe_restarts_through_acpi_unless_the_command_line_says_otherwise() {
        let mut c = crate::VmConfig::new("/k");
        c.cmdline = "console=ttyS0 panic=-1".into();
        c.adapt_linux_guest_to_emulated_kvm();
        assert!(
            c.cmdline
                .starts_with("console=ttyS0 panic=-1 noxsave clearcpuid=")
        );
        assert!(c.cmdline.ends_with(" reboot=acpi"), "{}", c.cmdline);
        assert_eq!(c.boot_path, crate::BootPath::Pvh);
        assert!(c.emulated_kvm_assist);

        let mut c = crate::VmConfig::new("/k");
        c.cmdline = "reboot=k".into();
        c.adapt_linux_guest_to_emulated_kvm();
        assert!(!c.cmdline.contains("reboot=acpi"), "{}", c.cmdline);
    }
}
