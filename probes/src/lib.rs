//! Guest probes: tiny freestanding programs that check, from inside the guest, the machine a
//! VMM built (the kvm-unit-tests idea). They are built from `guest/` by `build.rs` with the
//! host's gcc, so `cargo build` is all it takes.
//!
//! The machine probe reads its boot information (PVH start_info or the Linux zero page),
//! the e820 map, the initrd, walks RSDP → XSDT/RSDT → FADT/MADT/DSDT checking signatures
//! and checksums, counts local APICs, lists the DSDT's `_HID`s, prints one report line on
//! COM1 and then does what its command line asks (see [`Action`]).

use std::collections::BTreeMap;
use std::path::Path;

/// The machine probe as an ELF with a PVH entry note (Xen `PHYS32_ENTRY`).
pub fn pvh_elf() -> &'static Path {
    Path::new(env!("PROBE_PVH_ELF"))
}

/// The machine probe as a bzImage (Linux boot protocol header, 64-bit entry at +0x200).
pub fn bzimage() -> &'static Path {
    Path::new(env!("PROBE_BZIMAGE"))
}

/// What the probe does after its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// ACPI S5 through the FADT's sleep control register (or PM1a_CNT on full ACPI).
    PowerOff,
    /// Write RESET_VALUE to the FADT's RESET_REG.
    RebootAcpi,
    /// Pulse the reset line through the i8042 (0xFE to port 0x64).
    RebootI8042,
    /// Load an empty IDT and raise an exception.
    RebootTripleFault,
    /// Jump to the reset vector (0xffff0), where Linux's BIOS reboot path ends up.
    RebootVector,
    /// `cli; hlt` forever.
    Hang,
    /// Jump to a guest-physical address with no memory behind it.
    Crash,
    /// Print `PROBE echo ready`, copy every byte COM1 receives back to it until the
    /// terminator (`echo-end=N`, default 4 = Ctrl-D), print `PROBE echo done bytes=N`
    /// and power off: the check that console input reaches the guest.
    Echo,
}

impl Action {
    pub fn as_arg(self) -> &'static str {
        match self {
            Action::PowerOff => "poweroff",
            Action::RebootAcpi => "reboot-acpi",
            Action::RebootI8042 => "reboot-i8042",
            Action::RebootTripleFault => "reboot-triple",
            Action::RebootVector => "reboot-vector",
            Action::Hang => "hang",
            Action::Crash => "crash",
            Action::Echo => "echo",
        }
    }
}

/// Builds the probe's command line.
pub fn cmdline(action: Action, expect_cpus: Option<u32>, expect_hids: &[&str]) -> String {
    let mut s = format!("action={}", action.as_arg());
    if let Some(n) = expect_cpus {
        s.push_str(&format!(" cpus={n}"));
    }
    if !expect_hids.is_empty() {
        s.push_str(&format!(" hids={}", expect_hids.join(",")));
    }
    s
}

/// The probe's report, parsed from serial output.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub fields: BTreeMap<String, String>,
    /// `Some(None)` for PASS, `Some(Some(reasons))` for FAIL, `None` when no result line.
    pub result: Option<Option<String>>,
}

impl Report {
    pub fn parse(serial: &str) -> Option<Report> {
        let mut report = Report::default();
        // Firmware may print on the same line before the probe starts (SeaBIOS does).
        let line = serial
            .lines()
            .find_map(|l| l.find("PROBE entry=").map(|i| &l[i..]))?;
        let mut rest = line.trim_start_matches("PROBE ").trim_end();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=')?;
            let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"')?;
                (&quoted[..end], quoted[end + 1..].trim_start())
            } else {
                match after.split_once(' ') {
                    Some((v, n)) => (v, n.trim_start()),
                    None => (after, ""),
                }
            };
            report.fields.insert(key.to_string(), value.to_string());
            rest = next;
        }
        report.result = serial.lines().find_map(|l| {
            let r = l.trim_end().strip_prefix("PROBE RESULT ")?;
            Some(if r == "PASS" {
                None
            } else {
                Some(r.trim_start_matches("FAIL ").to_string())
            })
        });
        Some(report)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    pub fn passed(&self) -> bool {
        matches!(self.result, Some(None))
    }
}

/// The FNV-1a hash the probe prints for the initrd it was given.
pub fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(2166136261u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(16777619)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_built() {
        let elf = std::fs::read(pvh_elf()).unwrap();
        assert_eq!(&elf[..4], b"\x7fELF");
        let bz = std::fs::read(bzimage()).unwrap();
        assert_eq!(&bz[0x202..0x206], b"HdrS");
    }

    #[test]
    fn report_parses() {
        let r = Report::parse(
            "noise\nBooting from ROM..PROBE entry=pvh cmdline=\"action=poweroff cpus=2\" lapics=2 hids=PNP0501,QEMU0001\nPROBE RESULT PASS\n",
        )
        .unwrap();
        assert_eq!(r.get("entry"), Some("pvh"));
        assert_eq!(r.get("cmdline"), Some("action=poweroff cpus=2"));
        assert_eq!(r.get("hids"), Some("PNP0501,QEMU0001"));
        assert!(r.passed());
        let f = Report::parse("PROBE entry=x\nPROBE RESULT FAIL lapic-count\n").unwrap();
        assert_eq!(f.result, Some(Some("lapic-count".into())));
    }
}
