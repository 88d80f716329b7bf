//! LVM (`pvs`, `vgs`, `lvs` as JSON reports, sizes in bytes) and device-mapper tables
//! (`dmsetup info -c`).

use super::{MAX_ITEMS, field, field_u64, json};
use crate::checks::collected::{Artifact, Collected, DataError};

pub const PVS: &str = "vmtest/pvs.json";
pub const VGS: &str = "vmtest/vgs.json";
pub const LVS: &str = "vmtest/lvs.json";
pub const DMSETUP: &str = "vmtest/dmsetup.txt";

/// The rows of one LVM JSON report (`{"report": [{"pv": [...]}]}`).
fn report_rows(file: &str, text: &str, kind: &str) -> Result<Vec<serde_json::Value>, DataError> {
    let v = json(file, text)?;
    let reports = v
        .get("report")
        .and_then(|r| r.as_array())
        .ok_or_else(|| DataError::malformed(file, "no `report` array"))?;
    let mut rows = Vec::new();
    for r in reports {
        if let Some(a) = r.get(kind).and_then(|a| a.as_array()) {
            rows.extend(a.iter().take(MAX_ITEMS).cloned());
        }
    }
    Ok(rows)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pv {
    /// `/dev/md127`, `/dev/vda3`.
    pub name: String,
    pub vg: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vg {
    pub name: String,
    pub size: Option<u64>,
    pub free: Option<u64>,
    pub extent: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lv {
    pub name: String,
    pub vg: String,
    pub size: Option<u64>,
    /// `/dev/mapper/vg0-lv--0`.
    pub dm_path: Option<String>,
}

/// The three LVM reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lvm {
    pub pvs: Vec<Pv>,
    pub vgs: Vec<Vg>,
    pub lvs: Vec<Lv>,
}

impl Lvm {
    pub fn parse(pvs: &str, vgs: &str, lvs: &str) -> Result<Lvm, DataError> {
        let need = |file: &str, v: &serde_json::Value, k: &str| {
            field(v, k).ok_or_else(|| DataError::malformed(file, format!("a row without `{k}`")))
        };
        let mut out = Lvm::default();
        for r in report_rows(PVS, pvs, "pv")? {
            out.pvs.push(Pv {
                name: need(PVS, &r, "pv_name")?,
                vg: field(&r, "vg_name").unwrap_or_default(),
            });
        }
        for r in report_rows(VGS, vgs, "vg")? {
            out.vgs.push(Vg {
                name: need(VGS, &r, "vg_name")?,
                size: field_u64(&r, "vg_size"),
                free: field_u64(&r, "vg_free"),
                extent: field_u64(&r, "vg_extent_size"),
            });
        }
        for r in report_rows(LVS, lvs, "lv")? {
            out.lvs.push(Lv {
                name: need(LVS, &r, "lv_name")?,
                vg: need(LVS, &r, "vg_name")?,
                size: field_u64(&r, "lv_size"),
                dm_path: field(&r, "lv_dm_path").filter(|p| !p.is_empty()),
            });
        }
        Ok(out)
    }

    pub fn vg(&self, name: &str) -> Option<&Vg> {
        self.vgs.iter().find(|v| v.name == name)
    }

    pub fn lv(&self, vg: &str, name: &str) -> Option<&Lv> {
        self.lvs.iter().find(|l| l.vg == vg && l.name == name)
    }

    pub fn pvs_of(&self, vg: &str) -> Vec<&Pv> {
        self.pvs.iter().filter(|p| p.vg == vg).collect()
    }
}

impl Artifact for Lvm {
    fn load(c: &Collected) -> Result<Self, DataError> {
        Lvm::parse(&c.text(PVS)?, &c.text(VGS)?, &c.text(LVS)?)
    }
}

/// One device-mapper device.
#[derive(Debug, Clone, PartialEq)]
pub struct DmDev {
    pub name: String,
    /// `CRYPT-LUKS2-...`, `LVM-...`.
    pub uuid: String,
    /// Kernel name (`dm-3`).
    pub kname: String,
    /// Kernel names of the devices below it.
    pub below: Vec<String>,
    pub open: Option<u32>,
}

/// `dmsetup info -c --noheadings --separator '|' -o name,uuid,blkdevname,blkdevs_used,open`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DmTable {
    pub devs: Vec<DmDev>,
}

impl DmTable {
    pub fn parse(text: &str) -> DmTable {
        let devs = text
            .lines()
            .take(MAX_ITEMS)
            .filter_map(|l| {
                let f: Vec<&str> = l.split('|').map(str::trim).collect();
                let [name, uuid, kname, below, open] = f.as_slice() else {
                    return None;
                };
                Some(DmDev {
                    name: name.to_string(),
                    uuid: uuid.to_string(),
                    kname: kname.to_string(),
                    below: below
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    open: open.parse().ok(),
                })
            })
            .collect();
        DmTable { devs }
    }

    pub fn by_name(&self, name: &str) -> Option<&DmDev> {
        self.devs.iter().find(|d| d.name == name)
    }
}

impl Artifact for DmTable {
    fn load(c: &Collected) -> Result<Self, DataError> {
        Ok(DmTable::parse(&c.text(DMSETUP)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvm_reports() {
        let l = Lvm::parse(
            r#"{"report": [{"pv": [{"pv_name": "/dev/md127", "vg_name": "vg0", "pv_size": "10"}, {"pv_name": "/dev/md126", "vg_name": "vg0"}]}]}"#,
            r#"{"report": [{"vg": [{"vg_name": "vg0", "vg_size": "21458059264", "vg_free": "0", "vg_extent_size": "4194304"}]}]}"#,
            r#"{"report": [{"lv": [{"lv_name": "lv-0", "vg_name": "vg0", "lv_size": "3221225472", "lv_dm_path": "/dev/mapper/vg0-lv--0"}]}]}"#,
        )
        .unwrap();
        assert_eq!(l.pvs_of("vg0").len(), 2);
        assert_eq!(l.vg("vg0").unwrap().extent, Some(4 << 20));
        assert_eq!(l.lv("vg0", "lv-0").unwrap().size, Some(3 << 30));
        let empty = r#"{"report": [{"pv": []}]}"#;
        assert!(Lvm::parse(empty, r#"{"report": []}"#, r#"{"report": [{"lv": []}]}"#).is_ok());
        assert!(Lvm::parse("x", empty, empty).is_err());
        assert!(Lvm::parse(r#"{"report": [{"pv": [{"vg_name": "v"}]}]}"#, empty, empty).is_err());
    }

    #[test]
    fn dmsetup_rows() {
        let t = DmTable::parse(
            "No devices found\ndmcrypt0|CRYPT-LUKS2-abc-dmcrypt0|dm-3|dm-2|1\nvg0-root|LVM-x|dm-0|md127,md126|1\n",
        );
        assert_eq!(t.devs.len(), 2);
        assert_eq!(t.by_name("dmcrypt0").unwrap().below, ["dm-2"]);
        assert_eq!(t.by_name("vg0-root").unwrap().below, ["md127", "md126"]);
    }
}
