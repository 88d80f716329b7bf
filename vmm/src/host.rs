//! Facts about the host's KVM, for `vmtest doctor` and for choosing a backend: is
//! /dev/kvm usable, and does a guest run at hardware speed or inside KVM's instruction
//! emulator (as on PVM hosts, where it is about a thousand times slower)?

use std::time::{Duration, Instant};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use crate::error::Error;
use crate::loader::Entry;
use crate::memory::GuestMemoryMmap;

/// What `probe_kvm` found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KvmReport {
    pub api_version: i32,
    pub recommended_vcpus: usize,
    pub max_vcpus: usize,
    /// The `kvm_pvm` module is loaded: KVM runs ordinary guests in its emulator.
    pub pvm_module: bool,
    pub guest_speed: GuestSpeed,
}

#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct GuestSpeed {
    /// Guest instructions per second in a simple loop.
    pub instructions_per_sec: f64,
    /// Time to run a VM's first instructions (create, enter, exit).
    pub entry_time: Duration,
}

/// Below this a guest is clearly not running on hardware virtualization: hardware runs a
/// `dec; jnz` loop at several hundred million instructions per second or more.
pub const HARDWARE_SPEED_FLOOR: f64 = 100e6;

impl KvmReport {
    /// True when guests run in KVM's instruction emulator rather than on the CPU.
    pub fn is_emulated(&self) -> bool {
        self.pvm_module || self.guest_speed.instructions_per_sec < HARDWARE_SPEED_FLOOR
    }
}

pub fn kvm_module_is_pvm() -> bool {
    std::path::Path::new("/sys/module/kvm_pvm").exists()
}

/// Opens /dev/kvm and times a tiny guest loop.
pub fn probe_kvm() -> Result<KvmReport, Error> {
    let kvm = Kvm::new().map_err(Error::KvmOpen)?;
    let api_version = kvm.get_api_version();
    let (entry_time, _) = time_loop(&kvm, 1)?;
    // 200k iterations: ~0.2 s when emulated, well under a millisecond on hardware.
    const ITERATIONS: u32 = 200_000;
    let (t_small, _) = time_loop(&kvm, 1_000)?;
    let (t_big, _) = time_loop(&kvm, ITERATIONS + 1_000)?;
    let loop_time = t_big.saturating_sub(t_small).max(Duration::from_nanos(1));
    let instructions = 2.0 * f64::from(ITERATIONS);
    Ok(KvmReport {
        api_version,
        recommended_vcpus: kvm.get_nr_vcpus(),
        max_vcpus: kvm.get_max_vcpus(),
        pvm_module: kvm_module_is_pvm(),
        guest_speed: GuestSpeed {
            instructions_per_sec: instructions / loop_time.as_secs_f64(),
            entry_time,
        },
    })
}

/// Runs `mov ecx, n; 1: dec ecx; jnz 1b; hlt` in 32-bit protected mode and returns the
/// time spent in KVM_RUN until the `hlt`.
fn time_loop(kvm: &Kvm, n: u32) -> Result<(Duration, u64), Error> {
    const CODE_ADDR: u64 = 0x1000;
    // Declared before the VM so that it is dropped (unmapped) after it: locals drop in
    // reverse order, so the VM and vCPU fds close first.
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 2 << 20)])
        .map_err(|e| Error::Setup(e.to_string()))?;
    let vm = kvm.create_vm().map_err(Error::kvm("KVM_CREATE_VM"))?;
    for (slot, r) in mem.iter().enumerate() {
        // SAFETY: `r` is a live mapping owned by `mem`, which is declared before `vm` and
        // `vcpu` and so dropped after both: KVM never sees the memory unmapped.
        unsafe {
            vm.set_user_memory_region(kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: r.start_addr().0,
                memory_size: r.len(),
                userspace_addr: r.as_ptr() as u64,
            })
        }
        .map_err(Error::kvm("KVM_SET_USER_MEMORY_REGION"))?;
    }
    let mut code = vec![0xb9];
    code.extend_from_slice(&n.to_le_bytes());
    code.extend_from_slice(&[0x49, 0x75, 0xfd, 0xf4]);
    mem.write_slice(&code, GuestAddress(CODE_ADDR))
        .map_err(|e| Error::Setup(e.to_string()))?;
    let mut vcpu = vm.create_vcpu(0).map_err(Error::kvm("KVM_CREATE_VCPU"))?;
    crate::cpu::setup_boot_vcpu(&vcpu, &mem, Entry::Pvh { rip: CODE_ADDR })?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(30);
    loop {
        match vcpu.run() {
            Ok(VcpuExit::Hlt) => break,
            Ok(other) => {
                let what = format!("{other:?}");
                return Err(Error::Setup(format!(
                    "speed probe ended unexpectedly: {what}"
                )));
            }
            Err(e) if e.errno() == libc::EINTR => {}
            Err(e) => {
                return Err(Error::Kvm {
                    what: "KVM_RUN",
                    source: e,
                });
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Setup("speed probe took over 30 s".into()));
        }
    }
    let rcx = vcpu.get_regs().map(|r| r.rcx).unwrap_or(u64::MAX);
    Ok((start.elapsed(), rcx))
}
