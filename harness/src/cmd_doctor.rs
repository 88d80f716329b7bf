//! `vmtest doctor`: what this host can do, said plainly.

use std::process::Command;

use crate::vmm_choice::{BuiltinExpectation, HostKvm, KvmFacts};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {}

fn tool_version(cmd: &str, arg: &str) -> Option<String> {
    let out = Command::new(cmd).arg(arg).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let text = if text.trim().is_empty() {
        String::from_utf8_lossy(&out.stderr).into_owned()
    } else {
        text.into_owned()
    };
    text.lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

/// `name` in a 20-column field, then `text` wrapped to 80 columns under that field.
fn field(name: &str, text: &str) -> String {
    const INDENT: usize = 20;
    const WIDTH: usize = 80;
    let mut out = format!("{name:<INDENT$}");
    let mut col = out.len();
    for (i, word) in text.split_whitespace().enumerate() {
        if i > 0 && col + 1 + word.len() > WIDTH {
            out.push('\n');
            out.push_str(&" ".repeat(INDENT));
            col = INDENT;
        } else if i > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
    }
    out
}

/// The builtin backend's verdict for this host, as doctor prints it.
pub fn builtin_lines(host: &HostKvm) -> Vec<String> {
    match (host, host.builtin_expectation()) {
        (_, BuiltinExpectation::Works) => vec![
            field("KVM", "hardware virtualization"),
            field(
                "builtin backend",
                "EXPECTED TO WORK: installs and boots run at hardware speed, and `--vmm auto` \
                 picks it for every test the microVM can serve (README: \"On a real KVM host\").",
            ),
        ],
        (host, BuiltinExpectation::KernelOnly(why)) => {
            let what = match host {
                HostKvm::Emulated { why, .. } => why.as_str(),
                _ => "",
            };
            vec![
                field("KVM", &format!("EMULATED: {what}.")),
                field(
                    "builtin backend",
                    &format!(
                        "KERNEL INIT ONLY: {why}. Installer tests need `--vmm qemu` here \
                         (`--vmm auto` picks it); the builtin VMM is checked by guest probes \
                         and by Linux's own drivers up to user space (make test-linux)."
                    ),
                ),
            ]
        }
        (_, BuiltinExpectation::No(why)) => vec![
            field("/dev/kvm", &format!("NOT USABLE: {why}")),
            field(
                "builtin backend",
                "NOT EXPECTED TO WORK: it needs /dev/kvm. Use `--vmm qemu` (TCG), or fix \
                 access to /dev/kvm.",
            ),
        ],
    }
}

pub fn run(_args: DoctorArgs) -> anyhow::Result<i32> {
    let probe = vmm::host::probe_kvm();
    if let Ok(r) = &probe {
        println!(
            "/dev/kvm            usable (API {}, {} vCPUs recommended, {} max)",
            r.api_version, r.recommended_vcpus, r.max_vcpus
        );
        println!(
            "guest speed         {:.1} M instructions/s (a VM's first exit after {:.2} ms)",
            r.guest_speed.instructions_per_sec / 1e6,
            r.guest_speed.entry_time.as_secs_f64() * 1e3
        );
    }
    let host = HostKvm::classify(probe.as_ref().map(KvmFacts::from));
    for line in builtin_lines(&host) {
        println!("{line}");
    }
    let ok = !matches!(host, HostKvm::Absent { .. });
    for (tool, arg, why) in [
        (
            "qemu-system-x86_64",
            "--version",
            "the qemu backend (apt-get install qemu-system-x86)",
        ),
        (
            "iasl",
            "-v",
            "ACPI table checks in the tests (apt-get install acpica-tools)",
        ),
    ] {
        match tool_version(tool, arg) {
            Some(v) => println!("{tool:<20}{v}"),
            None => println!("{tool:<20}missing: needed for {why}"),
        }
    }
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctor_says_whether_the_builtin_backend_works_for_each_kind_of_host() {
        let text = |h: HostKvm| builtin_lines(&h).join("\n");
        let real = text(HostKvm::Real);
        assert!(
            real.contains("builtin backend     EXPECTED TO WORK"),
            "{real}"
        );
        let pvm = text(HostKvm::Emulated {
            pvm: true,
            why: "PVM here".into(),
        });
        assert!(pvm.contains("EMULATED: PVM here"), "{pvm}");
        assert!(
            pvm.contains("KERNEL INIT ONLY") && pvm.contains("SYSCALL"),
            "{pvm}"
        );
        let absent = text(HostKvm::Absent {
            why: "cannot open /dev/kvm".into(),
        });
        assert!(absent.contains("NOT EXPECTED TO WORK"), "{absent}");
        assert!(absent.contains("cannot open /dev/kvm"), "{absent}");
    }
}
