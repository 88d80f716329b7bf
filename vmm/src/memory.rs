//! Guest RAM: anonymous mappings laid out around the 32-bit MMIO hole, and the e820 map
//! that describes them to the guest.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use crate::error::Error;
use crate::layout::*;

pub type GuestMemoryMmap = vm_memory::GuestMemoryMmap<()>;

/// Smallest guest this VMM agrees to build: the boot structures below 1 MiB plus room for
/// a small kernel. A real Linux guest wants far more, but that is the guest's business.
pub const MIN_MEMORY_MIB: u64 = 8;
/// A sanity bound against typos such as `--memory 512G`.
pub const MAX_MEMORY_MIB: u64 = 1 << 20;

/// RAM ranges for `mib` MiB of memory: below the MMIO hole, then from 4 GiB.
pub fn ram_ranges(mib: u64) -> Vec<(GuestAddress, usize)> {
    let total = mib << 20;
    let low = total.min(MMIO_HOLE_START);
    let mut ranges = vec![(GuestAddress(0), low as usize)];
    if total > low {
        ranges.push((GuestAddress(MMIO_HOLE_END), (total - low) as usize));
    }
    ranges
}

pub fn create(mib: u64) -> Result<GuestMemoryMmap, Error> {
    if mib < MIN_MEMORY_MIB {
        return Err(Error::MemoryTooSmall {
            mib,
            min: MIN_MEMORY_MIB,
        });
    }
    if mib > MAX_MEMORY_MIB {
        return Err(Error::MemoryTooLarge {
            mib,
            max: MAX_MEMORY_MIB,
        });
    }
    GuestMemoryMmap::from_ranges(&ram_ranges(mib)).map_err(|e| Error::MemoryAlloc {
        mib,
        detail: e.to_string(),
    })
}

/// Hands every region to KVM as one memory slot.
///
/// # Safety
///
/// `mem`'s mappings must stay mapped until `vm` and every vCPU fd created from it are
/// closed: KVM keeps using the host addresses it is given here.
pub unsafe fn register(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), Error> {
    for (slot, region) in mem.iter().enumerate() {
        let region_desc = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: `region` is a live mapping owned by `mem`, and the caller keeps it mapped
        // until `vm` and its vCPU fds are closed (this function's contract).
        unsafe { vm.set_user_memory_region(region_desc) }
            .map_err(Error::kvm("KVM_SET_USER_MEMORY_REGION"))?;
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

/// The memory map the guest is told about.
pub fn e820(mem: &GuestMemoryMmap) -> Vec<E820Entry> {
    let mut map = vec![
        E820Entry {
            addr: 0,
            size: EBDA_START,
            kind: E820_RAM,
        },
        E820Entry {
            addr: EBDA_START,
            size: HIMEM_START - EBDA_START,
            kind: E820_RESERVED,
        },
    ];
    for region in mem.iter() {
        let start = region.start_addr().0.max(HIMEM_START);
        let end = region.start_addr().0 + region.len();
        if end > start {
            map.push(E820Entry {
                addr: start,
                size: end - start,
                kind: E820_RAM,
            });
        }
    }
    map
}

/// End of RAM below the MMIO hole (exclusive).
pub fn low_ram_end(mem: &GuestMemoryMmap) -> u64 {
    mem.iter()
        .find(|r| r.start_addr().0 == 0)
        .map(|r| r.len())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_memory_is_one_range_and_large_memory_skips_the_hole() {
        assert_eq!(ram_ranges(512), vec![(GuestAddress(0), 512 << 20)]);
        let r = ram_ranges(4096);
        assert_eq!(r[0], (GuestAddress(0), MMIO_HOLE_START as usize));
        assert_eq!(r[1], (GuestAddress(MMIO_HOLE_END), (1 << 30) as usize));
    }

    #[test]
    fn e820_reserves_the_bios_area() {
        let mem = create(64).unwrap();
        let map = e820(&mem);
        assert_eq!(map[0].kind, E820_RAM);
        assert_eq!(map[1].kind, E820_RESERVED);
        assert_eq!(map[2].addr, HIMEM_START);
        assert_eq!(map[2].addr + map[2].size, 64 << 20);
    }

    #[test]
    fn bounds_are_checked() {
        assert!(matches!(create(1), Err(Error::MemoryTooSmall { .. })));
        assert!(matches!(
            create(MAX_MEMORY_MIB + 1),
            Err(Error::MemoryTooLarge { .. })
        ));
    }
}
