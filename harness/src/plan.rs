//! The script installer's plan: the test's curtin storage config flattened into the
//! line format `harness/installer/install.sh` reads (one action per line, blank-separated
//! fields). Translating here, in Rust, keeps YAML parsing out of the shell script and
//! rejects what the script cannot do before any VM starts.

use crate::checks::storage::{dm_name, sanitize_dname};
use crate::config::{StorageItem, TestConfig};

/// Where a UEFI system's EFI system partition is mounted (curtin's convention).
const ESP_MOUNT: &str = "/boot/efi";

/// For `vmtest: {uefi: true}`: the format mounted at [`ESP_MOUNT`] must be FAT and sit on
/// a partition, or the firmware has nothing to boot. Checked here so a wrong config fails
/// before any VM starts, naming what is missing.
fn check_esp(test: &TestConfig) -> Result<(), String> {
    let mount = test
        .storage
        .iter()
        .find_map(|i| match i {
            StorageItem::Mount(m) if m.path.as_deref() == Some(ESP_MOUNT) => Some(m),
            _ => None,
        })
        .ok_or_else(|| {
            format!(
                "a UEFI test (vmtest: {{uefi: true}}) needs an EFI system partition: a partition with `flag: boot` (GPT), a vfat format on it and a mount at {ESP_MOUNT}"
            )
        })?;
    let fmt_id = mount
        .device
        .as_deref()
        .ok_or_else(|| format!("mount {}: needs a `device`", mount.id))?;
    let format = test
        .storage
        .iter()
        .find_map(|i| match i {
            StorageItem::Format(f) if f.id == fmt_id => Some(f),
            _ => None,
        })
        .ok_or_else(|| format!("mount {}: no format with id `{fmt_id}`", mount.id))?;
    if !matches!(format.fstype.as_str(), "fat" | "fat32" | "vfat") {
        return Err(format!(
            "format {}: the EFI system partition at {ESP_MOUNT} must be vfat, not {}",
            format.id, format.fstype
        ));
    }
    let is_partition = test
        .storage
        .iter()
        .any(|i| matches!(i, StorageItem::Partition(p) if p.id == format.volume));
    if !is_partition {
        return Err(format!(
            "format {}: the EFI system partition must be a partition (volume `{}` is not one)",
            format.id, format.volume
        ));
    }
    Ok(())
}

/// Ids, serials and paths end up as shell words: allow only characters that need no quoting.
fn word(kind: &str, s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:+@/,=-".contains(c))
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{kind} `{s}` holds characters the script installer does not accept (letters, digits, _.:+@/,=- only)"
        ))
    }
}

/// Builds the plan for `test`, or says which part of its storage config the script
/// installer cannot install (use `installer: curtin` for those).
pub fn build_plan(test: &TestConfig) -> Result<String, String> {
    let mut have_root = false;
    if test.storage.is_empty() {
        return Err(
            "the script installer needs a storage config (storage: {version: 1, config: [...]})"
                .into(),
        );
    }
    // First line: which firmware boots the installed system, so the script knows which
    // grub to install (x86_64-efi onto the ESP, or i386-pc onto the grub disks).
    // /dev/disk/by-dname links, as curtin makes them: a named disk and its partitions
    // (`NAME-partN`), a named partition of a named disk, every logical volume.
    let mut dnames: Vec<String> = Vec::new();
    let mut out = if test.vmtest.uefi {
        check_esp(test)?;
        String::from("firmware uefi\n")
    } else {
        String::from("firmware bios\n")
    };
    for item in &test.storage {
        let line = match item {
            StorageItem::Disk(d) => {
                // The serial the harness attached the disk with.
                let serial = test
                    .disks
                    .iter()
                    .find(|s| s.id == d.id)
                    .map(|s| &s.serial)
                    .ok_or_else(|| {
                        format!("disk {}: not a disk the harness attaches (no serial)", d.id)
                    })?;
                if let Some(n) = d.name.as_deref().filter(|n| !n.is_empty()) {
                    dnames.push(format!(
                        "dname disk {} {}",
                        word("serial", serial)?,
                        sanitize_dname(n)
                    ));
                }
                let ptable = d.ptable.as_deref().unwrap_or("none");
                if !matches!(ptable, "msdos" | "dos" | "gpt" | "none") {
                    return Err(format!(
                        "disk {}: ptable `{ptable}` is not supported (msdos, gpt)",
                        d.id
                    ));
                }
                format!(
                    "disk {} {} {} {}",
                    word("id", &d.id)?,
                    word("serial", serial)?,
                    ptable,
                    u8::from(d.grub_device == Some(true))
                )
            }
            StorageItem::Partition(p) => {
                let number = p
                    .number
                    .ok_or_else(|| format!("partition {}: needs a `number`", p.id))?;
                let disk = test.storage.iter().find_map(|i| match i {
                    StorageItem::Disk(d) if d.id == p.device => Some(d),
                    _ => None,
                });
                let disk_named =
                    disk.is_some_and(|d| d.name.as_deref().is_some_and(|n| !n.is_empty()));
                if let (true, Some(pn), Some(s)) = (
                    disk_named,
                    p.name.as_deref().filter(|n| !n.is_empty()),
                    test.disks.iter().find(|s| s.id == p.device),
                ) {
                    dnames.push(format!(
                        "dname part {} {number} {}",
                        word("serial", &s.serial)?,
                        sanitize_dname(pn)
                    ));
                }
                if p.size < 1 << 20 {
                    return Err(format!("partition {}: size {} is under 1M", p.id, p.size));
                }
                format!(
                    "part {} {} {} {} {}",
                    word("id", &p.id)?,
                    word("id", &p.device)?,
                    number,
                    p.size,
                    p.flag
                        .as_deref()
                        .map(|f| word("flag", f))
                        .transpose()?
                        .unwrap_or_else(|| "-".into())
                )
            }
            StorageItem::LvmVolgroup(g) => {
                let devs: Result<Vec<String>, String> =
                    g.devices.iter().map(|d| word("id", d)).collect();
                format!(
                    "vg {} {} {}",
                    word("id", &g.id)?,
                    word("name", &g.name)?,
                    devs?.join(" ")
                )
            }
            StorageItem::LvmPartition(l) => {
                let vg = test.storage.iter().find_map(|i| match i {
                    StorageItem::LvmVolgroup(g) if g.id == l.volgroup => Some(g.name.as_str()),
                    _ => None,
                });
                if let Some(vg) = vg {
                    let dm = sanitize_dname(&dm_name(vg, &l.name));
                    dnames.push(format!("dname lv {dm} {dm}"));
                }
                format!(
                    "lv {} {} {} {}",
                    word("id", &l.id)?,
                    word("name", &l.name)?,
                    word("id", &l.volgroup)?,
                    l.size.unwrap_or(0)
                )
            }
            StorageItem::Format(f) => {
                if !matches!(
                    f.fstype.as_str(),
                    "ext2" | "ext3" | "ext4" | "xfs" | "btrfs" | "fat" | "fat32" | "vfat" | "swap"
                ) {
                    return Err(format!(
                        "format {}: fstype `{}` is not supported by the script installer",
                        f.id, f.fstype
                    ));
                }
                format!(
                    "format {} {} {} {}",
                    word("id", &f.id)?,
                    word("id", &f.volume)?,
                    f.fstype,
                    f.label
                        .as_deref()
                        .map(|l| word("label", l))
                        .transpose()?
                        .unwrap_or_else(|| "-".into())
                )
            }
            StorageItem::Mount(m) => {
                let Some(path) = m.path.as_deref() else {
                    continue;
                };
                if path == "none" {
                    continue; // swap: used from its format entry
                }
                if !path.starts_with('/') {
                    return Err(format!("mount {}: path `{path}` is not absolute", m.id));
                }
                let dev = m
                    .device
                    .as_deref()
                    .ok_or_else(|| format!("mount {}: needs a `device`", m.id))?;
                have_root |= path == "/";
                format!(
                    "mount {} {} {} {}",
                    word("id", &m.id)?,
                    word("id", dev)?,
                    word("path", path)?,
                    m.options
                        .as_deref()
                        .map(|o| word("options", o))
                        .transpose()?
                        .unwrap_or_else(|| "-".into())
                )
            }
            other => {
                return Err(format!(
                    "storage type {} (id `{}`) is not supported by the script installer; use `vmtest: {{installer: curtin}}`",
                    other.kind(),
                    other.id()
                ));
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    if !have_root {
        return Err("the storage config mounts nothing at /".into());
    }
    for d in dnames {
        out.push_str(&d);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn basic_plan() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests/basic.yaml");
        let t = TestConfig::load(&p).unwrap();
        let plan = build_plan(&t).unwrap();
        assert!(plan.contains("disk sda disk-a msdos 1\n"), "{plan}");
        assert!(plan.contains("part sda1 sda 1 3221225472 boot\n"), "{plan}");
        assert!(plan.contains("format sda3_swap sda3 swap -\n"), "{plan}");
        assert!(
            plan.contains("mount sda2_mount sda2_home /home -\n"),
            "{plan}"
        );
        assert!(plan.contains("disk sdb disk-b gpt 0\n"), "{plan}");
        assert!(plan.starts_with("firmware bios\n"), "{plan}");
        assert!(plan.contains("dname disk disk-a main_disk\n"), "{plan}");
        assert!(plan.contains("dname disk disk-b spare_disk\n"), "{plan}");
    }

    /// A named partition of a named disk and every logical volume get their by-dname
    /// links, as curtin makes them (dm's doubled dashes, anything odd sanitized).
    #[test]
    fn dnames_as_curtin_makes_them() {
        let text = "vmtest: {release: r}\nstorage:\n  version: 1\n  config:\n    - {id: d, type: disk, serial: s, ptable: gpt, name: 'my disk'}\n    - {id: p1, type: partition, device: d, number: 1, size: 1G, name: boot-part}\n    - {id: p2, type: partition, device: d, number: 2, size: 2G}\n    - {id: vg, type: lvm_volgroup, name: vg-0, devices: [p2]}\n    - {id: lv, type: lvm_partition, name: lv-0, volgroup: vg}\n    - {id: f, type: format, volume: lv, fstype: ext4}\n    - {id: m, type: mount, device: f, path: /}\n";
        let t = TestConfig::parse("t", Path::new("t.yaml"), text).unwrap();
        let plan = build_plan(&t).unwrap();
        assert!(plan.contains("dname disk s my-disk\n"), "{plan}");
        assert!(plan.contains("dname part s 1 boot-part\n"), "{plan}");
        assert!(
            plan.contains("dname lv vg--0-lv--0 vg--0-lv--0\n"),
            "{plan}"
        );
    }

    #[test]
    fn uefi_plan_has_an_esp() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests/basic_uefi.yaml");
        let t = TestConfig::load(&p).unwrap();
        let plan = build_plan(&t).unwrap();
        assert!(plan.starts_with("firmware uefi\n"), "{plan}");
        assert!(plan.contains("disk sda disk-a gpt 1\n"), "{plan}");
        assert!(plan.contains("part sda1 sda 1 536870912 boot\n"), "{plan}");
        assert!(plan.contains("format sda1_esp sda1 fat32 EFI\n"), "{plan}");
        assert!(
            plan.contains("mount sda1_mount sda1_esp /boot/efi -\n"),
            "{plan}"
        );
    }

    #[test]
    fn uefi_without_an_esp_is_refused() {
        let base = "vmtest: {release: r, uefi: true}\nstorage:\n  version: 1\n  config:\n    - {id: d, type: disk, serial: s, ptable: gpt}\n    - {id: p1, type: partition, device: d, number: 1, size: 512M, flag: boot}\n    - {id: p2, type: partition, device: d, number: 2, size: 2G}\n    - {id: r, type: format, volume: p2, fstype: ext4}\n    - {id: rm, type: mount, device: r, path: /}\n";
        let t = |extra: &str| {
            TestConfig::parse("t", Path::new("t.yaml"), &format!("{base}{extra}")).unwrap()
        };
        let e = build_plan(&t("")).unwrap_err();
        assert!(e.contains("EFI system partition"), "{e}");
        let e = build_plan(&t("    - {id: e, type: format, volume: p1, fstype: ext4}\n    - {id: em, type: mount, device: e, path: /boot/efi}\n")).unwrap_err();
        assert!(e.contains("must be vfat"), "{e}");
        let plan = build_plan(&t("    - {id: e, type: format, volume: p1, fstype: vfat}\n    - {id: em, type: mount, device: e, path: /boot/efi}\n")).unwrap();
        assert!(plan.starts_with("firmware uefi\n"), "{plan}");
    }

    #[test]
    fn refuses_what_the_script_cannot_do() {
        let base = "vmtest: {release: r}\nstorage:\n  version: 1\n  config:\n    - {id: d, type: disk, serial: s, ptable: msdos}\n";
        let t = |extra: &str| {
            TestConfig::parse("t", Path::new("t.yaml"), &format!("{base}{extra}")).unwrap()
        };
        let e = build_plan(&t(
            "    - {id: r, type: raid, name: md0, raidlevel: 1, devices: [d]}\n",
        ))
        .unwrap_err();
        assert!(e.contains("storage type raid"), "{e}");
        let e = build_plan(&t("")).unwrap_err();
        assert!(e.contains("nothing at /"), "{e}");
        let e = build_plan(&t("    - {id: p, type: partition, device: d, number: 1, size: 1G}\n    - {id: f, type: format, volume: p, fstype: ext4, label: \"a b\"}\n    - {id: m, type: mount, device: f, path: /}\n")).unwrap_err();
        assert!(e.contains("a b"), "{e}");
    }
}
