//! `vmtest vm`: boot one VM on the builtin VMM; the exit code tells how it ended.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use vmm::{CpuFeature, ExitReason, VmConfig};

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

pub fn parse_memory(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower.strip_suffix("gib").or(lower.strip_suffix('g')) {
        (n, 1024)
    } else if let Some(n) = lower.strip_suffix("mib").or(lower.strip_suffix('m')) {
        (n, 1)
    } else {
        (lower.as_str(), 1)
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("'{s}' is not a memory size (examples: 512, 512M, 2G)"))
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let secs = num
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| v * mult)
        .ok_or_else(|| format!("'{s}' is not a duration (examples: 30, 90s, 5m)"))?;
    // `Duration::from_secs_f64` panics on what it cannot hold, and a deadline far in the
    // future overflows `Instant` arithmetic: bound the value before converting it.
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "'{s}' is longer than the longest duration accepted ({} days)",
            MAX_DURATION.as_secs() / 86_400
        ));
    }
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("'{s}' is not a positive duration (examples: 30, 90s, 5m)"))
}

/// The longest `--timeout` (a year): long enough for any VM run, short enough that a
/// deadline computed from it never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

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
    fn memory_sizes() {
        assert_eq!(parse_memory("512"), Ok(512));
        assert_eq!(parse_memory("512M"), Ok(512));
        assert_eq!(parse_memory("2G"), Ok(2048));
        assert_eq!(parse_memory("1GiB"), Ok(1024));
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("0").is_err());
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

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        // Huge, infinite and vanishing values are errors, never a panic.
        for bad in ["1e30", "1e30h", "inf", "NaN", "1e-12", "0", "-0"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert!(parse_duration("1e30").unwrap_err().contains("365 days"));
        assert_eq!(parse_duration("365d").ok(), None);
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
    }
}
