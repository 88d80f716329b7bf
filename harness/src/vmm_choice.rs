//! Which backend runs a test under `--vmm auto`, and what the builtin backend can be
//! expected to do on this host. Both are functions of facts passed in (what the host's KVM
//! is, how the builtin backend finds the installed system's kernel), so every case is
//! tested on every host; only [`HostKvm::detect`] looks at the machine.

use crate::VmmChoice;
use crate::config::{StorageItem, TestConfig};

/// What /dev/kvm is on this host.
#[derive(Debug, Clone, PartialEq)]
pub enum HostKvm {
    /// Hardware virtualization: guests run on the CPU.
    Real,
    /// /dev/kvm works, but guests run in KVM's instruction emulator (about a thousand
    /// times slower). `pvm`: the `kvm_pvm` module is loaded (PVM hosts, such as the
    /// project's CI machines).
    Emulated { pvm: bool, why: String },
    /// /dev/kvm cannot be used at all.
    Absent { why: String },
}

impl HostKvm {
    /// Opens /dev/kvm and times a tiny guest (`vmm::host::probe_kvm`): well under a
    /// second where KVM is emulated, milliseconds on hardware.
    pub fn detect() -> HostKvm {
        Self::classify(vmm::host::probe_kvm().map(|r| KvmFacts::from(&r)))
    }

    /// The verdict on what a probe of /dev/kvm found (or why it failed).
    pub fn classify(probe: Result<KvmFacts, impl std::fmt::Display>) -> HostKvm {
        match probe {
            Err(e) => HostKvm::Absent { why: e.to_string() },
            Ok(f) if f.pvm_module => HostKvm::Emulated {
                pvm: true,
                why: "this host's KVM is PVM (the kvm_pvm module): guests run in KVM's instruction emulator".into(),
            },
            Ok(f) if f.instructions_per_sec < vmm::host::HARDWARE_SPEED_FLOOR => HostKvm::Emulated {
                pvm: false,
                why: format!(
                    "guests run at {:.1} M instructions/s, far below hardware speed: KVM emulates them",
                    f.instructions_per_sec / 1e6
                ),
            },
            Ok(_) => HostKvm::Real,
        }
    }

    /// Whether the builtin backend can carry a test's Linux guests here.
    pub fn builtin_expectation(&self) -> BuiltinExpectation {
        match self {
            HostKvm::Real => BuiltinExpectation::Works,
            HostKvm::Emulated { pvm: true, .. } => BuiltinExpectation::KernelOnly(
                "PVM's emulator runs a Linux kernel through its init (ACPI, virtio devices, \
                 disks, DHCP, mounting the root) in minutes, but executes neither SYSCALL nor \
                 INT n from user mode: the first system call of init ends as an invalid-opcode \
                 trap in the guest, so no installer or installed system can run"
                    .into(),
            ),
            HostKvm::Emulated { pvm: false, why } => BuiltinExpectation::KernelOnly(format!(
                "{why}; a distribution kernel takes minutes to reach user space, if it gets there"
            )),
            HostKvm::Absent { why } => BuiltinExpectation::No(why.clone()),
        }
    }
}

/// What a probe of /dev/kvm measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvmFacts {
    /// The `kvm_pvm` module is loaded.
    pub pvm_module: bool,
    /// Guest instructions per second in a simple loop.
    pub instructions_per_sec: f64,
}

impl From<&vmm::host::KvmReport> for KvmFacts {
    fn from(r: &vmm::host::KvmReport) -> Self {
        KvmFacts {
            pvm_module: r.pvm_module,
            instructions_per_sec: r.guest_speed.instructions_per_sec,
        }
    }
}

/// What the builtin backend is expected to do on a host.
#[derive(Debug, Clone, PartialEq)]
pub enum BuiltinExpectation {
    /// Full tests: install and boot at hardware speed.
    Works,
    /// A Linux kernel gets through its own init, slowly, but no user space runs: useful
    /// for the kernel-level tests (`make test-linux`), not for installer tests. Says why.
    KernelOnly(String),
    /// Nothing boots: no usable /dev/kvm. Says why.
    No(String),
}

/// Ok when the builtin backend (which has no firmware) can boot `test`'s installed system,
/// else why not. It boots what the install environment hands off on a disk of its own
/// ([`crate::handoff`], read through the mounted target: any /boot the installed system
/// itself boots from, plain, RAID, LVM, xfs, btrfs or dm-crypt), and the installer's last
/// step writes that: there must be an installed system (something mounted at /), and for
/// curtin its late stage must run with the target still mounted (the handoff is a late
/// command sorted after the test's own).
pub fn handoff_written(test: &TestConfig) -> Result<(), String> {
    let root = test.storage.iter().any(|i| match i {
        StorageItem::Mount(m) => m.path.as_deref() == Some("/"),
        _ => false,
    });
    if !root {
        return Err(
            "its storage config mounts nothing at /, so no installed system is handed off for a direct boot"
                .into(),
        );
    }
    if let Some(stages) = test.doc.get("stages")
        && !stages.strings().contains(&"late")
    {
        return Err(
            "its curtin `stages:` leave out `late`, where the installed system is handed off for a direct boot"
                .into(),
        );
    }
    if let Some(late) = test.doc.get("late_commands")
        && late
            .strings()
            .iter()
            .any(|w| w.contains("unmount") || w.contains("umount"))
    {
        return Err(
            "its late_commands unmount the target before the handoff (the last late command) can read it"
                .into(),
        );
    }
    Ok(())
}

/// Which backend runs `test` under `--vmm`, and why (printed). Under `auto` the builtin
/// backend is chosen only where it can run the test end to end: the test needs nothing
/// the microVM lacks, KVM is real, and the installed system is handed off to boot.
/// `host` is asked only when the choice depends on it (it may probe /dev/kvm).
pub fn choose<'h>(
    vmm: VmmChoice,
    test: &TestConfig,
    host: impl FnOnce() -> &'h HostKvm,
) -> (VmmChoice, String) {
    match vmm {
        VmmChoice::Qemu => (VmmChoice::Qemu, "--vmm qemu".into()),
        VmmChoice::Builtin => (VmmChoice::Builtin, "--vmm builtin".into()),
        VmmChoice::Auto => {
            if let Some(why) = test.needs_qemu() {
                return (VmmChoice::Qemu, why);
            }
            match host() {
                HostKvm::Real => {}
                HostKvm::Emulated { why, .. } => {
                    return (
                        VmmChoice::Qemu,
                        format!("{why}; the builtin VMM cannot run Linux user space here"),
                    );
                }
                HostKvm::Absent { why } => {
                    return (VmmChoice::Qemu, format!("no usable KVM ({why})"));
                }
            }
            match handoff_written(test) {
                Err(why) => (VmmChoice::Qemu, why),
                Ok(()) => (
                    VmmChoice::Builtin,
                    "KVM is real and the test fits the microVM".into(),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn test_with(storage: &str, vmtest: &str) -> TestConfig {
        let text =
            format!("vmtest: {{release: r{vmtest}}}\nstorage:\n  version: 1\n  config:\n{storage}");
        TestConfig::parse("t", Path::new("t.yaml"), &text).unwrap_or_else(|e| panic!("{e}"))
    }

    const DISK: &str = "    - {id: d, type: disk, serial: s, ptable: gpt}\n";

    fn plain(fstype: &str) -> TestConfig {
        test_with(
            &format!(
                "{DISK}    - {{id: p1, type: partition, device: d, number: 1, size: 2G}}\n    - {{id: f, type: format, volume: p1, fstype: {fstype}}}\n    - {{id: m, type: mount, device: f, path: /}}\n"
            ),
            "",
        )
    }

    fn hosts() -> [HostKvm; 4] {
        [
            HostKvm::Real,
            HostKvm::Emulated {
                pvm: true,
                why: "PVM".into(),
            },
            HostKvm::Emulated {
                pvm: false,
                why: "slow".into(),
            },
            HostKvm::Absent {
                why: "no /dev/kvm".into(),
            },
        ]
    }

    #[test]
    fn auto_picks_builtin_only_where_kvm_is_real() {
        let t = plain("ext4");
        for host in hosts() {
            let (c, why) = choose(VmmChoice::Auto, &t, || &host);
            if host == HostKvm::Real {
                assert_eq!(c, VmmChoice::Builtin, "{why}");
            } else {
                assert_eq!(c, VmmChoice::Qemu, "{host:?}: {why}");
                match &host {
                    HostKvm::Emulated { why: w, .. } | HostKvm::Absent { why: w } => {
                        assert!(why.contains(w.as_str()), "{why}")
                    }
                    HostKvm::Real => unreachable!(),
                }
            }
        }
    }

    #[test]
    fn explicit_choices_are_kept_on_every_host() {
        let t = test_with(DISK, ", uefi: true");
        for host in hosts() {
            for vmm in [VmmChoice::Builtin, VmmChoice::Qemu] {
                assert_eq!(choose(vmm, &t, || &host).0, vmm, "{host:?}");
            }
        }
    }

    #[test]
    fn auto_sends_what_the_microvm_lacks_to_qemu_even_on_real_kvm() {
        let t = test_with(DISK, ", uefi: true");
        let (c, why) = choose(VmmChoice::Auto, &t, || &HostKvm::Real);
        assert_eq!(c, VmmChoice::Qemu);
        assert!(why.contains("UEFI"), "{why}");
    }

    /// /boot (here inside /) on RAID, LVM, xfs, btrfs or dm-crypt: the handoff carries
    /// them all, so the builtin is chosen on real KVM, and qemu everywhere else.
    #[test]
    fn auto_picks_builtin_for_any_boot_the_handoff_carries() {
        let part = |n: u32, d: &str| {
            format!("    - {{id: p{n}, type: partition, device: {d}, number: 1, size: 2G}}\n")
        };
        let root = "    - {id: m, type: mount, device: f, path: /}\n";
        let raid = test_with(
            &format!(
                "{DISK}    - {{id: e, type: disk, serial: s2, ptable: gpt}}\n{}{}    - {{id: md0, type: raid, name: md0, raidlevel: 1, devices: [p1, p2]}}\n    - {{id: f, type: format, volume: md0, fstype: ext4}}\n{root}",
                part(1, "d"),
                part(2, "e")
            ),
            "",
        );
        let lvm = test_with(
            &format!(
                "{DISK}{}    - {{id: vg, type: lvm_volgroup, name: vg0, devices: [p1]}}\n    - {{id: lv, type: lvm_partition, name: root, volgroup: vg}}\n    - {{id: f, type: format, volume: lv, fstype: ext4}}\n{root}",
                part(1, "d")
            ),
            "",
        );
        let crypt = test_with(
            &format!(
                "{DISK}{}    - {{id: c, type: dm_crypt, volume: p1, dm_name: cr, key: k}}\n    - {{id: f, type: format, volume: c, fstype: ext4}}\n{root}",
                part(1, "d")
            ),
            "",
        );
        for (name, t) in [
            ("raid", &raid),
            ("lvm", &lvm),
            ("dm-crypt", &crypt),
            ("xfs", &plain("xfs")),
            ("btrfs", &plain("btrfs")),
            ("ext4", &plain("ext4")),
        ] {
            assert_eq!(handoff_written(t), Ok(()), "{name}");
            for host in hosts() {
                let (c, why) = choose(VmmChoice::Auto, t, || &host);
                let want = if host == HostKvm::Real {
                    VmmChoice::Builtin
                } else {
                    VmmChoice::Qemu
                };
                assert_eq!(c, want, "{name} on {host:?}: {why}");
            }
        }
    }

    /// Where nothing would be handed off, qemu boots through firmware instead, on every
    /// host: no installed root, a curtin config without its late stage, late commands
    /// that unmount the target before the handoff reads it.
    #[test]
    fn auto_never_picks_builtin_when_nothing_is_handed_off() {
        let with_top = |extra: &str| {
            let t = plain("ext4");
            TestConfig::parse("t", Path::new("t.yaml"), &format!("{}{extra}", t.text))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let no_root = test_with(DISK, "");
        let no_late = with_top("stages: [early, partitioning, extract, curthooks, hook]\n");
        let unmounts = with_top("late_commands:\n  99_unmount: [curtin, unmount]\n");
        for (t, expect) in [
            (&no_root, "mounts nothing at /"),
            (&no_late, "leave out `late`"),
            (&unmounts, "unmount the target"),
        ] {
            for host in hosts() {
                let (c, why) = choose(VmmChoice::Auto, t, || &host);
                assert_eq!(c, VmmChoice::Qemu, "{expect} on {host:?}: {why}");
                if host == HostKvm::Real {
                    assert!(why.contains(expect), "{why}");
                }
            }
        }
        // A late stage and late commands that leave the target mounted are fine.
        let late = with_top("stages: [early, extract, late]\nlate_commands:\n  01: [touch, /x]\n");
        assert_eq!(handoff_written(&late), Ok(()));
    }

    #[test]
    fn the_default_tests_go_where_they_can_boot() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests");
        for (name, on_real_kvm) in [
            ("basic", VmmChoice::Builtin),
            ("basic_4k", VmmChoice::Builtin),
            // / on LVM, but /boot on its own ext4 partition.
            ("basic_lvm", VmmChoice::Builtin),
            ("basic_uefi", VmmChoice::Qemu),
            // Several NICs: the builtin attaches them all (tests/nics.rs).
            ("network_basic", VmmChoice::Builtin),
            ("network_advanced", VmmChoice::Builtin),
        ] {
            let t = TestConfig::load(&dir.join(format!("{name}.yaml"))).unwrap();
            for host in hosts() {
                let want = if host == HostKvm::Real {
                    on_real_kvm
                } else {
                    VmmChoice::Qemu
                };
                let (c, why) = choose(VmmChoice::Auto, &t, || &host);
                assert_eq!(c, want, "{name} on {host:?}: {why}");
            }
        }
    }

    fn facts(pvm_module: bool, instructions_per_sec: f64) -> Result<KvmFacts, String> {
        Ok(KvmFacts {
            pvm_module,
            instructions_per_sec,
        })
    }

    #[test]
    fn the_probe_decides_real_emulated_or_absent() {
        assert_eq!(HostKvm::classify(facts(false, 2e9)), HostKvm::Real);
        assert!(matches!(
            HostKvm::classify(facts(true, 2e9)),
            HostKvm::Emulated { pvm: true, .. }
        ));
        assert!(matches!(
            HostKvm::classify(facts(false, 2.4e6)),
            HostKvm::Emulated { pvm: false, .. }
        ));
        let absent = HostKvm::classify(Err::<KvmFacts, _>("cannot open /dev/kvm: ENOENT"));
        assert!(
            matches!(&absent, HostKvm::Absent { why } if why.contains("/dev/kvm")),
            "{absent:?}"
        );
    }

    #[test]
    fn the_builtin_is_expected_to_work_only_on_real_kvm() {
        let [real, pvm, slow, absent] = hosts();
        assert_eq!(real.builtin_expectation(), BuiltinExpectation::Works);
        assert!(matches!(
            pvm.builtin_expectation(),
            BuiltinExpectation::KernelOnly(why) if why.contains("SYSCALL")
        ));
        assert!(matches!(
            slow.builtin_expectation(),
            BuiltinExpectation::KernelOnly(why) if why.starts_with("slow")
        ));
        assert!(matches!(
            absent.builtin_expectation(),
            BuiltinExpectation::No(why) if why == "no /dev/kvm"
        ));
    }
}
