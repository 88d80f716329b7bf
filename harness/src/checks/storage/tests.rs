//! Derivation rules and probes on small configs and hand-written collected data; curtin's
//! own configs against real and made collect/ dirs are in tests/derived_checks.rs.

use std::path::Path;

use super::*;
use crate::checks::{evaluate, parse::md::MdArray};

fn config(storage: &str) -> TestConfig {
    let text = format!("vmtest: {{release: r}}\nstorage:\n  version: 1\n  config:\n{storage}");
    TestConfig::parse("t", Path::new("t.yaml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn names(t: &TestConfig) -> Vec<String> {
    derive(t).into_iter().map(|c| c.name).collect()
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (f, text) in files {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

#[test]
fn partition_numbers_as_curtin_assigns_them() {
    let t = config(
        "    - {id: d, type: disk, serial: s, ptable: msdos}\n    - {id: p1, type: partition, device: d, size: 1G}\n    - {id: ext, type: partition, device: d, size: 3G, flag: extended}\n    - {id: l1, type: partition, device: d, size: 1G, flag: logical}\n    - {id: l2, type: partition, device: d, size: 1G, flag: logical}\n    - {id: p9, type: partition, device: d, size: 1G, number: 9}\n",
    );
    let m = Model::new(&t);
    let n = |id: &str| m.partition_number(m.partition(id).unwrap());
    assert_eq!(
        (n("p1"), n("ext"), n("l1"), n("l2"), n("p9")),
        (1, 2, 5, 6, 9)
    );
    let all = names(&t);
    // An extended partition has no size of its own to check; logical ones have a flag.
    assert!(!all.contains(&"partition ext size".to_string()), "{all:?}");
    assert!(all.contains(&"partition l2 flag".to_string()), "{all:?}");
}

#[test]
fn flags_mean_what_curtin_makes_of_them() {
    let p = |flag: &str| PartitionItem {
        id: "p".into(),
        device: "d".into(),
        number: None,
        size: 1 << 30,
        flag: Some(flag.into()),
        wipe: None,
        preserve: None,
        name: None,
        offset: None,
        partition_type: None,
        partition_name: None,
        grub_device: None,
        resize: None,
        uuid: None,
        multipath: None,
        path: None,
    };
    let ty = |flag: &str, pt: &str| part_type(&p(flag), pt).map(|(t, _)| t);
    let one = |s: &str| Some(PartType::Type(vec![s.into()]));
    assert_eq!(
        ty("boot", "gpt"),
        one("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
    );
    assert_eq!(ty("esp", "gpt"), ty("boot", "gpt"));
    assert_eq!(
        ty("bios_grub", "gpt"),
        one("21686148-6449-6E6F-744E-656564454649")
    );
    assert_eq!(
        ty("prep", "gpt"),
        one("9E1A2D38-C612-4316-AA26-8B49521E5A8B")
    );
    assert_eq!(ty("boot", "msdos"), Some(PartType::Bootable));
    assert_eq!(ty("swap", "msdos"), one("82"));
    assert_eq!(ty("logical", "msdos"), Some(PartType::Logical));
    assert_eq!(ty("", "gpt"), None);
    assert_eq!(ty("no-such-flag", "gpt"), None);
    let mut typed = p("");
    typed.partition_type = Some("0x8e".into());
    assert_eq!(
        part_type(&typed, "msdos").unwrap().0,
        PartType::Type(vec!["8E".into()])
    );
}

#[test]
fn names_and_spellings() {
    assert_eq!(
        sanitize_dname("main_disk_with_in/\\&valid@#dname"),
        "main_disk_with_in---valid--dname"
    );
    assert_eq!(dm_name("vg0", "lv-0"), "vg0-lv--0");
    assert_eq!(kernel_fstype("fat32"), "vfat");
    assert_eq!(probe::fstab_options(None, true), "sw");
    assert_eq!(probe::fstab_options(Some("defaults"), false), "defaults");
    assert_eq!(probe::fstab_options(Some("noatime"), true), "noatime");
    let md = |name: &str| MdArray {
        kname: "md127".into(),
        name: Some(name.into()),
        ..Default::default()
    };
    assert!(resolve::raid_name_matches("md0", &md("host:0")));
    assert!(resolve::raid_name_matches(
        "os-raid1",
        &md("raid5boot:os-raid1")
    ));
    assert!(!resolve::raid_name_matches("md0", &md("host:md1")));
    assert!(!resolve::raid_name_matches(
        "os-raid1",
        &md("host:os-raid2")
    ));
}

/// The project's basic example as the script installer makes it: every derived check
/// names what the config says, and a disk the config builds itself (not attached) is
/// not looked for.
#[test]
fn the_projects_basic_example() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests/basic.yaml");
    let t = TestConfig::load(&p).unwrap();
    let all = names(&t);
    for n in [
        "disk sda serial",
        "disk sda ptable",
        "disk sda dname",
        "partition sda1 flag",
        "format sda1_root label",
        "mount / fstab",
        "mount / spec",
        "mount / mounted",
        "swap sda3_swap fstab",
        "swap sda3_swap in use",
        "disk sdb dname",
        "mount /srv mounted",
    ] {
        assert!(all.contains(&n.to_string()), "{n}: {all:#?}");
    }
    let built = config(
        "    - {id: bc, type: disk, path: /dev/bcache0, ptable: gpt}\n    - {id: p, type: partition, device: bc, number: 1, size: 1G}\n",
    );
    let all = names(&built);
    assert!(!all.iter().any(|n| n.starts_with("disk bc")), "{all:?}");
    assert!(!all.iter().any(|n| n.ends_with("by-id")), "{all:?}");
}

const BCACHE: &str = "    - {id: d1, type: disk, serial: s1}\n    - {id: d2, type: disk, serial: s2}\n    - {id: bc, type: bcache, name: cached, backing_device: d1, cache_device: d2, cache_mode: writeback}\n    - {id: f, type: format, volume: bc, fstype: ext4}\n    - {id: m, type: mount, device: f, path: /srv}\n";

fn bcache_data(dir: &Path, mode: &str, cache: &str) {
    let lsblk = r#"{"blockdevices": [
      {"kname": "vda", "name": "vda", "type": "disk", "serial": "s1", "children": [
        {"kname": "bcache0", "name": "bcache0", "path": "/dev/bcache0", "type": "disk", "fstype": "ext4", "mountpoints": ["/srv"]}]},
      {"kname": "vdb", "name": "vdb", "type": "disk", "serial": "s2", "children": [
        {"kname": "bcache0", "name": "bcache0", "type": "disk"}]}]}"#;
    write(
        dir,
        &[
            ("vmtest/lsblk.json", lsblk),
            (
                "vmtest/bcache/bcache0.export",
                &format!("BACKING=vda\nCACHE_MODE={mode}\nSTATE=clean\nCSET=1f2e\nCACHE={cache}\n"),
            ),
            (
                "vmtest/links.txt",
                "/dev/disk/by-dname/cached\t../../bcache0\n/dev/bcache/by-uuid/9a\t../../bcache0\n",
            ),
            ("fstab", "/dev/bcache/by-uuid/9a /srv ext4 defaults 0 2\n"),
            (
                "vmtest/findmnt.json",
                r#"{"filesystems": [{"target": "/srv", "source": "/dev/bcache0", "fstype": "ext4", "options": "rw"}]}"#,
            ),
        ],
    );
}

#[test]
fn bcache_backing_cache_and_mode() {
    let t = config(BCACHE);
    let checks = derive(&t);
    let d = tempfile::tempdir().unwrap();
    bcache_data(d.path(), "writethrough [writeback] writearound none", "vdb");
    let failed: Vec<String> = evaluate(&checks, d.path())
        .into_iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{}: {}", r.name, r.evidence))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    bcache_data(d.path(), "[writethrough] writeback writearound none", "vdc");
    let failed: Vec<String> = evaluate(&checks, d.path())
        .into_iter()
        .filter(|r| !r.passed())
        .map(|r| r.name)
        .collect();
    assert_eq!(failed, ["bcache cached cache", "bcache cached cache mode"]);
}

#[test]
fn dm_crypt_with_a_mounted_filesystem_must_be_open_over_its_volume() {
    let t = config(
        "    - {id: d, type: disk, serial: s, ptable: gpt}\n    - {id: p, type: partition, device: d, number: 1, size: 2G}\n    - {id: c, type: dm_crypt, volume: p, dm_name: cryptdata, key: pw}\n    - {id: f, type: format, volume: c, fstype: ext4}\n    - {id: m, type: mount, device: f, path: /data}\n",
    );
    let d = tempfile::tempdir().unwrap();
    // The LUKS container and the mapping over it, on partition `part` of vda.
    let lsblk = |part: &str| {
        format!(
            r#"{{"blockdevices": [{{"kname": "vda", "type": "disk", "serial": "s", "children": [
              {{"kname": "{part}", "type": "part", "fstype": "crypto_LUKS", "uuid": "ab-cd", "children": [
                {{"kname": "dm-0", "name": "cryptdata", "path": "/dev/mapper/cryptdata", "type": "crypt",
                  "fstype": "ext4", "mountpoints": ["/data"]}}]}}]}}]}}"#
        )
    };
    write(
        d.path(),
        &[
            ("vmtest/lsblk.json", &lsblk("vda1")),
            (
                "vmtest/sfdisk/vda.json",
                r#"{"partitiontable": {"label": "gpt", "sectorsize": 512, "partitions": [{"node": "/dev/vda1", "start": 2048, "size": 4194304, "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}]}}"#,
            ),
            ("vmtest/crypttab", "cryptdata UUID=ab-cd none luks\n"),
            (
                "vmtest/links.txt",
                "/dev/disk/by-id/virtio-s-part1\t../../vda1\n/dev/mapper/cryptdata\t../dm-0\n",
            ),
            ("fstab", "/dev/mapper/cryptdata /data ext4 defaults 0 2\n"),
            (
                "vmtest/findmnt.json",
                r#"{"filesystems": [{"target": "/data", "source": "/dev/mapper/cryptdata", "fstype": "ext4", "options": "rw"}]}"#,
            ),
        ],
    );
    let checks = derive(&t);
    assert!(checks.iter().any(|c| c.name == "dm_crypt cryptdata open"));
    let bad: Vec<String> = evaluate(&checks, d.path())
        .into_iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{}: {}", r.name, r.evidence))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    // The mapping over another partition than the config's.
    write(d.path(), &[("vmtest/lsblk.json", &lsblk("vda2"))]);
    let bad: Vec<String> = evaluate(&checks, d.path())
        .into_iter()
        .filter(|r| !r.passed())
        .map(|r| r.name)
        .collect();
    assert!(
        bad.contains(&"dm_crypt cryptdata open".to_string()),
        "{bad:?}"
    );
}

/// A `noauto` mount of a passphrase volume (curtin writes `none` for its key in crypttab):
/// the booted system opens and mounts neither, so only what the files say is checked.
#[test]
fn noauto_mounts_and_closed_mappings_are_not_looked_for() {
    let t = config(
        "    - {id: d, type: disk, serial: s, ptable: gpt}\n    - {id: p1, type: partition, device: d, number: 1, size: 3G}\n    - {id: p2, type: partition, device: d, number: 2, size: 1G}\n    - {id: c, type: dm_crypt, volume: p2, keyfile: /tmp/key, dm_name: secret}\n    - {id: r, type: format, volume: p1, fstype: ext4}\n    - {id: f, type: format, volume: c, fstype: ext4}\n    - {id: rm, type: mount, device: r, path: /}\n    - {id: m, type: mount, device: f, path: /srv/secret, options: noauto}\n",
    );
    let all = names(&t);
    for present in [
        "mount /srv/secret fstab",
        "dm_crypt secret crypttab",
        "dm_crypt secret luks",
        "mount / mounted",
    ] {
        assert!(all.contains(&present.to_string()), "{present}: {all:#?}");
    }
    for absent in [
        "mount /srv/secret mounted",
        "mount /srv/secret spec",
        "dm_crypt secret open",
        "format f fstype",
    ] {
        assert!(!all.contains(&absent.to_string()), "{absent}: {all:#?}");
    }
}

/// Each derived check points at the line of the storage item that implies it, so a CI
/// annotation of a failure lands on that entry.
#[test]
fn checks_carry_the_line_of_their_item() {
    let t = config(
        "    - {id: d, type: disk, serial: s, ptable: gpt}\n    - {id: p1, type: partition, device: d, size: 1G}\n",
    );
    let lines: Vec<(String, Option<usize>)> =
        derive(&t).into_iter().map(|c| (c.name, c.line)).collect();
    assert!(
        lines.contains(&("disk d serial".into(), Some(5))),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .filter(|(n, _)| n.starts_with("partition p1"))
            .all(|(_, l)| *l == Some(6)),
        "{lines:?}"
    );
}

/// An NVMe drive beside a virtio disk (a serial starting with `nvme` makes it NVMe, as in
/// curtin's vmtest): each partition's by-id link is looked for under its own bus's name.
#[test]
fn partition_by_id_links_follow_each_disks_bus() {
    let t = config(
        "    - {id: v, type: disk, serial: disk-a, ptable: gpt}\n    - {id: vp, type: partition, device: v, number: 1, size: 1G}\n    - {id: n, type: disk, serial: nvme-a, ptable: gpt}\n    - {id: np, type: partition, device: n, number: 1, size: 1G}\n",
    );
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        &[
            (
                "vmtest/lsblk.json",
                r#"{"blockdevices": [
                  {"kname": "vda", "type": "disk", "serial": "disk-a", "children": [{"kname": "vda1", "type": "part"}]},
                  {"kname": "nvme0n1", "type": "disk", "serial": "nvme-a", "children": [{"kname": "nvme0n1p1", "type": "part"}]}]}"#,
            ),
            (
                "vmtest/links.txt",
                "/dev/disk/by-id/virtio-disk-a-part1\t../../vda1\n/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_nvme-a-part1\t../../nvme0n1p1\n",
            ),
        ],
    );
    let checks: Vec<_> = derive(&t)
        .into_iter()
        .filter(|c| c.name.ends_with("by-id"))
        .collect();
    let verdicts: Vec<(String, bool)> = evaluate(&checks, d.path())
        .into_iter()
        .map(|r| (r.name.clone(), r.passed()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("partition vp by-id".to_string(), true),
            ("partition np by-id".to_string(), true)
        ]
    );
}

/// A `uuid:` on a format is checked only where curtin's mkfs can set it (curtin's
/// uefi_lvmroot.yaml gives one to its vfat ESP, which curtin formats without it).
#[test]
fn a_format_uuid_is_checked_only_where_curtin_can_set_it() {
    let t = config(
        "    - {id: d, type: disk, serial: s, ptable: gpt}\n    - {id: esp, type: partition, device: d, size: 100M, flag: boot}\n    - {id: root, type: partition, device: d, size: 1G}\n    - {id: esp_fs, type: format, volume: esp, fstype: fat32, uuid: 0bea118f-558e-4235-8547-644c76078066}\n    - {id: root_fs, type: format, volume: root, fstype: xfs, uuid: 04836770-e989-460f-8774-8e277ddcb40f}\n",
    );
    let all = names(&t);
    assert!(all.contains(&"format root_fs uuid".to_string()), "{all:?}");
    assert!(!all.contains(&"format esp_fs uuid".to_string()), "{all:?}");
    assert!(mkfs_sets_uuid("ext4") && mkfs_sets_uuid("swap") && !mkfs_sets_uuid("fat32"));
}
