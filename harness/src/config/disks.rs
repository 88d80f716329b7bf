//! The disks a test gets: the storage config's `type: disk` entries in config order (by
//! serial, WWN or path), sized from their partitions or `vmtest.disks`, then the extra
//! disks; serials checked against each other and the harness's own disks.

use std::collections::BTreeMap;
use std::path::Path;

use super::parse::{err, item_key, value_at};
use super::*;
use crate::handoff::HANDOFF_DISK_SERIAL;
use crate::userdata::{OUTPUT_DISK_SERIAL, SEED_DISK_SERIAL};
use crate::yaml::Mark;

/// Serials the harness gives its own disks; a storage disk may not take them.
const HARNESS_SERIALS: [&str; 4] = [
    OUTPUT_DISK_SERIAL,
    SEED_DISK_SERIAL,
    HANDOFF_DISK_SERIAL,
    "install_disk",
];

/// Most bytes of a virtio-blk or NVMe serial (what the guest can read back).
const MAX_SERIAL: usize = 20;

/// Where a disk of the storage config is, for the harness.
enum Attach {
    /// Attached with this serial (and WWN for SCSI).
    Serial { serial: String, wwn: Option<String> },
    /// Attached at the position its `/dev/` name says.
    Path { position: usize, dev: String },
    /// Not a disk the harness makes (a device the config builds, `/dev/bcache1`).
    Not,
    /// A disk no host here can give (the reason).
    Unrunnable(String),
}

/// Position of a Linux disk name suffix: `a` → 0, `z` → 25, `aa` → 26.
fn letters_index(s: &str) -> Option<usize> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let mut n = 0usize;
    for b in s.bytes() {
        n = n * 26 + usize::from(b - b'a') + 1;
    }
    Some(n - 1)
}

fn attach_of(d: &DiskItem, driver: DiskDriver) -> Result<Attach, String> {
    if let Some(s) = &d.serial {
        return Ok(Attach::Serial {
            serial: s.clone(),
            wwn: d.wwn.clone(),
        });
    }
    if let Some(w) = &d.wwn {
        // curtin finds a disk by WWN with a by-id glob, which a virtio serial equal to
        // the WWN also satisfies.
        return Ok(Attach::Serial {
            serial: w.clone(),
            wwn: Some(w.clone()),
        });
    }
    if let Some(p) = &d.path {
        if p.starts_with("iscsi:") {
            return Ok(Attach::Unrunnable(format!(
                "disk `{}` is an iSCSI target ({p}), and no iSCSI server runs here",
                d.id
            )));
        }
        if let Some(serial) = p.strip_prefix("/dev/disk/by-id/virtio-") {
            return Ok(Attach::Serial {
                serial: serial.to_string(),
                wwn: None,
            });
        }
        let (prefix, want) = match driver {
            DiskDriver::VirtioBlk => ("/dev/vd", "virtio-blk"),
            DiskDriver::Scsi => ("/dev/sd", "scsi"),
            DiskDriver::Nvme => ("/dev/nvme", "nvme"),
        };
        let position = if driver == DiskDriver::Nvme {
            p.strip_prefix("/dev/nvme")
                .and_then(|r| r.strip_suffix("n1"))
                .and_then(|n| n.parse::<usize>().ok())
        } else {
            p.strip_prefix(prefix).and_then(letters_index)
        };
        if let Some(position) = position {
            return Ok(Attach::Path {
                position,
                dev: p.clone(),
            });
        }
        let other_bus = ["/dev/vd", "/dev/sd", "/dev/nvme", "/dev/hd", "/dev/xvd"]
            .iter()
            .any(|b| p.starts_with(b));
        if other_bus {
            return Err(format!(
                "disk `{}` is given as {p}, but this test attaches its disks as {want} ({prefix}...): use that name, or set `vmtest.disk_driver`",
                d.id
            ));
        }
        return Ok(Attach::Not);
    }
    if d.device_id.is_some() {
        return Ok(Attach::Unrunnable(format!(
            "disk `{}` is an s390x DASD (device_id), which no host here has",
            d.id
        )));
    }
    Err(format!(
        "disk `{}` needs a `serial`, `wwn` or `path` so the harness can attach it and curtin find it",
        d.id
    ))
}

/// A serial both backends can give and the guest read back.
fn check_serial(serial: &str, driver: DiskDriver) -> Result<(), String> {
    if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return Err(format!(
            "serial `{serial}`: use printable ASCII without spaces or commas"
        ));
    }
    if serial.len() > MAX_SERIAL && driver != DiskDriver::Scsi {
        return Err(format!(
            "serial `{serial}` is longer than the {MAX_SERIAL} bytes a virtio-blk or NVMe disk can report"
        ));
    }
    Ok(())
}

/// The size a storage disk needs: its partitions (sizes, offsets, 1 MiB alignment each,
/// partition tables) with 10% headroom, and at least [`DEFAULT_DISK_SIZE`].
fn disk_size_for(id: &str, items: &[StorageItem]) -> u64 {
    let mut sum: u128 = 0;
    let mut end: u128 = 0;
    let mut n: u128 = 0;
    for i in items {
        if let StorageItem::Partition(p) = i
            && p.device == id
        {
            sum += u128::from(p.size) + (1 << 20);
            n += 1;
            if let Some(off) = p.offset {
                end = end.max(u128::from(off) + u128::from(p.size));
            }
        }
    }
    if n == 0 {
        return DEFAULT_DISK_SIZE;
    }
    let need = (sum.max(end) + (16 << 20)) * 11 / 10;
    let need = need.div_ceil(1 << 20) << 20;
    u64::try_from(need)
        .unwrap_or(crate::units::MAX_SIZE)
        .max(DEFAULT_DISK_SIZE)
}

/// The disks of a test: `v` its `vmtest:` section (`vnode` its node), `storage` the
/// storage config's entries and `entries` their nodes. Also why a disk cannot be given
/// here (an iSCSI target, a DASD), if so.
pub(super) fn build(
    file: &Path,
    v: &VmtestSection,
    vnode: &Node,
    storage: &[StorageItem],
    entries: &[&Node],
) -> Result<(Vec<DiskSpec>, Option<String>), ConfigError> {
    let vkey = |key: &str| vnode.entry(key);
    let at = |key: &str| vkey(key).map(|(_, val)| val.mark);
    let value_at = |i: usize, key: &str| value_at(entries, i, key);
    let mut unrunnable = None;
    let mut disks: Vec<DiskSpec> = Vec::new();
    for (i, item) in storage.iter().enumerate() {
        let StorageItem::Disk(d) = item else { continue };
        let attach = attach_of(d, v.disk_driver).map_err(|m| {
            err(
                file,
                Some(entries[i].mark),
                Some(format!("storage.config[{i}]")),
                m,
            )
        })?;
        let (serial, wwn) = match attach {
            Attach::Not => continue,
            Attach::Unrunnable(why) => {
                unrunnable.get_or_insert(why);
                continue;
            }
            Attach::Serial { serial, wwn } => (serial, wwn),
            Attach::Path { position, dev } => {
                if position != disks.len() {
                    return Err(err(
                        file,
                        value_at(i, "path"),
                        Some(item_key(i, "path")),
                        format!(
                            "disk `{}` is {dev}, but it is the disk number {} the harness attaches (disks are attached in config order): order the storage config's disks as their names go",
                            d.id,
                            disks.len() + 1
                        ),
                    ));
                }
                // A disk the config knows by its path gets its id as serial (so
                // /dev/disk/by-id names it after the config), or a numbered one.
                let serial = if check_serial(&d.id, v.disk_driver).is_ok() {
                    d.id.clone()
                } else {
                    format!("vmtest-disk-{}", disks.len())
                };
                (serial, None)
            }
        };
        let key = if d.serial.is_some() { "serial" } else { "wwn" };
        check_serial(&serial, v.disk_driver).map_err(|m| {
            err(
                file,
                value_at(i, key),
                Some(item_key(i, key)),
                format!("disk `{}`: {m}", d.id),
            )
        })?;
        if let Some(w) = &wwn
            && w.starts_with("0x")
        {
            let hex = &w[2..];
            if hex.is_empty() || hex.len() > 16 || u64::from_str_radix(hex, 16).is_err() {
                return Err(err(
                    file,
                    value_at(i, "wwn"),
                    Some(item_key(i, "wwn")),
                    format!(
                        "`{w}` of disk `{}` is not a 64-bit hex world-wide name (e.g. 0x5000c500a0b1c2d3)",
                        d.id
                    ),
                ));
            }
        }
        // Only 0x WWNs are SCSI device properties; NVMe's eui./nvme. forms are not.
        let wwn = wwn.filter(|w| w.starts_with("0x"));
        let n = disks.len();
        disks.push(DiskSpec {
            id: d.id.clone(),
            file_name: if n == 0 {
                "install_disk.img".into()
            } else {
                format!("install_disk_{n}.img")
            },
            serial,
            wwn,
            size: disk_size_for(&d.id, storage),
            block_size: v.block_size,
        });
    }
    for (key, opts) in &v.disks {
        let Some(d) = disks.iter_mut().find(|d| &d.id == key) else {
            let mark = vkey("disks")
                .and_then(|(_, n)| n.entry(key))
                .map(|(k, _)| k.mark);
            return Err(err(
                file,
                mark,
                Some(format!("vmtest.disks.{key}")),
                "is not a `type: disk` id of the storage config that the harness attaches",
            ));
        };
        if let Some(s) = opts.size {
            d.size = s;
        }
        if let Some(b) = opts.block_size {
            d.block_size = b;
        }
    }
    let defaulted = disks.is_empty();
    if defaulted {
        // curtin's vmtest always gives the installer one disk.
        disks.push(DiskSpec {
            id: "install_disk".into(),
            file_name: "install_disk.img".into(),
            serial: "install_disk".into(),
            wwn: None,
            size: DEFAULT_DISK_SIZE,
            block_size: v.block_size,
        });
    }
    for (i, e) in v.extra_disks.iter().enumerate() {
        disks.push(DiskSpec {
            id: format!("extra_disk_{i}"),
            file_name: format!("extra_disk_{i}.img"),
            serial: e
                .serial
                .clone()
                .unwrap_or_else(|| format!("extra_disk_{i}")),
            wwn: None,
            size: e.size,
            block_size: e.block_size.unwrap_or(v.block_size),
        });
    }
    let n_storage = disks.len() - v.extra_disks.len();
    let disk_key = |idx: usize, field: &str| -> (Option<Mark>, String) {
        if idx >= n_storage {
            let j = idx - n_storage;
            let mark = vkey("extra_disks")
                .and_then(|(_, n)| n.as_seq())
                .and_then(|s| s.get(j))
                .map(|n| n.get(field).map(|f| f.mark).unwrap_or(n.mark));
            (mark, format!("vmtest.extra_disks[{j}].{field}"))
        } else {
            let id = &disks[idx].id;
            match vkey("disks").and_then(|(_, n)| n.get(id)) {
                Some(n) => (
                    Some(n.get(field).map(|f| f.mark).unwrap_or(n.mark)),
                    format!("vmtest.disks.{id}.{field}"),
                ),
                None => (at(field), format!("vmtest.{field}")),
            }
        }
    };
    let mut serials: BTreeMap<&str, usize> = BTreeMap::new();
    for (idx, d) in disks.iter().enumerate() {
        if d.block_size != 512 && d.block_size != 4096 {
            let (mark, key) = disk_key(idx, "block_size");
            return Err(err(
                file,
                mark,
                Some(key),
                format!(
                    "disk `{}`: block size {} is not supported (512 or 4096)",
                    d.id, d.block_size
                ),
            ));
        }
        if d.size < 1 << 20 {
            let (mark, key) = disk_key(idx, "size");
            return Err(err(
                file,
                mark,
                Some(key),
                format!(
                    "disk `{}`: {} bytes is too small (at least 1M)",
                    d.id, d.size
                ),
            ));
        }
        let own = HARNESS_SERIALS.contains(&d.serial.as_str()) && !(defaulted && idx == 0);
        if own || serials.insert(&d.serial, idx).is_some() {
            let (mark, key) = if idx < n_storage {
                let i = storage.iter().position(|s| s.id() == d.id).unwrap_or(0);
                let k = if entries.get(i).is_some_and(|n| n.get("serial").is_none()) {
                    "wwn"
                } else {
                    "serial"
                };
                (value_at(i, k), item_key(i, k))
            } else {
                disk_key(idx, "serial")
            };
            let why = if own {
                "is the serial of one of the harness's own disks (output disk, seed, default install disk)".to_string()
            } else {
                "is used by two disks; curtin and /dev/disk/by-id could not tell them apart"
                    .to_string()
            };
            return Err(err(
                file,
                mark,
                Some(key),
                format!("serial `{}` {why}", d.serial),
            ));
        }
    }
    Ok((disks, unrunnable))
}
