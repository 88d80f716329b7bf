//! Shared by the tests that drive the runner with a fake backend: a small test config and
//! what its "guest" writes onto the output disk.

use std::io::Write;
use std::path::{Path, PathBuf};

use harness::backend::PhaseSpec;
use harness::runner::DirImages;

/// One msdos disk with an ext4 root; checks `fstab` is collected and mounts `/`. The
/// flow is what these tests are about: the checks derived from the storage config are
/// off (the derived checks have fake guests of their own, `derived_checks.rs`).
pub const TEST: &str = r#"
vmtest:
  release: bookworm
  derive_checks: false
  disks: {sda: {size: 64M}}
  expect:
    - file_exists: [fstab]
    - fstab: [{mountpoint: /, fstype: ext4}]
storage:
  version: 1
  config:
    - {id: sda, type: disk, ptable: msdos, serial: disk-a}
    - {id: sda1, type: partition, device: sda, number: 1, size: 32M}
    - {id: sda1_root, type: format, volume: sda1, fstype: ext4}
    - {id: sda1_mount, type: mount, device: sda1_root, path: /}
"#;

/// A tar the collect scripts would write.
pub fn good_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let data = b"UUID=1234 / ext4 defaults 0 1\n";
    h.set_path("./fstab").unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
    b.into_inner().unwrap()
}

pub fn write_output_disk(spec: &PhaseSpec, tar: &[u8]) {
    let d = spec
        .disks
        .iter()
        .find(|d| d.serial == "output_disk.img")
        .expect("output disk attached");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&d.path)
        .unwrap();
    f.write_all(tar).unwrap();
}

/// An image directory under `dir` whose kernel, initrd and squashfs are placeholders: the
/// fake backend never boots them.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn fake_images(dir: &Path) -> DirImages {
    let img = dir.join("image");
    std::fs::create_dir_all(&img).unwrap();
    for f in ["kernel", "initrd", "squashfs"] {
        std::fs::write(img.join(f), format!("fake {f}")).unwrap();
    }
    DirImages(img)
}

/// A directory with curtin's layout under `dir`: enough for the harness to pack it.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn fake_curtin_tree(dir: &Path) -> PathBuf {
    let c = dir.join("curtin-src");
    for p in [
        "curtin/__init__.py",
        "curtin/commands/main.py",
        "bin/curtin",
        "helpers/common",
    ] {
        std::fs::create_dir_all(c.join(p).parent().unwrap()).unwrap();
        std::fs::write(c.join(p), "").unwrap();
    }
    c
}
