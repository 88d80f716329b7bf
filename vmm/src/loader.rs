//! Putting the kernel, initrd, command line and boot information into guest memory.
//!
//! Two boot paths:
//! - **bzImage** (Linux boot protocol): the protected-mode part is loaded at its preferred
//!   address and entered at its 64-bit entry (`+0x200`) in long mode, `%rsi` = zero page.
//! - **PVH** (an ELF carrying a Xen `PHYS32_ENTRY` note): segments are loaded at their
//!   physical addresses and entered in 32-bit protected mode, `%ebx` = `hvm_start_info`.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_params, setup_header};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::{BzImage, Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Bytes, GuestAddress};

use crate::config::BootPath;
use crate::error::Error;
use crate::layout::*;
use crate::memory::{self, GuestMemoryMmap};

/// How the boot vCPU must be entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// 64-bit long mode at `rip`, `rsi` = zero page.
    Linux64 { rip: u64 },
    /// 32-bit protected mode, paging off, at `rip`, `rbx` = start_info.
    Pvh { rip: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    BzImage,
    Elf,
}

/// What loading the kernel left behind, for placing the rest.
pub struct LoadedKernel {
    pub entry: Entry,
    pub end: u64,
    header: Option<setup_header>,
}

const XLF_KERNEL_64: u16 = 1 << 0;
const HVM_START_MAGIC: u32 = 0x336e_c578;
/// COMMAND_LINE_SIZE on x86 Linux, used when the image does not state its own limit.
const DEFAULT_CMDLINE_MAX: usize = 2048;

/// Looks at the first bytes to tell the formats apart, so a wrong file gets a precise error
/// before anything is loaded.
pub fn detect(path: &Path) -> Result<KernelFormat, Error> {
    let read_err = |source| Error::KernelRead {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(read_err)?;
    if f.metadata().map_err(read_err)?.is_dir() {
        return Err(Error::KernelFormat {
            path: path.to_path_buf(),
            detail: "it is a directory".into(),
        });
    }
    let mut head = vec![0u8; 0x206];
    let n = read_up_to(&mut f, &mut head).map_err(read_err)?;
    let head = &head[..n];
    if head.starts_with(b"\x7fELF") {
        return Ok(KernelFormat::Elf);
    }
    if head.len() >= 0x206 && &head[0x202..0x206] == b"HdrS" {
        return Ok(KernelFormat::BzImage);
    }
    Err(Error::KernelFormat {
        path: path.to_path_buf(),
        detail: if n == 0 {
            "the file is empty".into()
        } else {
            "neither an ELF header nor the Linux boot protocol's HdrS signature".into()
        },
    })
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

pub fn load_kernel(
    mem: &GuestMemoryMmap,
    path: &Path,
    boot: BootPath,
) -> Result<LoadedKernel, Error> {
    let format = detect(path)?;
    match (format, boot) {
        (KernelFormat::Elf, BootPath::Linux64) => {
            return Err(Error::KernelFormat {
                path: path.to_path_buf(),
                detail: "the Linux 64-bit entry needs a bzImage, this is an ELF".into(),
            });
        }
        (KernelFormat::BzImage, BootPath::Pvh) => return load_bzimage_as_pvh(mem, path),
        _ => {}
    }
    let mut f = File::open(path).map_err(|source| Error::KernelRead {
        path: path.to_path_buf(),
        source,
    })?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bad = |detail: String| Error::KernelFormat {
        path: path.to_path_buf(),
        detail,
    };
    let low_end = memory::low_ram_end(mem);
    if HIMEM_START + size > low_end {
        return Err(Error::MemoryTooSmall {
            mib: low_end >> 20,
            min: (HIMEM_START + size).div_ceil(1 << 20) + 1,
        });
    }
    match format {
        KernelFormat::BzImage => {
            let r = BzImage::load(mem, None, &mut f, Some(GuestAddress(HIMEM_START)))
                .map_err(|e| bad(format!("bzImage: {e}")))?;
            let hdr = r
                .setup_header
                .ok_or_else(|| bad("bzImage without a setup header".into()))?;
            if hdr.version < 0x020c || hdr.xloadflags & XLF_KERNEL_64 == 0 {
                return Err(bad(format!(
                    "bzImage has no 64-bit entry point (boot protocol {:#x}, xloadflags {:#x})",
                    { hdr.version },
                    { hdr.xloadflags }
                )));
            }
            let init_end = r.kernel_load.0 + u64::from(hdr.init_size);
            Ok(LoadedKernel {
                entry: Entry::Linux64 {
                    rip: r.kernel_load.0 + 0x200,
                },
                end: init_end.max(r.kernel_load.0 + r.kernel_end),
                header: Some(hdr),
            })
        }
        KernelFormat::Elf => {
            let r = Elf::load(mem, None, &mut f, Some(GuestAddress(HIMEM_START)))
                .map_err(|e| bad(format!("ELF: {e}")))?;
            match r.pvh_boot_cap {
                PvhBootCapability::PvhEntryPresent(addr) => Ok(LoadedKernel {
                    entry: Entry::Pvh { rip: addr.0 },
                    end: r.kernel_end,
                    header: None,
                }),
                _ => Err(bad(
                    "ELF without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); only PVH ELF kernels can be booted".into(),
                )),
            }
        }
    }
}

/// Decompresses the vmlinux inside a bzImage on the host and loads it for PVH entry. The
/// bzImage's setup header still governs the command line and initrd limits.
fn load_bzimage_as_pvh(mem: &GuestMemoryMmap, path: &Path) -> Result<LoadedKernel, Error> {
    let bad = |detail: String| Error::KernelFormat {
        path: path.to_path_buf(),
        detail,
    };
    let image = std::fs::read(path).map_err(|source| Error::KernelRead {
        path: path.to_path_buf(),
        source,
    })?;
    let elf = crate::vmlinux::extract(&image)
        .map_err(|e| bad(format!("cannot extract vmlinux for PVH: {e}")))?;
    let mut header = setup_header::default();
    let hdr_bytes = &image[0x1f1..(0x1f1 + std::mem::size_of::<setup_header>()).min(image.len())];
    // SAFETY: setup_header is a packed struct of integers (any bytes are a valid value) and
    // `hdr_bytes` is at most its size, so the copy stays inside `header`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            hdr_bytes.as_ptr(),
            (&mut header as *mut setup_header).cast::<u8>(),
            hdr_bytes.len(),
        );
    }
    let r = Elf::load(
        mem,
        None,
        &mut std::io::Cursor::new(&elf),
        Some(GuestAddress(HIMEM_START)),
    )
    .map_err(|e| bad(format!("extracted vmlinux: {e}")))?;
    match r.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(addr) => Ok(LoadedKernel {
            entry: Entry::Pvh { rip: addr.0 },
            // The kernel's early allocations run past the ELF's end: honour init_size.
            end: r
                .kernel_end
                .max(u64::from(header.pref_address as u32) + u64::from(header.init_size)),
            header: Some(header),
        }),
        _ => Err(bad(
            "its vmlinux has no PVH entry note (kernel built without CONFIG_PVH)".into(),
        )),
    }
}

impl LoadedKernel {
    /// Longest command line (without the NUL) the kernel accepts.
    pub fn cmdline_max(&self) -> usize {
        match &self.header {
            Some(h) if h.version >= 0x0206 => h.cmdline_size as usize,
            Some(_) => 255,
            None => DEFAULT_CMDLINE_MAX - 1,
        }
        .min(CMDLINE_MAX - 1)
    }

    /// Highest address (exclusive) the initrd may end at.
    fn initrd_limit(&self, low_end: u64) -> u64 {
        match &self.header {
            Some(h) if h.version >= 0x0203 && h.initrd_addr_max != 0 => {
                low_end.min(u64::from(h.initrd_addr_max) + 1)
            }
            _ => low_end,
        }
    }
}

pub fn check_cmdline(cmdline: &str, max: usize) -> Result<(), Error> {
    if cmdline.bytes().any(|b| b == 0 || !b.is_ascii()) {
        return Err(Error::CmdlineInvalid);
    }
    if cmdline.len() > max {
        return Err(Error::CmdlineTooLong {
            len: cmdline.len(),
            max,
        });
    }
    Ok(())
}

/// Where the initrd went.
#[derive(Clone, Copy, Debug)]
pub struct InitrdPlacement {
    pub addr: u64,
    pub size: u64,
}

/// Places the initrd as high as allowed in low RAM, page-aligned, above the kernel, and
/// reads it straight into guest memory.
pub fn load_initrd(
    mem: &GuestMemoryMmap,
    kernel: &LoadedKernel,
    path: &Path,
) -> Result<InitrdPlacement, Error> {
    let read_err = |source| Error::InitrdRead {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(read_err)?;
    let meta = f.metadata().map_err(read_err)?;
    if meta.is_dir() {
        return Err(read_err(std::io::Error::other("it is a directory")));
    }
    let size = meta.len();
    let limit = kernel.initrd_limit(memory::low_ram_end(mem));
    let floor = kernel.end.next_multiple_of(4096);
    let addr = limit
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|a| *a >= floor)
        .ok_or(Error::InitrdTooLarge {
            path: path.to_path_buf(),
            size,
            limit,
        })?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut f, size as usize)
        .map_err(|e| read_err(std::io::Error::other(e.to_string())))?;
    Ok(InitrdPlacement { addr, size })
}

pub fn write_cmdline(mem: &GuestMemoryMmap, cmdline: &str) -> Result<(), Error> {
    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.push(0);
    mem.write_slice(&bytes, GuestAddress(CMDLINE))
        .map_err(|e| Error::Setup(format!("writing the command line: {e}")))
}

/// The code at the reset vector: `mov al, 0xfe; out 0x64, al` (pulse the i8042's reset
/// line), then `hlt; jmp $-1` should the reset not end the VM at once. These bytes mean
/// the same in real, protected and long mode, so the stub works however the guest gets
/// there.
pub const RESET_STUB: [u8; 7] = [0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd];

/// Writes [`RESET_STUB`] at the reset vector (see [`RESET_VECTOR`]).
pub fn write_reset_stub(mem: &GuestMemoryMmap) -> Result<(), Error> {
    mem.write_slice(&RESET_STUB, GuestAddress(RESET_VECTOR))
        .map_err(|e| Error::Setup(format!("writing the reset vector stub: {e}")))
}

/// Fills the Linux zero page.
pub fn write_zero_page(
    mem: &GuestMemoryMmap,
    kernel: &LoadedKernel,
    cmdline_len: usize,
    initrd: Option<InitrdPlacement>,
    rsdp: u64,
) -> Result<(), Error> {
    let mut params = boot_params::default();
    if let Some(h) = kernel.header {
        params.hdr = h;
    }
    params.hdr.type_of_loader = 0xff; // "undefined" boot loader
    params.hdr.cmd_line_ptr = CMDLINE as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    if let Some(i) = initrd {
        params.hdr.ramdisk_image = i.addr as u32;
        params.hdr.ramdisk_size = i.size as u32;
        params.ext_ramdisk_image = (i.addr >> 32) as u32;
        params.ext_ramdisk_size = (i.size >> 32) as u32;
    }
    params.acpi_rsdp_addr = rsdp;
    let map = memory::e820(mem);
    for (slot, e) in params.e820_table.iter_mut().zip(&map) {
        slot.addr = e.addr;
        slot.size = e.size;
        slot.r#type = e.kind;
    }
    params.e820_entries = map.len().min(params.e820_table.len()) as u8;
    mem.write_obj(params, GuestAddress(ZERO_PAGE))
        .map_err(|e| Error::Setup(format!("writing the zero page: {e}")))
}

/// Fills PVH `hvm_start_info`, its memory map and module list (the initrd).
pub fn write_pvh_info(
    mem: &GuestMemoryMmap,
    initrd: Option<InitrdPlacement>,
    rsdp: u64,
) -> Result<(), Error> {
    let map: Vec<hvm_memmap_table_entry> = memory::e820(mem)
        .iter()
        .map(|e| hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.kind,
            reserved: 0,
        })
        .collect();
    let mut info = hvm_start_info {
        magic: HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: CMDLINE,
        rsdp_paddr: rsdp,
        memmap_paddr: PVH_MEMMAP,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    let mut params = BootParams::new(&info, GuestAddress(PVH_INFO));
    params.set_sections(&map, GuestAddress(PVH_MEMMAP));
    if let Some(i) = initrd {
        info.nr_modules = 1;
        info.modlist_paddr = PVH_MODLIST;
        params = BootParams::new(&info, GuestAddress(PVH_INFO));
        params.set_sections(&map, GuestAddress(PVH_MEMMAP));
        params.set_modules(
            &[hvm_modlist_entry {
                paddr: i.addr,
                size: i.size,
                ..Default::default()
            }],
            GuestAddress(PVH_MODLIST),
        );
    }
    PvhBootConfigurator::write_bootparams::<GuestMemoryMmap>(&params, mem)
        .map_err(|e| Error::Setup(format!("writing PVH start info: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp(content: &[u8]) -> tempfile_lite::TempPath {
        tempfile_lite::TempPath::with(content)
    }

    /// A scratch-file helper without pulling a crate into the VMM's dependencies.
    mod tempfile_lite {
        use std::path::PathBuf;
        pub struct TempPath(pub PathBuf);
        impl TempPath {
            pub fn with(content: &[u8]) -> Self {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "vmm-loader-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                ));
                std::fs::write(&p, content).unwrap();
                TempPath(p)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn detect_rejects_non_kernels() {
        let t = temp(b"#!/bin/sh\necho not a kernel\n");
        assert!(matches!(detect(&t.0), Err(Error::KernelFormat { .. })));
        let empty = temp(b"");
        let e = detect(&empty.0).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        assert!(matches!(
            detect(Path::new("/nonexistent/vmlinuz")),
            Err(Error::KernelRead { .. })
        ));
        assert!(matches!(
            detect(Path::new("/")),
            Err(Error::KernelFormat { .. })
        ));
    }

    #[test]
    fn elf_without_pvh_note_is_refused() {
        // The test binary itself is an ELF with no PVH note.
        let me = std::env::current_exe().unwrap();
        let mut f = std::fs::File::open(&me).unwrap();
        let mut head = vec![0u8; 64];
        f.read_exact(&mut head).unwrap();
        let t = temp(&head);
        let mem = memory::create(64).unwrap();
        assert!(matches!(
            load_kernel(&mem, &t.0, BootPath::Auto),
            Err(Error::KernelFormat { .. })
        ));
    }

    #[test]
    fn probes_load_through_both_paths() {
        let mem = memory::create(64).unwrap();
        let k = load_kernel(&mem, probes::pvh_elf(), BootPath::Auto).unwrap();
        assert!(matches!(k.entry, Entry::Pvh { .. }));
        assert!(matches!(
            load_kernel(&mem, probes::pvh_elf(), BootPath::Linux64),
            Err(Error::KernelFormat { .. })
        ));
        let k = load_kernel(&mem, probes::bzimage(), BootPath::Auto).unwrap();
        assert_eq!(k.entry, Entry::Linux64 { rip: 0x100200 });
        assert_eq!(k.cmdline_max(), 2047);
    }

    #[test]
    fn initrd_goes_high_and_too_large_is_refused() {
        let mem = memory::create(16).unwrap();
        let k = load_kernel(&mem, probes::pvh_elf(), BootPath::Auto).unwrap();
        let small = temp(&[7u8; 5000]);
        let p = load_initrd(&mem, &k, &small.0).unwrap();
        assert_eq!(p.addr % 4096, 0);
        assert!(p.addr + p.size <= 16 << 20);
        let mut big = tempfile_lite::TempPath::with(b"");
        let mut f = std::fs::File::create(&big.0).unwrap();
        f.write_all(&vec![0u8; 17 << 20]).unwrap();
        assert!(matches!(
            load_initrd(&mem, &k, &big.0),
            Err(Error::InitrdTooLarge { .. })
        ));
        big.0 = big.0.clone();
    }

    #[test]
    fn cmdline_limits() {
        assert!(check_cmdline("console=ttyS0", 2047).is_ok());
        assert!(matches!(
            check_cmdline(&"x".repeat(2048), 2047),
            Err(Error::CmdlineTooLong {
                len: 2048,
                max: 2047
            })
        ));
        assert!(matches!(
            check_cmdline("a\0b", 10),
            Err(Error::CmdlineInvalid)
        ));
    }
}
