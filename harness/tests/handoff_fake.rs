//! The boot phase without firmware (the builtin microVM's way) boots from the install's
//! handoff, whatever /boot sits on: RAID (curtin), LVM and xfs (the script installer).
//! A fake backend plays the guest: in the install phase it writes the handoff as the
//! install environment's writer would, in the boot phase it checks what it was given.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::backend::{Boot, FakeBackend, Outcome, Phase, PhaseResult, PhaseSpec};
use harness::config::TestConfig;
use harness::handoff::{self, HANDOFF_DISK_SERIAL, format::Kind};
use harness::runner::{self, DirImages, Progress, RunContext, RunError, Status};
use harness::settings::Settings;

#[allow(dead_code)]
mod fake;
use fake::{good_tar, write_output_disk};

/// Storage configs with /boot where the host could never read it.
const RAID_BOOT: &str = r#"
    - {id: sda, type: disk, ptable: gpt, serial: disk-a, grub_device: true}
    - {id: sdb, type: disk, ptable: gpt, serial: disk-b, grub_device: true}
    - {id: sda1, type: partition, device: sda, number: 1, size: 1M, flag: bios_grub}
    - {id: sda2, type: partition, device: sda, number: 2, size: 40M, flag: raid}
    - {id: sdb1, type: partition, device: sdb, number: 1, size: 1M, flag: bios_grub}
    - {id: sdb2, type: partition, device: sdb, number: 2, size: 40M, flag: raid}
    - {id: md0, type: raid, name: md0, raidlevel: 1, devices: [sda2, sdb2]}
    - {id: md0_root, type: format, volume: md0, fstype: ext4}
    - {id: md0_mount, type: mount, device: md0_root, path: /}
"#;
const LVM_BOOT: &str = r#"
    - {id: sda, type: disk, ptable: msdos, serial: disk-a}
    - {id: sda1, type: partition, device: sda, number: 1, size: 60M, flag: lvm}
    - {id: vg0, type: lvm_volgroup, name: vg0, devices: [sda1]}
    - {id: lv_root, type: lvm_partition, name: root, volgroup: vg0}
    - {id: root_fs, type: format, volume: lv_root, fstype: ext4}
    - {id: root_mount, type: mount, device: root_fs, path: /}
"#;
const XFS_BOOT: &str = r#"
    - {id: sda, type: disk, ptable: msdos, serial: disk-a}
    - {id: sda1, type: partition, device: sda, number: 1, size: 20M}
    - {id: sda2, type: partition, device: sda, number: 2, size: 40M}
    - {id: boot_fs, type: format, volume: sda1, fstype: xfs}
    - {id: root_fs, type: format, volume: sda2, fstype: ext4}
    - {id: root_mount, type: mount, device: root_fs, path: /}
    - {id: boot_mount, type: mount, device: boot_fs, path: /boot}
"#;

fn test_config(name: &str, storage: &str, disks: &str) -> TestConfig {
    let text = format!(
        "vmtest:\n  release: bookworm\n  derive_checks: false\n  disks: {disks}\n  expect:\n    - file_exists: [fstab]\nstorage:\n  version: 1\n  config:{storage}"
    );
    TestConfig::parse(name, Path::new("t.yaml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

/// What the install environment's writer hands off for a layout: grub.cfg as
/// grub-mkconfig writes it there (paths relative to grub's root), the kernel and initrd.
struct Layout {
    kernel_path: &'static str,
    initrd_path: &'static str,
    args: &'static str,
}

fn grub_cfg(l: &Layout) -> String {
    format!(
        "set default=\"0\"\nmenuentry 'Debian GNU/Linux' --class debian {{\n\tinsmod lvm\n\tlinux\t{} {} $vt_handoff\n\tinitrd\t{}\n}}\nmenuentry 'recovery' {{\n\tlinux\t{} single\n\tinitrd\t{}\n}}\n",
        l.kernel_path, l.args, l.initrd_path, l.kernel_path, l.initrd_path
    )
}

struct Env {
    dir: tempfile::TempDir,
    images: DirImages,
    settings: Settings,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let m: HashMap<String, String> = [
            (
                "CURTIN_VMTEST_TOPDIR".to_string(),
                dir.path().join("top").display().to_string(),
            ),
            (
                "CURTIN_VMTEST_KEEP_DATA_PASS".to_string(),
                "install,disks,boot".to_string(),
            ),
        ]
        .into();
        let settings = Settings::from_lookup(|k| m.get(k).cloned(), false).unwrap();
        settings.prepare_topdir().unwrap();
        Env {
            images: fake::fake_images(dir.path()),
            dir,
            settings,
        }
    }

    fn run(&self, b: FakeBackend, t: TestConfig, curtin: Option<&Path>) -> runner::TestResult {
        let ctx = RunContext {
            settings: &self.settings,
            backend: &b,
            images: &self.images,
            curtin_src: curtin,
            progress: Progress::new(None, true),
            console: None,
        };
        runner::run_all(&[t], &ctx).pop().unwrap()
    }
}

fn powered_off() -> Result<PhaseResult, harness::backend::BackendError> {
    Ok(PhaseResult {
        outcome: Outcome::PowerOff,
        wall: Duration::from_millis(1),
    })
}

/// The guest: installs by writing `handoff` (None: writes nothing) onto the handoff disk,
/// then boots and collects. Records the specs it was given.
fn guest(
    handoff: Option<Vec<(Kind, String, Vec<u8>)>>,
    seen: Arc<Mutex<Vec<PhaseSpec>>>,
) -> FakeBackend {
    let mut b = FakeBackend::new(move |spec| {
        seen.lock().unwrap().push(spec.clone());
        if spec.phase == Phase::Install {
            let disk = spec
                .disks
                .last()
                .filter(|d| d.serial == HANDOFF_DISK_SERIAL)
                .expect("the handoff disk is attached last in the install phase");
            if let Some(entries) = &handoff {
                let entries: Vec<(Kind, &str, &[u8])> = entries
                    .iter()
                    .map(|(k, p, d)| (*k, p.as_str(), d.as_slice()))
                    .collect();
                let mut f = std::fs::OpenOptions::new().write(true).open(&disk.path)?;
                handoff::write_image(&mut f, &entries)?;
            }
            std::fs::write(
                &spec.serial_log,
                "vmtest-handoff: wrote\ncurtin: Installation finished.\nreboot: Power down\n",
            )?;
        } else {
            std::fs::write(&spec.serial_log, "collect\n")?;
            write_output_disk(spec, &good_tar());
        }
        powered_off()
    });
    b.direct_boot = true;
    b
}

fn entries_for(l: &Layout) -> Vec<(Kind, String, Vec<u8>)> {
    vec![
        (
            Kind::GrubCfg,
            "/boot/grub/grub.cfg".into(),
            grub_cfg(l).into_bytes(),
        ),
        (Kind::File, l.kernel_path.into(), b"KERNEL BYTES".to_vec()),
        (Kind::File, l.initrd_path.into(), b"INITRD BYTES".to_vec()),
    ]
}

/// Runs `t` through a guest handing off `layout`, and checks the boot phase booted the
/// handed-off kernel, initrd and command line, with the installed disks but no handoff
/// disk attached.
fn boots_from_the_handoff(t: TestConfig, layout: Layout, curtin: bool) -> (Env, String) {
    let env = Env::new();
    let tree = fake::fake_curtin_tree(env.dir.path());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let name = t.name.clone();
    let storage_serials: Vec<String> = t.disks.iter().map(|d| d.serial.clone()).collect();
    let r = env.run(
        guest(Some(entries_for(&layout)), seen.clone()),
        t,
        curtin.then_some(tree.as_path()),
    );
    assert_eq!(r.status, Status::Pass, "{name}: {:?}", r.errors());
    let seen = seen.lock().unwrap();
    let boot = &seen[1];
    let Boot::Direct {
        kernel,
        initrd,
        cmdline,
    } = &boot.boot
    else {
        panic!("{name}: {:?}", boot.boot)
    };
    assert_eq!(std::fs::read(kernel).unwrap(), b"KERNEL BYTES", "{name}");
    assert_eq!(
        std::fs::read(initrd.as_ref().unwrap()).unwrap(),
        b"INITRD BYTES"
    );
    assert_eq!(
        *cmdline,
        format!("BOOT_IMAGE={} {} panic=-1", layout.kernel_path, layout.args),
        "{name}"
    );
    let serials: Vec<&str> = boot.disks.iter().map(|d| d.serial.as_str()).collect();
    let mut want: Vec<&str> = storage_serials.iter().map(String::as_str).collect();
    want.extend(["output_disk.img", "seed"]);
    assert_eq!(serials, want, "{name}: no handoff disk in the boot phase");
    let ud =
        std::fs::read_to_string(env.settings.topdir.join(&name).join("install/user-data")).unwrap();
    (env, ud)
}

#[test]
fn raid_boot_with_curtin_boots_from_the_handoff() {
    let t = test_config(
        "raid_boot",
        RAID_BOOT,
        "{sda: {size: 64M}, sdb: {size: 64M}}",
    );
    let (env, _) = boots_from_the_handoff(
        t,
        Layout {
            kernel_path: "/boot/vmlinuz-6.1.0-13-amd64",
            initrd_path: "/boot/initrd.img-6.1.0-13-amd64",
            args: "root=UUID=0f3c ro console=ttyS0",
        },
        true,
    );
    // curtin got the writer as its last late command.
    let added = std::fs::read_to_string(
        env.settings
            .topdir
            .join("raid_boot/install/curtin-vmtest.yaml"),
    )
    .unwrap();
    assert!(
        added.contains(harness::installer::HANDOFF_LATE_COMMAND),
        "{added}"
    );
}

#[test]
fn lvm_boot_with_the_script_installer_boots_from_the_handoff() {
    let t = test_config("lvm_boot", LVM_BOOT, "{sda: {size: 64M}}");
    let (_, ud) = boots_from_the_handoff(
        t,
        Layout {
            kernel_path: "/boot/vmlinuz-6.1.0-13-amd64",
            initrd_path: "/boot/initrd.img-6.1.0-13-amd64",
            args: "root=/dev/mapper/vg0-root ro console=ttyS0",
        },
        false,
    );
    // The script installer runs the writer as its last step.
    assert!(
        ud.contains("VMTEST_HANDOFF"),
        "the pack sets VMTEST_HANDOFF"
    );
}

#[test]
fn xfs_boot_partition_boots_from_the_handoff() {
    // /boot is its own filesystem: grub.cfg names paths relative to it.
    let t = test_config("xfs_boot", XFS_BOOT, "{sda: {size: 64M}}");
    boots_from_the_handoff(
        t,
        Layout {
            kernel_path: "/vmlinuz-6.1.0-13-amd64",
            initrd_path: "/initrd.img-6.1.0-13-amd64",
            args: "root=UUID=77aa ro console=ttyS0",
        },
        false,
    );
}

/// No handoff written, or one that does not hold the default entry's initrd: the test
/// fails (the guest's fault) with the handoff's own error, and no boot VM runs.
#[test]
fn a_missing_or_broken_handoff_fails_the_test_by_name() {
    let layout = Layout {
        kernel_path: "/boot/vmlinuz-6.1",
        initrd_path: "/boot/initrd.img-6.1",
        args: "root=/dev/mapper/vg0-root ro",
    };
    let mut without_initrd = entries_for(&layout);
    without_initrd.pop();
    for (name, handoff, want) in [
        ("blank", None, "the handoff disk is blank"),
        (
            "no_initrd",
            Some(without_initrd),
            "boots /boot/initrd.img-6.1 as its initrd, which is not in the handoff",
        ),
    ] {
        let env = Env::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let r = env.run(
            guest(handoff, seen.clone()),
            test_config(name, LVM_BOOT, "{sda: {size: 64M}}"),
            None,
        );
        assert_eq!(r.status, Status::Fail, "{name}");
        assert!(
            matches!(r.failure, Some(RunError::Handoff(_))),
            "{name}: {:?}",
            r.failure
        );
        let all = r.errors().join("\n");
        assert!(all.contains(want), "{name}: {all}");
        assert_eq!(seen.lock().unwrap().len(), 1, "{name}: no boot VM");
    }
}

/// A backend that boots through firmware attaches no handoff disk and packs no writer:
/// the install is what it would be without this feature.
#[test]
fn a_firmware_boot_gets_no_handoff() {
    let env = Env::new();
    let b = FakeBackend {
        phase: Arc::new(|spec: &PhaseSpec| {
            assert!(
                spec.disks.iter().all(|d| d.serial != HANDOFF_DISK_SERIAL),
                "no handoff disk"
            );
            if spec.phase == Phase::Install {
                std::fs::write(&spec.serial_log, "curtin: Installation finished.\n")?;
            } else {
                write_output_disk(spec, &good_tar());
            }
            powered_off()
        }),
        direct_boot: false,
    };
    let r = env.run(b, test_config("fw", LVM_BOOT, "{sda: {size: 64M}}"), None);
    assert_eq!(r.status, Status::Pass, "{:?}", r.errors());
    let ud = std::fs::read_to_string(env.settings.topdir.join("fw/install/user-data")).unwrap();
    assert!(!ud.contains("VMTEST_HANDOFF"));
}

/// qemu through SeaBIOS cannot boot a first disk with 4 KiB sectors: a firmware backend
/// boots such a test from the handoff too (basic_4k's way), and gets the handoff disk in
/// its install phase for it.
#[test]
fn four_k_sectors_under_bios_boot_from_the_handoff_on_a_firmware_backend() {
    let env = Env::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layout = Layout {
        kernel_path: "/boot/vmlinuz-6.1",
        initrd_path: "/boot/initrd.img-6.1",
        args: "root=UUID=4k ro",
    };
    let mut b = guest(Some(entries_for(&layout)), seen.clone());
    b.direct_boot = false;
    let text = format!(
        "vmtest:\n  release: bookworm\n  derive_checks: false\n  block_size: 4096\n  disks: {{sda: {{size: 64M}}}}\nstorage:\n  version: 1\n  config:{LVM_BOOT}"
    );
    let t = TestConfig::parse("k4", Path::new("k4.yaml"), &text).unwrap();
    assert_eq!(t.disks[0].block_size, 4096);
    let r = env.run(b, t, None);
    assert_eq!(r.status, Status::Pass, "{:?}", r.errors());
    let seen = seen.lock().unwrap();
    assert!(
        matches!(&seen[1].boot, Boot::Direct { cmdline, .. } if cmdline == "BOOT_IMAGE=/boot/vmlinuz-6.1 root=UUID=4k ro panic=-1"),
        "{:?}",
        seen[1].boot
    );
}
