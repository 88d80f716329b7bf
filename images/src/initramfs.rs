//! The ephemeral image's initramfs: busybox, a shell `/init`, and the kernel modules needed
//! to find the root filesystem.
//!
//! We write our own small initramfs instead of using Debian's initramfs-tools because it
//! has one job (find a squashfs, overlay it, switch root), must behave identically on qemu
//! `pc` (virtio-pci), qemu `microvm` and the builtin VMM (virtio-mmio found through ACPI
//! `LNRO0005`), and must fail with one clear line instead of dropping to a shell. It is
//! ~2 MB, builds in a second from the files already in the root filesystem (so it always
//! matches the kernel's modules), and is byte-for-byte reproducible (sorted entries, fixed
//! times, gzip without a time stamp).
//!
//! # Kernel command line contract
//!
//! | parameter | meaning |
//! |---|---|
//! | `root=squash:http://HOST:PORT/PATH` | bring up the network (see `ip=`), download the squashfs into RAM (`/run/vmtest/squashfs`) and loop-mount it; what MAAS and curtin's vmtest do |
//! | `root=squash:serial=SERIAL` | the squashfs is a virtio-blk disk whose serial (`/sys/block/vdX/serial`, at most 20 bytes) is SERIAL; no copy into RAM |
//! | `root=squash:/dev/vdX` | the squashfs is that block device |
//! | `overlayroot=tmpfs` | (default) writable tmpfs overlay over the read-only squashfs; `tmpfs:size=2G` passes tmpfs options; `disabled` boots the squashfs read-only |
//! | `ip=<client>:<server>:<gw>:<netmask>:<host>:<device>:<autoconf>` | network for the download (klibc syntax). `<device>` `BOOTIF` or empty: the NIC named by `BOOTIF=`, else the first `en*`/`eth*`. `<autoconf>` `off`/`none`/`static`: use `<client>`/`<netmask>`/`<gw>`; anything else (`dhcp`, empty): DHCP (busybox udhcpc). `ip=dhcp` alone works too |
//! | `BOOTIF=01-aa-bb-cc-dd-ee-ff` | MAC of the NIC to use (PXE style) |
//! | `rootdelay=N` | seconds to wait for the disk / NIC to appear (default 60) |
//! | `init=PATH` | program to run in the new root (default `/sbin/init`, systemd) |
//! | `vmtest.debug` | trace the init script; on failure start a shell instead of panicking |
//! | `console=ttyS0`, `ds=nocloud-net;seedfrom=URL`, `panic=-1`, ... | not ours: the kernel, systemd and cloud-init read them from `/proc/cmdline` |
//!
//! The pristine squashfs stays mounted at `/media/root-ro` in the booted system and the
//! tmpfs upper layer at `/media/root-rw` (curtin installs from `cp:///media/root-ro`). After
//! the download the NIC is flushed and set down so udev may rename it and systemd-networkd /
//! cloud-init configure it afresh. Any failure prints `vmtest-initramfs: FATAL: <why>` on the
//! console and ends PID 1, so the kernel panics (`panic=-1`: the VM stops immediately).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The init script (busybox sh).
pub const INIT_SCRIPT: &str = include_str!("../initramfs/init");
/// udhcpc's lease hook.
pub const UDHCPC_SCRIPT: &str = include_str!("../initramfs/udhcpc.script");

/// Modules the initramfs loads, in this order (their dependencies are added before them).
/// Built-in ones (ext4, af_packet on Debian's cloud kernel) are skipped.
pub const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "squashfs",
    "overlay",
    "loop",
    "isofs",
    "vfat",
    "nls_cp437",
    "nls_iso8859-1",
    "nls_utf8",
    "ext4",
    "af_packet",
];

/// What went into an initramfs.
#[derive(Debug, Clone)]
pub struct InitramfsInfo {
    /// Module names loaded at boot, in order.
    pub modules: Vec<String>,
    /// Requested modules that are built into the kernel.
    pub builtin: Vec<String>,
    pub size: u64,
}

/// Builds the initramfs for kernel `krel` from the files in `rootfs` (busybox from
/// busybox-static, modules from /lib/modules/`krel`) and writes it gzip-compressed to `out`.
/// `work` is scratch space; `mtime` is the time stamp of every entry.
pub fn build(
    rootfs: &Path,
    krel: &str,
    work: &Path,
    out: &Path,
    mtime: u64,
) -> Result<InitramfsInfo> {
    let moddir = rootfs.join("lib/modules").join(krel);
    if !moddir.is_dir() {
        bail!(
            "{} missing: the kernel package is not installed in the root",
            moddir.display()
        );
    }
    if !moddir.join("modules.dep").exists() {
        run(Command::new("depmod").arg("-b").arg(rootfs).arg(krel))
            .context("depmod on the root filesystem (install kmod)")?;
    }

    // Resolve the modules and their dependencies, in load order.
    let mut files: Vec<PathBuf> = Vec::new();
    let mut load: Vec<String> = Vec::new();
    let mut builtin = Vec::new();
    for m in MODULES {
        let outp = Command::new("modprobe")
            .arg("-d")
            .arg(rootfs)
            .args(["-S", krel, "--show-depends", m])
            .output()
            .context("running modprobe --show-depends (install kmod)")?;
        if !outp.status.success() {
            bail!(
                "kernel {krel} has no module {m}: {}",
                String::from_utf8_lossy(&outp.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&outp.stdout);
        for line in text.lines() {
            let mut w = line.split_whitespace();
            match (w.next(), w.next()) {
                (Some("builtin"), Some(name)) if name.replace('-', "_") == m.replace('-', "_") => {
                    builtin.push(m.to_string());
                }
                (Some("insmod"), Some(path)) => {
                    let rel = Path::new(path)
                        .strip_prefix(rootfs)
                        .with_context(|| {
                            format!("modprobe named {path} outside {}", rootfs.display())
                        })?
                        .to_path_buf();
                    if !files.contains(&rel) {
                        files.push(rel.clone());
                    }
                    let name = module_name(&rel)?;
                    if !load.contains(&name) {
                        load.push(name);
                    }
                }
                _ => {}
            }
        }
    }

    let tree = work.join("initramfs");
    if tree.exists() {
        fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))?;
    }
    for d in [
        "bin", "sbin", "etc", "proc", "sys", "dev", "run", "root", "tmp", "usr/bin", "usr/sbin",
    ] {
        fs::create_dir_all(tree.join(d))?;
    }
    let busybox = rootfs.join("bin/busybox");
    let bb = fs::read(&busybox).with_context(|| {
        format!(
            "{}: busybox-static missing from the root",
            busybox.display()
        )
    })?;
    if elf_has_interpreter(&bb) {
        bail!(
            "{} is dynamically linked: the root needs busybox-static, not busybox",
            busybox.display()
        );
    }
    write_exec(&tree.join("bin/busybox"), &bb)?;
    write_exec(&tree.join("init"), INIT_SCRIPT.as_bytes())?;
    write_exec(&tree.join("etc/udhcpc.script"), UDHCPC_SCRIPT.as_bytes())?;
    fs::write(tree.join("etc/vmtest-modules"), load.join("\n") + "\n")?;
    for rel in &files {
        let src = rootfs.join(rel);
        let dst = tree.join(rel);
        fs::create_dir_all(dst.parent().unwrap())?;
        fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
    }
    let tree_moddir = tree.join("lib/modules").join(krel);
    fs::create_dir_all(&tree_moddir)?;
    for f in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        if moddir.join(f).exists() {
            fs::copy(moddir.join(f), tree_moddir.join(f))?;
        }
    }
    run(Command::new("depmod").arg("-b").arg(&tree).arg(krel))
        .context("depmod on the initramfs")?;

    let mut cpio = Vec::new();
    write_cpio(&tree, mtime, &mut cpio)?;
    let tmp = out.with_extension("tmp");
    {
        let f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(std::io::BufWriter::new(f), flate2::Compression::best());
        gz.write_all(&cpio)?;
        gz.finish()?.flush()?;
    }
    fs::rename(&tmp, out)?;
    Ok(InitramfsInfo {
        modules: load,
        builtin,
        size: fs::metadata(out)?.len(),
    })
}

fn module_name(rel: &Path) -> Result<String> {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    match name.strip_suffix(".ko") {
        Some(n) => Ok(n.replace('-', "_")),
        None => bail!(
            "{}: compressed modules are not supported by this builder",
            rel.display()
        ),
    }
}

fn write_exec(path: &Path, data: &[u8]) -> Result<()> {
    fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// True if an ELF file asks for a program interpreter (is dynamically linked).
fn elf_has_interpreter(b: &[u8]) -> bool {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16le = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u64le = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64le(0x20), u16le(0x36), u16le(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) == 3
    })
}

/// Writes `tree` as a "newc" cpio archive: entries sorted by path, owned by root, every
/// time stamp `mtime`, inode numbers in order, plus a `/dev/console` node (the kernel opens
/// it for init's stdio before anything is mounted).
pub fn write_cpio(tree: &Path, mtime: u64, out: &mut Vec<u8>) -> Result<()> {
    let mut entries: BTreeMap<String, PathBuf> = BTreeMap::new();
    collect(tree, tree, &mut entries)?;
    let mut ino = 1u32;
    for (name, path) in &entries {
        let meta = fs::symlink_metadata(path)?;
        let ft = meta.file_type();
        let perm = meta.mode() & 0o7777;
        let (mode, data) = if ft.is_dir() {
            (0o040000 | perm, Vec::new())
        } else if ft.is_symlink() {
            (
                0o120000 | 0o777,
                fs::read_link(path)?.into_os_string().into_encoded_bytes(),
            )
        } else if ft.is_file() {
            (0o100000 | perm, fs::read(path)?)
        } else {
            bail!(
                "{}: unsupported file type in initramfs tree",
                path.display()
            );
        };
        cpio_entry(out, ino, name, mode, mtime, 0, &data);
        ino += 1;
        if name == "dev" {
            cpio_entry(out, ino, "dev/console", 0o020600, mtime, (5 << 8) | 1, &[]);
            ino += 1;
        }
    }
    cpio_entry(out, 0, "TRAILER!!!", 0, 0, 0, &[]);
    Ok(())
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
        let is_dir = e.file_type()?.is_dir();
        out.insert(rel, path.clone());
        if is_dir {
            collect(root, &path, out)?;
        }
    }
    Ok(())
}

/// `rdev` is (major << 8) | minor for device nodes.
fn cpio_entry(
    out: &mut Vec<u8>,
    ino: u32,
    name: &str,
    mode: u32,
    mtime: u64,
    rdev: u32,
    data: &[u8],
) {
    let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
    let header = format!(
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
        0,
        0,
        mtime as u32,
        data.len(),
        0,
        0,
        rdev >> 8,
        rdev & 0xff,
        name.len() + 1,
        0
    );
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_is_deterministic_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        fs::create_dir_all(t.join("bin")).unwrap();
        fs::create_dir_all(t.join("dev")).unwrap();
        fs::write(t.join("init"), b"#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("busybox", t.join("bin/sh")).unwrap();
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_cpio(t, 1234, &mut a).unwrap();
        write_cpio(t, 1234, &mut b).unwrap();
        assert_eq!(a, b);
        assert!(a.starts_with(b"070701"));
        let s = String::from_utf8_lossy(&a);
        for name in [
            "bin\0",
            "bin/sh\0",
            "dev\0",
            "dev/console\0",
            "init\0",
            "TRAILER!!!\0",
        ] {
            assert!(s.contains(name), "{name}");
        }
        assert_eq!(a.len() % 4, 0);
        // If cpio(1) is around, it must list the same entries.
        if let Ok(mut child) = Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            child.stdin.take().unwrap().write_all(&a).unwrap();
            let out = child.wait_with_output().unwrap();
            let listed = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                listed.lines().collect::<Vec<_>>(),
                ["bin", "bin/sh", "dev", "dev/console", "init"]
            );
        }
    }

    #[test]
    fn init_script_parses() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("init");
        fs::write(&p, INIT_SCRIPT).unwrap();
        let st = Command::new("sh").arg("-n").arg(&p).status().unwrap();
        assert!(st.success());
    }

    #[test]
    fn static_and_dynamic_elf() {
        let sh = fs::read("/bin/sh").unwrap();
        assert!(elf_has_interpreter(&sh), "/bin/sh is dynamic on Debian");
        assert!(!elf_has_interpreter(b"#!/bin/sh\n"));
    }
}
