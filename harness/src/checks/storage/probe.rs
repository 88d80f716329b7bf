//! How each storage check is evaluated against the collected data, and the evidence it
//! gives when the installed system shows something else.
//!
//! The probe is one exhaustive match over [`What`] (28 kinds of check), so a new kind of
//! check does not compile until it is probed; the look-ups its arms share are in
//! `lookup`, the vocabulary of checks in `what`.

use std::sync::Arc;

use super::lookup::*;
use super::resolve::{by_id_names, device, raid_name_matches, spec_device};
use super::what::{PartType, What};
use super::{Model, kernel_fstype};
use crate::checks::parse::block::{Links, Lsblk, PartTables};
use crate::checks::parse::evidence_lines;
use crate::checks::parse::lvm::{DmTable, Lvm};
use crate::checks::parse::md::Bcaches;
use crate::checks::parse::mounts::{Crypttab, Findmnt, Swaps};
use crate::checks::{Collected, Probe};
use crate::config::StorageItem;

/// At most this many collected lines are quoted as evidence.
pub(super) const EVIDENCE: usize = 20;
/// How far a partition's size may be from the config's: one alignment unit.
const PART_SLACK: u64 = 1 << 20;

#[derive(Debug)]
pub(crate) struct StorageProbe {
    pub model: Arc<Model>,
    pub what: What,
}

/// The fstab options curtin writes for a mount's `options`.
pub(crate) fn fstab_options(options: Option<&str>, swap: bool) -> String {
    match options.filter(|o| !o.is_empty() && *o != "defaults") {
        Some(o) => o.to_string(),
        None if swap => "sw".into(),
        None => "defaults".into(),
    }
}

impl Probe for StorageProbe {
    fn evaluate(&self, d: &Collected) -> Result<(), String> {
        let m = &*self.model;
        match &self.what {
            What::DiskSerial { id } => device(m, d, id).map(|_| ()),
            What::DiskPath { id } => {
                let k = device(m, d, id)?;
                let want = match m.get(id) {
                    Some(StorageItem::Disk(x)) => x.path.clone().unwrap_or_default(),
                    _ => String::new(),
                };
                if want.rsplit('/').next() == Some(k.as_str()) {
                    Ok(())
                } else {
                    Err(format!("the disk is /dev/{k}"))
                }
            }
            What::Ptable { id, label } => {
                let k = device(m, d, id)?;
                let tables = data::<PartTables>(d)?;
                match tables.tables.get(&k) {
                    Some(Ok(t)) if t.label == *label => Ok(()),
                    Some(Ok(t)) => Err(format!("{k} has a {} partition table", t.label)),
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err(format!(
                        "{k} has no partition table (no vmtest/sfdisk/{k}.json)"
                    )),
                }
            }
            What::Dname { id, link } => {
                let k = device(m, d, id)?;
                let links = data::<Links>(d)?;
                let path = format!("/dev/disk/by-dname/{link}");
                match links.target(&path) {
                    Some(t) if t == k => Ok(()),
                    Some(t) => Err(format!("{path} names {t}, not {k}")),
                    None => Err(evidence_lines(
                        &format!("{path} does not exist; /dev/disk/by-dname has"),
                        &links.in_dir("/dev/disk/by-dname"),
                        EVIDENCE,
                    )),
                }
            }
            What::PartNumber { id } => device(m, d, id).map(|_| ()),
            What::PartSize { id } => {
                let p = m.partition(id).ok_or("not a partition")?;
                let k = device(m, d, id)?;
                let size = part_size(d, m, &p.device, &k)?;
                if size.abs_diff(p.size) <= PART_SLACK {
                    Ok(())
                } else {
                    Err(format!("{k} is {size} bytes"))
                }
            }
            What::PartType { id, want } => {
                let p = m.partition(id).ok_or("not a partition")?;
                let k = device(m, d, id)?;
                let parent = device(m, d, &p.device)?;
                let tables = data::<PartTables>(d)?;
                let t = match tables.tables.get(&parent) {
                    Some(Ok(t)) => t,
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err(format!("{parent} has no partition table collected")),
                };
                let e = t
                    .parts
                    .iter()
                    .find(|e| e.kname == k)
                    .ok_or_else(|| format!("{k} is not in {parent}'s table"))?;
                let ok = match want {
                    PartType::Bootable => e.bootable,
                    PartType::Logical => e.number >= 5,
                    PartType::Type(types) => types.contains(&e.ptype),
                };
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "{k} has type {}{} (number {}) in a {} table",
                        e.ptype,
                        if e.bootable { ", bootable" } else { "" },
                        e.number,
                        t.label
                    ))
                }
            }
            What::PartById { id } => {
                let p = m.partition(id).ok_or("not a partition")?;
                let k = device(m, d, id)?;
                let serial = m
                    .attached(&p.device)
                    .map(|a| a.serial.clone())
                    .unwrap_or_default();
                let links = data::<Links>(d)?;
                let n = m.partition_number(p);
                let names: Vec<String> = by_id_names(m, &serial)
                    .into_iter()
                    .map(|n0| format!("{n0}-part{n}"))
                    .collect();
                for name in &names {
                    match links.target(&format!("/dev/disk/by-id/{name}")) {
                        Some(t) if t == k => return Ok(()),
                        Some(t) => {
                            return Err(format!("/dev/disk/by-id/{name} names {t}, not {k}"));
                        }
                        None => {}
                    }
                }
                Err(evidence_lines(
                    &format!(
                        "no /dev/disk/by-id/{} naming {k}; links to it",
                        names.join(" or ")
                    ),
                    &links.names_for("/dev/disk/by-id", &k),
                    EVIDENCE,
                ))
            }
            What::FsType { id } => {
                let f = m.format(id).ok_or("not a format")?;
                let k = device(m, d, &f.volume)?;
                let found = fs_tag(d, &k, FsTag::Type);
                let want = kernel_fstype(&f.fstype);
                if found.as_deref() == Some(want) {
                    Ok(())
                } else {
                    Err(about(d, &k))
                }
            }
            What::FsLabel { id } => {
                let f = m.format(id).ok_or("not a format")?;
                let k = device(m, d, &f.volume)?;
                let want = f.label.clone().unwrap_or_default();
                let found = fs_tag(d, &k, FsTag::Label);
                // FAT labels are case-insensitive (mkfs.vfat may store them upper case).
                let fat = kernel_fstype(&f.fstype) == "vfat";
                let same = |x: &str| x == want || (fat && x.eq_ignore_ascii_case(&want));
                if found.as_deref().is_some_and(same) {
                    Ok(())
                } else {
                    Err(about(d, &k))
                }
            }
            What::FsUuid { id } => {
                let f = m.format(id).ok_or("not a format")?;
                let k = device(m, d, &f.volume)?;
                let want = f.uuid.clone().unwrap_or_default();
                if fs_tag(d, &k, FsTag::Uuid).is_some_and(|u| u.eq_ignore_ascii_case(&want)) {
                    Ok(())
                } else {
                    Err(about(d, &k))
                }
            }
            What::Fstab { id } => {
                let (entry, fstab) = fstab_entry(m, d, id)?;
                let mt = m.mount(id).ok_or("not a mount")?;
                let want_type = mount_fstype(m, id);
                let want_opts = fstab_options(mt.options.as_deref(), want_type == "swap");
                if entry.vfstype == want_type && entry.options == want_opts {
                    Ok(())
                } else {
                    Err(evidence_lines(
                        "the entry differs; fstab has",
                        &fstab.lines(),
                        EVIDENCE,
                    ))
                }
            }
            What::FstabSpec { id } => {
                let (entry, _) = fstab_entry(m, d, id)?;
                let mt = m.mount(id).ok_or("not a mount")?;
                if let Some(spec) = &mt.spec {
                    return if entry.spec == *spec {
                        Ok(())
                    } else {
                        Err(format!("the entry is `{}`", entry.line))
                    };
                }
                let f = mt
                    .device
                    .as_deref()
                    .and_then(|x| m.format(x))
                    .ok_or("no format")?;
                let k = device(m, d, &f.volume)?;
                match spec_device(d, &entry.spec) {
                    Some(s) if s == k => Ok(()),
                    Some(s) => Err(format!(
                        "`{}`: {} names {s}, the volume is {k}",
                        entry.line, entry.spec
                    )),
                    None => Err(format!(
                        "`{}`: {} names no device collected (the volume is {k})",
                        entry.line, entry.spec
                    )),
                }
            }
            What::Mounted { id } => {
                let mt = m.mount(id).ok_or("not a mount")?;
                let path = mt.path.clone().unwrap_or_default();
                let mounts = data::<Findmnt>(d)?;
                let Some(now) = mounts.at(&path) else {
                    let lines: Vec<String> = mounts.mounts.iter().map(|x| x.describe()).collect();
                    return Err(evidence_lines(
                        &format!("nothing is mounted at {path}; mounted"),
                        &lines,
                        EVIDENCE,
                    ));
                };
                let want_type = mount_fstype(m, id);
                let bind = want_type == "bind"
                    || mt
                        .options
                        .as_deref()
                        .is_some_and(|o| o.split(',').any(|x| x == "bind"));
                if bind {
                    return Ok(());
                }
                if now.fstype != want_type {
                    return Err(now.describe());
                }
                let Some(f) = mt.device.as_deref().and_then(|x| m.format(x)) else {
                    return Ok(()); // a `spec:` mount (tmpfs, ...): the type is what it has
                };
                let k = device(m, d, &f.volume)?;
                match spec_device(d, now.device()) {
                    Some(s) if s == k => Ok(()),
                    _ => Err(format!("{}; the volume is {k}", now.describe())),
                }
            }
            What::SwapInUse { id } => {
                let mt = m.mount(id).ok_or("not a mount")?;
                let f = mt
                    .device
                    .as_deref()
                    .and_then(|x| m.format(x))
                    .ok_or("no format")?;
                let k = device(m, d, &f.volume)?;
                let swaps = data::<Swaps>(d)?;
                let used = swaps.areas.iter().any(|a| {
                    a.name == format!("/dev/{k}")
                        || spec_device(d, &a.name).as_deref() == Some(k.as_str())
                });
                if used {
                    Ok(())
                } else {
                    let lines: Vec<String> = swaps.areas.iter().map(|a| a.line.clone()).collect();
                    Err(evidence_lines(
                        &format!("{k} is not in use; swap in use"),
                        &lines,
                        EVIDENCE,
                    ))
                }
            }
            What::RaidLevel { id } => {
                let (r, a) = raid(m, d, id)?;
                let want = r.raidlevel.mdadm_name();
                if a.level.as_deref() == Some(want) {
                    Ok(())
                } else {
                    Err(a.describe())
                }
            }
            What::RaidMembers { id } => {
                let (r, a) = raid(m, d, id)?;
                let want = knames(m, d, &r.devices)?;
                let mut have: Vec<String> = a.active().iter().map(|x| x.kname.clone()).collect();
                have.sort();
                if have == want && a.raid_disks.is_none_or(|n| n as usize == want.len()) {
                    Ok(())
                } else {
                    Err(format!(
                        "the config's members are [{}]; {}",
                        want.join(", "),
                        a.describe()
                    ))
                }
            }
            What::RaidSpares { id } => {
                let (r, a) = raid(m, d, id)?;
                let want = knames(m, d, &r.spare_devices)?;
                let mut have: Vec<String> = a.spares().iter().map(|x| x.kname.clone()).collect();
                have.sort();
                if have == want {
                    Ok(())
                } else {
                    Err(format!(
                        "the config's spares are [{}]; {}",
                        want.join(", "),
                        a.describe()
                    ))
                }
            }
            What::RaidName { id } => {
                let (r, a) = raid(m, d, id)?;
                if raid_name_matches(r.array_name(), &a) {
                    Ok(())
                } else {
                    Err(a.describe())
                }
            }
            What::RaidActive { id } => {
                let (_, a) = raid(m, d, id)?;
                match a.array_state.as_deref() {
                    Some("clean" | "active" | "active-idle" | "read-auto" | "write-pending") => {
                        Ok(())
                    }
                    _ => Err(a.describe()),
                }
            }
            What::VgPvs { id } => {
                let Some(StorageItem::LvmVolgroup(g)) = m.get(id) else {
                    return Err("not a volume group".into());
                };
                let want = knames(m, d, &g.devices)?;
                let lvm = data::<Lvm>(d)?;
                if lvm.vg(&g.name).is_none() {
                    let seen: Vec<String> = lvm.vgs.iter().map(|v| v.name.clone()).collect();
                    return Err(evidence_lines(
                        &format!("no volume group {}; volume groups", g.name),
                        &seen,
                        EVIDENCE,
                    ));
                }
                let lsblk = data::<Lsblk>(d)?;
                let links = d.get::<Links>().ok();
                let mut have: Vec<String> = lvm
                    .pvs_of(&g.name)
                    .iter()
                    .map(|p| {
                        lsblk
                            .by_path(&p.name)
                            .map(|b| b.kname.clone())
                            .or_else(|| {
                                links
                                    .as_ref()
                                    .and_then(|l| l.target(&p.name))
                                    .map(str::to_string)
                            })
                            .unwrap_or_else(|| p.name.clone())
                    })
                    .collect();
                have.sort();
                if have == want {
                    Ok(())
                } else {
                    Err(format!(
                        "{} is on [{}], the config's devices are [{}]",
                        g.name,
                        have.join(", "),
                        want.join(", ")
                    ))
                }
            }
            What::LvSize { id } => {
                let Some(StorageItem::LvmPartition(l)) = m.get(id) else {
                    return Err("not a logical volume".into());
                };
                let label = m.label(id);
                let (vg, name) = label.split_once('/').unwrap_or(("", ""));
                let lvm = data::<Lvm>(d)?;
                let Some(lv) = lvm.lv(vg, name) else {
                    let seen: Vec<String> = lvm
                        .lvs
                        .iter()
                        .map(|l| format!("{}/{} {}", l.vg, l.name, l.size.unwrap_or(0)))
                        .collect();
                    return Err(evidence_lines(
                        &format!("no logical volume {label}; LVs"),
                        &seen,
                        EVIDENCE,
                    ));
                };
                let g = lvm.vg(vg);
                let extent = g.and_then(|g| g.extent).unwrap_or(4 << 20);
                let size = lv.size.unwrap_or(0);
                match l.size {
                    Some(want) if size >= want && size - want < extent => Ok(()),
                    Some(_) => Err(format!("{label} is {size} bytes (extent {extent})")),
                    None if g.and_then(|g| g.free) == Some(0) => Ok(()),
                    None => Err(format!(
                        "{label} is {size} bytes and {vg} still has {} bytes free",
                        g.and_then(|g| g.free).map_or("?".into(), |f| f.to_string())
                    )),
                }
            }
            What::Crypttab { id } => {
                let Some(StorageItem::DmCrypt(c)) = m.get(id) else {
                    return Err("not a dm_crypt".into());
                };
                let tab = data::<Crypttab>(d)?;
                let lines: Vec<String> = tab.entries.iter().map(|e| e.line.clone()).collect();
                let Some(e) = tab.entries.iter().find(|e| e.name == c.dm_name) else {
                    return Err(evidence_lines(
                        &format!("no entry {}; crypttab has", c.dm_name),
                        &lines,
                        EVIDENCE,
                    ));
                };
                let k = device(m, d, &c.volume)?;
                match spec_device(d, &e.source) {
                    Some(s) if s == k => Ok(()),
                    _ => Err(format!("`{}`: {} does not name {k}", e.line, e.source)),
                }
            }
            What::CryptLuks { id } => {
                let Some(StorageItem::DmCrypt(c)) = m.get(id) else {
                    return Err("not a dm_crypt".into());
                };
                let k = device(m, d, &c.volume)?;
                if fs_tag(d, &k, FsTag::Type).as_deref() == Some("crypto_LUKS") {
                    Ok(())
                } else {
                    Err(about(d, &k))
                }
            }
            What::CryptOpen { id } => {
                let Some(StorageItem::DmCrypt(c)) = m.get(id) else {
                    return Err("not a dm_crypt".into());
                };
                let vol = device(m, d, &c.volume)?;
                let k = device(m, d, id)?;
                let lsblk = data::<Lsblk>(d)?;
                let below = lsblk.get(&k).map(|b| b.parents.clone()).unwrap_or_default();
                let below = if below.is_empty() {
                    d.get::<DmTable>()
                        .ok()
                        .and_then(|t| {
                            t.devs
                                .iter()
                                .find(|x| x.kname == k)
                                .map(|x| x.below.clone())
                        })
                        .unwrap_or_default()
                } else {
                    below
                };
                if below.contains(&vol) {
                    Ok(())
                } else {
                    Err(format!(
                        "{} is over [{}], not {vol}",
                        about(d, &k),
                        below.join(", ")
                    ))
                }
            }
            What::BcacheBacking { id } => device(m, d, id).map(|_| ()),
            What::BcacheCache { id } => {
                let Some(StorageItem::Bcache(b)) = m.get(id) else {
                    return Err("not a bcache".into());
                };
                let k = device(m, d, id)?;
                let cache = device(m, d, b.cache_device.as_deref().unwrap_or_default())?;
                let all = data::<Bcaches>(d)?;
                let x = all
                    .devs
                    .iter()
                    .find(|x| x.kname == k)
                    .ok_or("no bcache facts")?;
                if x.cset.is_some() && x.caches.contains(&cache) {
                    Ok(())
                } else {
                    Err(format!("{}; the cache device is {cache}", x.describe()))
                }
            }
            What::BcacheMode { id } => {
                let Some(StorageItem::Bcache(b)) = m.get(id) else {
                    return Err("not a bcache".into());
                };
                let k = device(m, d, id)?;
                let all = data::<Bcaches>(d)?;
                let x = all
                    .devs
                    .iter()
                    .find(|x| x.kname == k)
                    .ok_or("no bcache facts")?;
                if x.cache_mode == b.cache_mode {
                    Ok(())
                } else {
                    Err(x.describe())
                }
            }
        }
    }
}
