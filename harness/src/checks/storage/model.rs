//! The storage config as the probes ask about it: its entries by id, what curtin makes
//! of them (partition numbers, device-mapper and dnames, the filesystem type the kernel
//! reports), and which of them the booted system shows (mounts, open dm-crypt mappings).

use crate::config::{
    DiskDriver, DiskSpec, FormatItem, MountItem, PartitionItem, StorageItem, TestConfig,
};

/// What the probes need of the config: its entries and the disks as attached.
#[derive(Debug)]
pub(crate) struct Model {
    pub items: Vec<StorageItem>,
    pub disks: Vec<DiskSpec>,
    /// The bus each of `disks` is attached on, in the same order: one test can have
    /// NVMe and virtio disks side by side, and udev names their links differently.
    buses: Vec<DiskDriver>,
}

impl Model {
    pub fn new(test: &TestConfig) -> Model {
        Model {
            items: test.storage.clone(),
            disks: test.disks.clone(),
            buses: test
                .disks
                .iter()
                .map(|d| d.attached_as(&test.vmtest))
                .collect(),
        }
    }

    /// The bus of the attached disk with `serial` (virtio-blk for one not attached).
    pub fn bus(&self, serial: &str) -> DiskDriver {
        self.disks
            .iter()
            .zip(&self.buses)
            .find(|(d, _)| d.serial == serial)
            .map_or(DiskDriver::VirtioBlk, |(_, b)| *b)
    }

    pub fn get(&self, id: &str) -> Option<&StorageItem> {
        self.items.iter().find(|i| i.id() == id)
    }

    pub fn partition(&self, id: &str) -> Option<&PartitionItem> {
        match self.get(id) {
            Some(StorageItem::Partition(p)) => Some(p),
            _ => None,
        }
    }

    pub fn format(&self, id: &str) -> Option<&FormatItem> {
        match self.get(id) {
            Some(StorageItem::Format(f)) => Some(f),
            _ => None,
        }
    }

    pub fn mount(&self, id: &str) -> Option<&MountItem> {
        match self.get(id) {
            Some(StorageItem::Mount(m)) => Some(m),
            _ => None,
        }
    }

    /// The serial the harness attached a storage disk with.
    pub fn attached(&self, disk_id: &str) -> Option<&DiskSpec> {
        self.disks.iter().find(|d| d.id == disk_id)
    }

    /// A partition's number as curtin assigns it: its `number`, else its place among
    /// the partitions of its device (logical ones counting from 5).
    pub fn partition_number(&self, p: &PartitionItem) -> u32 {
        if let Some(n) = p.number {
            return n;
        }
        let logical = p.flag.as_deref() == Some("logical");
        let before = self
            .items
            .iter()
            .take_while(|i| i.id() != p.id)
            .filter(|i| match i {
                StorageItem::Partition(q) => {
                    q.device == p.device && (q.flag.as_deref() == Some("logical")) == logical
                }
                _ => false,
            })
            .count() as u32;
        if logical { 5 + before } else { 1 + before }
    }

    /// The mounts of a format.
    pub fn mounts_of(&self, format_id: &str) -> Vec<&MountItem> {
        self.items
            .iter()
            .filter_map(|i| match i {
                StorageItem::Mount(m) if m.device.as_deref() == Some(format_id) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// The format on a volume, if any.
    pub fn format_on(&self, volume: &str) -> Option<&FormatItem> {
        self.items.iter().find_map(|i| match i {
            StorageItem::Format(f) if f.volume == volume => Some(f),
            _ => None,
        })
    }

    /// Whether a dm-crypt mapping is open in the booted system: when the system needs it
    /// (a filesystem on it is mounted) or can open it unattended (a random key file). A
    /// passphrase volume nothing mounts stays closed, as in curtin's own tests.
    pub fn crypt_open_at_boot(&self, c: &crate::config::DmCryptItem) -> bool {
        let random = matches!(c.keyfile.as_deref(), Some("/dev/random" | "/dev/urandom"));
        let used = self
            .format_on(&c.id)
            .is_some_and(|f| self.mounts_of(&f.id).iter().any(|m| mounted_at_boot(m)));
        random || used
    }

    /// Whether the device of entry `id` exists in the booted system: not when it sits on
    /// a dm-crypt mapping that stays closed.
    pub fn present_at_boot(&self, id: &str) -> bool {
        let mut cur = id.to_string();
        for _ in 0..32 {
            match self.get(&cur) {
                Some(StorageItem::DmCrypt(c)) => {
                    if !self.crypt_open_at_boot(c) {
                        return false;
                    }
                    cur = c.volume.clone();
                }
                Some(StorageItem::Partition(p)) => cur = p.device.clone(),
                Some(StorageItem::Format(f)) => cur = f.volume.clone(),
                _ => return true,
            }
        }
        true
    }

    /// How the config refers to an entry in a check's name.
    pub fn label(&self, id: &str) -> String {
        match self.get(id) {
            Some(StorageItem::Raid(r)) => r.name.clone(),
            Some(StorageItem::LvmVolgroup(g)) => g.name.clone(),
            Some(StorageItem::LvmPartition(l)) => {
                let vg = match self.get(&l.volgroup) {
                    Some(StorageItem::LvmVolgroup(g)) => g.name.as_str(),
                    _ => l.volgroup.as_str(),
                };
                format!("{vg}/{}", l.name)
            }
            Some(StorageItem::DmCrypt(c)) => c.dm_name.clone(),
            _ => id.to_string(),
        }
    }
}

/// Whether the booted system mounts `m` itself (`noauto` leaves it to someone else).
pub(crate) fn mounted_at_boot(m: &MountItem) -> bool {
    !m.options
        .as_deref()
        .is_some_and(|o| o.split(',').any(|x| x.trim() == "noauto"))
}

/// The filesystem type blkid and the kernel report for curtin's `fstype`.
pub(crate) fn kernel_fstype(fstype: &str) -> &str {
    match fstype {
        "fat" | "fat12" | "fat16" | "fat32" | "fat64" => "vfat",
        other => other,
    }
}

/// Whether curtin's mkfs can give a filesystem of `fstype` the UUID the config names
/// (curtin's flag table has a UUID flag for these families only: a vfat volume id, for
/// one, is 32 bits, so curtin formats it without and the config's `uuid:` is not seen).
pub(crate) fn mkfs_sets_uuid(fstype: &str) -> bool {
    matches!(
        fstype,
        "ext2" | "ext3" | "ext4" | "btrfs" | "f2fs" | "reiserfs" | "swap" | "xfs"
    )
}

/// curtin's dname of a name: letters, digits, `-` and `_`, anything else `-`.
pub fn sanitize_dname(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Device-mapper's name of a logical volume: `vg-lv`, dashes inside each doubled.
pub fn dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}
