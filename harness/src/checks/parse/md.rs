//! RAID arrays (`md/<kname>.export`: `mdadm --detail --export` plus the array's sysfs) and
//! bcache devices (`bcache/<kname>.export`, from sysfs).

use super::{MAX_ITEMS, key_values};
use crate::checks::collected::{Artifact, Collected, DataError};

pub const MD_DIR: &str = "vmtest/md";
pub const BCACHE_DIR: &str = "vmtest/bcache";

/// One member of an array, from sysfs (`md/dev-<kname>/{slot,state}`).
#[derive(Debug, Clone, PartialEq)]
pub struct MdMember {
    pub kname: String,
    /// The member's slot in the array; None for a spare.
    pub slot: Option<u32>,
    /// `in_sync`, `spare`, `faulty`, ... (comma separated).
    pub state: String,
}

impl MdMember {
    pub fn is_spare(&self) -> bool {
        self.slot.is_none() && !self.state.contains("faulty")
    }
}

/// One md array.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MdArray {
    pub kname: String,
    /// `raid5`, `raid1`, `linear`, ... (mdadm's MD_LEVEL, else sysfs).
    pub level: Option<String>,
    /// Active slots (MD_DEVICES, else sysfs raid_disks).
    pub raid_disks: Option<u32>,
    /// sysfs `array_state`: `clean`, `active`, `read-auto`, `inactive`, ...
    pub array_state: Option<String>,
    pub degraded: Option<u32>,
    pub sync_action: Option<String>,
    /// `/dev/md/<devname>` (MD_DEVNAME).
    pub devname: Option<String>,
    /// The array's name in its superblock (`host:name`, MD_NAME).
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub metadata: Option<String>,
    pub members: Vec<MdMember>,
}

impl MdArray {
    pub fn parse(kname: &str, text: &str) -> MdArray {
        let mut a = MdArray {
            kname: kname.to_string(),
            ..Default::default()
        };
        let mut roles: Vec<(String, String)> = Vec::new();
        for (k, v) in key_values(text) {
            let v_opt = Some(v.clone()).filter(|v| !v.is_empty());
            match k.as_str() {
                "MD_LEVEL" => a.level = v_opt,
                "SYSFS_LEVEL" => a.level = a.level.take().or(v_opt),
                "MD_DEVICES" => a.raid_disks = v.parse().ok(),
                "SYSFS_RAID_DISKS" => a.raid_disks = a.raid_disks.or(v.parse().ok()),
                "SYSFS_ARRAY_STATE" => a.array_state = v_opt,
                "SYSFS_DEGRADED" => a.degraded = v.parse().ok(),
                "SYSFS_SYNC_ACTION" => a.sync_action = v_opt,
                "MD_DEVNAME" => a.devname = v_opt,
                "MD_NAME" => a.name = v_opt,
                "MD_UUID" => a.uuid = v_opt,
                "MD_METADATA" => a.metadata = v_opt,
                _ => {
                    if let Some(m) = k.strip_prefix("SYSFS_MEMBER_") {
                        let (slot, state) = v.split_once(' ').unwrap_or((v.as_str(), ""));
                        a.members.push(MdMember {
                            kname: m.to_string(),
                            slot: slot.parse().ok(),
                            state: state.to_string(),
                        });
                    } else if let Some(dev) = k
                        .strip_prefix("MD_DEVICE_dev_")
                        .and_then(|d| d.strip_suffix("_ROLE"))
                    {
                        roles.push((dev.to_string(), v));
                    }
                }
            }
        }
        // Without sysfs, mdadm's roles: a number is a slot, `spare` a spare.
        if a.members.is_empty() {
            a.members = roles
                .into_iter()
                .map(|(dev, role)| MdMember {
                    kname: dev,
                    slot: role.parse().ok(),
                    state: role,
                })
                .collect();
        }
        a.members.truncate(MAX_ITEMS);
        a
    }

    /// Members holding a slot (active or being rebuilt).
    pub fn active(&self) -> Vec<&MdMember> {
        self.members.iter().filter(|m| m.slot.is_some()).collect()
    }

    pub fn spares(&self) -> Vec<&MdMember> {
        self.members.iter().filter(|m| m.is_spare()).collect()
    }

    /// The name given at creation: the part of the superblock's `host:name` after the
    /// colon, else the /dev/md/ name.
    pub fn short_name(&self) -> Option<&str> {
        match &self.name {
            Some(n) => Some(n.rsplit_once(':').map_or(n.as_str(), |(_, s)| s)),
            None => self.devname.as_deref(),
        }
    }

    pub fn describe(&self) -> String {
        let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| match (m.slot, m.state.as_str()) {
                (Some(s), st) => format!("{}[{s}] {st}", m.kname),
                (None, "spare" | "") => format!("{} spare", m.kname),
                (None, st) => format!("{} spare ({st})", m.kname),
            })
            .collect();
        format!(
            "{}: level {}, name {}, state {}, raid disks {}, members: {}",
            self.kname,
            o(&self.level),
            o(&self.name),
            o(&self.array_state),
            self.raid_disks.map_or("?".into(), |n| n.to_string()),
            members.join(", ")
        )
    }
}

/// Every md array collected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MdArrays {
    pub arrays: Vec<MdArray>,
}

impl Artifact for MdArrays {
    fn load(c: &Collected) -> Result<Self, DataError> {
        let mut arrays = Vec::new();
        for f in c.list(MD_DIR) {
            if let Some(k) = f.strip_suffix(".export") {
                arrays.push(MdArray::parse(k, &c.text(&format!("{MD_DIR}/{f}"))?));
            }
        }
        Ok(MdArrays { arrays })
    }
}

/// One bcache device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bcache {
    pub kname: String,
    /// The backing device's kernel name.
    pub backing: Option<String>,
    /// The mode in effect (the bracketed one of sysfs `cache_mode`).
    pub cache_mode: Option<String>,
    /// `clean`, `dirty`, `no cache`, ...
    pub state: Option<String>,
    /// The cache set it is attached to.
    pub cset: Option<String>,
    /// The cache devices of that set.
    pub caches: Vec<String>,
}

impl Bcache {
    pub fn parse(kname: &str, text: &str) -> Bcache {
        let mut b = Bcache {
            kname: kname.to_string(),
            ..Default::default()
        };
        for (k, v) in key_values(text) {
            let v_opt = Some(v.clone()).filter(|v| !v.is_empty());
            match k.as_str() {
                "BACKING" => b.backing = v_opt,
                "CACHE_MODE" => {
                    // `writethrough [writeback] writearound none`
                    b.cache_mode = v
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
                        .map(str::to_string)
                        .or(v_opt);
                }
                "STATE" => b.state = v_opt,
                "CSET" => b.cset = v_opt,
                "CACHE" => b.caches.extend(v_opt),
                _ => {}
            }
        }
        b.caches.truncate(MAX_ITEMS);
        b
    }

    pub fn describe(&self) -> String {
        let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        format!(
            "{}: backing {}, cache set {}, caches [{}], mode {}, state {}",
            self.kname,
            o(&self.backing),
            o(&self.cset),
            self.caches.join(", "),
            o(&self.cache_mode),
            o(&self.state)
        )
    }
}

/// Every bcache device collected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bcaches {
    pub devs: Vec<Bcache>,
}

impl Artifact for Bcaches {
    fn load(c: &Collected) -> Result<Self, DataError> {
        let mut devs = Vec::new();
        for f in c.list(BCACHE_DIR) {
            if let Some(k) = f.strip_suffix(".export") {
                devs.push(Bcache::parse(k, &c.text(&format!("{BCACHE_DIR}/{f}"))?));
            }
        }
        Ok(Bcaches { devs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md_export_with_sysfs() {
        let a = MdArray::parse(
            "md127",
            "MD_LEVEL=raid5\nMD_DEVICES=3\nMD_METADATA=1.2\nMD_UUID=a:b:c:d\nMD_DEVNAME=os-raid1\nMD_NAME=raid5boot:os-raid1\n\
             MD_DEVICE_dev_vda2_ROLE=0\nMD_DEVICE_dev_vda2_DEV=/dev/vda2\nSYSFS_ARRAY_STATE=clean\nSYSFS_DEGRADED=0\n\
             SYSFS_MEMBER_vda2=0 in_sync\nSYSFS_MEMBER_vdb1=1 in_sync\nSYSFS_MEMBER_vdc1=2 spare\nSYSFS_MEMBER_vdd1=none spare\n",
        );
        assert_eq!(a.level.as_deref(), Some("raid5"));
        assert_eq!(a.raid_disks, Some(3));
        assert_eq!(a.short_name(), Some("os-raid1"));
        assert_eq!(a.active().len(), 3, "a member being rebuilt holds its slot");
        assert_eq!(a.spares().len(), 1);
        assert_eq!(a.spares()[0].kname, "vdd1");
        // mdadm's roles when sysfs is missing.
        let b = MdArray::parse(
            "md0",
            "MD_LEVEL=raid1\nMD_DEVICE_dev_vdb_ROLE=0\nMD_DEVICE_dev_vdc_ROLE=spare\n",
        );
        assert_eq!((b.active().len(), b.spares().len()), (1, 1));
        assert!(MdArray::parse("md1", "garbage\n=\n").level.is_none());
    }

    #[test]
    fn bcache_facts() {
        let b = Bcache::parse(
            "bcache0",
            "BACKING=vdb1\nCACHE_MODE=writethrough [writeback] writearound none\nSTATE=clean\nCSET=1234\nCACHE=vdc\n",
        );
        assert_eq!(b.cache_mode.as_deref(), Some("writeback"));
        assert_eq!(b.caches, ["vdc"]);
        assert_eq!(b.backing.as_deref(), Some("vdb1"));
        assert_eq!(Bcache::parse("bcache1", "CACHE_MODE=\n").cache_mode, None);
    }
}
