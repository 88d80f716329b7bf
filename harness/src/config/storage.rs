//! curtin's storage config (`storage: {version, config: [...]}`) as the harness reads it.

use serde::Deserialize;
use serde_yaml::Value;

/// Parses sizes the way curtin's configs write them: 10G, 512M, 3GB, 1.5G, 4096, 4096B.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let idx = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(idx);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 10G, 512M, 4096)"))?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(format!("`{s}` has an unknown size unit (use K, M, G or T)")),
    };
    Ok((num * mult as f64) as u64)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    N(u64),
    S(String),
}

pub(super) fn de_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match SizeRepr::deserialize(d)? {
        SizeRepr::N(n) => Ok(n),
        SizeRepr::S(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

pub(super) fn de_size_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_size(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub(super) version: u32,
    #[serde(default)]
    pub(super) config: Vec<StorageItem>,
    #[serde(default)]
    #[allow(dead_code)]
    swap: Option<Value>,
}

/// One entry of curtin's storage config (the fields this project reads or accepts).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StorageItem {
    Disk(DiskItem),
    Partition(PartitionItem),
    Format(FormatItem),
    Mount(MountItem),
    LvmVolgroup(LvmVolgroupItem),
    LvmPartition(LvmPartitionItem),
    // Accepted and passed to curtin; the script installer refuses them.
    Raid(Value),
    Bcache(Value),
    DmCrypt(Value),
    Zpool(Value),
    Zfs(Value),
    Dasd(Value),
    Device(Value),
    Image(Value),
    NvmeController(Value),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskItem {
    pub id: String,
    #[serde(default)]
    pub ptable: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub wwn: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub wipe: Option<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub grub_device: Option<bool>,
    #[serde(default)]
    pub multipath: Option<String>,
    #[serde(default)]
    pub nvme_controller: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionItem {
    pub id: String,
    pub device: String,
    #[serde(default)]
    pub number: Option<u32>,
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
    pub grub_device: Option<bool>,
    #[serde(default)]
    pub resize: Option<bool>,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub multipath: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatItem {
    pub id: String,
    pub volume: String,
    pub fstype: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub extra_options: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountItem {
    pub id: String,
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub options: Option<String>,
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub spec: Option<String>,
    #[serde(default)]
    pub freq: Option<Value>,
    #[serde(default)]
    pub passno: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmVolgroupItem {
    pub id: String,
    pub name: String,
    pub devices: Vec<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmPartitionItem {
    pub id: String,
    pub name: String,
    pub volgroup: String,
    #[serde(default, deserialize_with = "de_size_opt")]
    pub size: Option<u64>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub wipe: Option<String>,
}

impl StorageItem {
    pub fn id(&self) -> Option<&str> {
        match self {
            StorageItem::Disk(d) => Some(&d.id),
            StorageItem::Partition(p) => Some(&p.id),
            StorageItem::Format(f) => Some(&f.id),
            StorageItem::Mount(m) => Some(&m.id),
            StorageItem::LvmVolgroup(v) => Some(&v.id),
            StorageItem::LvmPartition(l) => Some(&l.id),
            StorageItem::Raid(v)
            | StorageItem::Bcache(v)
            | StorageItem::DmCrypt(v)
            | StorageItem::Zpool(v)
            | StorageItem::Zfs(v)
            | StorageItem::Dasd(v)
            | StorageItem::Device(v)
            | StorageItem::Image(v)
            | StorageItem::NvmeController(v) => v.get("id").and_then(Value::as_str),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("3GB").unwrap(), 3 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("ten").is_err());
    }
}
