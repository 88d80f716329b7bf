//! `vmtest show TEST`: what a run of one test would do, without booting anything: its
//! disks and NICs (serials, MACs), the installer, the backend `--vmm` would choose and
//! why, and every check it would make (derived from the config, then its `expect:`).

use std::fmt::Write;
use std::path::Path;

use crate::VmmChoice;
use crate::config::{DiskDriver, HostFacts, TestConfig};
use crate::userdata::{OUTPUT_DISK_SERIAL, SEED_DISK_SERIAL};

/// The installer line: which one runs, and from where.
fn installer(test: &TestConfig, curtin: Option<&Path>) -> String {
    match (test.installer(curtin.is_some()), curtin) {
        (crate::config::InstallerKind::Curtin, Some(src)) => {
            format!("curtin from {}", src.display())
        }
        (crate::config::InstallerKind::Curtin, None) => {
            "curtin (pinned; needs --curtin DIR or CURTIN_SRC)".into()
        }
        (crate::config::InstallerKind::Script, _) => {
            let why = if test.vmtest.installer_pinned {
                "pinned"
            } else {
                "no curtin tree given"
            };
            format!("script ({why})")
        }
    }
}

fn size(bytes: u64) -> String {
    for (u, n) in [(1u64 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB")] {
        if bytes >= u {
            let v = bytes as f64 / u as f64;
            return if bytes.is_multiple_of(u) {
                format!("{} {n}", bytes / u)
            } else {
                format!("{v:.1} {n}")
            };
        }
    }
    format!("{bytes} B")
}

/// The text `vmtest show` prints for `test`, the backend having been chosen as
/// `backend` (`(choice, why)`).
pub fn render(
    test: &TestConfig,
    curtin: Option<&Path>,
    backend: (VmmChoice, String),
    derive_on: bool,
) -> String {
    let mut s = String::new();
    let v = &test.vmtest;
    let _ = writeln!(s, "test       {} ({})", test.name, test.file.display());
    if let Some(d) = &v.description {
        let _ = writeln!(s, "about      {d}");
    }
    let _ = writeln!(
        s,
        "image      {}/{}; firmware {}",
        v.release,
        v.arch,
        if v.uefi { "UEFI (OVMF)" } else { "BIOS" }
    );
    let _ = writeln!(s, "installer  {}", installer(test, curtin));
    let _ = writeln!(
        s,
        "backend    {} ({})",
        format!("{:?}", backend.0).to_lowercase(),
        backend.1
    );
    if let Some(why) = test.not_runnable(&HostFacts::this_host()) {
        let _ = writeln!(s, "NOT RUNNABLE HERE: {why}");
    }
    let bus = |d: &crate::config::DiskSpec| match d.attached_as(v) {
        DiskDriver::VirtioBlk => "virtio-blk",
        DiskDriver::Nvme => "nvme",
        DiskDriver::Scsi if v.multipath => "scsi, two paths",
        DiskDriver::Scsi => "scsi",
    };
    let _ = writeln!(s, "\ndisks, in the order attached:");
    let w = test.disks.iter().map(|d| d.id.len()).max().unwrap_or(0);
    for d in &test.disks {
        let _ = write!(
            s,
            "  {:<w$}  serial {:<20}  {:>9}  {}-byte sectors  {}",
            d.id,
            d.serial,
            size(d.size),
            d.block_size,
            bus(d)
        );
        if let Some(wwn) = &d.wwn {
            let _ = write!(s, "  wwn {wwn}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "  boot phase adds: serial {OUTPUT_DISK_SERIAL} (the collect output), serial {SEED_DISK_SERIAL} (read-only cloud-init seed)"
    );
    let _ = writeln!(s, "\nNICs, in the order attached:");
    let names: Vec<(String, String)> = test
        .network
        .as_ref()
        .map(|n| {
            n.physical_nics()
                .filter_map(|i| Some((i.mac.clone()?, i.name.clone())))
                .collect()
        })
        .unwrap_or_default();
    for mac in &test.macs {
        let name = names
            .iter()
            .find(|(m, _)| m == mac)
            .map(|(_, n)| n.as_str())
            .unwrap_or("(no network config: curtin's default NIC)");
        let _ = writeln!(s, "  {mac}  {name}");
    }
    let derived = if derive_on {
        crate::checks::derive(test)
    } else {
        Vec::new()
    };
    let _ = writeln!(
        s,
        "\nchecks derived from the config: {}{}",
        derived.len(),
        if derive_on {
            ""
        } else {
            " (off: vmtest: {derive_checks: false} or --no-derive-checks)"
        }
    );
    let w = derived.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &derived {
        let _ = writeln!(s, "  {:<8} {:<w$}  {}", c.group.as_str(), c.name, c.expects);
    }
    // The expect: items' names, exactly as the run gives them (evaluated on nothing).
    let none = std::path::PathBuf::from("/nonexistent/vmtest-show");
    let expect = crate::verdict::check_expectations(&none, &v.expect);
    let _ = writeln!(s, "\nchecks from expect: {}", expect.len());
    for c in &expect {
        let _ = writeln!(s, "  {:<8} {}", c.group.as_str(), c.name);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_disks_nics_installer_backend_and_checks() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests/basic.yaml");
        let t = TestConfig::load(&p).unwrap();
        let out = render(
            &t,
            Some(Path::new("/src/curtin")),
            (VmmChoice::Qemu, "because".into()),
            true,
        );
        assert!(out.contains("installer  curtin from /src/curtin"), "{out}");
        assert!(out.contains("backend    qemu (because)"), "{out}");
        assert!(out.contains("serial disk-a"), "{out}");
        assert!(out.contains("52:54:00:12:34:01  eth0"), "{out}");
        assert!(out.contains("storage  partition sda1 size"), "{out}");
        assert!(out.contains("checks from expect:"), "{out}");
        let off = render(&t, None, (VmmChoice::Qemu, "x".into()), false);
        assert!(
            off.contains("checks derived from the config: 0 (off"),
            "{off}"
        );
        assert!(
            off.contains("installer  script (no curtin tree given)"),
            "{off}"
        );
    }
}
