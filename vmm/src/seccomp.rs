//! System-call filters for the threads that run guest-driven code, as Firecracker does it:
//! each vCPU thread and the device (event-manager) thread install a deny-by-default seccomp
//! filter on themselves before they touch the guest (with `no_new_privs`, which seccomp
//! needs and which also stops any later exec from gaining privileges).
//!
//! The lists hold what these threads use, found by running the probe suites
//! (vmm/tests/*.rs) under `strace -f` and by reading the code: KVM_RUN and the few vCPU
//! ioctls the crash report and the emulated-KVM assist use; eventfd reads and writes,
//! epoll, disk reads/writes/syncs/hole punches and NIC socket sends/receives on the device
//! thread; on both, memory allocation, futexes, serial and log output, the kick signal's
//! return, and what a thread does when it ends. ioctl is allowed for those KVM requests
//! only, fcntl only to read flags.
//!
//! Anything else is refused with EPERM, not by killing the process: the harness runs
//! parallel tests in this process, and a missing entry must cost one VM, not all of them.
//! The refusal goes through SIGSYS (`SECCOMP_RET_TRAP`) so it is recorded: the handler
//! notes the call's number and makes it return -EPERM; [`take_denied`] reads the notes and
//! `vm::run` logs them when the VM ends.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Whose filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    Vcpu,
    Device,
}

// The vCPU ioctls used after a vCPU starts (kvm-ioctls keeps its numbers private).
vmm_sys_util::ioctl_io_nr!(KVM_RUN, kvm_bindings::KVMIO, 0x80);
vmm_sys_util::ioctl_ior_nr!(
    KVM_GET_REGS,
    kvm_bindings::KVMIO,
    0x81,
    kvm_bindings::kvm_regs
);
vmm_sys_util::ioctl_iow_nr!(
    KVM_SET_REGS,
    kvm_bindings::KVMIO,
    0x82,
    kvm_bindings::kvm_regs
);
vmm_sys_util::ioctl_ior_nr!(
    KVM_GET_SREGS,
    kvm_bindings::KVMIO,
    0x83,
    kvm_bindings::kvm_sregs
);
// The emulated-KVM assist reads the failing instruction through guest page tables.
vmm_sys_util::ioctl_iowr_nr!(
    KVM_TRANSLATE,
    kvm_bindings::KVMIO,
    0x85,
    kvm_bindings::kvm_translation
);
// Register dumps say whether a vCPU ever left wait-for-INIT/SIPI.
vmm_sys_util::ioctl_ior_nr!(
    KVM_GET_MP_STATE,
    kvm_bindings::KVMIO,
    0x98,
    kvm_bindings::kvm_mp_state
);
vmm_sys_util::ioctl_ior_nr!(
    KVM_GET_FPU,
    kvm_bindings::KVMIO,
    0x8c,
    kvm_bindings::kvm_fpu
);
vmm_sys_util::ioctl_ior_nr!(
    KVM_GET_VCPU_EVENTS,
    kvm_bindings::KVMIO,
    0x9f,
    kvm_bindings::kvm_vcpu_events
);
vmm_sys_util::ioctl_iow_nr!(
    KVM_SET_VCPU_EVENTS,
    kvm_bindings::KVMIO,
    0xa0,
    kvm_bindings::kvm_vcpu_events
);

/// Why a filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("building the {0:?} thread's seccomp filter: {1}")]
    Build(ThreadKind, String),
    #[error("installing the {0:?} thread's seccomp filter: {1}")]
    Apply(ThreadKind, String),
    #[error("installing the SIGSYS handler that reports refused system calls: {0}")]
    Handler(std::io::Error),
}

/// A rule matching when argument `index` equals one of `values`.
fn arg_is(index: u8, values: &[u64]) -> Vec<SeccompRule> {
    values
        .iter()
        .map(|&v| {
            SeccompRule::new(vec![
                SeccompCondition::new(index, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, v)
                    .expect("argument index below 6"),
            ])
            .expect("a rule with one condition")
        })
        .collect()
}

/// The calls each thread may make.
fn rules(kind: ThreadKind) -> BTreeMap<i64, Vec<SeccompRule>> {
    let mut r: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // Both: memory, locks, output (serial log, stdout, tracing on stderr), clocks, the
    // kick signal's return, and the end of the thread (alternate stack, mask, exit).
    for sc in [
        libc::SYS_brk,
        libc::SYS_mmap,
        libc::SYS_mremap,
        libc::SYS_munmap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_futex,
        libc::SYS_sched_yield,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_close,
        libc::SYS_clock_gettime,
        libc::SYS_getrandom,
        libc::SYS_gettid,
        libc::SYS_getpid,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_sigaltstack,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ] {
        r.insert(sc, Vec::new());
    }
    // Dropping a descriptor checks it is open (debug builds); nothing sets flags.
    r.insert(
        libc::SYS_fcntl,
        arg_is(1, &[libc::F_GETFD as u64, libc::F_GETFL as u64]),
    );
    // abort() on a double panic: SIGABRT to this process only.
    r.insert(
        libc::SYS_tgkill,
        vec![
            SeccompRule::new(vec![
                SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    std::process::id() as u64,
                )
                .expect("argument 0"),
                SeccompCondition::new(
                    2,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    libc::SIGABRT as u64,
                )
                .expect("argument 2"),
            ])
            .expect("a rule with two conditions"),
        ],
    );
    match kind {
        ThreadKind::Vcpu => {
            // The serial log (written from the UART's port handler): a capped file that
            // places its writes and cuts its tail in place (`CappedLog`).
            for sc in [libc::SYS_pread64, libc::SYS_pwrite64, libc::SYS_ftruncate] {
                r.insert(sc, Vec::new());
            }
            r.insert(
                libc::SYS_ioctl,
                arg_is(
                    1,
                    &[
                        KVM_RUN(),
                        KVM_GET_REGS(),
                        KVM_SET_REGS(),
                        KVM_GET_SREGS(),
                        KVM_TRANSLATE(),
                        KVM_GET_MP_STATE(),
                        KVM_GET_FPU(),
                        KVM_GET_VCPU_EVENTS(),
                        KVM_SET_VCPU_EVENTS(),
                    ]
                    .map(u64::from),
                ),
            );
        }
        ThreadKind::Device => {
            for sc in [
                // The event loop and the eventfds (queue notifications, interrupts, stop).
                libc::SYS_epoll_wait,
                libc::SYS_epoll_pwait,
                libc::SYS_epoll_ctl,
                libc::SYS_read,
                // virtio-blk: data, flush, discard and write-zeroes.
                libc::SYS_pread64,
                libc::SYS_pwrite64,
                libc::SYS_preadv,
                libc::SYS_pwritev,
                libc::SYS_fdatasync,
                libc::SYS_fsync,
                libc::SYS_fallocate,
                // virtio-net: frames to and from the user-mode network's socket.
                libc::SYS_recvfrom,
                libc::SYS_sendto,
            ] {
                r.insert(sc, Vec::new());
            }
        }
    }
    r
}

/// The compiled filter for `kind` (refusals trap to the recording handler).
pub fn filter(kind: ThreadKind) -> Result<BpfProgram, SeccompError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| SeccompError::Build(kind, e.to_string()))?;
    let f = SeccompFilter::new(rules(kind), SeccompAction::Trap, SeccompAction::Allow, arch)
        .map_err(|e| SeccompError::Build(kind, e.to_string()))?;
    BpfProgram::try_from(f).map_err(|e| SeccompError::Build(kind, e.to_string()))
}

/// Installs `kind`'s filter on the calling thread, for the rest of its life.
pub fn install(kind: ThreadKind) -> Result<(), SeccompError> {
    install_handler()?;
    let prog = filter(kind)?;
    seccompiler::apply_filter(&prog).map_err(|e| SeccompError::Apply(kind, e.to_string()))
}

/// Refused calls noted since the last [`take_denied`] (the first few of them).
const DENIED_SLOTS: usize = 32;
static DENIED: [AtomicI64; DENIED_SLOTS] = [const { AtomicI64::new(-1) }; DENIED_SLOTS];
static DENIED_COUNT: AtomicUsize = AtomicUsize::new(0);

/// The system calls refused since the last call (numbers, up to 32 of them, and how many
/// there were in all), clearing the notes.
pub fn take_denied() -> (Vec<i64>, usize) {
    let n = DENIED_COUNT.swap(0, Ordering::SeqCst);
    let calls = DENIED
        .iter()
        .take(n.min(DENIED_SLOTS))
        .map(|d| d.swap(-1, Ordering::SeqCst))
        .filter(|&c| c >= 0)
        .collect();
    (calls, n)
}

/// Offset of `si_syscall` in a SIGSYS siginfo on x86-64 (signo, errno, code, padding,
/// then `_sigsys { void *_call_addr; int _syscall; unsigned _arch; }`).
const SI_SYSCALL_OFFSET: usize = 16 + 8;

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a SIGSYS siginfo and this thread's ucontext, both valid
    // for the handler's duration; only atomics and the saved registers are touched, which
    // is async-signal-safe.
    unsafe {
        let nr = *(info as *const u8).add(SI_SYSCALL_OFFSET).cast::<i32>();
        let i = DENIED_COUNT.fetch_add(1, Ordering::SeqCst);
        if i < DENIED_SLOTS {
            DENIED[i].store(i64::from(nr), Ordering::SeqCst);
        }
        // The refused call returns -EPERM to its caller.
        let uc = ctx.cast::<libc::ucontext_t>();
        (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = -i64::from(libc::EPERM);
    }
}

fn install_handler() -> Result<(), SeccompError> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            // SAFETY: sigaction is given a zeroed struct with our handler and flags, and
            // the handler is async-signal-safe.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_sigsys as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
                }
            }
            Ok(())
        })
        .map_err(|e| SeccompError::Handler(std::io::Error::from_raw_os_error(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The refusal notes are process-wide: tests that read them take turns.
    static NOTES: Mutex<()> = Mutex::new(());

    #[test]
    fn both_filters_compile() {
        for kind in [ThreadKind::Vcpu, ThreadKind::Device] {
            assert!(!filter(kind).unwrap().is_empty());
        }
    }

    #[test]
    fn a_filtered_thread_gets_eperm_for_the_rest_and_the_refusal_is_noted() {
        let _turn = NOTES.lock().unwrap_or_else(|e| e.into_inner());
        let _ = take_denied();
        let (socket, ioctl_other, written) = std::thread::spawn(|| {
            install(ThreadKind::Device).unwrap();
            // SAFETY: plain system calls; failures are what this checks.
            unsafe {
                let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                let s_err = std::io::Error::last_os_error().raw_os_error();
                let i = libc::ioctl(0, libc::TIOCGWINSZ, std::ptr::null_mut::<u8>());
                let i_err = std::io::Error::last_os_error().raw_os_error();
                // What the device thread needs still works.
                let w = libc::write(-1, b"x".as_ptr().cast(), 1);
                let w_err = std::io::Error::last_os_error().raw_os_error();
                ((s, s_err), (i, i_err), (w, w_err))
            }
        })
        .join()
        .unwrap();
        assert_eq!(socket, (-1, Some(libc::EPERM)));
        assert_eq!(
            ioctl_other,
            (-1, Some(libc::EPERM)),
            "no ioctl on the device thread"
        );
        assert_eq!(
            written,
            (-1, Some(libc::EBADF)),
            "write is allowed (bad fd here)"
        );
        let (calls, n) = take_denied();
        assert!(n >= 2, "{calls:?}");
        assert!(calls.contains(&libc::SYS_socket), "{calls:?}");
        assert!(calls.contains(&libc::SYS_ioctl), "{calls:?}");
        // Threads without a filter are untouched.
        // SAFETY: plain system call.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
        assert!(fd >= 0);
        // SAFETY: closing the descriptor just made.
        unsafe { libc::close(fd) };
    }

    #[test]
    fn a_vcpu_thread_may_use_only_its_kvm_ioctls() {
        let _turn = NOTES.lock().unwrap_or_else(|e| e.into_inner());
        let r = std::thread::spawn(|| {
            install(ThreadKind::Vcpu).unwrap();
            // SAFETY: plain system calls on descriptor -1.
            unsafe {
                let run = libc::ioctl(-1, KVM_RUN() as _, 0);
                let run_err = std::io::Error::last_os_error().raw_os_error();
                let other = libc::ioctl(-1, libc::FIONREAD, 0);
                let other_err = std::io::Error::last_os_error().raw_os_error();
                ((run, run_err), (other, other_err))
            }
        })
        .join()
        .unwrap();
        assert_eq!(r.0, (-1, Some(libc::EBADF)), "KVM_RUN passes the filter");
        assert_eq!(r.1, (-1, Some(libc::EPERM)), "other ioctls do not");
        let _ = take_denied();
    }

    /// Where KVM is emulated, the assist reads the failing instruction through
    /// KVM_TRANSLATE and completes it with the register and event ioctls; crash and
    /// timeout reports read registers and the mp_state. Refusing any of them turns a
    /// Linux guest's first int3 into a crash.
    #[test]
    fn the_emulated_kvm_assist_and_register_dumps_pass_the_vcpu_filter() {
        let _turn = NOTES.lock().unwrap_or_else(|e| e.into_inner());
        let requests = [
            ("KVM_TRANSLATE", KVM_TRANSLATE()),
            ("KVM_GET_MP_STATE", KVM_GET_MP_STATE()),
            ("KVM_GET_REGS", KVM_GET_REGS()),
            ("KVM_SET_REGS", KVM_SET_REGS()),
            ("KVM_GET_SREGS", KVM_GET_SREGS()),
            ("KVM_GET_FPU", KVM_GET_FPU()),
            ("KVM_GET_VCPU_EVENTS", KVM_GET_VCPU_EVENTS()),
            ("KVM_SET_VCPU_EVENTS", KVM_SET_VCPU_EVENTS()),
        ];
        let errs = std::thread::spawn(move || {
            install(ThreadKind::Vcpu).unwrap();
            requests.map(|(name, req)| {
                // SAFETY: a plain system call on descriptor -1.
                let r = unsafe { libc::ioctl(-1, req as _, 0) };
                (name, r, std::io::Error::last_os_error().raw_os_error())
            })
        })
        .join()
        .unwrap();
        for (name, r, err) in errs {
            assert_eq!(
                (r, err),
                (-1, Some(libc::EBADF)),
                "{name} passes the filter"
            );
        }
        let _ = take_denied();
    }
}
