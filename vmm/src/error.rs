use std::path::PathBuf;

/// Why a VM could not be started or kept running. Every variant names the thing at fault
/// and, where there is one, what to do about it: the CLI prints it as a single line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot open /dev/kvm: {0} (is KVM enabled, and is this user in the 'kvm' group?)")]
    KvmOpen(#[source] kvm_ioctls::Error),
    #[error("KVM API version {0} is not supported (need 12)")]
    KvmApiVersion(i32),
    #[error("this KVM lacks {0}, which the VMM needs")]
    KvmCapability(&'static str),
    #[error("KVM: {what} failed: {source}")]
    Kvm {
        what: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("cannot read kernel {path}: {source}")]
    KernelRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a kernel this VMM can boot: {detail} (expected a bzImage such as /boot/vmlinuz-*, or an ELF with a PVH entry note)"
    )]
    KernelFormat { path: PathBuf, detail: String },
    #[error("cannot read initrd {path}: {source}")]
    InitrdRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "initrd {path} ({size} bytes) does not fit in guest memory below {limit:#x} after the kernel; give the VM more memory (--memory)"
    )]
    InitrdTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("guest memory of {mib} MiB is too small: at least {min} MiB is needed")]
    MemoryTooSmall { mib: u64, min: u64 },
    #[error("guest memory of {mib} MiB is more than this VMM supports ({max} MiB)")]
    MemoryTooLarge { mib: u64, max: u64 },
    #[error("cannot allocate {mib} MiB of guest memory: {detail}")]
    MemoryAlloc { mib: u64, detail: String },
    #[error("{0} vCPUs requested: must be between 1 and {1}")]
    VcpuCount(u32, u32),
    #[error(
        "kernel command line is {len} bytes, longer than the {max} the kernel accepts; shorten --append"
    )]
    CmdlineTooLong { len: usize, max: usize },
    #[error("kernel command line contains a NUL byte or non-ASCII text")]
    CmdlineInvalid,
    #[error("cannot open serial log {path}: {source}")]
    SerialLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown CPU feature '{0}' (known: {1})")]
    UnknownCpuFeature(String, String),
    #[error("building the VM: {0}")]
    Setup(String),
    #[error("cannot start vCPU thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The device thread could not be confined: the VM is not started unconfined.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// A disk that cannot be used; the message names it and says what to do.
    #[error(transparent)]
    Disk(#[from] devices::virtio::block::BlockConfigError),
    /// A NIC that cannot be set up (bad or duplicate MAC, busy forward port, ...).
    #[error(transparent)]
    Nic(#[from] usernet::NetSpecError),
    #[cfg(feature = "usernet")]
    #[error(transparent)]
    UserNet(#[from] usernet::UserNetError),
    #[error(
        "{nics} NIC(s) requested, but this VMM was built without user-mode networking (the `usernet` feature, which needs libslirp); rebuild vmm with it or boot without NICs"
    )]
    UserNetUnavailable { nics: usize },
}

impl Error {
    pub(crate) fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
        move |source| Error::Kvm { what, source }
    }
}
