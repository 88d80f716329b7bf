use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use devices::serial::SerialInput;

use crate::error::Error;

/// Everything needed to boot one VM.
///
/// Configuration types here are plain data: public fields, a constructor for what has no
/// sensible default, and `#[non_exhaustive]` so fields can be added without breaking
/// callers. Nothing is checked while building one; [`crate::run`] checks everything before
/// it writes anything.
///
/// ```no_run
/// let mut config = vmm::VmConfig::new("/boot/vmlinuz");
/// config.memory_mib = 1024;
/// config.cmdline = "console=ttyS0".into();
/// config.disks.push(vmm::BlockConfig::new("/tmp/disk.img"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct VmConfig {
    /// bzImage (Linux boot protocol) or ELF with a PVH entry note.
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    /// Guest RAM in MiB (default 512).
    pub memory_mib: u64,
    /// Number of vCPUs (default 1).
    pub vcpus: u32,
    pub serial: SerialConfig,
    /// The watchdog: the VM is stopped with [`crate::ExitReason::Timeout`] when it expires.
    pub timeout: Option<Duration>,
    /// CPUID features hidden from the guest on top of what KVM cannot offer.
    pub cpuid_mask: Vec<CpuFeature>,
    pub boot_path: BootPath,
    /// Complete the few simple instructions KVM's instruction emulator lacks (int3, fwait,
    /// clac/stac; see `emulated_kvm`). Only for
    /// hosts where `host::probe_kvm()` finds KVM emulated; off by default.
    pub emulated_kvm_assist: bool,
    /// virtio-blk disks, in the order the guest enumerates them.
    pub disks: Vec<devices::virtio::block::BlockConfig>,
    /// virtio-net NICs, each on its own user-mode NAT network. Needs the `usernet` feature
    /// (libslirp); without it [`crate::run`] refuses a VM that has any.
    pub nets: Vec<usernet::NetSpec>,
    /// Lets the host end the VM on purpose ([`crate::ExitReason::Stopped`]).
    pub stop: Option<StopHandle>,
    /// Confine the vCPU and device threads with their seccomp filters (the default; off
    /// only to find out whether a filter is what breaks a guest).
    pub seccomp: bool,
}

/// How a kernel is entered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootPath {
    /// bzImage through the Linux boot protocol, ELF through PVH.
    #[default]
    Auto,
    /// The Linux boot protocol's 64-bit entry (bzImage only).
    Linux64,
    /// PVH. For a bzImage the vmlinux inside is decompressed on the host and entered
    /// through its PVH note, skipping the guest-side decompressor.
    Pvh,
}

impl FromStr for BootPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BootPath::Auto),
            "linux64" | "bzimage" => Ok(BootPath::Linux64),
            "pvh" => Ok(BootPath::Pvh),
            _ => Err(format!("unknown boot path '{s}' (auto, linux64, pvh)")),
        }
    }
}

impl VmConfig {
    /// A VM booting `kernel` with 512 MiB, one vCPU, an empty command line, no devices
    /// beyond the built-in ones, serial output discarded and no timeout.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        Self {
            kernel: kernel.into(),
            initrd: None,
            cmdline: String::new(),
            memory_mib: 512,
            vcpus: 1,
            serial: SerialConfig::default(),
            timeout: None,
            cpuid_mask: Vec::new(),
            boot_path: BootPath::Auto,
            emulated_kvm_assist: false,
            disks: Vec::new(),
            nets: Vec::new(),
            stop: None,
            seccomp: true,
        }
    }
}

/// Where COM1's output goes (any combination; with none, output is discarded) and where
/// its input comes from.
#[derive(Clone)]
#[non_exhaustive]
pub struct SerialConfig {
    /// A log file. It must not exist yet unless `overwrite_log` is set: a previous run's
    /// log is never replaced unasked.
    pub log_file: Option<PathBuf>,
    pub overwrite_log: bool,
    /// Most bytes the log file holds: past it, the first half and the newest output are
    /// kept around a marker line ([`crate::CappedLog`]). [`crate::DEFAULT_LOG_CAP`] unless set.
    pub log_cap: u64,
    /// Copy output to this process's stdout (the interactive console), unbuffered so a
    /// prompt without a newline shows at once.
    pub stdout: bool,
    /// Further writers, e.g. an in-memory capture for tests or a line watcher.
    pub writers: Vec<Arc<Mutex<dyn Write + Send>>>,
    /// Bytes for the guest to read on COM1 (keystrokes). Without one the guest reads
    /// nothing. Sending may start before the VM does; see [`SerialInput`].
    pub input: Option<SerialInput>,
}

impl Default for SerialConfig {
    fn default() -> Self {
        SerialConfig {
            log_file: None,
            overwrite_log: false,
            log_cap: crate::DEFAULT_LOG_CAP,
            stdout: false,
            writers: Vec::new(),
            input: None,
        }
    }
}

impl SerialConfig {
    /// Adds an in-memory capture to `writers` and returns it.
    pub fn capture(&mut self) -> Arc<Mutex<Vec<u8>>> {
        let buf = Arc::new(Mutex::new(Vec::new()));
        self.writers.push(buf.clone());
        buf
    }

    /// Sets `input` (unless one is set) and returns it, for sending the guest keystrokes.
    pub fn input(&mut self) -> SerialInput {
        self.input.get_or_insert_with(SerialInput::new).clone()
    }
}

/// Ends a running VM on purpose: [`crate::run`] then returns [`crate::ExitReason::Stopped`]
/// once every vCPU thread is joined. Clones share one stop: a stop requested before the VM
/// starts ends it as soon as it does, and every later run given the handle ends at once.
#[derive(Clone, Default)]
pub struct StopHandle {
    shared: Arc<StopShared>,
}

#[derive(Default)]
struct StopShared {
    stopped: std::sync::atomic::AtomicBool,
    /// The runs using this handle now.
    running: Mutex<Vec<std::sync::Weak<crate::vm::ExitState>>>,
}

impl StopHandle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every VM using this handle to stop. Returns at once; `run` does the rest.
    pub fn stop(&self) {
        use std::sync::atomic::Ordering;
        self.shared.stopped.store(true, Ordering::SeqCst);
        let running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for exit in running.iter().filter_map(std::sync::Weak::upgrade) {
            exit.set(crate::ExitReason::Stopped);
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.shared
            .stopped
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Called by `run` before any vCPU starts.
    pub(crate) fn register(&self, exit: &Arc<crate::vm::ExitState>) {
        let mut running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        running.retain(|w| w.strong_count() > 0);
        running.push(Arc::downgrade(exit));
        // Checked under the lock `stop` takes, so a stop racing with this is never lost.
        if self.is_stopped() {
            exit.set(crate::ExitReason::Stopped);
        }
    }
}

/// One CPUID feature bit (or a named group of bits) to hide from the guest; made by
/// parsing a name or a raw bit (see [`FromStr`](#impl-FromStr-for-CpuFeature)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuFeature {
    pub name: String,
    pub bits: Vec<CpuidBit>,
}

/// One bit of CPUID output: which leaf (and subleaf), which register, which bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidBit {
    pub leaf: u32,
    /// `None`: every subleaf.
    pub subleaf: Option<u32>,
    pub reg: CpuidReg,
    pub bit: u8,
}

/// A CPUID output register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuidReg {
    Eax,
    Ebx,
    Ecx,
    Edx,
}

const fn b(leaf: u32, subleaf: u32, reg: CpuidReg, bit: u8) -> CpuidBit {
    CpuidBit {
        leaf,
        subleaf: Some(subleaf),
        reg,
        bit,
    }
}

use CpuidReg::{Ebx, Ecx, Edx};

/// Named features. Groups hide everything that depends on the named bit, so a guest never
/// sees e.g. AVX without XSAVE.
const NAMED: &[(&str, &[CpuidBit])] = &[
    (
        "xsave",
        &[
            b(1, 0, Ecx, 26), // XSAVE
            b(1, 0, Ecx, 27), // OSXSAVE
            b(1, 0, Ecx, 28), // AVX
            b(1, 0, Ecx, 12), // FMA
            b(1, 0, Ecx, 29), // F16C
            b(7, 0, Ebx, 5),  // AVX2
            b(7, 0, Ebx, 16), // AVX512F and friends
            b(7, 0, Ebx, 17),
            b(7, 0, Ebx, 21),
            b(7, 0, Ebx, 26),
            b(7, 0, Ebx, 27),
            b(7, 0, Ebx, 28),
            b(7, 0, Ebx, 30),
            b(7, 0, Ebx, 31),
            b(7, 0, Ecx, 1),
            b(7, 0, Ecx, 6),
            b(7, 0, Ecx, 11),
            b(7, 0, Ecx, 12),
            b(7, 0, Ecx, 14),
            b(7, 0, Edx, 2),
            b(7, 0, Edx, 3),
            b(7, 0, Edx, 8),
            b(7, 0, Edx, 23),
            b(0xd, 1, CpuidReg::Eax, 0), // XSAVEOPT
            b(0xd, 1, CpuidReg::Eax, 1), // XSAVEC
            b(0xd, 1, CpuidReg::Eax, 3), // XSAVES
        ],
    ),
    (
        "avx",
        &[
            b(1, 0, Ecx, 28),
            b(1, 0, Ecx, 12),
            b(1, 0, Ecx, 29),
            b(7, 0, Ebx, 5),
        ],
    ),
    (
        "avx512",
        &[
            b(7, 0, Ebx, 16),
            b(7, 0, Ebx, 17),
            b(7, 0, Ebx, 21),
            b(7, 0, Ebx, 26),
            b(7, 0, Ebx, 27),
            b(7, 0, Ebx, 28),
            b(7, 0, Ebx, 30),
            b(7, 0, Ebx, 31),
        ],
    ),
    ("cx16", &[b(1, 0, Ecx, 13)]),
    ("x2apic", &[b(1, 0, Ecx, 21)]),
    ("tsc-deadline", &[b(1, 0, Ecx, 24)]),
    ("pcid", &[b(1, 0, Ecx, 17)]),
    ("movbe", &[b(1, 0, Ecx, 22)]),
    ("aes", &[b(1, 0, Ecx, 25)]),
    ("rdrand", &[b(1, 0, Ecx, 30)]),
    ("rdseed", &[b(7, 0, Ebx, 18)]),
    ("smep", &[b(7, 0, Ebx, 7)]),
    ("smap", &[b(7, 0, Ebx, 20)]),
    ("la57", &[b(7, 0, Ecx, 16)]),
    ("pku", &[b(7, 0, Ecx, 3)]),
    ("umip", &[b(7, 0, Ecx, 2)]),
    ("fsgsbase", &[b(7, 0, Ebx, 0)]),
    ("pdpe1gb", &[b(0x8000_0001, 0, Edx, 26)]),
    ("rdtscp", &[b(0x8000_0001, 0, Edx, 27)]),
];

impl FromStr for CpuFeature {
    type Err = Error;

    /// A known name (`xsave`, `cx16`, ... see [`CpuFeature::known_names`]) or a raw bit as
    /// `LEAF[.SUBLEAF]:REG:BIT`, e.g. `0x1:ecx:13`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let name = s.trim().to_ascii_lowercase();
        if let Some((_, bits)) = NAMED.iter().find(|(n, _)| *n == name) {
            return Ok(CpuFeature {
                name,
                bits: bits.to_vec(),
            });
        }
        parse_raw(&name)
            .map(|bit| CpuFeature {
                name: name.clone(),
                bits: vec![bit],
            })
            .ok_or_else(|| Error::UnknownCpuFeature(s.to_string(), Self::known_names()))
    }
}

impl CpuFeature {
    pub fn known_names() -> String {
        let mut names: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
        names.push("or LEAF[.SUBLEAF]:REG:BIT");
        names.join(", ")
    }
}

fn parse_num(s: &str) -> Option<u32> {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_raw(s: &str) -> Option<CpuidBit> {
    let mut parts = s.split(':');
    let (leaf_part, reg, bit) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (leaf, subleaf) = match leaf_part.split_once('.') {
        Some((l, sl)) => (parse_num(l)?, Some(parse_num(sl)?)),
        None => (parse_num(leaf_part)?, None),
    };
    let reg = match reg {
        "eax" => CpuidReg::Eax,
        "ebx" => CpuidReg::Ebx,
        "ecx" => CpuidReg::Ecx,
        "edx" => CpuidReg::Edx,
        _ => return None,
    };
    let bit: u8 = bit.parse().ok().filter(|b| *b < 32)?;
    Some(CpuidBit {
        leaf,
        subleaf,
        reg,
        bit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_and_raw_features_parse() {
        let x: CpuFeature = "XSAVE".parse().unwrap();
        assert!(x.bits.contains(&b(1, 0, Ecx, 26)));
        let raw: CpuFeature = "0x7.0:ebx:5".parse().unwrap();
        assert_eq!(raw.bits, vec![b(7, 0, Ebx, 5)]);
        let any_sub: CpuFeature = "1:ecx:13".parse().unwrap();
        assert_eq!(any_sub.bits[0].subleaf, None);
    }

    #[test]
    fn bad_features_are_rejected_with_the_known_list() {
        for bad in ["nope", "1:ecx", "1:exx:3", "1:ecx:32", "z:ecx:1"] {
            let e = bad.parse::<CpuFeature>().unwrap_err().to_string();
            assert!(e.contains("cx16"), "{e}");
        }
    }
}
