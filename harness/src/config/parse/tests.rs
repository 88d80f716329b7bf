//! Reading configs: each mistake a config can hold, reported with its file, line, key
//! and message.

use super::super::names::check_test_name;
use super::*;

const GOOD: &str = r#"
vmtest:
  release: bookworm
  disks:
    sda: {size: 4G}
  extra_disks:
    - {size: 1G}
  expect:
    - file_exists: [fstab]
    - swaps_in_use: 1
storage:
  version: 1
  config:
    - {id: sda, type: disk, ptable: msdos, serial: disk-a}
    - {id: sda1, type: partition, device: sda, number: 1, size: 3G}
    - {id: sda1_root, type: format, volume: sda1, fstype: ext4}
    - {id: sda1_mount, type: mount, device: sda1_root, path: /}
network:
  version: 1
  config:
    - {type: physical, name: eth0, mac_address: "52:54:00:12:34:02"}
"#;

fn parse(t: &str) -> Result<TestConfig, ConfigError> {
    TestConfig::parse("t", Path::new("t.yaml"), t)
}

fn line_of(t: &str, needle: &str) -> usize {
    t.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn good_config() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.disks.len(), 2);
    assert_eq!(c.disks[0].serial, "disk-a");
    assert_eq!(c.disks[0].size, 4 << 30);
    assert_eq!(c.disks[1].file_name, "extra_disk_0.img");
    assert_eq!(c.macs, vec!["52:54:00:12:34:02"]);
    assert_eq!(c.text, GOOD, "the installer gets the file as it is");
    assert!(c.doc.get("storage").is_some());
    assert!(c.needs_qemu().is_none());
    assert!(c.unrunnable.is_none());
}

#[test]
fn each_disk_is_attached_on_the_bus_curtins_vmtest_would_choose() {
    use crate::config::types::DiskDriver;
    let nvme = GOOD
        .replace(
            "    sda: {size: 4G}\n",
            "    sda: {size: 4G}\n    n1: {size: 1G}\n",
        )
        .replace(
            "    - {id: sda1, type",
            "    - {id: n1, type: disk, ptable: gpt, serial: nvme-a}\n    - {id: sda1, type",
        );
    // The bus of each disk, in the order attached, for the config `text`.
    let buses = |text: &str| {
        let c = parse(text).unwrap();
        let buses: Vec<_> = c.disks.iter().map(|d| d.attached_as(&c.vmtest)).collect();
        (buses, c)
    };
    let (plain, c) = buses(&nvme);
    let ids: Vec<_> = c.disks.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["sda", "n1", "extra_disk_0"]);
    assert_eq!(
        plain,
        [
            DiskDriver::VirtioBlk,
            DiskDriver::Nvme,
            DiskDriver::VirtioBlk
        ]
    );
    assert!(c.needs_qemu().is_some());
    assert_eq!(
        buses(&nvme.replace("vmtest:\n", "vmtest:\n  disk_driver: scsi\n")).0,
        [DiskDriver::Scsi, DiskDriver::Nvme, DiskDriver::VirtioBlk],
        "an nvme serial is NVMe whatever the test's driver; extra disks stay virtio"
    );
    assert_eq!(
        buses(&nvme.replace("vmtest:\n", "vmtest:\n  multipath: true\n")).0,
        [DiskDriver::Scsi, DiskDriver::Scsi, DiskDriver::VirtioBlk],
        "multipath needs each storage disk seen twice, which is SCSI"
    );
}

#[test]
fn top_level_keys_belong_to_the_installer() {
    let c = parse(&format!(
        "{GOOD}late_commands: {{a: [true]}}\n-placeholder_simple_install: x\nnetwrok: 1\n"
    ))
    .unwrap();
    assert!(c.doc.get("netwrok").is_some());
}

#[test]
fn the_vmtest_section_is_optional() {
    let c = parse("storage:\n  version: 1\n  config:\n    - {id: d, type: disk, serial: s}\n    - {id: p, type: partition, device: d, number: 1, size: 20G}\n").unwrap();
    assert_eq!(c.vmtest.release, DEFAULT_RELEASE);
    assert_eq!(c.vmtest.arch, host_arch());
    assert!(!c.vmtest.installer_pinned);
    // 20G of partitions with headroom: more than the 10G default.
    assert!(
        c.disks[0].size > 20 << 30 && c.disks[0].size < 23 << 30,
        "{}",
        c.disks[0].size
    );
    let c = parse("showtrace: true\n").unwrap();
    assert_eq!(c.disks.len(), 1);
    assert_eq!(c.disks[0].size, DEFAULT_DISK_SIZE);
    assert_eq!(c.macs, [DEFAULT_MAC]);
    assert!(parse("vmtest:\nshowtrace: true\n").is_ok());
}

#[test]
fn unknown_vmtest_key_names_its_line_column_and_path() {
    let t = GOOD.replace(
        "  release: bookworm",
        "  release: bookworm\n  memroy_mib: 4",
    );
    let e = parse(&t).unwrap_err();
    assert_eq!((e.line, e.column), (Some(4), Some(3)), "{e}");
    assert_eq!(e.key.as_deref(), Some("vmtest.memroy_mib"));
    assert!(
        e.to_string()
            .starts_with("t.yaml:4:3: vmtest.memroy_mib: unknown key"),
        "{e}"
    );
}

#[test]
fn a_nested_error_reports_its_true_line() {
    // `size:` comes first as text; the bad value is the block size two lines down.
    let t = GOOD.replace(
        "    sda: {size: 4G}",
        "    sda:\n      size: 4G\n      block_size: 1000",
    );
    let e = parse(&t).unwrap_err();
    assert_eq!(e.line, Some(line_of(&t, "block_size: 1000")), "{e}");
    assert_eq!(e.key.as_deref(), Some("vmtest.disks.sda.block_size"));
    let t = GOOD.replace("size: 3G}", "size: 3Q}");
    let e = parse(&t).unwrap_err();
    assert_eq!(e.line, Some(line_of(&t, "3Q")), "{e}");
    assert_eq!(e.key.as_deref(), Some("storage.config[1].size"));
    assert_eq!(e.column, Some(line_of_col(&t, "3Q")));
}

fn line_of_col(t: &str, needle: &str) -> usize {
    t.lines().find_map(|l| l.find(needle)).unwrap() + 1
}

#[test]
fn outbound_rules_are_read_and_checked() {
    let t = GOOD.replace(
        "  release: bookworm",
        "  release: bookworm\n  outbound: [internet, \"192.168.1.5:3142\"]",
    );
    assert_eq!(
        parse(&t).unwrap().vmtest.outbound.to_string(),
        "internet,192.168.1.5:3142"
    );
    assert!(parse(GOOD).unwrap().vmtest.outbound.is_empty());
    let t = GOOD.replace(
        "  release: bookworm",
        "  release: bookworm\n  outbound: [\"127.0.0.1:3142\"]",
    );
    let e = parse(&t).unwrap_err().to_string();
    assert!(
        e.starts_with("t.yaml:") && e.contains("use host:PORT"),
        "{e}"
    );
}

#[test]
fn malformed_wwn_names_file_line_and_disk() {
    let t = GOOD.replace("serial: disk-a}", "serial: disk-a, wwn: \"0xnothex\"}");
    let e = parse(&t).unwrap_err();
    assert!(e.msg.contains("0xnothex") && e.msg.contains("sda"), "{e}");
    assert_eq!(e.key.as_deref(), Some("storage.config[0].wwn"));
    let ok = GOOD.replace(
        "serial: disk-a}",
        "serial: disk-a, wwn: \"0x5000c500a0b1c2d3\"}",
    );
    assert_eq!(
        parse(&ok).unwrap().disks[0].wwn.as_deref(),
        Some("0x5000c500a0b1c2d3")
    );
}

#[test]
fn wrong_type() {
    let t = GOOD.replace("swaps_in_use: 1", "swaps_in_use: many");
    let e = parse(&t).unwrap_err();
    assert_eq!(e.line, Some(line_of(&t, "many")));
    assert_eq!(e.key.as_deref(), Some("vmtest.expect[1].swaps_in_use"));
    assert!(e.msg.contains("invalid type"), "{e}");
}

#[test]
fn storage_keys_curtin_owns_pass_and_unknown_types_are_kept() {
    let c = parse(&GOOD.replace("ptable: msdos", "ptable: msdos, new_curtin_key: 1")).unwrap();
    assert!(matches!(&c.storage[0], StorageItem::Disk(d) if d.ptable.as_deref() == Some("msdos")));
    let c = parse(&GOOD.replace("type: format", "type: formt")).unwrap();
    assert_eq!(c.storage[2].kind(), "formt");
}

#[test]
fn dangling_reference_and_missing_serial() {
    let t = GOOD.replace("volume: sda1,", "volume: sda9,");
    let e = parse(&t).unwrap_err();
    assert!(e.msg.contains("sda9"), "{e}");
    assert_eq!(e.key.as_deref(), Some("storage.config[2].volume"));
    assert_eq!(e.line, Some(line_of(&t, "sda9")));
    let e = parse(&GOOD.replace(", serial: disk-a", "")).unwrap_err();
    assert!(e.msg.contains("serial"), "{e}");
}

#[test]
fn curtin_shapes_are_accepted() {
    let t = r#"
storage:
  version: 1
  config:
    - {id: sda, type: disk, ptable: gpt, serial: disk-a, grub_device: 1}
    - {id: sdb, type: disk, path: /dev/vdb}
    - {id: sdc, type: disk, wwn: '0x5000c500a0b1c2d3'}
    - {id: bc, type: disk, path: /dev/bcache1}
    - {id: sda1, type: partition, device: sda, number: 1, size: 1G}
    - {id: f, type: format, volume: sda1, fstype: ext4, name: root}
    - {id: vg, type: lvm_volgroup, name: vg0, devices: [sdb], uuid: 11111111-2222-3333-4444-555555555555}
    - {id: m, type: mount, device: f, path: /}
"#;
    let c = parse(t).unwrap();
    let serials: Vec<&str> = c.disks.iter().map(|d| d.serial.as_str()).collect();
    // /dev/bcache1 is a device the config builds, not a disk to attach.
    assert_eq!(serials, ["disk-a", "sdb", "0x5000c500a0b1c2d3"]);
    let e = parse(&t.replace("/dev/vdb", "/dev/vdc")).unwrap_err();
    assert!(
        e.msg.contains("/dev/vdc") && e.msg.contains("config order"),
        "{e}"
    );
    assert_eq!(e.key.as_deref(), Some("storage.config[1].path"));
    let e = parse(&t.replace("/dev/vdb", "/dev/sdb")).unwrap_err();
    assert!(e.msg.contains("disk_driver"), "{e}");
}

#[test]
fn serials_of_the_harness_disks_are_refused() {
    for s in ["output_disk.img", "seed", "vmtest-handoff", "install_disk"] {
        let e = parse(&GOOD.replace("serial: disk-a", &format!("serial: {s}"))).unwrap_err();
        assert!(e.msg.contains("harness's own disks"), "{e}");
        assert_eq!(e.key.as_deref(), Some("storage.config[0].serial"));
    }
    let e = parse(&GOOD.replace("- {size: 1G}", "- {size: 1G, serial: disk-a}")).unwrap_err();
    assert!(e.msg.contains("two disks"), "{e}");
    assert_eq!(e.key.as_deref(), Some("vmtest.extra_disks[0].serial"));
}

#[test]
fn an_oversized_disk_is_a_clear_error() {
    let e = parse(&GOOD.replace("size: 4G", "size: 99999999T")).unwrap_err();
    assert!(e.msg.contains("too large"), "{e}");
    assert_eq!(e.key.as_deref(), Some("vmtest.disks.sda.size"));
}

#[test]
fn zero_sizes_and_counts_are_refused() {
    for (from, to, key) in [
        (
            "  release: bookworm",
            "  release: bookworm\n  cpus: 0",
            "vmtest.cpus",
        ),
        (
            "  release: bookworm",
            "  release: bookworm\n  memory_mib: 0",
            "vmtest.memory_mib",
        ),
        (
            "  release: bookworm",
            "  release: bookworm\n  timeouts: {boot: 0}",
            "vmtest.timeouts.boot",
        ),
    ] {
        let e = parse(&GOOD.replace(from, to)).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.line.is_some(), "{e}");
    }
}

#[test]
fn bad_values() {
    let e = parse(&GOOD.replace("release: bookworm", "release: bookworm\n  block_size: 1000"))
        .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("vmtest.block_size"), "{e}");
    let e = parse(&GOOD.replace("52:54:00:12:34:02", "52:54:00:12:34")).unwrap_err();
    assert!(e.msg.contains("MAC"), "{e}");
    let e = parse("vmtest: [\n").unwrap_err();
    assert!(e.to_string().starts_with("t.yaml:"), "{e}");
    assert!(parse("").unwrap_err().msg.contains("empty"));
    assert!(parse("- a\n").unwrap_err().msg.contains("mapping"));
    let e = parse("vmtest:\n  release: a\n  release: b\n").unwrap_err();
    assert!(e.msg.contains("twice") && e.line == Some(3), "{e}");
}

#[test]
fn an_unquoted_mac_says_what_curtin_would_read() {
    let e = parse(&GOOD.replace("\"52:54:00:12:34:02\"", "52:54:00:12:34:02")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("network.config[0].mac_address"));
    assert!(
        e.msg.contains("41135085242") && e.msg.contains("quote"),
        "{e}"
    );
}

#[test]
fn test_names_must_be_one_safe_path_component() {
    for bad in ["..", ".", "", "a/b", ".hidden", "-x", "a b", "é"] {
        let e = TestConfig::parse(bad, Path::new("x.yaml"), GOOD).unwrap_err();
        assert!(e.msg.contains("not a usable test name"), "{bad}: {e}");
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("...yaml");
    std::fs::write(&p, GOOD).unwrap();
    let e = TestConfig::load(&p).unwrap_err();
    assert!(e.msg.contains("`..`"), "{e}");
    assert!(check_test_name("basic-dasd_2.v1+x").is_ok());
}

#[test]
fn installer_follows_the_curtin_tree_unless_pinned() {
    let c = parse(GOOD).unwrap();
    assert!(!c.vmtest.installer_pinned);
    assert_eq!(c.installer(false), InstallerKind::Script);
    assert_eq!(c.installer(true), InstallerKind::Curtin);
    let pin = |kind: &str| {
        parse(&GOOD.replace(
            "  release: bookworm",
            &format!("  release: bookworm\n  installer: {kind}"),
        ))
        .unwrap()
    };
    let script = pin("script");
    assert!(script.vmtest.installer_pinned);
    assert_eq!(script.installer(true), InstallerKind::Script);
    assert_eq!(script.installer(false), InstallerKind::Script);
    let curtin = pin("curtin");
    assert_eq!(curtin.installer(false), InstallerKind::Curtin);
    assert_eq!(curtin.installer(true), InstallerKind::Curtin);
    let e = parse(&GOOD.replace(
        "  release: bookworm",
        "  release: bookworm\n  installer: curtn",
    ))
    .unwrap_err();
    assert!(e.msg.contains("curtn"), "{e}");
}

#[test]
fn what_cannot_run_here_says_why() {
    let host = HostFacts {
        arch: "amd64".into(),
        image_packages: vec!["lvm2".into()],
    };
    let why = |t: &str| parse(t).unwrap().not_runnable(&host);
    assert!(why(GOOD).is_none());
    assert!(why("vmtest: {arch: s390x}\n").unwrap().contains("s390x"));
    assert!(
        why("storage:\n  config:\n    - {id: d, type: disk, path: 'iscsi:__RFC4173__'}\n")
            .unwrap()
            .contains("iSCSI")
    );
    assert!(
        why("storage:\n  config:\n    - {id: d, type: dasd, device_id: 0.0.1520}\n")
            .unwrap()
            .contains("DASD")
    );
    let zfs = "storage:\n  config:\n    - {id: d, type: disk, serial: s}\n    - {id: p, type: zpool, pool: rpool, vdevs: [d]}\n";
    assert!(why(zfs).unwrap().contains("ZFS"));
    let with_zfs = HostFacts {
        image_packages: vec!["zfsutils-linux".into()],
        ..host.clone()
    };
    assert!(parse(zfs).unwrap().not_runnable(&with_zfs).is_none());
    assert!(
        why("apt: {sources: {x: {source: 'ppa:curtin-dev/test-archive'}}}\n")
            .unwrap()
            .contains("PPA")
    );
    assert!(
        why("hook_commands: {builtin: null}\n")
            .unwrap()
            .contains("builtin hooks")
    );
}

#[test]
fn examples_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests");
    let files = discover(&dir).unwrap();
    assert!(!files.is_empty());
    for f in files {
        TestConfig::load(&f).unwrap_or_else(|e| panic!("{e}"));
    }
}
