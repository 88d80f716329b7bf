//! Storage checks derived from curtin's storage config: for each entry, what the
//! installed system must show, as curtin would have made it.
//!
//! | entry | checks |
//! |---|---|
//! | disk | `serial` (or `wwn`, or `path`) visible; `ptable`; `dname` when named |
//! | partition | `number` on its disk; `size` within 1 MiB; `flag` (type or boot flag); `by-id` link; `dname` |
//! | format | `fstype`; `label` when given; `uuid` when given and curtin's mkfs can set it |
//! | mount | `fstab` entry with type and options; its `spec` resolves to the device; `mounted` now with that type (swap: `in use`) |
//! | raid | `level`; `members`; `spares`; `name`; `active`; `dname` |
//! | lvm_volgroup / lvm_partition | `pvs` of the VG; the LV's `size`; `dname` |
//! | dm_crypt | `crypttab` entry; `luks` header; `open` when something on it is mounted |
//! | bcache | `backing`; `cache` attached; `cache mode`; `dname` |
//!
//! Names are `<type> <label> <aspect>`, the label being what a reader of the config
//! knows the entry by: a RAID's or volume group's `name`, a mount's path, `vg/lv`, a
//! dm-crypt's `dm_name`, else the entry's id.
//!
//! Here: the checks each entry implies. Beside it: `model` (the config as the probes
//! ask about it), `probe` (each check against the collected data), `resolve` (which
//! device of the booted system an entry is).

mod lookup;
mod model;
mod probe;
mod resolve;
mod what;

use std::sync::Arc;

use super::Check;
use crate::check::CheckGroup;
use crate::config::{PartitionItem, StorageItem, TestConfig};
pub(crate) use model::{Model, kernel_fstype, mkfs_sets_uuid, mounted_at_boot};
pub use model::{dm_name, sanitize_dname};
use probe::StorageProbe;
use what::{PartType, What};

/// A size in words: `3221225472 bytes (3 GiB)`.
pub(crate) fn size_words(bytes: u64) -> String {
    let units = [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (u, name) in units {
        if bytes >= u && bytes.is_multiple_of(u) {
            return format!("{bytes} bytes ({} {name})", bytes / u);
        }
    }
    format!("{bytes} bytes")
}

/// The partition type (or boot flag) a partition's `flag` or `partition_type` means on a
/// table of kind `ptable`, as curtin makes it; None when nothing is implied.
fn part_type(p: &PartitionItem, ptable: &str) -> Option<(PartType, String)> {
    let gpt = ptable == "gpt";
    if let Some(t) = p.partition_type.as_deref().filter(|t| !t.is_empty()) {
        let want = t.trim_start_matches("0x").to_ascii_uppercase();
        return Some((PartType::Type(vec![want.clone()]), format!("type {want}")));
    }
    let flag = p.flag.as_deref().filter(|f| !f.is_empty())?;
    let t = |v: &[&str]| PartType::Type(v.iter().map(|s| s.to_string()).collect());
    let (pt, words) = if gpt {
        let guid = match flag {
            "boot" | "esp" => "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            "bios_grub" => "21686148-6449-6E6F-744E-656564454649",
            "home" => "933AC7E1-2EB4-4F13-B844-0E14E2AEF915",
            "linux" => "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            "lvm" => "E6D6D379-F507-44C2-A23C-238F2A3DF928",
            "msftres" => "E3C9E316-0B5C-4DB8-817D-F92DF00215AE",
            "prep" => "9E1A2D38-C612-4316-AA26-8B49521E5A8B",
            "raid" => "A19D880F-05FC-4D3B-A006-743F0F84911E",
            "swap" => "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
            "mbr" => "024DEE41-33E7-11D3-9D69-0008C781F39F",
            _ => return None,
        };
        (t(&[guid]), format!("flag {flag}: GPT type {guid}"))
    } else {
        match flag {
            "boot" => (
                PartType::Bootable,
                "flag boot: the MBR boot indicator".into(),
            ),
            "extended" => (
                t(&["5", "F", "85"]),
                "flag extended: MBR type 5, f or 85".into(),
            ),
            "logical" => (PartType::Logical, "flag logical: a number from 5".into()),
            "swap" => (t(&["82"]), "flag swap: MBR type 82".into()),
            "lvm" => (t(&["8E"]), "flag lvm: MBR type 8e".into()),
            "raid" => (t(&["FD"]), "flag raid: MBR type fd".into()),
            "esp" => (t(&["EF"]), "flag esp: MBR type ef".into()),
            "linux" => (t(&["83"]), "flag linux: MBR type 83".into()),
            "prep" => (t(&["41"]), "flag prep: MBR type 41".into()),
            _ => return None,
        }
    };
    Some((pt, words))
}

/// Every storage check `test`'s config implies, in config order.
pub fn derive(test: &TestConfig) -> Vec<Check> {
    let m = Arc::new(Model::new(test));
    let mut out = Vec::new();
    // The line of the item being derived from: each of its checks points there.
    let line = std::cell::Cell::new(None);
    let mut add = |name: String, expects: String, what: What| {
        out.push(
            Check::new(
                CheckGroup::Storage,
                name,
                expects,
                StorageProbe {
                    model: m.clone(),
                    what,
                },
            )
            .at(line.get()),
        );
    };
    for item in &m.items {
        let id = item.id().to_string();
        line.set(test.storage_item_line(&id));
        match item {
            StorageItem::Disk(d) => {
                let attached = m.attached(&d.id);
                let dev_path = d
                    .path
                    .as_deref()
                    .filter(|p| p.starts_with("/dev/") && !p.starts_with("/dev/disk/"));
                match (attached, dev_path) {
                    (Some(a), Some(p)) => add(
                        format!("disk {id} path"),
                        format!("the disk attached with serial {} at {p}", a.serial),
                        What::DiskPath { id: id.clone() },
                    ),
                    (Some(a), None) => {
                        let expects = match (&d.serial, &d.wwn) {
                            (None, Some(w)) => format!("a disk with WWN or serial {w}"),
                            _ => format!("a disk with serial {}", a.serial),
                        };
                        add(
                            format!("disk {id} serial"),
                            expects,
                            What::DiskSerial { id: id.clone() },
                        );
                    }
                    // A device the config builds itself (`path: /dev/bcache0`), or one
                    // this host cannot attach: no disk of ours to look for.
                    (None, _) => continue,
                }
                if let Some(pt) = d
                    .ptable
                    .as_deref()
                    .filter(|p| matches!(*p, "gpt" | "msdos" | "dos"))
                {
                    let label = if pt == "gpt" { "gpt" } else { "dos" };
                    add(
                        format!("disk {id} ptable"),
                        if label == pt {
                            format!("partition table {pt}")
                        } else {
                            format!("partition table {pt} (`{label}` to sfdisk)")
                        },
                        What::Ptable {
                            id: id.clone(),
                            label,
                        },
                    );
                }
                if let Some(n) = d.name.as_deref().filter(|n| !n.is_empty()) {
                    let link = sanitize_dname(n);
                    add(
                        format!("disk {id} dname"),
                        format!("/dev/disk/by-dname/{link} naming the disk"),
                        What::Dname {
                            id: id.clone(),
                            link,
                        },
                    );
                }
            }
            StorageItem::Partition(p) => {
                let n = m.partition_number(p);
                let (disk_label, disk_name, ptable) = match m.get(&p.device) {
                    Some(StorageItem::Disk(d)) => (d.id.clone(), d.name.clone(), d.ptable.clone()),
                    Some(StorageItem::Raid(r)) => (r.name.clone(), None, r.ptable.clone()),
                    Some(other) => (other.id().to_string(), None, None),
                    None => continue,
                };
                add(
                    format!("partition {id} number"),
                    format!("partition {n} on {disk_label}"),
                    What::PartNumber { id: id.clone() },
                );
                let extended = p.flag.as_deref() == Some("extended");
                if !extended {
                    add(
                        format!("partition {id} size"),
                        format!("{}, within 1 MiB", size_words(p.size)),
                        What::PartSize { id: id.clone() },
                    );
                }
                if let Some((want, words)) = part_type(p, ptable.as_deref().unwrap_or("gpt")) {
                    add(
                        format!("partition {id} flag"),
                        words,
                        What::PartType {
                            id: id.clone(),
                            want,
                        },
                    );
                }
                if matches!(m.get(&p.device), Some(StorageItem::Disk(_)))
                    && m.attached(&p.device).is_some()
                {
                    add(
                        format!("partition {id} by-id"),
                        format!(
                            "a /dev/disk/by-id link of the disk with -part{n} naming the partition"
                        ),
                        What::PartById { id: id.clone() },
                    );
                }
                // curtin names the partitions of a named disk `<disk>-partN`, and a named
                // partition of a named disk by its own name too.
                if let Some(dn) = disk_name.as_deref().filter(|n| !n.is_empty())
                    && !extended
                {
                    let link = format!("{}-part{n}", sanitize_dname(dn));
                    add(
                        format!("partition {id} dname"),
                        format!("/dev/disk/by-dname/{link} naming the partition"),
                        What::Dname {
                            id: id.clone(),
                            link,
                        },
                    );
                    if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                        let link = sanitize_dname(pn);
                        add(
                            format!("partition {id} name dname"),
                            format!("/dev/disk/by-dname/{link} naming the partition"),
                            What::Dname {
                                id: id.clone(),
                                link,
                            },
                        );
                    }
                }
            }
            StorageItem::Format(f) => {
                // A filesystem on a mapping that stays closed cannot be seen at boot.
                if m.get(&f.volume).is_none() || !m.present_at_boot(&f.volume) {
                    continue;
                }
                let fstype = kernel_fstype(&f.fstype).to_string();
                add(
                    format!("format {id} fstype"),
                    format!("{fstype} on {}", m.label(&f.volume)),
                    What::FsType { id: id.clone() },
                );
                if let Some(l) = f.label.as_deref().filter(|l| !l.is_empty()) {
                    add(
                        format!("format {id} label"),
                        format!("label {l}"),
                        What::FsLabel { id: id.clone() },
                    );
                }
                if let Some(u) = f
                    .uuid
                    .as_deref()
                    .filter(|u| !u.is_empty() && mkfs_sets_uuid(&f.fstype))
                {
                    add(
                        format!("format {id} uuid"),
                        format!("UUID {u}"),
                        What::FsUuid { id: id.clone() },
                    );
                }
            }
            StorageItem::Mount(mt) => {
                let format = mt.device.as_deref().and_then(|d| m.format(d));
                let fstype = mt
                    .fstype
                    .clone()
                    .or_else(|| format.map(|f| f.fstype.clone()))
                    .unwrap_or_default();
                let fstype = kernel_fstype(&fstype).to_string();
                let swap = fstype == "swap";
                let path = match mt.path.as_deref().filter(|p| !p.is_empty()) {
                    Some(p) => p.to_string(),
                    None if swap => "none".to_string(),
                    None => continue,
                };
                let label = if swap && path == "none" {
                    format!("swap {}", mt.device.as_deref().unwrap_or(&id))
                } else {
                    format!("mount {path}")
                };
                let options = probe::fstab_options(mt.options.as_deref(), swap);
                add(
                    format!("{label} fstab"),
                    format!("an fstab entry for {path} of type {fstype} with options {options}"),
                    What::Fstab { id: id.clone() },
                );
                // A device on a mapping that stays closed has no link to resolve.
                let present = format.is_none_or(|f| m.present_at_boot(&f.volume));
                if let Some(spec) = &mt.spec {
                    add(
                        format!("{label} spec"),
                        format!("the fstab spec {spec}"),
                        What::FstabSpec { id: id.clone() },
                    );
                } else if let Some(f) = format.filter(|_| present) {
                    add(
                        format!("{label} spec"),
                        format!("the fstab spec naming the device of {}", m.label(&f.volume)),
                        What::FstabSpec { id: id.clone() },
                    );
                }
                if swap {
                    if let Some(f) = format.filter(|_| present) {
                        add(
                            format!("{label} in use"),
                            format!("swap on the device of {} in use", m.label(&f.volume)),
                            What::SwapInUse { id: id.clone() },
                        );
                    }
                } else if present && mounted_at_boot(mt) {
                    let bind = fstype == "bind"
                        || mt
                            .options
                            .as_deref()
                            .is_some_and(|o| o.split(',').any(|x| x == "bind"));
                    let what = match format {
                        Some(f) => {
                            format!(" from the device of {}, type {fstype}", m.label(&f.volume))
                        }
                        None if bind => {
                            format!(" (a bind mount of {})", mt.spec.as_deref().unwrap_or("?"))
                        }
                        None => format!(", type {fstype}"),
                    };
                    add(
                        format!("{label} mounted"),
                        format!("{path} mounted now{what}"),
                        What::Mounted { id: id.clone() },
                    );
                }
            }
            StorageItem::Raid(r) => {
                let l = format!("raid {}", r.name);
                let level = r.raidlevel.mdadm_name();
                add(
                    format!("{l} level"),
                    level.to_string(),
                    What::RaidLevel { id: id.clone() },
                );
                if !r.devices.is_empty() {
                    let labels: Vec<String> = r.devices.iter().map(|d| m.label(d)).collect();
                    add(
                        format!("{l} members"),
                        format!("{} active members: {}", r.devices.len(), labels.join(", ")),
                        What::RaidMembers { id: id.clone() },
                    );
                    let spares: Vec<String> = r.spare_devices.iter().map(|d| m.label(d)).collect();
                    add(
                        format!("{l} spares"),
                        if spares.is_empty() {
                            "no spares".to_string()
                        } else {
                            format!(
                                "{} spare{}: {}",
                                spares.len(),
                                if spares.len() == 1 { "" } else { "s" },
                                spares.join(", ")
                            )
                        },
                        What::RaidSpares { id: id.clone() },
                    );
                }
                add(
                    format!("{l} name"),
                    format!("the array named {}", r.array_name()),
                    What::RaidName { id: id.clone() },
                );
                add(
                    format!("{l} active"),
                    "the array running (array_state clean, active, active-idle or read-auto)"
                        .to_string(),
                    What::RaidActive { id: id.clone() },
                );
                let link = sanitize_dname(&r.name);
                add(
                    format!("{l} dname"),
                    format!("/dev/disk/by-dname/{link} naming the array"),
                    What::Dname {
                        id: id.clone(),
                        link,
                    },
                );
            }
            StorageItem::LvmVolgroup(g) => {
                let labels: Vec<String> = g.devices.iter().map(|d| m.label(d)).collect();
                add(
                    format!("lvm_volgroup {} pvs", g.name),
                    format!("volume group {} on {}", g.name, labels.join(", ")),
                    What::VgPvs { id: id.clone() },
                );
            }
            StorageItem::LvmPartition(lv) => {
                let l = m.label(&id);
                let vg = l.split('/').next().unwrap_or_default().to_string();
                add(
                    format!("lvm_partition {l} size"),
                    match lv.size {
                        Some(s) => format!(
                            "logical volume {l} of {}, rounded up to a whole extent",
                            size_words(s)
                        ),
                        None => format!("logical volume {l} taking the rest of {vg}"),
                    },
                    What::LvSize { id: id.clone() },
                );
                let link = dm_name(&vg, &lv.name);
                add(
                    format!("lvm_partition {l} dname"),
                    format!("/dev/disk/by-dname/{link} naming the logical volume"),
                    What::Dname {
                        id: id.clone(),
                        link,
                    },
                );
            }
            StorageItem::DmCrypt(c) => {
                let l = format!("dm_crypt {}", c.dm_name);
                let vol = m.label(&c.volume);
                add(
                    format!("{l} crypttab"),
                    format!("a crypttab entry {} for the device of {vol}", c.dm_name),
                    What::Crypttab { id: id.clone() },
                );
                let random = matches!(c.keyfile.as_deref(), Some("/dev/random" | "/dev/urandom"));
                if !random {
                    add(
                        format!("{l} luks"),
                        format!("a LUKS header on {vol}"),
                        What::CryptLuks { id: id.clone() },
                    );
                }
                if m.crypt_open_at_boot(c) {
                    add(
                        format!("{l} open"),
                        format!("the mapping {} open over {vol}", c.dm_name),
                        What::CryptOpen { id: id.clone() },
                    );
                }
            }
            StorageItem::Bcache(b) => {
                let l = format!("bcache {}", b.name.as_deref().unwrap_or(&id));
                if let Some(bd) = &b.backing_device {
                    add(
                        format!("{l} backing"),
                        format!("a bcache device backed by {}", m.label(bd)),
                        What::BcacheBacking { id: id.clone() },
                    );
                }
                if let (Some(_), Some(cd)) = (&b.backing_device, &b.cache_device) {
                    add(
                        format!("{l} cache"),
                        format!("attached to the cache set on {}", m.label(cd)),
                        What::BcacheCache { id: id.clone() },
                    );
                }
                if let (Some(_), Some(mode)) = (&b.backing_device, &b.cache_mode) {
                    add(
                        format!("{l} cache mode"),
                        format!("cache mode {mode}"),
                        What::BcacheMode { id: id.clone() },
                    );
                }
                if let Some(n) = b.name.as_deref().filter(|n| !n.is_empty()) {
                    let link = sanitize_dname(n);
                    add(
                        format!("{l} dname"),
                        format!("/dev/disk/by-dname/{link} naming the bcache device"),
                        What::Dname {
                            id: id.clone(),
                            link,
                        },
                    );
                }
            }
            StorageItem::Zpool(_)
            | StorageItem::Zfs(_)
            | StorageItem::Dasd(_)
            | StorageItem::NvmeController(_)
            | StorageItem::Other { .. } => {}
        }
    }
    out
}

#[cfg(test)]
mod tests;
