//! What one boot must show in the kernel's own log, and when it showed it.

use std::fmt::Write as _;
use std::time::Duration;

use crate::disks::{self, Disks};
use crate::klog::KernelLog;
use crate::{Boot, End, Run};

pub const PANIC_LINE: &str = "Kernel panic - not syncing: No working init found";

/// The milestones, in boot order: (name, guest seconds from the printk timestamps).
pub type Milestones = Vec<(&'static str, Option<f64>)>;

/// When each milestone came, as far as the boot got (nothing asserted).
pub fn milestones(log: &KernelLog, boot: &Boot, disks: &Disks) -> Milestones {
    let first = |needle: &str| log.first(needle).map(|l| l.time);
    let last_of = |times: Vec<Option<f64>>| -> Option<f64> {
        times.iter().try_fold(0f64, |acc, t| t.map(|t| acc.max(t)))
    };
    let names: Vec<Option<(String, f64)>> = disks.all().iter().map(|d| log.disk_name(d)).collect();
    let mut m: Milestones = vec![
        ("all vCPUs up", first("smp: Brought up")),
        (
            "virtio-mmio bound all",
            log.all("driver: 'virtio-mmio': driver_bound")
                .map(|l| l.time)
                .last(),
        ),
        (
            "disks sized",
            last_of(names.iter().map(|n| n.as_ref().map(|n| n.1)).collect()),
        ),
        (
            "partitions read",
            last_of(
                names
                    .iter()
                    .map(|n| {
                        n.as_ref()
                            .and_then(|(name, _)| log.partitions(name))
                            .map(|p| p.1)
                    })
                    .collect(),
            ),
        ),
    ];
    if boot.nic {
        m.push(("DHCP 10.0.2.15", first("my address is 10.0.2.15")));
    }
    // "rw root" or "ro root" is in the column's title.
    m.push(("root mounted", first("VFS: Mounted root (ext4 filesystem)")));
    m.push(("panic (no init)", first(PANIC_LINE)));
    m
}

/// Everything asserted of one boot, from its kernel log and how it ended.
pub fn check(run: &Run, boot: &Boot, disks: &Disks) {
    let log = KernelLog::parse(&run.serial);
    let ctx = format!(
        "{} {} ({} vCPU); serial log {}; last lines:\n{}",
        run.backend,
        boot.name,
        boot.vcpus,
        run.log.display(),
        log.tail(25)
    );

    // The missing init's panic ended the run at once, reported through pvpanic, and the
    // builtin VMM's crash report carries the kernel's panic line.
    match &run.end {
        End::Panic(report) => {
            if run.backend == "builtin" {
                assert!(
                    report.contains(PANIC_LINE),
                    "crash report '{report}': {ctx}"
                );
            }
        }
        other => {
            panic!("the run should end in a panic reported through pvpanic, not {other:?}: {ctx}")
        }
    }
    assert!(log.first(PANIC_LINE).is_some(), "no '{PANIC_LINE}': {ctx}");

    // Every vCPU came up.
    let smp = log
        .first("smp: Brought up")
        .unwrap_or_else(|| panic!("no 'smp: Brought up': {ctx}"));
    let want = match boot.vcpus {
        1 => "1 node, 1 CPU".to_string(),
        n => format!("1 node, {n} CPUs"),
    };
    assert!(
        smp.text.contains(&want),
        "want {want}, got '{}': {ctx}",
        smp.text
    );

    // virtio-mmio bound every LNRO0005 device: on the builtin VMM every one of our DSDT
    // (one per disk and NIC); qemu's microvm describes eight transports and fills as many
    // as it has devices.
    let (added, bound) = log.lnro_devices();
    let devices = disks.all().len() + usize::from(boot.nic);
    assert!(
        bound.is_subset(&added),
        "bound {bound:?}, added {added:?}: {ctx}"
    );
    assert_eq!(
        bound.len(),
        devices,
        "LNRO0005 devices bound: {bound:?}: {ctx}"
    );
    if run.backend == "builtin" {
        assert_eq!(
            bound, added,
            "every LNRO0005 device of our DSDT is bound: {ctx}"
        );
    }

    // Each disk: capacity, logical block size, partitions.
    let mut names = Vec::new();
    for d in disks.all() {
        let (name, _) = log.disk_name(d).unwrap_or_else(|| {
            panic!(
                "no virtio_blk line for the {} disk ({} {}-byte logical blocks): {ctx}",
                d.name,
                d.blocks(),
                d.block_size
            )
        });
        let (parts, _) = log
            .partitions(&name)
            .unwrap_or_else(|| panic!("no partition line for {name} ({}): {ctx}", d.name));
        let want: Vec<String> = (1..=d.partitions.len())
            .map(|i| format!("{name}{i}"))
            .collect();
        assert_eq!(parts, want, "partitions of {name} ({}): {ctx}", d.name);
        names.push(name);
    }

    // The kernel's own DHCP got its address from the user-mode NAT.
    if boot.nic {
        assert!(
            log.first("IP-Config: Got DHCP answer from 10.0.2.2, my address is 10.0.2.15")
                .is_some(),
            "the kernel's DHCP got no 10.0.2.15 from the NAT: {ctx}"
        );
    }

    // The root: mounted read-write from the GPT disk; or, asked read-write on the
    // read-only disk, refused write access and mounted read-only.
    let mounted = log
        .first("VFS: Mounted root (ext4 filesystem)")
        .unwrap_or_else(|| panic!("no root mounted: {ctx}"));
    assert_eq!(
        mounted.text.contains("readonly"),
        !boot.rw_root,
        "'{}': {ctx}",
        mounted.text
    );
    let disk = if boot.rw_root { &names[0] } else { &names[2] };
    assert!(
        log.first(&format!("EXT4-fs ({disk}1): mounted filesystem"))
            .is_some(),
        "ext4 did not mount {disk}1: {ctx}"
    );
}

/// The host's view after a boot: a read-write root recorded its mount in the superblock
/// and fsck finds it clean; the read-only disk is unchanged, byte for byte.
pub fn check_on_host(run: &Run, boot: &Boot, disks: &Disks, pristine: &Disks) {
    let (off, len) = disks.root.partitions[0];
    let before = disks::ext4_mounts(&pristine.root.path, off);
    let after = disks::ext4_mounts(&disks.root.path, off);
    if boot.rw_root {
        assert_eq!(
            after.mount_count,
            before.mount_count + 1,
            "{} {}: the root's mount count ({before:?} -> {after:?})",
            run.backend,
            boot.name
        );
        assert_ne!(after.last_write_time, before.last_write_time);
        disks::e2fsck_clean(&disks.root.path, off, len);
    } else {
        assert_eq!(
            after, before,
            "{} {}: the root disk was not to be mounted",
            run.backend, boot.name
        );
    }
    assert_eq!(
        disks::digest(&disks.read_only.path),
        disks::digest(&pristine.read_only.path),
        "{} {}: the read-only disk changed",
        run.backend,
        boot.name
    );
}

/// One column of the side-by-side table.
pub struct Column {
    pub title: String,
    pub milestones: Milestones,
    pub wall: Duration,
}

/// The milestones of every boot side by side (guest seconds), and the host's wall time.
pub fn table(columns: &[Column]) -> String {
    const NAME: usize = 24;
    let width = columns
        .iter()
        .map(|c| c.title.len())
        .max()
        .unwrap_or(0)
        .max(10)
        + 2;
    let mut out = format!("{:<NAME$}", "milestone (guest s)");
    for c in columns {
        let _ = write!(out, "{:>width$}", c.title);
    }
    out.push('\n');
    let mut names: Vec<&str> = Vec::new();
    for c in columns {
        for (n, _) in &c.milestones {
            if !names.contains(n) {
                names.push(n);
            }
        }
    }
    for n in names {
        let _ = write!(out, "{n:<NAME$}");
        for c in columns {
            let t = c
                .milestones
                .iter()
                .find(|(m, _)| *m == n)
                .and_then(|(_, t)| *t);
            match t {
                Some(t) => {
                    let _ = write!(out, "{t:>width$.2}");
                }
                None => {
                    let _ = write!(out, "{:>width$}", "-");
                }
            }
        }
        out.push('\n');
    }
    let _ = write!(out, "{:<NAME$}", "wall, start to exit (s)");
    for c in columns {
        let _ = write!(out, "{:>width$.1}", c.wall.as_secs_f64());
    }
    out.push('\n');
    out
}
