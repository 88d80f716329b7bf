//! Block devices: `lsblk -J -b -O` (every device with its holders), `sfdisk -J` per
//! device (partition tables), the /dev links (`links.txt`, curtin's `ls_al_byid`) and
//! `blkid -o export` (curtin's `blkid.out`).

use std::collections::BTreeMap;

use super::{MAX_ITEMS, field, field_u64, json, key_values, kname_of};
use crate::checks::collected::{Artifact, Collected, DataError};

pub const LSBLK: &str = "vmtest/lsblk.json";
pub const SFDISK_DIR: &str = "vmtest/sfdisk";
pub const LINKS: &str = "vmtest/links.txt";
pub const LS_BYID: &str = "ls_al_byid";
pub const BLKID: &str = "blkid.out";

/// One block device as lsblk shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockDev {
    /// Kernel name (`vda1`, `dm-0`, `md127`).
    pub kname: String,
    /// lsblk's name (`vg0-root` for a dm device).
    pub name: String,
    pub path: Option<String>,
    /// `disk`, `part`, `raid5`, `lvm`, `crypt`, ...
    pub kind: String,
    pub size: Option<u64>,
    pub fstype: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub pttype: Option<String>,
    pub parttype: Option<String>,
    pub partuuid: Option<String>,
    pub mountpoints: Vec<String>,
    /// The devices this one is made of (its parents in lsblk's tree): a partition's
    /// disk, an array's members, a logical volume's physical volumes.
    pub parents: Vec<String>,
}

impl BlockDev {
    /// One line of evidence.
    pub fn describe(&self) -> String {
        let mut s = format!("{} ({})", self.kname, self.kind);
        for (k, v) in [
            ("name", Some(&self.name).filter(|n| **n != self.kname)),
            ("serial", self.serial.as_ref()),
            ("fstype", self.fstype.as_ref()),
            ("label", self.label.as_ref()),
            ("uuid", self.uuid.as_ref()),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(" {k}={v}"));
            }
        }
        if let Some(sz) = self.size {
            s.push_str(&format!(" size={sz}"));
        }
        if !self.mountpoints.is_empty() {
            s.push_str(&format!(" mounted={}", self.mountpoints.join(",")));
        }
        s
    }
}

/// Every device lsblk listed, once each (an array under each of its members in lsblk's
/// tree is one device with several parents), in the order first seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lsblk {
    pub devs: Vec<BlockDev>,
}

impl Lsblk {
    pub fn parse(text: &str) -> Result<Lsblk, DataError> {
        let v = json(LSBLK, text)?;
        let top = v
            .get("blockdevices")
            .and_then(|b| b.as_array())
            .ok_or_else(|| DataError::malformed(LSBLK, "no `blockdevices` array"))?;
        let mut out = Lsblk::default();
        let mut stack: Vec<(&serde_json::Value, Option<String>)> =
            top.iter().rev().map(|d| (d, None)).collect();
        let mut seen = 0usize;
        while let Some((d, parent)) = stack.pop() {
            seen += 1;
            if seen > MAX_ITEMS {
                return Err(DataError::malformed(
                    LSBLK,
                    format!("more than {MAX_ITEMS} entries"),
                ));
            }
            let Some(kname) = field(d, "kname").or_else(|| field(d, "name")) else {
                return Err(DataError::malformed(LSBLK, "a device without a name"));
            };
            if let Some(children) = d.get("children").and_then(|c| c.as_array()) {
                for c in children.iter().rev() {
                    stack.push((c, Some(kname.clone())));
                }
            }
            if let Some(known) = out.devs.iter_mut().find(|x| x.kname == kname) {
                if let Some(p) = parent
                    && !known.parents.contains(&p)
                {
                    known.parents.push(p);
                }
                continue;
            }
            let mountpoints = match d.get("mountpoints").and_then(|m| m.as_array()) {
                Some(a) => a
                    .iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect(),
                None => field(d, "mountpoint").into_iter().collect(),
            };
            out.devs.push(BlockDev {
                name: field(d, "name").unwrap_or_else(|| kname.clone()),
                path: field(d, "path"),
                kind: field(d, "type").unwrap_or_default(),
                size: field_u64(d, "size"),
                fstype: field(d, "fstype"),
                label: field(d, "label"),
                uuid: field(d, "uuid"),
                serial: field(d, "serial"),
                wwn: field(d, "wwn"),
                pttype: field(d, "pttype"),
                parttype: field(d, "parttype"),
                partuuid: field(d, "partuuid"),
                mountpoints,
                parents: parent.into_iter().collect(),
                kname,
            });
        }
        Ok(out)
    }

    pub fn get(&self, kname: &str) -> Option<&BlockDev> {
        self.devs.iter().find(|d| d.kname == kname)
    }

    /// The device a `/dev` path names: by lsblk's path (`/dev/mapper/vg0-root`), else by
    /// its last component as a kernel name (`/dev/vda1`).
    pub fn by_path(&self, path: &str) -> Option<&BlockDev> {
        self.devs
            .iter()
            .find(|d| d.path.as_deref() == Some(path))
            .or_else(|| {
                path.strip_prefix("/dev/")
                    .filter(|k| !k.contains('/'))
                    .and_then(|k| self.get(k))
            })
    }

    /// The devices that hold `kname` (its children in lsblk's tree).
    pub fn holders(&self, kname: &str) -> Vec<&BlockDev> {
        self.devs
            .iter()
            .filter(|d| d.parents.iter().any(|p| p == kname))
            .collect()
    }
}

impl Artifact for Lsblk {
    fn load(c: &Collected) -> Result<Self, DataError> {
        Lsblk::parse(&c.text(LSBLK)?)
    }
}

/// One partition of a table as sfdisk shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartEntry {
    /// Kernel name of the partition (`vda1`).
    pub kname: String,
    pub number: u32,
    pub start_bytes: u64,
    pub size_bytes: u64,
    /// A GPT type GUID (upper case) or an MBR type in hex (`83`).
    pub ptype: String,
    /// MBR boot indicator.
    pub bootable: bool,
}

/// A device's partition table (`sfdisk -J`).
#[derive(Debug, Clone, PartialEq)]
pub struct PartTable {
    /// `gpt` or `dos`.
    pub label: String,
    pub sector_size: u64,
    pub parts: Vec<PartEntry>,
}

impl PartTable {
    pub fn parse(file: &str, disk: &str, text: &str) -> Result<PartTable, DataError> {
        let v = json(file, text)?;
        let t = v
            .get("partitiontable")
            .ok_or_else(|| DataError::malformed(file, "no `partitiontable`"))?;
        let label = field(t, "label").ok_or_else(|| DataError::malformed(file, "no `label`"))?;
        let sector_size = field_u64(t, "sectorsize").unwrap_or(512);
        if !(512..=65536).contains(&sector_size) {
            return Err(DataError::malformed(
                file,
                format!("sector size {sector_size}"),
            ));
        }
        let mut parts = Vec::new();
        for p in t
            .get("partitions")
            .and_then(|p| p.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .take(MAX_ITEMS)
        {
            let node = field(p, "node").unwrap_or_default();
            let kname = kname_of(&node).to_string();
            let Some(number) = partition_number(disk, &kname) else {
                return Err(DataError::malformed(
                    file,
                    format!("partition `{node}` is not numbered as one of {disk}'s"),
                ));
            };
            let (start, size) = (field_u64(p, "start"), field_u64(p, "size"));
            let (Some(start), Some(size)) = (start, size) else {
                return Err(DataError::malformed(
                    file,
                    format!("partition `{node}` without start or size"),
                ));
            };
            parts.push(PartEntry {
                kname,
                number,
                start_bytes: start.saturating_mul(sector_size),
                size_bytes: size.saturating_mul(sector_size),
                ptype: field(p, "type").unwrap_or_default().to_ascii_uppercase(),
                bootable: p.get("bootable").and_then(|b| b.as_bool()) == Some(true),
            });
        }
        Ok(PartTable {
            label,
            sector_size,
            parts,
        })
    }

    pub fn part(&self, number: u32) -> Option<&PartEntry> {
        self.parts.iter().find(|p| p.number == number)
    }
}

/// The number of partition `part` of disk `disk` from the kernel's naming: `vda1` of
/// `vda`, `nvme0n1p2` of `nvme0n1`, `md127p1` of `md127`.
pub fn partition_number(disk: &str, part: &str) -> Option<u32> {
    let rest = part.strip_prefix(disk)?;
    let digits = if disk.ends_with(|c: char| c.is_ascii_digit()) {
        rest.strip_prefix('p')?
    } else {
        rest.strip_prefix('p').unwrap_or(rest)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// The partition tables of every device that has one, by kernel name.
#[derive(Debug, Clone, Default)]
pub struct PartTables {
    pub tables: BTreeMap<String, Result<PartTable, DataError>>,
}

impl Artifact for PartTables {
    fn load(c: &Collected) -> Result<Self, DataError> {
        let mut tables = BTreeMap::new();
        for f in c.list(SFDISK_DIR) {
            let Some(disk) = f.strip_suffix(".json") else {
                continue;
            };
            let file = format!("{SFDISK_DIR}/{f}");
            let t = c
                .text(&file)
                .and_then(|text| PartTable::parse(&file, disk, &text));
            tables.insert(disk.to_string(), t);
        }
        Ok(PartTables { tables })
    }
}

/// The links under /dev the collect script listed (`/dev/disk/by-id/virtio-x` →
/// `vda`), by the link's full path; the target is a kernel name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Links {
    pub links: BTreeMap<String, String>,
}

impl Links {
    /// `links.txt`: `PATH<TAB>TARGET` per line.
    pub fn parse(text: &str) -> Links {
        let links = text
            .lines()
            .take(MAX_ITEMS)
            .filter_map(|l| l.split_once('\t'))
            .filter(|(p, t)| p.starts_with("/dev/") && !t.is_empty())
            .map(|(p, t)| (p.to_string(), kname_of(t).to_string()))
            .collect();
        Links { links }
    }

    /// curtin's `ls_al_byid` (`ls -al /dev/disk/by-id/`): `... NAME -> ../../vda`.
    pub fn parse_ls(dir: &str, text: &str) -> Links {
        let links = text
            .lines()
            .take(MAX_ITEMS)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let i = f.iter().position(|x| *x == "->")?;
                let name = f.get(i.checked_sub(1)?)?;
                let target = f.get(i + 1)?;
                Some((format!("{dir}/{name}"), kname_of(target).to_string()))
            })
            .collect();
        Links { links }
    }

    /// Where the link `path` points (a kernel name).
    pub fn target(&self, path: &str) -> Option<&str> {
        self.links.get(path).map(String::as_str)
    }

    /// The links in `dir` (`/dev/disk/by-id`) pointing at `kname`, as names in `dir`.
    pub fn names_for(&self, dir: &str, kname: &str) -> Vec<String> {
        let prefix = format!("{dir}/");
        self.links
            .iter()
            .filter(|(_, t)| *t == kname)
            .filter_map(|(p, _)| p.strip_prefix(&prefix))
            .filter(|n| !n.contains('/'))
            .map(str::to_string)
            .collect()
    }

    /// The names of every link in `dir`, each with its target.
    pub fn in_dir(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{dir}/");
        self.links
            .iter()
            .filter_map(|(p, t)| p.strip_prefix(&prefix).map(|n| format!("{n} -> {t}")))
            .filter(|n| !n.contains('/'))
            .collect()
    }
}

impl Artifact for Links {
    /// The harness's `links.txt`, else the by-id links of curtin's `ls_al_byid`.
    fn load(c: &Collected) -> Result<Self, DataError> {
        match c.text(LINKS) {
            Ok(t) => Ok(Links::parse(&t)),
            Err(e @ DataError::Missing { .. }) => match c.text(LS_BYID) {
                Ok(t) => Ok(Links::parse_ls("/dev/disk/by-id", &t)),
                Err(_) => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}

/// `blkid -o export`: per device (`DEVNAME`) its tags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blkid {
    pub devs: BTreeMap<String, BTreeMap<String, String>>,
}

impl Blkid {
    pub fn parse(text: &str) -> Blkid {
        let mut devs = BTreeMap::new();
        let mut cur: BTreeMap<String, String> = BTreeMap::new();
        const DEVNAME: &str = "DEVNAME";
        let mut flush = |cur: &mut BTreeMap<String, String>| {
            if let Some(d) = cur.get(DEVNAME) {
                devs.insert(kname_of(d).to_string(), std::mem::take(cur));
            }
            cur.clear();
        };
        for l in text.lines().take(MAX_ITEMS) {
            if l.trim().is_empty() {
                flush(&mut cur);
            } else if let Some((k, v)) = key_values(l).pop() {
                cur.insert(k, v);
            }
        }
        flush(&mut cur);
        Blkid { devs }
    }

    pub fn tag(&self, kname: &str, tag: &str) -> Option<&str> {
        self.devs.get(kname)?.get(tag).map(String::as_str)
    }
}

impl Artifact for Blkid {
    fn load(c: &Collected) -> Result<Self, DataError> {
        Ok(Blkid::parse(&c.text(BLKID)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LSBLK_TREE: &str = r#"{"blockdevices": [
      {"name": "vda", "kname": "vda", "path": "/dev/vda", "type": "disk", "size": 10737418240,
       "serial": "disk-a", "pttype": "gpt", "mountpoints": [null],
       "children": [
         {"name": "vda1", "kname": "vda1", "type": "part", "size": 1048576, "mountpoints": [null]},
         {"name": "vda2", "kname": "vda2", "type": "part", "size": "3221225472",
          "fstype": "linux_raid_member", "mountpoints": [null],
          "children": [{"name": "md127", "kname": "md127", "type": "raid5", "fstype": "ext4",
                        "mountpoints": ["/"]}]}]},
      {"name": "vdb", "kname": "vdb", "type": "disk", "serial": "disk-b", "mountpoints": [null],
       "children": [{"name": "vdb1", "kname": "vdb1", "type": "part",
          "children": [{"name": "md127", "kname": "md127", "type": "raid5", "mountpoints": ["/"]}]}]}
    ]}"#;

    #[test]
    fn lsblk_flattens_the_tree_with_every_parent() {
        let l = Lsblk::parse(LSBLK_TREE).unwrap();
        let names: Vec<&str> = l.devs.iter().map(|d| d.kname.as_str()).collect();
        assert_eq!(names, ["vda", "vda1", "vda2", "md127", "vdb", "vdb1"]);
        let md = l.get("md127").unwrap();
        assert_eq!(md.parents, ["vda2", "vdb1"]);
        assert_eq!(md.mountpoints, ["/"]);
        assert_eq!(l.get("vda2").unwrap().size, Some(3221225472));
        assert_eq!(l.get("vda").unwrap().serial.as_deref(), Some("disk-a"));
        assert!(l.get("vda").unwrap().mountpoints.is_empty());
        assert_eq!(l.by_path("/dev/vda1").unwrap().kname, "vda1");
        assert_eq!(l.holders("vdb1")[0].kname, "md127");
    }

    #[test]
    fn lsblk_bad_input_is_an_error_not_a_panic() {
        for bad in [
            "",
            "[]",
            "{\"blockdevices\": 3}",
            "{\"blockdevices\": [{\"type\": \"disk\"}]}",
            &"[".repeat(100_000),
        ] {
            assert!(Lsblk::parse(bad).is_err(), "{bad:.40}");
        }
        let many = format!(
            "{{\"blockdevices\": [{}]}}",
            (0..MAX_ITEMS + 1)
                .map(|i| format!("{{\"kname\": \"d{i}\"}}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(Lsblk::parse(&many).is_err());
    }

    #[test]
    fn sfdisk_tables() {
        let gpt = r#"{"partitiontable": {"label": "gpt", "device": "/dev/vda", "unit": "sectors",
          "sectorsize": 512, "partitions": [
            {"node": "/dev/vda1", "start": 2048, "size": 2048, "type": "21686148-6449-6e6f-744e-656564454649"},
            {"node": "/dev/vda2", "start": 4096, "size": 6291456, "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}]}}"#;
        let t = PartTable::parse("f", "vda", gpt).unwrap();
        assert_eq!(t.label, "gpt");
        assert_eq!(t.part(1).unwrap().size_bytes, 1 << 20);
        assert_eq!(
            t.part(1).unwrap().ptype,
            "21686148-6449-6E6F-744E-656564454649"
        );
        assert_eq!(t.part(2).unwrap().start_bytes, 4096 * 512);
        let dos = r#"{"partitiontable": {"label": "dos", "partitions": [
            {"node": "/dev/nvme0n1p1", "start": 2048, "size": 20480, "type": "83", "bootable": true}]}}"#;
        let t = PartTable::parse("f", "nvme0n1", dos).unwrap();
        assert!(t.part(1).unwrap().bootable);
        assert!(PartTable::parse("f", "vda", dos).is_err(), "not vda's");
        assert!(PartTable::parse("f", "vda", "{\"partitiontable\": {}}").is_err());
        assert!(
            PartTable::parse(
                "f",
                "vda",
                "{\"partitiontable\": {\"label\": \"gpt\", \"sectorsize\": 1}}"
            )
            .is_err()
        );
    }

    #[test]
    fn partition_numbers_from_kernel_names() {
        assert_eq!(partition_number("vda", "vda10"), Some(10));
        assert_eq!(partition_number("nvme0n1", "nvme0n1p3"), Some(3));
        assert_eq!(partition_number("md127", "md127p1"), Some(1));
        assert_eq!(partition_number("md127", "md1271"), None);
        assert_eq!(partition_number("vda", "vdb1"), None);
        assert_eq!(partition_number("vda", "vda"), None);
        assert_eq!(partition_number("vda", "vda0"), None);
    }

    #[test]
    fn links_and_blkid() {
        let l = Links::parse(
            "/dev/disk/by-id/virtio-disk-a\t../../vda\n/dev/disk/by-id/virtio-disk-a-part1\t../../vda1\n/dev/mapper/vg0-root\t../dm-0\nbroken\n",
        );
        assert_eq!(l.target("/dev/mapper/vg0-root"), Some("dm-0"));
        assert_eq!(l.names_for("/dev/disk/by-id", "vda"), ["virtio-disk-a"]);
        let ls = Links::parse_ls(
            "/dev/disk/by-id",
            "total 0\nlrwxrwxrwx 1 root root 9 Nov 24 23:00 virtio-disk-a -> ../../vda\n",
        );
        assert_eq!(ls.target("/dev/disk/by-id/virtio-disk-a"), Some("vda"));
        let b = Blkid::parse(
            "DEVNAME=/dev/vda1\nUUID=1-2\nTYPE=ext4\n\nDEVNAME=/dev/vda2\nTYPE=swap\n",
        );
        assert_eq!(b.tag("vda1", "TYPE"), Some("ext4"));
        assert_eq!(b.tag("vda2", "TYPE"), Some("swap"));
    }
}
