//! Look-ups the storage probe's arms share: a partition's size, a filesystem's tag, a
//! mount's fstab entry, a raid entry's array, the kernel names of config entries.

use super::probe::EVIDENCE;
use super::resolve::{device, spec_device};
use super::{Model, kernel_fstype};
use crate::checks::parse::block::{Blkid, Lsblk, PartTables};
use crate::checks::parse::evidence_lines;
use crate::checks::parse::md::{MdArray, MdArrays};
use crate::checks::parse::mounts::{Fstab, FstabEntry};
use crate::checks::{Collected, DataError};
use crate::config::StorageItem;

pub(super) fn data<A: crate::checks::Artifact>(d: &Collected) -> Result<std::rc::Rc<A>, String> {
    d.get::<A>().map_err(|e: DataError| e.to_string())
}

/// One line about device `kname` from lsblk, for evidence.
pub(super) fn about(d: &Collected, kname: &str) -> String {
    match d.get::<Lsblk>() {
        Ok(l) => l
            .get(kname)
            .map(|b| b.describe())
            .unwrap_or_else(|| format!("{kname} (not in lsblk)")),
        Err(e) => format!("{kname} ({e})"),
    }
}

/// A partition's size in bytes: from its table, else lsblk.
pub(super) fn part_size(d: &Collected, m: &Model, disk_id: &str, k: &str) -> Result<u64, String> {
    let parent = device(m, d, disk_id)?;
    if let Ok(t) = d.get::<PartTables>()
        && let Some(Ok(t)) = t.tables.get(&parent)
        && let Some(e) = t.parts.iter().find(|e| e.kname == k)
    {
        return Ok(e.size_bytes);
    }
    data::<Lsblk>(d)?
        .get(k)
        .and_then(|b| b.size)
        .ok_or_else(|| format!("{k}: size not collected"))
}

pub(super) enum FsTag {
    Type,
    Label,
    Uuid,
}

/// A filesystem fact of a device: lsblk's (from udev), else blkid's.
pub(super) fn fs_tag(d: &Collected, k: &str, tag: FsTag) -> Option<String> {
    let from_lsblk = d.get::<Lsblk>().ok().and_then(|l| {
        let b = l.get(k)?;
        match tag {
            FsTag::Type => b.fstype.clone(),
            FsTag::Label => b.label.clone(),
            FsTag::Uuid => b.uuid.clone(),
        }
    });
    from_lsblk.or_else(|| {
        let b = d.get::<Blkid>().ok()?;
        let t = match tag {
            FsTag::Type => "TYPE",
            FsTag::Label => "LABEL",
            FsTag::Uuid => "UUID",
        };
        b.tag(k, t).map(str::to_string)
    })
}

/// The type a mount's fstab entry carries.
pub(super) fn mount_fstype(m: &Model, id: &str) -> String {
    let Some(mt) = m.mount(id) else {
        return String::new();
    };
    let t = mt
        .fstype
        .clone()
        .or_else(|| {
            mt.device
                .as_deref()
                .and_then(|x| m.format(x))
                .map(|f| f.fstype.clone())
        })
        .unwrap_or_default();
    kernel_fstype(&t).to_string()
}

/// The fstab entry of mount `id`: at its path (swap: `none`), and among several (swaps)
/// the one naming its device.
pub(super) fn fstab_entry(
    m: &Model,
    d: &Collected,
    id: &str,
) -> Result<(FstabEntry, std::rc::Rc<Fstab>), String> {
    let mt = m.mount(id).ok_or("not a mount")?;
    let fstab = data::<Fstab>(d)?;
    let swap = mount_fstype(m, id) == "swap";
    let path = mt
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "none".into());
    let at: Vec<&FstabEntry> = fstab
        .entries
        .iter()
        .filter(|e| e.file == path || (swap && path == "none" && e.vfstype == "swap"))
        .collect();
    if at.is_empty() {
        return Err(evidence_lines(
            &format!("no entry for {path}; fstab has"),
            &fstab.lines(),
            EVIDENCE,
        ));
    }
    let mine = mt
        .device
        .as_deref()
        .and_then(|x| m.format(x))
        .and_then(|f| device(m, d, &f.volume).ok());
    let pick = at
        .iter()
        .find(|e| mine.is_some() && spec_device(d, &e.spec) == mine)
        .unwrap_or(&at[0]);
    Ok(((*pick).clone(), fstab.clone()))
}

/// The config's raid entry and the array the installed system made of it.
pub(super) fn raid<'m>(
    m: &'m Model,
    d: &Collected,
    id: &str,
) -> Result<(&'m crate::config::RaidItem, MdArray), String> {
    let Some(StorageItem::Raid(r)) = m.get(id) else {
        return Err("not a raid".into());
    };
    let k = device(m, d, id)?;
    let arrays = data::<MdArrays>(d)?;
    let a = arrays
        .arrays
        .iter()
        .find(|a| a.kname == k)
        .cloned()
        .ok_or_else(|| format!("{k}: no mdadm facts collected"))?;
    Ok((r, a))
}

/// The sorted kernel names of config entries.
pub(super) fn knames(m: &Model, d: &Collected, ids: &[String]) -> Result<Vec<String>, String> {
    let mut v = ids
        .iter()
        .map(|i| device(m, d, i))
        .collect::<Result<Vec<_>, _>>()?;
    v.sort();
    Ok(v)
}
