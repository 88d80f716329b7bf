//! Builds the guest probes with the host's gcc and binutils: no cross toolchain exists here
//! (nor can one be fetched), and x86-64 freestanding code is exactly what the host compiler
//! makes. Outputs: an ELF with a PVH note, and a bzImage-format image (Linux boot protocol
//! 2.15 header + a flat payload whose 64-bit entry sits at +0x200, like a real kernel's).

use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_DIR: &str = "guest";
const LOAD_ADDR: u64 = 0x10_0000;

fn run(cmd: &mut Command) {
    let shown = format!("{cmd:?}");
    let status = cmd.status().unwrap_or_else(|e| {
        panic!(
            "probes: cannot run {shown}: {e}. The guest probes need gcc and binutils \
             (apt-get install gcc binutils)"
        )
    });
    assert!(status.success(), "probes: {shown} failed with {status}");
}

fn compile(src: &Path, out: &Path) {
    run(Command::new("gcc")
        .args([
            "-m64",
            "-ffreestanding",
            "-fno-pic",
            "-fno-pie",
            "-mno-red-zone",
            // No SSE: the PVH path never enables it, and an emulated KVM emulates fewer of them.
            "-mgeneral-regs-only",
            "-fno-stack-protector",
            "-fno-asynchronous-unwind-tables",
            "-fcf-protection=none",
            "-fno-builtin",
            "-Os",
            "-Wall",
            "-Werror",
            "-c",
        ])
        .arg(src)
        .arg("-o")
        .arg(out));
}

fn link(objs: &[PathBuf], entry: &str, out: &Path) {
    run(Command::new("ld")
        .args([
            "-m",
            "elf_x86_64",
            "-nostdlib",
            "-static",
            "-z",
            "noexecstack",
            "-z",
            "max-page-size=4096",
        ])
        .arg("-T")
        .arg(Path::new(GUEST_DIR).join("linker.ld"))
        .arg(format!("--defsym=probe_entry={entry}"))
        .args(objs)
        .arg("-o")
        .arg(out));
}

fn symbol(elf: &Path, name: &str) -> u64 {
    let out = Command::new("nm")
        .arg(elf)
        .output()
        .expect("probes: cannot run nm (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let (addr, _, sym) = (f.next()?, f.next()?, f.next()?);
            (sym == name)
                .then(|| u64::from_str_radix(addr, 16).ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("probes: symbol {name} missing from {}", elf.display()))
}

/// Wraps a flat 64-bit payload in the Linux boot protocol's setup header so the VMM's
/// bzImage path (linux-loader) loads it like a distribution kernel.
fn make_bzimage(payload: &[u8], init_size: u32) -> Vec<u8> {
    const SETUP_SECTS: u8 = 1;
    let mut img = vec![0u8; (SETUP_SECTS as usize + 1) * 512];
    let put16 =
        |img: &mut Vec<u8>, off: usize, v: u16| img[off..off + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |img: &mut Vec<u8>, off: usize, v: u32| img[off..off + 4].copy_from_slice(&v.to_le_bytes());
    img[0x1f1] = SETUP_SECTS;
    put32(&mut img, 0x1f4, payload.len().div_ceil(16) as u32); // syssize
    put16(&mut img, 0x1fe, 0xaa55); // boot_flag
    img[0x200] = 0xeb; // jmp over the header (never executed: no real-mode entry)
    img[0x201] = 0x66;
    img[0x202..0x206].copy_from_slice(b"HdrS");
    put16(&mut img, 0x206, 0x020f); // protocol 2.15
    img[0x211] = 0x01; // loadflags: LOADED_HIGH
    put32(&mut img, 0x214, LOAD_ADDR as u32); // code32_start
    put32(&mut img, 0x22c, 0x7fff_ffff); // initrd_addr_max
    put32(&mut img, 0x230, 0x20_0000); // kernel_alignment
    put16(&mut img, 0x236, 0x3); // xloadflags: XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
    put32(&mut img, 0x238, 2047); // cmdline_size
    img[0x258..0x260].copy_from_slice(&LOAD_ADDR.to_le_bytes()); // pref_address
    put32(&mut img, 0x260, init_size);
    img.extend_from_slice(payload);
    img
}

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={GUEST_DIR}");
    println!("cargo:rerun-if-changed=build.rs");

    let obj = |name: &str| {
        let o = out.join(format!("{name}.o"));
        compile(&Path::new(GUEST_DIR).join(name), &o);
        o
    };
    let lib = obj("lib.c");
    let probe = obj("probe.c");
    let virtio = obj("virtio.c");
    let pvh_entry = obj("entry_pvh.S");
    let linux_entry = obj("entry_linux64.S");

    let pvh = out.join("probe-pvh.elf");
    link(
        &[pvh_entry, lib.clone(), probe.clone(), virtio.clone()],
        "pvh_start",
        &pvh,
    );

    let linux_elf = out.join("probe-linux64.elf");
    link(&[linux_entry, lib, probe, virtio], "startup_64", &linux_elf);
    let payload = out.join("probe-linux64.bin");
    run(Command::new("objcopy")
        .args([
            "-O", "binary", "-j", ".text", "-j", ".rodata", "-j", ".data",
        ])
        .arg(&linux_elf)
        .arg(&payload));
    let payload = std::fs::read(&payload).unwrap();
    let init_size = (symbol(&linux_elf, "__bss_end") - LOAD_ADDR) as u32;
    let bz = out.join("probe-bzimage");
    std::fs::write(&bz, make_bzimage(&payload, init_size)).unwrap();

    println!("cargo:rustc-env=PROBE_PVH_ELF={}", pvh.display());
    println!("cargo:rustc-env=PROBE_BZIMAGE={}", bz.display());
}
