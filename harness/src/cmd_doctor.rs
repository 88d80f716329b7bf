//! `vmtest doctor`: what this host can do, said plainly.

use std::process::Command;

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

pub fn run(_args: DoctorArgs) -> anyhow::Result<i32> {
    let mut ok = true;
    match vmm::host::probe_kvm() {
        Ok(r) => {
            println!(
                "/dev/kvm            usable (API {}, {} vCPUs recommended, {} max)",
                r.api_version, r.recommended_vcpus, r.max_vcpus
            );
            println!(
                "guest speed         {:.1} M instructions/s (a VM's first exit after {:.2} ms)",
                r.guest_speed.instructions_per_sec / 1e6,
                r.guest_speed.entry_time.as_secs_f64() * 1e3
            );
            if r.is_emulated() {
                let why = if r.pvm_module {
                    "the kvm_pvm module is loaded (PVM): ordinary guests run in KVM's instruction emulator"
                } else {
                    "guests run far below hardware speed: KVM is emulating them"
                };
                println!("KVM                 EMULATED: {why}.");
                println!(
                    "                    Real guests (Linux) are about 1000x slower than on hardware and\n\
                     \x20                   Debian's kernel does not survive the emulator. Use `--vmm qemu`\n\
                     \x20                   (TCG) for real guests here; the builtin VMM is checked with\n\
                     \x20                   guest probes (make test). `--vmm auto` picks qemu on this host."
                );
            } else {
                println!(
                    "KVM                 hardware virtualization: the builtin VMM runs guests at full speed."
                );
            }
        }
        Err(e) => {
            ok = false;
            println!("/dev/kvm            NOT USABLE: {e}");
            println!("                    Use `--vmm qemu` (TCG) or fix access to /dev/kvm.");
        }
    }
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
