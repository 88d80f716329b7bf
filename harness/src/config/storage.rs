//! curtin's storage config (`storage: {version, config: [...]}`) as the harness reads it.
//!
//! Every entry type curtin knows is typed with the fields curtin's configs use, in the
//! value shapes curtin accepts (an integer 0/1 where curtin takes a boolean, a number or
//! a string for a partition number or RAID level, ...). Keys this model does not know
//! are the installer's business and pass through untouched (curtin validates its own
//! schema); an entry type it does not know is kept as [`StorageItem::Other`].
//!
//! Later checks derive what the installed system must show from this model.

use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::shapes::{de_bool01, de_size, de_size_opt, de_text_opt, de_u32_or_text};
use crate::yaml::{DeError, Node, from_node};

/// One entry of curtin's storage config.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageItem {
    Disk(DiskItem),
    Partition(PartitionItem),
    Format(FormatItem),
    Mount(MountItem),
    LvmVolgroup(LvmVolgroupItem),
    LvmPartition(LvmPartitionItem),
    Raid(RaidItem),
    Bcache(BcacheItem),
    DmCrypt(DmCryptItem),
    Zpool(ZpoolItem),
    Zfs(ZfsItem),
    Dasd(DasdItem),
    NvmeController(NvmeControllerItem),
    /// A type this model does not know (a newer curtin's, or `image`/`device`): passed
    /// to the installer; the script installer refuses it.
    Other {
        kind: String,
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DiskItem {
    pub id: String,
    #[serde(default)]
    pub ptable: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub wwn: Option<String>,
    /// `/dev/vdb`, `/dev/disk/by-id/...`, `iscsi:...`, or a device the config builds
    /// itself (`/dev/bcache1`).
    #[serde(default)]
    pub path: Option<String>,
    /// s390x DASD bus id.
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub wipe: Option<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
    /// curtin takes `true`/`false` or `1`/`0`.
    #[serde(default, deserialize_with = "de_bool01")]
    pub grub_device: Option<bool>,
    #[serde(default)]
    pub multipath: Option<String>,
    #[serde(default)]
    pub nvme_controller: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PartitionItem {
    pub id: String,
    pub device: String,
    /// An integer or a numeric string.
    #[serde(default, deserialize_with = "de_u32_or_text")]
    pub number: Option<u32>,
    /// Bytes.
    #[serde(deserialize_with = "de_size")]
    pub size: u64,
    #[serde(default)]
    pub flag: Option<String>,
    #[serde(default)]
    pub wipe: Option<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de_size_opt")]
    pub offset: Option<u64>,
    #[serde(default)]
    pub partition_type: Option<String>,
    #[serde(default)]
    pub partition_name: Option<String>,
    #[serde(default, deserialize_with = "de_bool01")]
    pub grub_device: Option<bool>,
    #[serde(default)]
    pub resize: Option<bool>,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub multipath: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FormatItem {
    pub id: String,
    pub volume: String,
    pub fstype: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub extra_options: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MountItem {
    pub id: String,
    /// The format entry mounted (absent for a `spec:` mount).
    #[serde(default)]
    pub device: Option<String>,
    /// The mount point, or `none` (swap).
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub options: Option<String>,
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub spec: Option<String>,
    #[serde(default, deserialize_with = "de_text_opt")]
    pub freq: Option<String>,
    #[serde(default, deserialize_with = "de_text_opt")]
    pub passno: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LvmVolgroupItem {
    pub id: String,
    pub name: String,
    pub devices: Vec<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub uuid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LvmPartitionItem {
    pub id: String,
    pub name: String,
    pub volgroup: String,
    /// Bytes; absent: the rest of the volume group.
    #[serde(default, deserialize_with = "de_size_opt")]
    pub size: Option<u64>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub wipe: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RaidItem {
    pub id: String,
    /// md device name (`md0` → /dev/md0).
    pub name: String,
    #[serde(deserialize_with = "de_raid_level")]
    pub raidlevel: RaidLevel,
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub spare_devices: Vec<String>,
    /// The id of an IMSM container this array lives in.
    #[serde(default)]
    pub container: Option<String>,
    /// Superblock version (`1.2`, `0.90`, `imsm`), as written.
    #[serde(default, deserialize_with = "de_text_opt")]
    pub metadata: Option<String>,
    /// The name mdadm records in the superblock (curtin's `--name`), when not `name`.
    #[serde(default)]
    pub mdname: Option<String>,
    #[serde(default)]
    pub ptable: Option<String>,
    #[serde(default)]
    pub wipe: Option<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub path: Option<String>,
}

/// A RAID level in the one spelling mdadm reports (`raid0` ... `raid10`, `container`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaidLevel {
    Raid0,
    Raid1,
    Raid4,
    Raid5,
    Raid6,
    Raid10,
    Container,
}

impl RaidItem {
    /// The array's name in its superblock: `mdname` when the config gives one (curtin
    /// creates the array with `mdadm --name=<mdname>`, and the installed system may then
    /// assemble it under another kernel name, md127), else the device name.
    pub fn array_name(&self) -> &str {
        self.mdname.as_deref().unwrap_or(&self.name)
    }
}

impl RaidLevel {
    /// curtin's spellings: 0 1 4 5 6 10, `raidN`, `N`, `linear`/`stripe` (0), `mirror`
    /// (1), `container`.
    pub fn parse(s: &str) -> Option<RaidLevel> {
        Some(match s {
            "0" | "raid0" | "linear" | "stripe" => RaidLevel::Raid0,
            "1" | "raid1" | "mirror" => RaidLevel::Raid1,
            "4" | "raid4" => RaidLevel::Raid4,
            "5" | "raid5" => RaidLevel::Raid5,
            "6" | "raid6" => RaidLevel::Raid6,
            "10" | "raid10" => RaidLevel::Raid10,
            "container" => RaidLevel::Container,
            _ => return None,
        })
    }

    /// As `mdadm --detail` reports it.
    pub fn mdadm_name(self) -> &'static str {
        match self {
            RaidLevel::Raid0 => "raid0",
            RaidLevel::Raid1 => "raid1",
            RaidLevel::Raid4 => "raid4",
            RaidLevel::Raid5 => "raid5",
            RaidLevel::Raid6 => "raid6",
            RaidLevel::Raid10 => "raid10",
            RaidLevel::Container => "container",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BcacheItem {
    pub id: String,
    #[serde(default)]
    pub backing_device: Option<String>,
    #[serde(default)]
    pub cache_device: Option<String>,
    /// writethrough, writeback, writearound or none.
    #[serde(default)]
    pub cache_mode: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DmCryptItem {
    pub id: String,
    pub volume: String,
    /// Name of the mapping (`/dev/mapper/<dm_name>`).
    pub dm_name: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub keyfile: Option<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ZpoolItem {
    pub id: String,
    /// Pool name.
    pub pool: String,
    pub vdevs: Vec<String>,
    #[serde(default)]
    pub mountpoint: Option<String>,
    #[serde(default)]
    pub default_features: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ZfsItem {
    pub id: String,
    /// The zpool entry's id.
    pub pool: String,
    /// Dataset name within the pool.
    pub volume: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DasdItem {
    pub id: String,
    pub device_id: String,
    #[serde(default, deserialize_with = "de_text_opt")]
    pub blocksize: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub disk_layout: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NvmeControllerItem {
    pub id: String,
    pub transport: String,
    #[serde(default)]
    pub tcp_addr: Option<String>,
    #[serde(default)]
    pub tcp_port: Option<u32>,
}

impl StorageItem {
    pub fn id(&self) -> &str {
        match self {
            StorageItem::Disk(x) => &x.id,
            StorageItem::Partition(x) => &x.id,
            StorageItem::Format(x) => &x.id,
            StorageItem::Mount(x) => &x.id,
            StorageItem::LvmVolgroup(x) => &x.id,
            StorageItem::LvmPartition(x) => &x.id,
            StorageItem::Raid(x) => &x.id,
            StorageItem::Bcache(x) => &x.id,
            StorageItem::DmCrypt(x) => &x.id,
            StorageItem::Zpool(x) => &x.id,
            StorageItem::Zfs(x) => &x.id,
            StorageItem::Dasd(x) => &x.id,
            StorageItem::NvmeController(x) => &x.id,
            StorageItem::Other { id, .. } => id,
        }
    }

    /// curtin's name for the entry's type (`lvm_volgroup`).
    pub fn kind(&self) -> &str {
        match self {
            StorageItem::Disk(_) => "disk",
            StorageItem::Partition(_) => "partition",
            StorageItem::Format(_) => "format",
            StorageItem::Mount(_) => "mount",
            StorageItem::LvmVolgroup(_) => "lvm_volgroup",
            StorageItem::LvmPartition(_) => "lvm_partition",
            StorageItem::Raid(_) => "raid",
            StorageItem::Bcache(_) => "bcache",
            StorageItem::DmCrypt(_) => "dm_crypt",
            StorageItem::Zpool(_) => "zpool",
            StorageItem::Zfs(_) => "zfs",
            StorageItem::Dasd(_) => "dasd",
            StorageItem::NvmeController(_) => "nvme_controller",
            StorageItem::Other { kind, .. } => kind,
        }
    }

    /// The ids this entry names, with the key naming each (so a dangling one is
    /// reported by its key).
    pub fn references(&self) -> Vec<(&'static str, &str)> {
        fn one<'a>(key: &'static str, v: &'a Option<String>) -> Vec<(&'static str, &'a str)> {
            v.iter().map(|s| (key, s.as_str())).collect()
        }
        fn many<'a>(key: &'static str, v: &'a [String]) -> Vec<(&'static str, &'a str)> {
            v.iter().map(|s| (key, s.as_str())).collect()
        }
        match self {
            StorageItem::Disk(d) => one("nvme_controller", &d.nvme_controller),
            StorageItem::Partition(p) => vec![("device", p.device.as_str())],
            StorageItem::Format(f) => vec![("volume", f.volume.as_str())],
            StorageItem::Mount(m) => one("device", &m.device),
            StorageItem::LvmVolgroup(g) => many("devices", &g.devices),
            StorageItem::LvmPartition(l) => vec![("volgroup", l.volgroup.as_str())],
            StorageItem::Raid(r) => {
                let mut v = many("devices", &r.devices);
                v.extend(many("spare_devices", &r.spare_devices));
                v.extend(one("container", &r.container));
                v
            }
            StorageItem::Bcache(b) => {
                let mut v = one("backing_device", &b.backing_device);
                v.extend(one("cache_device", &b.cache_device));
                v
            }
            StorageItem::DmCrypt(c) => vec![("volume", c.volume.as_str())],
            StorageItem::Zpool(z) => many("vdevs", &z.vdevs),
            StorageItem::Zfs(z) => vec![("pool", z.pool.as_str())],
            StorageItem::Dasd(_) | StorageItem::NvmeController(_) | StorageItem::Other { .. } => {
                Vec::new()
            }
        }
    }

    /// Reads one entry of `storage.config`; errors name the entry's keys by their path
    /// below the entry.
    pub fn from_node(n: &Node) -> Result<StorageItem, DeError> {
        let kind = match n.get("type") {
            Some(t) => t.as_str().ok_or_else(|| DeError {
                mark: Some(t.mark),
                path: vec![crate::yaml::PathSeg::Key("type".into())],
                msg: "`type` must be a string (disk, partition, format, mount, ...)".into(),
            })?,
            None => {
                return Err(DeError {
                    mark: Some(n.mark),
                    path: Vec::new(),
                    msg: "an entry without a `type` (disk, partition, format, mount, ...)".into(),
                });
            }
        };
        Ok(match kind {
            "disk" => StorageItem::Disk(from_node(n)?),
            "partition" => StorageItem::Partition(from_node(n)?),
            "format" => StorageItem::Format(from_node(n)?),
            "mount" => StorageItem::Mount(from_node(n)?),
            "lvm_volgroup" => StorageItem::LvmVolgroup(from_node(n)?),
            "lvm_partition" => StorageItem::LvmPartition(from_node(n)?),
            "raid" => StorageItem::Raid(from_node(n)?),
            "bcache" => StorageItem::Bcache(from_node(n)?),
            "dm_crypt" => StorageItem::DmCrypt(from_node(n)?),
            "zpool" => StorageItem::Zpool(from_node(n)?),
            "zfs" => StorageItem::Zfs(from_node(n)?),
            "dasd" => StorageItem::Dasd(from_node(n)?),
            "nvme_controller" => StorageItem::NvmeController(from_node(n)?),
            other => {
                #[derive(Deserialize)]
                struct Id {
                    id: String,
                }
                let Id { id } = from_node(n)?;
                StorageItem::Other {
                    kind: other.to_string(),
                    id,
                }
            }
        })
    }
}

/// The `storage:` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StorageConfig {
    /// 1 or 2 (curtin's storage config versions).
    pub version: u32,
    pub items: Vec<StorageItem>,
}

fn de_raid_level<'de, D: Deserializer<'de>>(d: D) -> Result<RaidLevel, D::Error> {
    let t = de_text_opt(d)?.unwrap_or_default();
    RaidLevel::parse(&t).ok_or_else(|| {
        de::Error::custom(format!(
            "`{t}` is not a RAID level curtin knows (0, 1, 4, 5, 6, 10, raidN, linear, stripe, mirror, container)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::load;

    fn item(t: &str) -> Result<StorageItem, DeError> {
        StorageItem::from_node(&load(t).unwrap().unwrap())
    }

    #[test]
    fn curtin_shapes() {
        let StorageItem::Disk(d) =
            item("{id: a, type: disk, path: /dev/vdb, grub_device: 1}").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (d.path.as_deref(), d.grub_device),
            (Some("/dev/vdb"), Some(true))
        );
        let StorageItem::Partition(p) =
            item("{id: p, type: partition, device: a, number: '2', size: 1.5G, flag: boot}")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!((p.number, p.size), (Some(2), 3 << 29));
        let raid = item("{id: r, type: raid, name: md0, raidlevel: mirror, devices: [a, b], spare_devices: [c], metadata: 1.2}").unwrap();
        assert_eq!(raid.references().len(), 3);
        let StorageItem::Raid(r) = raid else { panic!() };
        assert_eq!(r.raidlevel, RaidLevel::Raid1);
        assert_eq!(r.metadata.as_deref(), Some("1.2"));
        let StorageItem::Other { kind, id } = item("{id: i, type: image, path: x.img}").unwrap()
        else {
            panic!()
        };
        assert_eq!((kind.as_str(), id.as_str()), ("image", "i"));
        // Keys the model does not know belong to curtin.
        assert!(item("{id: f, type: format, volume: p, fstype: ext4, some_new_key: 1}").is_ok());
    }

    #[test]
    fn errors_point_into_the_entry() {
        let e = item("id: d\ntype: disk\ngrub_device: 2\n").unwrap_err();
        assert_eq!(e.mark.unwrap().line, 3);
        assert_eq!(
            e.path_string("storage.config[0]"),
            "storage.config[0].grub_device"
        );
        let e = item("id: r\ntype: raid\nname: md0\nraidlevel: 3\n").unwrap_err();
        assert!(e.msg.contains("`3`"), "{e}");
        let e = item("id: p\ntype: partition\ndevice: d\nsize: 4Q\n").unwrap_err();
        assert!(e.msg.contains("4Q"), "{e}");
        assert!(item("{id: x}").unwrap_err().msg.contains("type"));
    }
}
