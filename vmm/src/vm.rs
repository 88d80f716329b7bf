//! Assembling and running a VM: KVM set-up, platform devices, vCPU threads, the watchdog,
//! and a clean end (every thread joined) whatever the exit reason.

use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use acpi_tables::Aml;
use devices::acpi_pm::{ACPI_PM_LEN, ACPI_PM_PORT, AcpiPmDevice};
use devices::bus::SharedDevice;
use devices::i8042::{I8042_DATA_PORT, I8042Device};
use devices::interrupt::{EventFdInterrupt, InterruptLine};
use devices::pci_conf1::{PCI_CONF1_LEN, PCI_CONF1_PORT, PciConf1Absent};
use devices::pvpanic::{PVPANIC_LEN, PVPANIC_PORT, PvPanicDevice};
use devices::serial::{COM1_GSI, COM1_LEN, COM1_PORT, FanOut, SerialDevice};
use devices::{Bus, PowerEvent, PowerEventSink};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vmm_sys_util::eventfd::EventFd;

use crate::acpi::AcpiTables;
use crate::config::VmConfig;
use crate::error::Error;
use crate::exit::{CrashReport, ExitReason};
use crate::layout::*;
use crate::panic_line::SerialTail;
use crate::stdout_pump::{Drain, StdoutPump};
use crate::vcpu::Vcpu;
use crate::virtio_devices::VirtioDevices;
use crate::{cpu, kick, loader, memory};

/// Most vCPUs a VM may have: APIC ids are 8 bits in the MADT entries we emit, and the
/// IOAPIC takes the id after the last vCPU.
pub const MAX_VCPUS: u32 = 254;

/// The first exit reason wins; later ones (e.g. other vCPUs seeing the kick) are ignored.
#[derive(Default)]
pub struct ExitState {
    reason: Mutex<Option<ExitReason>>,
    changed: Condvar,
    set_flag: AtomicBool,
    /// The end of the serial output, for the panic line of a guest panic.
    serial_tail: SerialTail,
}

impl ExitState {
    pub fn set(&self, reason: ExitReason) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            tracing::debug!(%reason, "VM exit");
            *r = Some(reason);
            self.set_flag.store(true, Ordering::SeqCst);
            self.changed.notify_all();
        }
    }

    pub fn is_set(&self) -> bool {
        self.set_flag.load(Ordering::SeqCst)
    }

    /// Waits for a reason until `deadline`; `None` when the deadline passed first.
    fn wait(&self, deadline: Option<Instant>) -> Option<ExitReason> {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(reason) = r.clone() {
                return Some(reason);
            }
            r = match deadline {
                None => self.changed.wait(r).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    self.changed
                        .wait_timeout(r, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// The reason, once one is set.
    pub fn reason(&self) -> Option<ExitReason> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl PowerEventSink for ExitState {
    fn power_event(&self, event: PowerEvent) {
        self.set(match event {
            PowerEvent::PowerOff => ExitReason::PowerOff,
            PowerEvent::Reboot(src) => ExitReason::Reboot(src),
            PowerEvent::GuestPanic => ExitReason::Crash(CrashReport {
                reason: match self.serial_tail.panic_line() {
                    Some(line) => {
                        format!("the guest kernel panicked (reported through pvpanic): {line}")
                    }
                    None => "the guest kernel panicked (reported through pvpanic)".into(),
                },
                vcpu: None,
                registers: None,
            }),
        });
    }
}

/// The legacy platform: COM1, the ACPI sleep/reset registers, the i8042 reset line,
/// pvpanic, and an absent PCI conf1.
pub struct PlatformDevices {
    serial: Arc<Mutex<SerialDevice>>,
    pvpanic: Arc<Mutex<PvPanicDevice>>,
    io: Vec<(SharedDevice, u16, u64)>,
}

impl PlatformDevices {
    pub fn new(
        sink: Arc<dyn PowerEventSink>,
        serial_irq: Arc<dyn InterruptLine>,
        out: FanOut,
    ) -> Self {
        let serial = Arc::new(Mutex::new(SerialDevice::new(serial_irq, COM1_GSI, out)));
        let pvpanic = Arc::new(Mutex::new(PvPanicDevice::new(sink.clone())));
        let io: Vec<(SharedDevice, u16, u64)> = vec![
            (serial.clone(), COM1_PORT, COM1_LEN),
            (
                Arc::new(Mutex::new(AcpiPmDevice::new(sink.clone()))),
                ACPI_PM_PORT,
                ACPI_PM_LEN,
            ),
            // Data port 0x60 through command/status port 0x64.
            (
                Arc::new(Mutex::new(I8042Device::new(sink))),
                I8042_DATA_PORT,
                5,
            ),
            (
                Arc::new(Mutex::new(PciConf1Absent)),
                PCI_CONF1_PORT,
                PCI_CONF1_LEN,
            ),
            (pvpanic.clone(), PVPANIC_PORT, PVPANIC_LEN),
        ];
        Self {
            serial,
            pvpanic,
            io,
        }
    }

    /// The same devices with nowhere to send events: for looking at their ACPI description.
    pub fn new_detached() -> Self {
        Self::new(
            Arc::new(ExitState::default()),
            Arc::new(devices::interrupt::CountingInterrupt::default()),
            FanOut::new(),
        )
    }

    /// Each device's AML, in DSDT order.
    pub fn aml(&self) -> Vec<Vec<u8>> {
        let mut serial = Vec::new();
        self.serial.lock().unwrap().to_aml_bytes(&mut serial);
        let mut pvpanic = Vec::new();
        self.pvpanic.lock().unwrap().to_aml_bytes(&mut pvpanic);
        vec![serial, pvpanic]
    }

    fn attach(&self, io_bus: &mut Bus) -> Result<(), Error> {
        for (dev, port, len) in &self.io {
            io_bus
                .insert(dev.clone(), u64::from(*port), *len)
                .map_err(|e| Error::Setup(e.to_string()))?;
        }
        Ok(())
    }
}

fn check_caps(kvm: &Kvm) -> Result<(), Error> {
    let v = kvm.get_api_version();
    if v != 12 {
        return Err(Error::KvmApiVersion(v));
    }
    for (cap, name) in [
        (Cap::Irqchip, "an in-kernel irqchip (KVM_CAP_IRQCHIP)"),
        (Cap::UserMemory, "user memory regions (KVM_CAP_USER_MEMORY)"),
        (Cap::Irqfd, "irqfd (KVM_CAP_IRQFD)"),
        (Cap::Ioeventfd, "ioeventfd (KVM_CAP_IOEVENTFD)"),
        (
            Cap::ImmediateExit,
            "immediate exit (KVM_CAP_IMMEDIATE_EXIT)",
        ),
    ] {
        if !kvm.check_extension(cap) {
            return Err(Error::KvmCapability(name));
        }
    }
    Ok(())
}

fn create_vm(kvm: &Kvm) -> Result<VmFd, Error> {
    let vm = kvm.create_vm().map_err(Error::kvm("KVM_CREATE_VM"))?;
    vm.set_tss_address(KVM_TSS_ADDR as usize)
        .map_err(Error::kvm("KVM_SET_TSS_ADDR"))?;
    vm.set_identity_map_address(KVM_IDENTITY_MAP_ADDR)
        .map_err(Error::kvm("KVM_SET_IDENTITY_MAP_ADDR"))?;
    // The irqchip must exist before any vCPU. No PIT: on a hardware-reduced ACPI platform
    // Linux uses neither the PIT nor the legacy PIC (its timer comes from the LAPIC and
    // kvm-clock), and creating one costs milliseconds of start-up.
    vm.create_irq_chip()
        .map_err(Error::kvm("KVM_CREATE_IRQCHIP"))?;
    Ok(vm)
}

/// Where COM1's output goes, and (with stdout) how to wait for the terminal at the end.
fn serial_output(config: &VmConfig, tail: &SerialTail) -> Result<(FanOut, Option<Drain>), Error> {
    let mut out = FanOut::new();
    out.push(Box::new(tail.clone()));
    if let Some(path) = &config.serial.log_file {
        let log =
            crate::CappedLog::create(path, config.serial.overwrite_log, config.serial.log_cap)
                .map_err(|source| Error::SerialLog {
                    path: path.clone(),
                    source,
                })?;
        out.push(Box::new(std::io::LineWriter::new(log)));
    }
    let mut drain = None;
    if config.serial.stdout {
        let pump = StdoutPump::stdout()
            .map_err(|e| Error::Setup(format!("serial stdout writer thread: {e}")))?;
        drain = Some(pump.drain());
        out.push(Box::new(pump));
    }
    for w in &config.serial.writers {
        out.push(Box::new(SharedWriter(w.clone())));
    }
    Ok((out, drain))
}

/// Keeps a [`devices::serial::SerialInput`] attached to COM1 while the VM runs and detaches
/// it on every way out, so a sender waiting for room is released when the VM ends.
struct AttachedInput(Option<devices::serial::SerialInput>);

impl Drop for AttachedInput {
    fn drop(&mut self) {
        if let Some(input) = &self.0 {
            input.detach();
        }
    }
}

struct SharedWriter(Arc<Mutex<dyn std::io::Write + Send>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// Boots the VM described by `config` and blocks until it ends. Input errors are reported
/// before anything is written to disk (the serial log is created last).
pub fn run(config: &VmConfig) -> Result<ExitReason, Error> {
    let t0 = Instant::now();
    if config.vcpus == 0 || config.vcpus > MAX_VCPUS {
        return Err(Error::VcpuCount(config.vcpus, MAX_VCPUS));
    }
    // Cheap file checks first, so a typo is reported as such even without KVM.
    loader::detect(&config.kernel)?;
    if let Some(initrd) = &config.initrd {
        std::fs::File::open(initrd).map_err(|source| Error::InitrdRead {
            path: initrd.clone(),
            source,
        })?;
    }
    if !cfg!(feature = "usernet") && !config.nets.is_empty() {
        return Err(Error::UserNetUnavailable {
            nics: config.nets.len(),
        });
    }
    let kvm = Kvm::new().map_err(Error::KvmOpen)?;
    check_caps(&kvm)?;
    let max = kvm.get_max_vcpus().min(MAX_VCPUS as usize) as u32;
    if config.vcpus > max {
        return Err(Error::VcpuCount(config.vcpus, max));
    }
    kick::install().map_err(Error::Setup)?;

    let mem = memory::create(config.memory_mib)?;
    let kernel = loader::load_kernel(&mem, &config.kernel, config.boot_path)?;
    loader::check_cmdline(&config.cmdline, kernel.cmdline_max())?;
    let initrd = match &config.initrd {
        Some(path) => Some(loader::load_initrd(&mem, &kernel, path)?),
        None => None,
    };
    loader::write_cmdline(&mem, &config.cmdline)?;

    // Disks are opened (and locked) and networks started (forward ports bound) now, so a
    // bad disk or a busy port is reported before anything is written.
    let disks = devices::virtio::block::open_disks(&config.disks)?;
    let macs = usernet::resolve_nics(&config.nets)?;
    #[cfg(feature = "usernet")]
    let networks = config
        .nets
        .iter()
        .map(|spec| usernet::UserNet::start(&usernet::UserNetConfig::from(spec)))
        .collect::<Result<Vec<_>, _>>()?;

    let exit = Arc::new(ExitState::default());
    if let Some(stop) = &config.stop {
        stop.register(&exit);
    }
    let serial_evt = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::Setup(e.to_string()))?;
    let serial_irq = EventFdInterrupt::new(serial_evt);
    // Everything the caller could have got wrong is checked by now: create the log.
    let (out, stdout_drain) = serial_output(config, &exit.serial_tail)?;
    let platform = PlatformDevices::new(exit.clone(), Arc::new(serial_irq.clone()), out);

    let vm = create_vm(&kvm)?;
    // SAFETY: `mem` is declared before `vm` and the vCPUs, so it is dropped after them; the
    // vCPU threads and device thread are joined before `run` returns.
    unsafe { memory::register(&vm, &mem)? };
    vm.register_irqfd(serial_irq.eventfd(), COM1_GSI)
        .map_err(Error::kvm("KVM_IRQFD"))?;

    let mut io_bus = Bus::new();
    platform.attach(&mut io_bus)?;
    let io_bus = Arc::new(io_bus);
    let mut mmio_bus = Bus::new();
    let mut virtio = VirtioDevices::new()?;
    for disk in disks {
        virtio.add_block(&vm, &mem, &mut mmio_bus, disk)?;
    }
    #[cfg(feature = "usernet")]
    for (mac, (network, backend)) in macs.into_iter().zip(networks) {
        virtio.add_user_net(&vm, &mem, &mut mmio_bus, mac, network, backend)?;
    }
    #[cfg(not(feature = "usernet"))]
    debug_assert!(macs.is_empty(), "NICs are refused above");
    let mmio_bus = Arc::new(mmio_bus);

    let mut device_aml = platform.aml();
    device_aml.extend_from_slice(virtio.aml());
    let tables = AcpiTables::build(config.vcpus, &device_aml);
    let rsdp = tables.write(&mem)?;
    loader::write_reset_stub(&mem)?;
    match kernel.entry {
        loader::Entry::Linux64 { .. } => {
            loader::write_zero_page(&mem, &kernel, config.cmdline.len(), initrd, rsdp)?
        }
        loader::Entry::Pvh { .. } => loader::write_pvh_info(&mem, initrd, rsdp)?,
    }

    let base_cpuid = cpu::base_cpuid(&kvm, &config.cpuid_mask)?;
    let mut vcpus = Vec::new();
    for id in 0..config.vcpus {
        let fd = vm
            .create_vcpu(u64::from(id))
            .map_err(Error::kvm("KVM_CREATE_VCPU"))?;
        fd.set_cpuid2(&cpu::cpuid_for(&base_cpuid, id, config.vcpus))
            .map_err(Error::kvm("KVM_SET_CPUID2"))?;
        cpu::set_msrs(&fd)?;
        cpu::set_fpu(&fd)?;
        cpu::set_lint(&fd)?;
        if id == 0 {
            cpu::setup_boot_vcpu(&fd, &mem, kernel.entry)?;
        }
        // Other vCPUs stay in wait-for-SIPI until the guest starts them.
        vcpus.push(Vcpu {
            id,
            fd,
            io_bus: io_bus.clone(),
            mmio_bus: mmio_bus.clone(),
            exit: exit.clone(),
            finished: Arc::new(AtomicBool::new(false)),
            mem: mem.clone(),
            emulated_kvm_assist: config.emulated_kvm_assist,
            seccomp: config.seccomp,
        });
    }

    let _input = AttachedInput(config.serial.input.clone());
    if let Some(input) = &config.serial.input {
        input.attach(&platform.serial);
    }
    virtio.start(config.seccomp)?;
    let started = Instant::now();
    tracing::debug!(setup = ?started - t0, "VM built");
    // A timeout too long for `Instant` to hold is no deadline (adding it would panic).
    let deadline = config.timeout.and_then(|t| started.checked_add(t));
    let mut threads = Vec::new();
    for vcpu in vcpus {
        let finished = vcpu.finished.clone();
        let name = format!("vcpu{}", vcpu.id);
        match std::thread::Builder::new()
            .name(name)
            .spawn(move || vcpu.run())
        {
            Ok(handle) => threads.push((handle, finished)),
            Err(e) => {
                exit.set(ExitReason::Crash(CrashReport {
                    reason: format!("cannot start vCPU thread: {e}"),
                    vcpu: None,
                    registers: None,
                }));
                stop_vcpus(threads);
                virtio.stop();
                return Err(Error::Thread(e));
            }
        }
    }

    if exit.wait(deadline).is_none() {
        exit.set(ExitReason::Timeout);
    }
    let exited = Instant::now();
    stop_vcpus(threads);
    virtio.stop();
    tracing::debug!(guest = ?exited - started, stop = ?exited.elapsed(), "vCPUs stopped");
    platform
        .serial
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .flush();
    if let Some(d) = stdout_drain {
        d.wait();
    }
    let reason = exit
        .reason()
        .expect("an exit reason is set before vCPUs stop");
    let (refused, n) = crate::seccomp::take_denied();
    if n > 0 {
        // A call the filters lack (it returned EPERM): a VMM bug worth a report.
        tracing::warn!(
            ?refused,
            count = n,
            "the seccomp filters refused system calls of VMM threads (numbers above); the VM may have misbehaved"
        );
    }
    tracing::info!(%reason, elapsed = ?started.elapsed(), "VM ended");
    // `vm`, `mem` and the devices drop here, after every vCPU thread is gone.
    drop(vm);
    Ok(reason)
}

/// How long the VMM kicks a vCPU thread that does not leave its loop before giving up on it.
const VCPU_STOP_LIMIT: Duration = Duration::from_secs(10);

/// Kicks every vCPU thread out of KVM_RUN until it has left its loop, then joins it.
/// A kick can race with a thread just about to enter KVM_RUN, so it is repeated. A thread
/// stuck in the host for [`VCPU_STOP_LIMIT`] (a write that never returns) is left behind,
/// detached, so the watchdog always ends the run; it holds its own references to what it
/// uses, so nothing it touches is freed under it.
fn stop_vcpus(threads: Vec<(std::thread::JoinHandle<()>, Arc<AtomicBool>)>) {
    let signal = kick::kick_signal();
    let deadline = Instant::now() + VCPU_STOP_LIMIT;
    loop {
        let mut pending = false;
        for (handle, finished) in &threads {
            if !finished.load(Ordering::SeqCst) {
                pending = true;
                // SAFETY: the thread is alive (not joined), so its pthread_t is valid.
                unsafe { libc::pthread_kill(handle.as_pthread_t(), signal) };
            }
        }
        if !pending {
            break;
        }
        if Instant::now() >= deadline {
            let stuck: Vec<String> = threads
                .iter()
                .filter(|(_, f)| !f.load(Ordering::SeqCst))
                .filter_map(|(h, _)| h.thread().name().map(str::to_string))
                .collect();
            tracing::error!(
                ?stuck,
                "vCPU threads did not stop within {VCPU_STOP_LIMIT:?} (blocked in the host); left behind"
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for (handle, finished) in threads {
        if finished.load(Ordering::SeqCst) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_guest_panic_is_a_crash_carrying_the_panic_line() {
        let exit = ExitState::default();
        let (mut out, _) = serial_output(&VmConfig::new("/k"), &exit.serial_tail).unwrap();
        out.write_all(b"[   72.1] Kernel panic - not syncing: No working init found.\r\n")
            .unwrap();
        exit.power_event(PowerEvent::GuestPanic);
        match exit.reason() {
            Some(ExitReason::Crash(c)) => assert_eq!(
                c.reason,
                "the guest kernel panicked (reported through pvpanic): Kernel panic - not syncing: No working init found."
            ),
            other => panic!("{other:?}"),
        }
    }
}
