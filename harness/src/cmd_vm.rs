//! `vmtest vm`: boot one VM on the builtin VMM; the exit code tells how it ended.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use vmm::{CpuFeature, ExitReason, VmConfig};

use crate::units::{parse_duration, parse_memory};

/// Exit codes: see [`exit_code`]; 1 is bad input or a VMM error.
#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Kernel: a bzImage (e.g. /boot/vmlinuz-*) or an ELF with a PVH entry note.
    #[arg(long)]
    pub kernel: PathBuf,
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, default_value = "")]
    pub append: String,
    /// Guest memory: a number of MiB, or with a unit (512M, 2G).
    #[arg(long, default_value = "512M", value_parser = parse_memory)]
    pub memory: u64,
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// Also write the serial console to this file (must not exist, see --overwrite-log).
    #[arg(long)]
    pub serial_log: Option<PathBuf>,
    /// Allow --serial-log to replace an existing file.
    #[arg(long)]
    pub overwrite_log: bool,
    /// Most the --serial-log file holds (e.g. 64M): past it, the first half and the newest
    /// output are kept around a marker line.
    #[arg(long, default_value = "64M", value_parser = parse_log_cap)]
    pub serial_log_cap: u64,
    /// Do not copy the serial console to stdout.
    #[arg(long, short, conflicts_with = "console")]
    pub quiet: bool,
    /// Interactive console: keystrokes go to the guest's ttyS0 (raw mode on a terminal).
    /// Ctrl-A x leaves and stops the VM (exit code 5), Ctrl-A h lists the keys, Ctrl-A
    /// Ctrl-A sends Ctrl-A.
    #[arg(long)]
    pub console: bool,
    /// Stop the VM after this long: seconds, or with a unit (90s, 5m).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Hide CPUID features from the guest (comma list: xsave, cx16, avx, ... or
    /// LEAF[.SUBLEAF]:REG:BIT).
    #[arg(long, value_delimiter = ',')]
    pub cpuid_mask: Vec<String>,
    /// How to enter the kernel: auto (bzImage: Linux 64-bit entry; ELF: PVH), linux64, or
    /// pvh (for a bzImage: decompress its vmlinux on the host and enter through PVH).
    #[arg(long, default_value = "auto")]
    pub boot: vmm::BootPath,
    /// A virtio-blk disk: PATH[,serial=S][,ro][,block-size=512|4096]. Repeatable; the
    /// guest sees them in this order.
    #[arg(long = "disk")]
    pub disks: Vec<vmm::BlockConfig>,
    /// A virtio-net NIC on user-mode NAT:
    /// user[,mac=M][,allow=PORT][,fwd=HOST:GUEST][,out=RULE]. The guest reaches the host
    /// (at 10.0.2.2) only on allowed ports, and beyond it only what `out=` rules allow
    /// (internet, host:PORT, ADDR[/PREFIX][:PORT]; nothing by default). Repeatable.
    #[arg(long = "net")]
    pub nets: Vec<vmm::NetSpec>,
}

/// A serial log cap: a size of at least [`vmm::capped_log::MIN_LOG_CAP`].
pub fn parse_log_cap(s: &str) -> Result<u64, String> {
    let min = vmm::capped_log::MIN_LOG_CAP;
    match crate::units::parse_size(s)? {
        n if n < min => Err(format!("'{s}' is below the smallest log cap ({min} bytes)")),
        n => Ok(n),
    }
}

pub fn run(args: VmArgs) -> anyhow::Result<i32> {
    let cpuid_mask = args
        .cpuid_mask
        .iter()
        .map(|f| f.parse::<CpuFeature>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = VmConfig::new(args.kernel);
    config.initrd = args.initrd;
    config.cmdline = args.append;
    config.memory_mib = args.memory;
    config.vcpus = args.cpus;
    config.serial.log_file = args.serial_log;
    config.serial.overwrite_log = args.overwrite_log;
    config.serial.log_cap = args.serial_log_cap;
    config.serial.stdout = !args.quiet;
    config.timeout = args.timeout;
    config.cpuid_mask = cpuid_mask;
    config.boot_path = args.boot;
    // Only where KVM is PVM, i.e. guests run in KVM's instruction emulator.
    config.emulated_kvm_assist = vmm::host::kvm_module_is_pvm();
    config.disks = args.disks;
    config.nets = args.nets;
    let console = if args.console {
        let stop = vmm::StopHandle::new();
        config.stop = Some(stop.clone());
        let input = config.serial.input();
        Some(
            crate::console::Console::attach_stdin(input, move || stop.stop())
                .context("cannot attach the console to stdin")?,
        )
    } else {
        None
    };
    let start = Instant::now();
    let reason = vmm::run(&config);
    // Detach (and restore the terminal) before saying anything more.
    drop(console);
    let reason = reason.context("cannot boot the VM")?;
    let how = match reason {
        ExitReason::Stopped => "stopped at the console (Ctrl-A x)".to_string(),
        ref other => other.to_string(),
    };
    eprintln!(
        "vmtest: guest ended: {how} after {:.3} s",
        start.elapsed().as_secs_f64()
    );
    if let ExitReason::Crash(c) = &reason
        && let Some(regs) = &c.registers
    {
        eprint!("{regs}");
    }
    Ok(exit_code(&reason))
}

/// The process exit code of `vmtest vm` for how the guest ended (documented in the README;
/// 1 is taken by bad input and VMM errors).
pub fn exit_code(reason: &ExitReason) -> i32 {
    match reason {
        ExitReason::PowerOff => 0,
        ExitReason::Reboot(_) => 2,
        ExitReason::Crash(_) => 3,
        ExitReason::Timeout => 4,
        ExitReason::Stopped => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_log_caps() {
        assert_eq!(parse_log_cap("64M"), Ok(64 << 20));
        assert_eq!(parse_log_cap("4K"), Ok(4096));
        assert!(parse_log_cap("100").unwrap_err().contains("smallest"));
        assert!(parse_log_cap("lots").is_err());
    }

    #[test]
    fn each_exit_reason_has_its_own_documented_code() {
        assert_eq!(exit_code(&ExitReason::PowerOff), 0);
        for source in [
            vmm::ResetSource::AcpiResetRegister,
            vmm::ResetSource::I8042,
            vmm::ResetSource::TripleFault,
        ] {
            assert_eq!(exit_code(&ExitReason::Reboot(source)), 2);
        }
        let crash = vmm::CrashReport::new("KVM internal error");
        assert_eq!(exit_code(&ExitReason::Crash(crash)), 3);
        assert_eq!(exit_code(&ExitReason::Timeout), 4);
        assert_eq!(exit_code(&ExitReason::Stopped), 5);
    }
}
