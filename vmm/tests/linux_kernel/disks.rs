//! The test's disks, made on the host: a GPT disk with an ext4 root (sfdisk, mkfs.ext4), an
//! msdos disk with 4096-byte logical blocks (mbrman: sfdisk 2.38 counts a file's sectors in
//! 512 bytes, and a loop device with 4 KiB sectors needs root), and a disk the guest gets
//! read-only. Each has a size no other has, so the kernel's log line for it is
//! found by capacity and block size whatever order the guest probes them in.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MIB: u64 = 1 << 20;

/// One disk as the guest should see it.
#[derive(Clone, Debug)]
pub struct Disk {
    pub name: &'static str,
    pub path: PathBuf,
    pub size: u64,
    pub block_size: u32,
    pub read_only: bool,
    /// Partition starts and lengths in bytes, in table order.
    pub partitions: Vec<(u64, u64)>,
}

impl Disk {
    pub fn blocks(&self) -> u64 {
        self.size / u64::from(self.block_size)
    }
}

/// The three disks and what the tests boot from them.
pub struct Disks {
    pub root: Disk,
    pub msdos_4k: Disk,
    pub read_only: Disk,
}

/// GPT partition GUIDs the kernel command line names (`root=PARTUUID=`).
pub const ROOT_PARTUUID: &str = "6c1f1a0e-2b7d-4d1e-9a55-0d5f1e7a0001";
pub const RO_PARTUUID: &str = "6c1f1a0e-2b7d-4d1e-9a55-0d5f1e7a0003";

fn run(cmd: &mut Command, input: Option<&str>) {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{what}: {e} (sfdisk: Debian package fdisk; mkfs.ext4, e2fsck: e2fsprogs)")
        });
    if let Some(text) = input {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sized_file(path: &Path, size: u64) {
    File::create(path).unwrap().set_len(size).unwrap();
}

/// Writes a GPT with sfdisk (512-byte sectors); returns the partitions in bytes.
fn gpt(path: &Path, parts: &[(u64, u64, &str)]) -> Vec<(u64, u64)> {
    let mut script = String::from("label: gpt\nunit: sectors\nsector-size: 512\n");
    for (start, len, extra) in parts {
        script.push_str(&format!(
            "start={}, size={}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, {extra}\n",
            start / 512,
            len / 512
        ));
    }
    run(
        Command::new("sfdisk")
            .args(["--quiet", "--no-reread", "--no-tell-kernel"])
            .arg(path),
        Some(&script),
    );
    parts.iter().map(|(s, l, _)| (*s, *l)).collect()
}

/// Writes an msdos table of primary Linux partitions counted in `sector`-byte sectors.
fn msdos(path: &Path, sector: u32, parts: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut mbr = mbrman::MBR::new_from(&mut f, sector, [0x5c, 0xd1, 0x57, 0x7e]).unwrap();
    let bs = u64::from(sector);
    for (i, (start, len)) in parts.iter().enumerate() {
        mbr[i + 1] = mbrman::MBRPartitionEntry {
            boot: mbrman::BOOT_INACTIVE,
            first_chs: mbrman::CHS::empty(),
            sys: 0x83,
            last_chs: mbrman::CHS::empty(),
            starting_lba: u32::try_from(start / bs).unwrap(),
            sectors: u32::try_from(len / bs).unwrap(),
        };
    }
    mbr.write_into(&mut f).unwrap();
    parts.to_vec()
}

/// An ext4 file system with `tree` in it, written into `disk` at `offset`.
fn mkfs_ext4(disk: &Path, offset: u64, len: u64, label: &str, tree: &Path) {
    run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", label, "-b", "4096", "-E"])
            .arg(format!("offset={offset}"))
            .arg("-d")
            .arg(tree)
            .arg(disk)
            .arg(format!("{}k", len / 1024)),
        None,
    );
}

/// A tiny root tree: no init anywhere, so the kernel panics once it has mounted it.
fn root_tree(dir: &Path, what: &str) -> PathBuf {
    let tree = dir.join(format!("tree-{what}"));
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    for d in ["dev", "proc", "sys", "tmp"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    std::fs::write(tree.join("etc/hostname"), format!("vmtest-{what}\n")).unwrap();
    std::fs::write(
        tree.join("README"),
        "Made by vmm/tests/linux_kernel: a root without an init, on purpose.\n",
    )
    .unwrap();
    tree
}

impl Disks {
    pub fn make(dir: &Path) -> Disks {
        std::fs::create_dir_all(dir).unwrap();
        let root_path = dir.join("root-gpt.img");
        sized_file(&root_path, 64 * MIB);
        let root_parts = gpt(
            &root_path,
            &[
                (MIB, 40 * MIB, &format!("uuid={ROOT_PARTUUID}, name=root")),
                (41 * MIB, 22 * MIB, "name=spare"),
            ],
        );
        mkfs_ext4(
            &root_path,
            root_parts[0].0,
            root_parts[0].1,
            "vmtest-root",
            &root_tree(dir, "root"),
        );

        let msdos_path = dir.join("msdos-4k.img");
        sized_file(&msdos_path, 32 * MIB);
        let msdos_parts = msdos(&msdos_path, 4096, &[(MIB, 8 * MIB), (9 * MIB, 23 * MIB)]);

        let ro_path = dir.join("read-only.img");
        sized_file(&ro_path, 16 * MIB);
        let ro_parts = gpt(
            &ro_path,
            &[(MIB, 14 * MIB, &format!("uuid={RO_PARTUUID}, name=ro"))],
        );
        mkfs_ext4(
            &ro_path,
            ro_parts[0].0,
            ro_parts[0].1,
            "vmtest-ro",
            &root_tree(dir, "ro"),
        );

        Disks {
            root: Disk {
                name: "GPT root",
                path: root_path,
                size: 64 * MIB,
                block_size: 512,
                read_only: false,
                partitions: root_parts,
            },
            msdos_4k: Disk {
                name: "msdos 4K",
                path: msdos_path,
                size: 32 * MIB,
                block_size: 4096,
                read_only: false,
                partitions: msdos_parts,
            },
            read_only: Disk {
                name: "read-only",
                path: ro_path,
                size: 16 * MIB,
                block_size: 512,
                read_only: true,
                partitions: ro_parts,
            },
        }
    }

    /// In the order they are attached.
    pub fn all(&self) -> [&Disk; 3] {
        [&self.root, &self.msdos_4k, &self.read_only]
    }

    /// A copy of the disks for one boot, so boots never share a file.
    pub fn copy_to(&self, dir: &Path) -> Disks {
        std::fs::create_dir_all(dir).unwrap();
        let copy = |d: &Disk| {
            let path = dir.join(d.path.file_name().unwrap());
            std::fs::copy(&d.path, &path).unwrap();
            Disk {
                path,
                partitions: d.partitions.clone(),
                ..*d
            }
        };
        Disks {
            root: copy(&self.root),
            msdos_4k: copy(&self.msdos_4k),
            read_only: copy(&self.read_only),
        }
    }
}

/// What the host reads in an ext4 superblock to tell whether a guest mounted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ext4Mounts {
    pub mount_count: u16,
    pub last_mount_time: u32,
    pub last_write_time: u32,
}

/// Reads the superblock of the ext4 file system at `offset` of `disk`.
pub fn ext4_mounts(disk: &Path, offset: u64) -> Ext4Mounts {
    let mut f = File::open(disk).unwrap();
    let mut sb = [0u8; 1024];
    f.seek(SeekFrom::Start(offset + 1024)).unwrap();
    f.read_exact(&mut sb).unwrap();
    assert_eq!(
        u16::from_le_bytes([sb[0x38], sb[0x39]]),
        0xef53,
        "no ext4 superblock at {offset} of {}",
        disk.display()
    );
    let u32_at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    Ext4Mounts {
        last_mount_time: u32_at(0x2c),
        last_write_time: u32_at(0x30),
        mount_count: u16::from_le_bytes([sb[0x34], sb[0x35]]),
    }
}

/// `e2fsck -fn` on the partition at (`offset`, `len`) of `disk` (copied out: e2fsck takes
/// no offset). Returns its report; panics unless it found the file system clean.
pub fn e2fsck_clean(disk: &Path, offset: u64, len: u64) -> String {
    let part = disk.with_extension("part.img");
    {
        let mut src = File::open(disk).unwrap();
        src.seek(SeekFrom::Start(offset)).unwrap();
        let mut dst = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&part)
            .unwrap();
        std::io::copy(&mut src.take(len), &mut dst).unwrap();
    }
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(&part)
        .output()
        .expect("e2fsck (Debian package e2fsprogs) is needed");
    let _ = std::fs::remove_file(&part);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "e2fsck -fn found the root file system unclean ({}):\n{report}",
        out.status
    );
    report
}

/// A digest of a whole file, to show the guest changed nothing in it.
pub fn digest(path: &Path) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut f = File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
    }
    h.finish()
}
