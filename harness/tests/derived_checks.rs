//! The checks derived from curtin's own configs (raid5boot, lvmoverraid, allindata,
//! basic, read unchanged from the curtin tree) against what curtin's test classes assert
//! for them, evaluated on collected data: `tests/data/derived/raid5boot` is the collect/
//! of a real curtin install through qemu, the others are made by
//! `tests/data/derived/make_fixtures.py` in the same formats. Then data that contradicts
//! the config, directly and through the runner with a fake backend playing the guest:
//! exactly the checks that should fail fail, each with its evidence.
//!
//! The curtin tree comes from CURTIN_SRC, else `<repo>/../shared/curtin`; without either
//! these tests fail, naming both.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::backend::{FakeBackend, Outcome, Phase, PhaseResult};
use harness::check::{CheckGroup, CheckResult};
use harness::checks;
use harness::config::TestConfig;
use harness::runner::{self, DirImages, Progress, RunContext, Status};
use harness::settings::Settings;

#[path = "support/curtin_tree.rs"]
mod support;
use support::curtin_tree;

fn curtin_config(name: &str) -> TestConfig {
    let p = curtin_tree().join(format!("examples/tests/{name}.yaml"));
    TestConfig::load(&p).unwrap_or_else(|e| panic!("{e}"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/derived/{name}"))
}

fn names(test: &TestConfig) -> Vec<String> {
    checks::derive(test).into_iter().map(|c| c.name).collect()
}

fn failed(results: &[CheckResult]) -> Vec<(String, String)> {
    results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| (r.name.clone(), r.evidence.clone()))
        .collect()
}

/// What one of curtin's test methods asserts, and the derived checks that assert it here.
struct Covers<'a> {
    curtin: &'a str,
    checks: &'a [&'a str],
}

/// Every check named in `covers` is derived, and every derived check passes on the
/// collected data of a good install.
fn assert_covers_and_passes(config: &str, covers: &[Covers], count: usize) {
    let t = curtin_config(config);
    let derived = names(&t);
    let set: BTreeSet<&str> = derived.iter().map(String::as_str).collect();
    assert_eq!(set.len(), derived.len(), "names are unique: {derived:#?}");
    for c in covers {
        for name in c.checks {
            assert!(
                set.contains(name),
                "{config}: {} is asserted by curtin's {} but not derived; derived: {derived:#?}",
                name,
                c.curtin
            );
        }
    }
    assert_eq!(derived.len(), count, "{config}: {derived:#?}");
    let results = checks::evaluate(&checks::derive(&t), &fixture(config));
    assert_eq!(failed(&results), Vec::new(), "{config}");
    assert!(results.iter().all(|r| r.group == CheckGroup::Storage));
}

#[test]
fn raid5boot_as_test_mdadm_bcache_test_raid5boot_abs_asserts() {
    // tests/vmtests/test_mdadm_bcache.py, TestRaid5bootAbs (and TestMdadmAbs).
    let covers = [
        Covers {
            curtin: "TestRaid5bootAbs.get_fstab_expected (md-uuid of os-raid1 at / with defaults) via VMBaseClass.test_fstab",
            checks: &["mount / fstab", "mount / spec"],
        },
        Covers {
            curtin: "TestRaid5bootAbs.disk_to_check via VMBaseClass.test_dname",
            checks: &[
                "disk sda dname",
                "partition bios_boot_partition dname",
                "partition sda1 dname",
                "disk sdb dname",
                "partition sdb1 dname",
                "disk sdc dname",
                "partition sdc1 dname",
                "raid os-raid1 dname",
            ],
        },
        Covers {
            curtin: "TestMdadmAbs.test_mdadm_status (the array named, one active)",
            checks: &["raid os-raid1 name", "raid os-raid1 active"],
        },
    ];
    assert_covers_and_passes("raid5boot", &covers, 36);
    // The whole list, in config order: what `vmtest show raid5boot` prints.
    let t = curtin_config("raid5boot");
    let mut want: Vec<String> = Vec::new();
    for (disk, parts) in [
        ("sda", &["bios_boot_partition", "sda1"][..]),
        ("sdb", &["sdb1"]),
        ("sdc", &["sdc1"]),
    ] {
        for a in ["serial", "ptable", "dname"] {
            want.push(format!("disk {disk} {a}"));
        }
        for p in parts {
            for a in ["number", "size", "flag", "by-id", "dname"] {
                if a != "flag" || *p == "bios_boot_partition" {
                    want.push(format!("partition {p} {a}"));
                }
            }
        }
    }
    for a in ["level", "members", "spares", "name", "active", "dname"] {
        want.push(format!("raid os-raid1 {a}"));
    }
    want.push("format md_root fstype".into());
    for a in ["fstab", "spec", "mounted"] {
        want.push(format!("mount / {a}"));
    }
    assert_eq!(names(&t), want);
}

/// raid6boot names its array twice: `name: md0` (the device curtin creates) and
/// `mdname: foobar` (the name mdadm records). The installed system assembles it as md127
/// under `<hostname>:foobar`; curtin's class checks that name in `mdadm --detail --scan`.
/// The fixture is the real collect/ of a curtin install of raid6boot.yaml through qemu.
#[test]
fn raid6boot_as_test_mdadm_bcache_test_raid6boot_abs_asserts() {
    // tests/vmtests/test_mdadm_bcache.py, TestRaid6bootAbs (and TestMdadmAbs).
    let covers = [
        Covers {
            curtin: "TestRaid6bootAbs.test_mdadm_custom_name (ubuntu:foobar in mdadm_detail)",
            checks: &["raid md0 name"],
        },
        Covers {
            curtin: "TestRaid6bootAbs.get_fstab_expected (md-uuid of md0 at / with defaults) via VMBaseClass.test_fstab",
            checks: &["mount / fstab", "mount / spec"],
        },
        Covers {
            curtin: "TestRaid6bootAbs.disk_to_check via VMBaseClass.test_dname",
            checks: &[
                "partition bios_boot_partition dname",
                "partition sda1 dname",
                "partition sdb1 dname",
                "partition sdc1 dname",
                "partition sdd1 dname",
                "raid md0 dname",
            ],
        },
        Covers {
            curtin: "TestMdadmAbs.test_mdadm_status (one array active)",
            checks: &["raid md0 active", "raid md0 level"],
        },
    ];
    assert_covers_and_passes("raid6boot", &covers, 43);
    let t = curtin_config("raid6boot");
    let name = checks::derive(&t)
        .into_iter()
        .find(|c| c.name == "raid md0 name")
        .unwrap();
    assert_eq!(name.expects, "the array named foobar");
}

#[test]
fn lvmoverraid_as_test_lvm_raid_test_lvm_over_raid_abs_asserts() {
    // tests/vmtests/test_lvm_raid.py, TestLvmOverRaidAbs (TestMdadmAbs, TestLvmAbs).
    let covers = [
        Covers {
            curtin: "TestLvmOverRaidAbs.get_fstab_expected (/ by-uuid of main_disk-part2, /home dm-uuid of vg0-lv--0) via test_fstab",
            checks: &[
                "mount / fstab",
                "mount / spec",
                "mount /home fstab",
                "mount /home spec",
            ],
        },
        Covers {
            curtin: "TestLvmOverRaidAbs.test_lvs (lv-0=vg0)",
            checks: &["lvm_partition vg0/lv-0 size"],
        },
        Covers {
            curtin: "TestLvmOverRaidAbs.test_pvs (md0 and md1 in vg0)",
            checks: &["lvm_volgroup vg0 pvs"],
        },
        Covers {
            curtin: "TestMdadmAbs.test_mdadm_status (active_mdadm = 2)",
            checks: &[
                "raid md0 active",
                "raid md1 active",
                "raid md0 name",
                "raid md1 name",
            ],
        },
        Covers {
            curtin: "TestLvmOverRaidAbs.disk_to_check (main_disk 1, md0, md1) via test_dname",
            checks: &[
                "disk disk-0 dname",
                "partition part-0 dname",
                "raid md0 dname",
                "raid md1 dname",
            ],
        },
    ];
    assert_covers_and_passes("lvmoverraid", &covers, 43);
}

#[test]
fn allindata_as_test_mdadm_bcache_test_allindata_abs_asserts() {
    // tests/vmtests/test_mdadm_bcache.py, TestAllindataAbs (and TestMdadmAbs).
    let mut dnames: Vec<String> = vec!["disk sda dname".into()];
    for p in ["bios_boot_partition", "sda1", "sda2", "sda3", "sda4"] {
        dnames.push(format!("partition {p} dname"));
    }
    for d in ["sdb", "sdc", "sdd"] {
        dnames.push(format!("disk {d} dname"));
        for n in 1..=4 {
            dnames.push(format!("partition {d}{n} dname"));
        }
    }
    for md in ["md0", "md1", "md2", "md3"] {
        dnames.push(format!("raid {md} dname"));
    }
    dnames.push("lvm_partition vg1/lv1 dname".into());
    dnames.push("lvm_partition vg1/lv2 dname".into());
    let dnames: Vec<&str> = dnames.iter().map(String::as_str).collect();
    let covers = [
        Covers {
            curtin: "TestAllindataAbs.disk_to_check via test_dname",
            checks: &dnames,
        },
        Covers {
            curtin: "TestMdadmAbs.test_mdadm_status (active_mdadm = 4)",
            checks: &[
                "raid md0 active",
                "raid md1 active",
                "raid md2 active",
                "raid md3 active",
            ],
        },
        Covers {
            curtin: "TestAllindataAbs.test_output_files_exist (pvs, lvs, crypttab collected: here what they hold is checked)",
            checks: &[
                "lvm_volgroup vg1 pvs",
                "lvm_partition vg1/lv1 size",
                "lvm_partition vg1/lv2 size",
                "lvm_partition vg1/lv3 size",
                "dm_crypt dmcrypt0 crypttab",
            ],
        },
    ];
    assert_covers_and_passes("allindata", &covers, 130);
    // Levels and spares as configured: raid5 with one spare, raid6, raid1 with two, raid0.
    let t = curtin_config("allindata");
    let d = checks::derive(&t);
    let expects = |n: &str| d.iter().find(|c| c.name == n).unwrap().expects.clone();
    assert_eq!(expects("raid md1 level"), "raid6");
    assert_eq!(expects("raid md2 spares"), "2 spares: sdc3, sdb4");
    assert_eq!(expects("raid md3 spares"), "no spares");
    // A passphrase volume nothing mounts is not expected open at boot (curtin's test opens
    // it by hand); its LUKS header and crypttab entry are.
    assert!(!d.iter().any(|c| c.name == "dm_crypt dmcrypt0 open"));
}

#[test]
fn basic_as_test_basic_test_basic_abs_asserts() {
    // tests/vmtests/test_basic.py, TestBasicAbs.
    let covers = [
        Covers {
            curtin: "TestBasicAbs.test_ptable (dos on disk-a)",
            checks: &["disk sda ptable"],
        },
        Covers {
            curtin: "TestBasicAbs.test_partition_numbers (pnum_disk has 1, 2 and 10)",
            checks: &[
                "partition pnum_disk_p1 number",
                "partition pnum_disk_p2 number",
                "partition pnum_disk_p3 number",
            ],
        },
        Covers {
            curtin: "TestBasicAbs.get_fstab_expected (/, /home, /btrfs with defaults,noatime, swap with sw) via test_fstab",
            checks: &[
                "mount / fstab",
                "mount / spec",
                "mount /home fstab",
                "mount /home spec",
                "mount /btrfs fstab",
                "mount /btrfs spec",
                "swap sda3_swap fstab",
                "swap sda3_swap spec",
            ],
        },
        Covers {
            curtin: "TestBasicAbs.test_whole_disk_uuid (the btrfs on disk-c is the /btrfs by-uuid)",
            checks: &[
                "format btrfs_disk_fmt_id fstype",
                "mount /btrfs spec",
                "mount /btrfs mounted",
            ],
        },
        Covers {
            curtin: "TestBasicAbs.test_partition_is_prep (GPT PReP type on pnum_disk's partition 2)",
            checks: &["partition pnum_disk_p2 flag"],
        },
        Covers {
            curtin: "TestBasicAbs.disk_to_check via test_dname",
            checks: &[
                "disk btrfs_disk_id dname",
                "disk sda dname",
                "partition sda1 dname",
                "partition sda2 dname",
                "disk pnum_disk dname",
                "partition pnum_disk_p1 dname",
                "partition pnum_disk_p2 dname",
                "partition pnum_disk_p3 dname",
                "disk sparedisk_id dname",
            ],
        },
        Covers {
            curtin: "VMBaseClass.test_swaps_used",
            checks: &["swap sda3_swap in use"],
        },
    ];
    assert_covers_and_passes("basic", &covers, 56);
}

/// Copies a fixture into a temporary collect dir, for editing.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let src = fixture(name);
    let mut stack = vec![src.clone()];
    while let Some(p) = stack.pop() {
        let rel = p.strip_prefix(&src).unwrap();
        let to = d.path().join(rel);
        if p.is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            std::fs::copy(&p, &to).unwrap();
        }
    }
    d
}

fn replace_in(dir: &Path, file: &str, from: &str, to: &str) {
    let p = dir.join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{file} has no `{from}`");
    std::fs::write(&p, text.replace(from, to)).unwrap();
}

/// Data that says the array is a degraded RAID1 of two members, that grub's partition
/// is an ordinary one and that / is mounted read-only from elsewhere fails exactly
/// those checks, each saying what it found.
fn contradict_raid5boot(c: &Path) {
    let md = "vmtest/md/md127.export";
    replace_in(c, md, "MD_LEVEL=raid5", "MD_LEVEL=raid1");
    replace_in(c, md, "SYSFS_LEVEL=raid5", "SYSFS_LEVEL=raid1");
    replace_in(c, md, "MD_DEVICES=3", "MD_DEVICES=2");
    replace_in(c, md, "SYSFS_RAID_DISKS=3", "SYSFS_RAID_DISKS=2");
    replace_in(
        c,
        md,
        "SYSFS_MEMBER_vdc1=2 in_sync",
        "SYSFS_MEMBER_vdc1=none spare",
    );
    replace_in(
        c,
        md,
        "SYSFS_ARRAY_STATE=clean",
        "SYSFS_ARRAY_STATE=inactive",
    );
    replace_in(
        c,
        "vmtest/sfdisk/vda.json",
        "21686148-6449-6E6F-744E-656564454649",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    );
    replace_in(
        c,
        "vmtest/findmnt.json",
        "\"source\": \"/dev/md127\"",
        "\"source\": \"/dev/vdb1\"",
    );
}

const RAID5BOOT_CONTRADICTED: &[&str] = &[
    "partition bios_boot_partition flag",
    "raid os-raid1 level",
    "raid os-raid1 members",
    "raid os-raid1 spares",
    "raid os-raid1 active",
    "mount / mounted",
];

fn assert_contradicted(results: &[CheckResult]) {
    let bad = failed(results);
    let bad_names: Vec<&str> = bad.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(bad_names, RAID5BOOT_CONTRADICTED, "{bad:#?}");
    let evidence = |n: &str| bad.iter().find(|(x, _)| x == n).unwrap().1.clone();
    let e = evidence("raid os-raid1 level");
    assert!(e.starts_with("expected raid5; md127: level raid1"), "{e}");
    let e = evidence("raid os-raid1 members");
    assert!(
        e.contains("vdc1 spare") && e.contains("the config's members are [vda2, vdb1, vdc1]"),
        "{e}"
    );
    let e = evidence("raid os-raid1 spares");
    assert!(
        e.starts_with("expected no spares; the config's spares are []"),
        "{e}"
    );
    let e = evidence("partition bios_boot_partition flag");
    assert!(
        e.contains("vda1 has type 0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
        "{e}"
    );
    let e = evidence("mount / mounted");
    assert!(
        e.contains("/dev/vdb1 on / type ext4") && e.contains("the volume is md127"),
        "{e}"
    );
    assert!(evidence("raid os-raid1 active").contains("state inactive"));
}

#[test]
fn raid5boot_data_that_contradicts_its_config_fails_exactly_those_checks() {
    let t = curtin_config("raid5boot");
    let c = copy_fixture("raid5boot");
    contradict_raid5boot(c.path());
    assert_contradicted(&checks::evaluate(&checks::derive(&t), c.path()));
    // Missing data fails the checks that need it, saying which file is missing.
    std::fs::remove_file(c.path().join("vmtest/lsblk.json")).unwrap();
    let r = checks::evaluate(&checks::derive(&t), c.path());
    let e = &r
        .iter()
        .find(|r| r.name == "disk sda serial")
        .unwrap()
        .evidence;
    assert!(e.contains("vmtest/lsblk.json: not collected"), "{e}");
}

/// The collect/ of `dir` as the tar the guest writes onto the output disk.
fn tar_of(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn a_run_whose_guest_contradicts_the_config_fails_those_checks_in_junit() {
    let t = curtin_config("raid5boot");
    let c = copy_fixture("raid5boot");
    contradict_raid5boot(c.path());
    let tar = tar_of(c.path());
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("image");
    std::fs::create_dir(&img).unwrap();
    for f in ["kernel", "initrd", "squashfs"] {
        std::fs::write(img.join(f), format!("fake {f}")).unwrap();
    }
    let top = dir.path().join("top").display().to_string();
    let s = Settings::from_lookup(
        |k| (k == "CURTIN_VMTEST_TOPDIR").then(|| top.clone()),
        false,
    )
    .unwrap();
    s.prepare_topdir().unwrap();
    let backend = FakeBackend::new(move |spec| {
        if spec.phase == Phase::Install {
            std::fs::write(&spec.serial_log, "curtin: Installation finished.\n")?;
        } else {
            let d = spec
                .disks
                .iter()
                .find(|d| d.serial == "output_disk.img")
                .expect("output disk");
            std::fs::write(&d.path, &tar)?;
        }
        Ok(PhaseResult {
            outcome: Outcome::PowerOff,
            wall: Duration::from_millis(1),
        })
    });
    let curtin = curtin_tree();
    let images = DirImages(img);
    let ctx = RunContext {
        settings: &s,
        backend: &backend,
        images: &images,
        curtin_src: Some(&curtin),
        progress: Progress::new(None, true),
        console: None,
    };
    let results = runner::run_all(std::slice::from_ref(&t), &ctx);
    let r = &results[0];
    assert_eq!(r.status, Status::Fail, "{:?}", r.errors());
    assert!(r.failure.is_none(), "the phases passed: {:?}", r.failure);
    assert_eq!(r.checks.len(), 36);
    assert_contradicted(&r.checks);
    // JUnit: one testcase per check, named `raid5boot / <check>`, the evidence in the
    // failure of each contradicted one.
    let xml = harness::report::junit_xml(results.iter());
    assert_eq!(xml.matches("<testcase ").count(), 1 + 36, "{xml}");
    assert_eq!(
        xml.matches("<failure ").count(),
        RAID5BOOT_CONTRADICTED.len()
    );
    assert!(
        xml.contains("name=\"raid5boot / raid os-raid1 level\"")
            && xml.contains("expected raid5; md127: level raid1"),
        "{xml}"
    );
    assert!(xml.contains("<property name=\"group\" value=\"storage\"/>"));
    // The summary counts them.
    let table = harness::report::summary_table(&results);
    assert!(table.contains("30/6"), "{table}");
    assert!(
        table
            .trim_end()
            .ends_with("0 passed, 1 failed; checks: 30 passed, 6 failed"),
        "{table}"
    );
}

/// `vmtest: {derive_checks: false}` leaves only the test's own expectations.
#[test]
fn derivation_can_be_turned_off_per_test() {
    let mut t = curtin_config("raid5boot");
    assert!(checks::derivation_on(&t, true));
    assert!(!checks::derivation_on(&t, false));
    t.vmtest.derive_checks = false;
    assert!(!checks::derivation_on(&t, true));
    let r = checks::verify(&t, &fixture("raid5boot"), checks::derivation_on(&t, true));
    assert!(r.is_empty());
}
