//! qemu's command line for one phase: machine, boot, disks, NICs, console, QMP, sandbox.
//!
//! Values inside qemu's `key=value,...` options have their commas doubled (qemu's escape),
//! so a path or serial with a comma stays one value. Plain arguments (`-kernel PATH`) are
//! passed as they are.

use std::os::fd::RawFd;
use std::path::Path;

use super::{Accel, Machine, QemuBackend};
use crate::backend::{BackendError, Boot, DiskBus, FirmwareError, PhaseSpec};

/// Descriptors the phase's qemu inherits (numbers as in the child).
#[derive(Debug, Clone, Default)]
pub struct PassedFds {
    /// One end of the harness's QMP socket pair.
    pub qmp: RawFd,
    /// Per NIC, one end of its user-mode network's frame socket (`-netdev dgram`).
    pub nics: Vec<RawFd>,
    /// The write end of the pipe the harness reads the serial console from (so the log
    /// file is the harness's, with its cap): qemu opens it as `/proc/self/fd/N`.
    pub serial: RawFd,
}

impl PassedFds {
    pub fn all(&self) -> Vec<RawFd> {
        [self.qmp, self.serial]
            .into_iter()
            .chain(self.nics.iter().copied())
            .collect()
    }
}

/// A value inside a qemu option list: commas doubled.
pub fn opt_value(v: &str) -> String {
    v.replace(',', ",,")
}

fn path_value(p: &Path) -> Result<String, BackendError> {
    path_arg(p).map(|s| opt_value(&s))
}

fn path_arg(p: &Path) -> Result<String, BackendError> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| BackendError::NotUtf8(p.into()))
}

/// qemu's seccomp sandbox: no obsolete system calls, no set*id, no fork/exec, no
/// scheduler or affinity changes. qemu needs none of them here: its network is the
/// harness's, so it spawns nothing, and the harness drops no privileges through it.
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

impl QemuBackend {
    /// The whole command line for a phase, given the descriptors qemu inherits.
    pub fn args(&self, spec: &PhaseSpec, fds: &PassedFds) -> Result<Vec<String>, BackendError> {
        let microvm = self.machine == Machine::Microvm;
        let mut a: Vec<String> = Vec::new();
        let mut push = |s: &str| a.push(s.to_string());
        push("-nodefaults");
        push("-no-user-config");
        push("-display");
        push("none");
        push("-sandbox");
        push(SANDBOX);
        push("-machine");
        push(&format!(
            "{},accel={}",
            if microvm { "microvm" } else { "pc" },
            match self.accel {
                Accel::Kvm => "kvm",
                Accel::Tcg => "tcg",
            }
        ));
        if microvm {
            // qemu's virtio-mmio defaults to the legacy (version 1) interface.
            push("-global");
            push("virtio-mmio.force-legacy=false");
        }
        if self.accel == Accel::Kvm {
            push("-cpu");
            push("host");
        }
        push("-m");
        push(&spec.memory_mib.to_string());
        push("-smp");
        push(&spec.vcpus.to_string());
        push("-no-reboot");
        push("-rtc");
        push("base=utc");
        match &spec.boot {
            Boot::Direct {
                kernel,
                initrd,
                cmdline,
            } => {
                push("-kernel");
                push(&path_arg(kernel)?);
                if let Some(i) = initrd {
                    push("-initrd");
                    push(&path_arg(i)?);
                }
                push("-append");
                push(cmdline);
            }
            Boot::Firmware { .. } if microvm => {
                return Err(BackendError::MicrovmNoFirmware);
            }
            Boot::Firmware { uefi } => {
                if *uefi && spec.uefi_nvram.is_none() {
                    // Volatile variables: nothing the guest writes survives the phase.
                    push("-bios");
                    push("/usr/share/qemu/OVMF.fd");
                }
            }
        }
        if let Some(nvram) = &spec.uefi_nvram {
            if microvm {
                return Err(BackendError::MicrovmNoUefi);
            }
            let ovmf = self.ovmf.as_ref().ok_or(FirmwareError::NotFound)?;
            // OVMF on two flash devices: its code read-only, the test's own variables
            // writable, so boot entries written in one phase are there in the next. A
            // -kernel given too is loaded through the firmware.
            push("-drive");
            push(&format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                path_value(&ovmf.code)?
            ));
            push("-drive");
            push(&format!(
                "if=pflash,format=raw,unit=1,file={}",
                path_value(nvram)?
            ));
        }
        let (blk, net, rng) = if microvm {
            (
                "virtio-blk-device",
                "virtio-net-device",
                "virtio-rng-device",
            )
        } else {
            ("virtio-blk-pci", "virtio-net-pci", "virtio-rng-pci")
        };
        if spec.disks.iter().any(|d| d.bus == DiskBus::Scsi) {
            push("-device");
            push("virtio-scsi-pci,id=scsi0");
        }
        for (i, d) in spec.disks.iter().enumerate() {
            if microvm && (d.bus != DiskBus::VirtioBlk || d.paths > 1) {
                return Err(BackendError::MicrovmDisk(d.path.clone()));
            }
            for path in 0..d.paths.max(1) {
                let id = if d.paths > 1 {
                    format!("disk{i}p{path}")
                } else {
                    format!("disk{i}")
                };
                push("-drive");
                push(&format!(
                    "file={},if=none,id={id},format=raw,cache=unsafe,discard=unmap{}{}",
                    path_value(&d.path)?,
                    if d.read_only { ",readonly=on" } else { "" },
                    // Several paths to one file: qemu must not lock it against itself.
                    if d.paths > 1 { ",file.locking=off" } else { "" }
                ));
                push("-device");
                // With the test's own NVRAM the firmware follows the BootOrder the
                // installer wrote there; a bootindex would make OVMF reorder it by qemu's
                // device order.
                let boot = if i == 0
                    && path == 0
                    && matches!(spec.boot, Boot::Firmware { .. })
                    && spec.uefi_nvram.is_none()
                {
                    ",bootindex=0"
                } else {
                    ""
                };
                let serial = opt_value(&d.serial);
                let bs = d.block_size;
                let sizes = format!("logical_block_size={bs},physical_block_size={bs}");
                push(&match d.bus {
                    DiskBus::VirtioBlk => {
                        format!("{blk},drive={id},serial={serial},{sizes}{boot}")
                    }
                    DiskBus::Nvme => format!("nvme,drive={id},serial={serial},{sizes}{boot}"),
                    DiskBus::Scsi => format!(
                        "scsi-hd,drive={id},bus=scsi0.0,serial={serial}{},{sizes}{boot}",
                        d.wwn
                            .as_deref()
                            .map(|w| format!(",wwn={}", opt_value(w)))
                            .unwrap_or_default()
                    ),
                });
            }
        }
        if fds.nics.len() != spec.nics.len() {
            return Err(BackendError::NicSockets {
                nics: spec.nics.len(),
                sockets: fds.nics.len(),
            });
        }
        for (i, (n, fd)) in spec.nics.iter().zip(&fds.nics).enumerate() {
            // The NIC's frames go to the harness's user-mode network (one frame per
            // message), the same filtered libslirp the builtin VMM uses.
            push("-netdev");
            push(&format!("dgram,id=net{i},local.type=fd,local.str={fd}"));
            push("-device");
            let rom = if microvm { "" } else { ",romfile=" };
            push(&format!(
                "{net},netdev=net{i},mac={}{rom}",
                opt_value(&n.mac)
            ));
        }
        push("-device");
        push(rng);
        push("-chardev");
        push(&format!("socket,id=qmp,fd={}", fds.qmp));
        push("-mon");
        push("chardev=qmp,mode=control");
        // The console's output goes to the harness's pipe, never to a file qemu writes:
        // the harness caps the serial log (see `SerialCopier`).
        let serial_out = format!("/proc/self/fd/{}", fds.serial);
        push("-chardev");
        if spec.interactive {
            push(&format!(
                "stdio,id=console,mux=on,signal=off,logfile={serial_out}"
            ));
        } else {
            push(&format!("file,id=console,path={serial_out}"));
        }
        push("-serial");
        push("chardev:console");
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_are_doubled_inside_options() {
        assert_eq!(opt_value("/top,dir/a,,b"), "/top,,dir/a,,,,b");
        assert_eq!(opt_value("plain"), "plain");
    }

    use crate::backend::{Disk, Ovmf};
    use std::path::PathBuf;
    use std::time::Duration;

    impl QemuBackend {
        fn args_for_test(&self, spec: &PhaseSpec) -> Vec<String> {
            self.args(spec, &PassedFds::default()).unwrap()
        }
    }

    fn backend() -> QemuBackend {
        QemuBackend {
            binary: "qemu-system-x86_64".into(),
            ovmf: Some(Ovmf {
                code: "/fw/CODE.fd".into(),
                vars_template: "/fw/VARS.fd".into(),
            }),
            accel: Accel::Tcg,
            accel_reason: "test".into(),
            machine: Machine::Pc,
            direct_boot: false,
        }
    }

    fn spec(boot: Boot, nvram: Option<&str>) -> PhaseSpec {
        PhaseSpec {
            phase: crate::backend::Phase::Install,
            boot,
            disks: vec![Disk::virtio("/d/a,b.img".into(), "disk-a", 512, false)],
            nics: vec![],
            memory_mib: 1024,
            vcpus: 1,
            serial_log: "/l/s.log".into(),
            serial_log_cap: vmm::DEFAULT_LOG_CAP,
            log_dir: "/l".into(),
            timeout: Duration::from_secs(1),
            host_ports: vec![],
            outbound: Default::default(),
            interactive: false,
            uefi_nvram: nvram.map(PathBuf::from),
        }
    }

    fn direct() -> Boot {
        Boot::Direct {
            kernel: "/i/kernel".into(),
            initrd: None,
            cmdline: "console=ttyS0".into(),
        }
    }

    #[test]
    fn a_direct_kernel_with_nvram_boots_through_ovmf_flash() {
        let a = backend().args_for_test(&spec(direct(), Some("/w/disks/ovmf_vars.fd")));
        let joined = a.join(" ");
        assert!(
            joined.contains("-drive if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd")
                && joined.contains("-drive if=pflash,format=raw,unit=1,file=/w/disks/ovmf_vars.fd")
                && joined.contains("-kernel /i/kernel"),
            "{joined}"
        );
        assert!(!joined.contains("-bios"), "{joined}");
        // Disk paths with commas are escaped for qemu.
        assert!(joined.contains("file=/d/a,,b.img"), "{joined}");
    }

    #[test]
    fn firmware_boot_with_nvram_follows_the_nvram_boot_order() {
        let a = backend()
            .args_for_test(&spec(Boot::Firmware { uefi: true }, Some("/w/v.fd")))
            .join(" ");
        assert!(a.contains("unit=1,file=/w/v.fd"), "{a}");
        assert!(!a.contains("bootindex"), "{a}");
        assert!(!a.contains("-bios"), "{a}");
        // Without NVRAM: volatile OVMF, first disk first.
        let a = backend()
            .args_for_test(&spec(Boot::Firmware { uefi: true }, None))
            .join(" ");
        assert!(a.contains("-bios /usr/share/qemu/OVMF.fd"), "{a}");
        assert!(a.contains("bootindex=0"), "{a}");
        assert!(!a.contains("pflash"), "{a}");
        // BIOS direct boot: no firmware options at all.
        let a = backend().args_for_test(&spec(direct(), None)).join(" ");
        assert!(!a.contains("pflash") && !a.contains("-bios"), "{a}");
    }
}
