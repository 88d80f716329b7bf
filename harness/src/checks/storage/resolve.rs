//! From a storage config id to the kernel device the installed system made of it, using
//! only the collected data: a disk by the serial (or WWN, or position) the harness
//! attached it with, a partition by its number on that disk, an array by its members
//! (else its name), a logical volume by LVM's report, a dm-crypt mapping by its name, a
//! bcache device by its backing device. Also from an fstab or crypttab spec to a device.

use super::Model;
use crate::checks::Collected;
use crate::checks::parse::block::{Links, Lsblk, PartTables, partition_number};
use crate::checks::parse::lvm::{DmTable, Lvm};
use crate::checks::parse::md::{Bcaches, MdArrays};
use crate::config::StorageItem;

/// Kernel name of the device of storage entry `id`, or why it cannot be found (the
/// evidence of the check that needed it).
pub fn device(m: &Model, d: &Collected, id: &str) -> Result<String, String> {
    device_depth(m, d, id, 0)
}

fn device_depth(m: &Model, d: &Collected, id: &str, depth: usize) -> Result<String, String> {
    // Configs are acyclic (checked at load); the bound only guards against a bug.
    if depth > 32 {
        return Err(format!("{id}: references nest too deep"));
    }
    let err = |e: crate::checks::DataError| e.to_string();
    match m.get(id) {
        None => Err(format!("no storage entry {id}")),
        Some(StorageItem::Disk(disk)) => {
            let lsblk = d.get::<Lsblk>().map_err(err)?;
            let Some(a) = m.attached(id) else {
                // A device the config builds (`path: /dev/bcache0`): its own path.
                return disk
                    .path
                    .as_deref()
                    .and_then(|p| lsblk.by_path(p))
                    .map(|b| b.kname.clone())
                    .ok_or_else(|| format!("disk {id} is not one the harness attached"));
            };
            let disks: Vec<_> = lsblk
                .devs
                .iter()
                .filter(|b| b.kind == "disk" || b.kind == "mpath")
                .collect();
            let by_serial = disks
                .iter()
                .find(|b| b.serial.as_deref() == Some(a.serial.as_str()))
                .or_else(|| {
                    let wwn = a.wwn.as_deref()?;
                    disks.iter().find(|b| {
                        b.wwn.as_deref().is_some_and(|w| {
                            w.trim_start_matches("0x") == wwn.trim_start_matches("0x")
                        })
                    })
                });
            if let Some(b) = by_serial {
                return Ok(b.kname.clone());
            }
            // Serials lsblk did not show: the by-id link udev made from it.
            if let Ok(links) = d.get::<Links>() {
                for name in by_id_names(m, &a.serial) {
                    if let Some(t) = links.target(&format!("/dev/disk/by-id/{name}")) {
                        return Ok(t.to_string());
                    }
                }
            }
            let seen: Vec<String> = disks
                .iter()
                .map(|b| format!("{} serial {}", b.kname, b.serial.as_deref().unwrap_or("-")))
                .collect();
            Err(format!(
                "no disk with serial {}; disks: {}",
                a.serial,
                if seen.is_empty() {
                    "none".into()
                } else {
                    seen.join(", ")
                }
            ))
        }
        Some(StorageItem::Partition(p)) => {
            let parent = device_depth(m, d, &p.device, depth + 1)?;
            let n = m.partition_number(p);
            let tables = d.get::<PartTables>().map_err(err)?;
            if let Some(Ok(t)) = tables.tables.get(&parent)
                && let Some(e) = t.part(n)
            {
                return Ok(e.kname.clone());
            }
            // No table collected: the kernel's partitions of that device.
            let lsblk = d.get::<Lsblk>().map_err(err)?;
            lsblk
                .holders(&parent)
                .into_iter()
                .find(|b| b.kind == "part" && partition_number(&parent, &b.kname) == Some(n))
                .map(|b| b.kname.clone())
                .ok_or_else(|| {
                    let parts: Vec<String> = match tables.tables.get(&parent) {
                        Some(Ok(t)) => t.parts.iter().map(|e| e.kname.clone()).collect(),
                        Some(Err(e)) => vec![e.to_string()],
                        None => vec!["no partition table".into()],
                    };
                    format!("{parent} has no partition {n} ({})", parts.join(", "))
                })
        }
        Some(StorageItem::Raid(r)) => {
            let arrays = d.get::<MdArrays>().map_err(err)?;
            // By its members: the structure the config gave.
            let members: Vec<String> = r
                .devices
                .iter()
                .chain(&r.spare_devices)
                .filter_map(|x| device_depth(m, d, x, depth + 1).ok())
                .collect();
            if !members.is_empty()
                && let Some(a) = arrays
                    .arrays
                    .iter()
                    .find(|a| a.members.iter().any(|x| members.contains(&x.kname)))
            {
                return Ok(a.kname.clone());
            }
            arrays
                .arrays
                .iter()
                .find(|a| raid_name_matches(r.array_name(), a) || raid_name_matches(&r.name, a))
                .map(|a| a.kname.clone())
                .ok_or_else(|| {
                    let seen: Vec<String> = arrays.arrays.iter().map(|a| a.describe()).collect();
                    format!(
                        "no array named {} or made of its members; arrays: {}",
                        r.name,
                        if seen.is_empty() {
                            "none".into()
                        } else {
                            seen.join("; ")
                        }
                    )
                })
        }
        Some(StorageItem::LvmPartition(l)) => {
            let label = m.label(id);
            let (vg, name) = label.split_once('/').unwrap_or(("", &l.name));
            let lvm = d.get::<Lvm>().map_err(err)?;
            let lv = lvm.lv(vg, name).ok_or_else(|| {
                let seen: Vec<String> = lvm
                    .lvs
                    .iter()
                    .map(|l| format!("{}/{}", l.vg, l.name))
                    .collect();
                format!(
                    "no logical volume {label}; LVs: {}",
                    if seen.is_empty() {
                        "none".into()
                    } else {
                        seen.join(", ")
                    }
                )
            })?;
            let path = lv
                .dm_path
                .clone()
                .unwrap_or_else(|| format!("/dev/mapper/{}", super::dm_name(vg, name)));
            mapper_device(d, &path, name)
        }
        Some(StorageItem::DmCrypt(c)) => {
            if let Ok(t) = d.get::<DmTable>()
                && let Some(x) = t.by_name(&c.dm_name)
            {
                return Ok(x.kname.clone());
            }
            mapper_device(d, &format!("/dev/mapper/{}", c.dm_name), &c.dm_name)
        }
        Some(StorageItem::Bcache(b)) => {
            let backing = b
                .backing_device
                .as_deref()
                .ok_or_else(|| format!("bcache {id} has no backing device"))?;
            let backing = device_depth(m, d, backing, depth + 1)?;
            let all = d.get::<Bcaches>().map_err(err)?;
            all.devs
                .iter()
                .find(|x| x.backing.as_deref() == Some(backing.as_str()))
                .map(|x| x.kname.clone())
                .ok_or_else(|| {
                    let seen: Vec<String> = all.devs.iter().map(|x| x.describe()).collect();
                    format!(
                        "no bcache device backed by {backing}; bcache devices: {}",
                        if seen.is_empty() {
                            "none".into()
                        } else {
                            seen.join("; ")
                        }
                    )
                })
        }
        Some(StorageItem::Format(f)) => device_depth(m, d, &f.volume, depth + 1),
        Some(other) => Err(format!("{} {id} is not a block device", other.kind())),
    }
}

/// A device-mapper device by its /dev/mapper path.
fn mapper_device(d: &Collected, path: &str, what: &str) -> Result<String, String> {
    let lsblk = d.get::<Lsblk>().map_err(|e| e.to_string())?;
    if let Some(b) = lsblk.by_path(path) {
        return Ok(b.kname.clone());
    }
    if let Ok(links) = d.get::<Links>()
        && let Some(t) = links.target(path)
    {
        return Ok(t.to_string());
    }
    Err(format!("{what}: {path} does not exist"))
}

/// Whether array `a` carries the name the config gave (`os-raid1`; for `md0`, mdadm
/// stores `0`).
pub fn raid_name_matches(name: &str, a: &crate::checks::parse::md::MdArray) -> bool {
    let digits = name
        .strip_prefix("md")
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    let short = a.short_name();
    short == Some(name)
        || a.devname.as_deref() == Some(name)
        || digits.is_some_and(|n| short == Some(n) || a.kname == name)
}

/// The /dev/disk/by-id names udev gives the disk with `serial` on the bus it is attached on.
pub fn by_id_names(m: &Model, serial: &str) -> Vec<String> {
    use crate::config::DiskDriver;
    let s = serial.replace(' ', "_");
    match m.bus(serial) {
        DiskDriver::VirtioBlk => vec![format!("virtio-{s}")],
        DiskDriver::Nvme => vec![format!("nvme-QEMU_NVMe_Ctrl_{s}"), format!("nvme-{s}")],
        DiskDriver::Scsi => vec![format!("scsi-0QEMU_QEMU_HARDDISK_{s}"), format!("scsi-{s}")],
    }
}

/// The device an fstab or crypttab spec names (`UUID=...`, `LABEL=...`, `PARTUUID=...`,
/// a /dev path or link), as a kernel name.
pub fn spec_device(d: &Collected, spec: &str) -> Option<String> {
    let lsblk = d.get::<Lsblk>().ok()?;
    let links = d.get::<Links>().ok();
    let link = |p: &str| links.as_ref().and_then(|l| l.target(p)).map(str::to_string);
    let tagged =
        |dir: &str,
         v: &str,
         f: &dyn Fn(&crate::checks::parse::block::BlockDev) -> Option<String>| {
            link(&format!("/dev/disk/{dir}/{v}")).or_else(|| {
                lsblk
                    .devs
                    .iter()
                    .find(|b| f(b).is_some_and(|x| x.eq_ignore_ascii_case(v)))
                    .map(|b| b.kname.clone())
            })
        };
    if let Some(v) = spec.strip_prefix("UUID=") {
        return tagged("by-uuid", v, &|b| b.uuid.clone());
    }
    if let Some(v) = spec.strip_prefix("LABEL=") {
        return tagged("by-label", v, &|b| b.label.clone());
    }
    if let Some(v) = spec.strip_prefix("PARTUUID=") {
        return tagged("by-partuuid", v, &|b| b.partuuid.clone());
    }
    if spec.starts_with("/dev/") {
        return link(spec).or_else(|| lsblk.by_path(spec).map(|b| b.kname.clone()));
    }
    None
}
