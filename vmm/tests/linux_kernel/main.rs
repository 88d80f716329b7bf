//! Linux's own drivers against the builtin VMM, with `qemu -M microvm` (TCG) as the
//! reference: the same kernel (built from Debian's linux-source by `make linux-kernel`,
//! everything built in, no initramfs) and the same disks on both, judged from the
//! kernel's own log. Opt-in (`make test-linux`); VMTEST_LINUX_KERNEL_DIR names the kernel
//! (without it the test asks scripts/linux-kernel.sh where the cached one is).
//!
//! Two boots per backend, each ended by the kernel's panic when it finds no init:
//! - "rw root", 2 vCPUs: a GPT disk whose ext4 root is mounted read-write
//!   (`root=PARTUUID=`), an msdos disk with 4096-byte logical blocks, a read-only disk and
//!   a NIC on the user-mode NAT (`ip=dhcp`). Asserted: virtio_mmio bound every LNRO0005
//!   device of the DSDT; both vCPUs came up; each disk's capacity, logical block size and
//!   partitions; the kernel's DHCP got 10.0.2.15; the root mounted read-write, and the
//!   host then sees the write (ext4's mount count) with `e2fsck -fn` clean; the panic
//!   ended the run at once, as a crash through pvpanic carrying the panic line.
//! - "ro root", 1 vCPU: the same disks, the root on the read-only disk with `rw` asked
//!   for. The kernel is refused write access and mounts it read-only ("VFS: Mounted root
//!   (ext4 filesystem) readonly"): the only place its log shows that a disk is
//!   read-only. The host checks the read-only image is unchanged, byte for byte.
//!
//! The guest time of each milestone (printk timestamps) is printed side by side. The
//! boots run one after another: where KVM is emulated each vCPU keeps a host core busy,
//! and a starved emulated guest can spend all it gets in timer ticks.

mod checks;
mod disks;
mod klog;
mod qemu;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use disks::{Disks, RO_PARTUUID, ROOT_PARTUUID};
use vmm::{BlockConfig, ExitReason, NetSpec, VmConfig};

const MAC: &str = "52:54:00:12:34:56";
/// Hard limit per VM. A boot takes 1-3 minutes where KVM is emulated (PVM), seconds under
/// TCG and on hardware KVM.
const LIMIT: Duration = Duration::from_secs(600);

/// One boot of the test: what it asks of the kernel.
pub struct Boot {
    pub name: &'static str,
    pub vcpus: u32,
    pub nic: bool,
    pub rw_root: bool,
}

impl Boot {
    pub fn cmdline(&self) -> String {
        format!(
            "console=ttyS0 loglevel=8 root=PARTUUID={} rw {}",
            if self.rw_root {
                ROOT_PARTUUID
            } else {
                RO_PARTUUID
            },
            if self.nic { "ip=dhcp" } else { "ip=off" }
        )
    }
}

const BOOTS: [Boot; 2] = [
    Boot {
        name: "rw root",
        vcpus: 2,
        nic: true,
        rw_root: true,
    },
    Boot {
        name: "ro root",
        vcpus: 1,
        nic: false,
        rw_root: false,
    },
];

/// How a boot ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// The guest panicked and said so through pvpanic; the text is the VMM's report.
    Panic(String),
    Timeout,
    Other(String),
}

/// One boot's result.
pub struct Run {
    pub backend: &'static str,
    pub serial: String,
    pub end: End,
    pub wall: Duration,
    pub log: PathBuf,
}

fn kernel() -> PathBuf {
    let dir = match std::env::var_os("VMTEST_LINUX_KERNEL_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/linux-kernel.sh");
            let out = Command::new(&script)
                .arg("--print-dir")
                .output()
                .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
            assert!(
                out.status.success(),
                "{} --print-dir: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    let vmlinux = dir.join("vmlinux");
    assert!(
        vmlinux.is_file(),
        "no kernel at {}: build it with `make linux-kernel` (once per machine)",
        vmlinux.display()
    );
    vmlinux
}

fn builtin(kernel: &Path, disks: &Disks, boot: &Boot, dir: &Path, emulated: bool) -> Run {
    let log = dir.join("serial-builtin.log");
    let mut config = VmConfig::new(kernel);
    config.memory_mib = 256;
    config.vcpus = boot.vcpus;
    config.timeout = Some(LIMIT);
    config.cmdline = boot.cmdline();
    if emulated {
        config.adapt_linux_guest_to_emulated_kvm();
    }
    for (i, d) in disks.all().iter().enumerate() {
        let mut b = BlockConfig::new(&d.path);
        b.serial = Some(format!("disk-{i}"));
        b.read_only = d.read_only;
        b.block_size = d.block_size;
        config.disks.push(b);
    }
    if boot.nic {
        let mut nic = NetSpec::default();
        nic.mac = Some(MAC.parse().unwrap());
        config.nets.push(nic);
    }
    config.serial.log_file = Some(log.clone());
    config.serial.overwrite_log = true;
    let capture = config.serial.capture();
    let start = Instant::now();
    let reason = vmm::run(&config).expect("the builtin VMM runs");
    let wall = start.elapsed();
    let serial = String::from_utf8_lossy(&capture.lock().unwrap()).into_owned();
    let end = match reason {
        ExitReason::Crash(c) if c.reason.contains("pvpanic") => End::Panic(c.reason),
        ExitReason::Timeout => End::Timeout,
        other => End::Other(other.to_string()),
    };
    Run {
        backend: "builtin",
        serial,
        end,
        wall,
        log,
    }
}

#[test]
#[ignore = "needs the kernel of `make linux-kernel`; minutes where KVM is emulated: make test-linux"]
fn linux_drivers_on_builtin_and_qemu_microvm() {
    qemu::check();
    let kernel = kernel();
    let emulated = vmm::host::probe_kvm()
        .expect("/dev/kvm is usable")
        .is_emulated();
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("linux-kernel");
    let _ = std::fs::remove_dir_all(&base);
    let pristine = Disks::make(&base.join("made"));

    let mut runs = Vec::new();
    for backend in ["builtin", "qemu"] {
        for boot in &BOOTS {
            let dir = base.join(format!("{backend}-{}", boot.name.replace(' ', "-")));
            let disks = pristine.copy_to(&dir);
            let run = match backend {
                "builtin" => builtin(&kernel, &disks, boot, &dir, emulated),
                _ => qemu::run(&kernel, &disks, boot, &dir, LIMIT),
            };
            println!(
                "{backend} {}: {:?} after {:.1} s (serial log {})",
                boot.name,
                run.end,
                run.wall.as_secs_f64(),
                run.log.display()
            );
            runs.push((boot, disks, run));
        }
    }

    let columns: Vec<checks::Column> = runs
        .iter()
        .map(|(boot, disks, run)| {
            let kvm = match (run.backend, emulated) {
                ("builtin", true) => "builtin, emulated KVM",
                ("builtin", false) => "builtin, KVM",
                _ => "qemu microvm TCG",
            };
            checks::Column {
                title: format!("{kvm}, {}", boot.name),
                milestones: checks::milestones(&klog::KernelLog::parse(&run.serial), boot, disks),
                wall: run.wall,
            }
        })
        .collect();
    println!("\n{}", checks::table(&columns));

    for (boot, disks, run) in &runs {
        checks::check(run, boot, disks);
        checks::check_on_host(run, boot, disks, &pristine);
    }
}
