//! Wiring virtio-mmio devices into the VM: one 4 KiB window and one GSI each, the
//! interrupt as a KVM irqfd, each queue's notification as a KVM ioeventfd (so a guest
//! notify costs no exit to the VMM), and the device's I/O on one event-manager thread,
//! off the vCPU threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use acpi_tables::Aml;
use devices::Bus;
use devices::interrupt::EventFdInterrupt;
use devices::virtio::VirtioDevice;
use devices::virtio::block::{Block, DiskImage};
use devices::virtio::mmio::{MmioTransport, QUEUE_NOTIFY_OFFSET};
#[cfg(feature = "usernet")]
use devices::virtio::net::{SocketBackend, device::Net};
use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use kvm_ioctls::{IoEventAddress, VmFd};
#[cfg(feature = "usernet")]
use usernet::{MacAddr, UserNet};
use vmm_sys_util::eventfd::EventFd;

use crate::error::Error;
use crate::layout::*;
use crate::memory::GuestMemoryMmap;

type Subscriber = Arc<Mutex<dyn MutEventSubscriber + Send>>;

/// Ends the event loop: the VMM writes the eventfd once every vCPU has stopped.
struct Stopper {
    evt: EventFd,
    stopped: Arc<AtomicBool>,
}

impl MutEventSubscriber for Stopper {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.evt, EventSet::IN)) {
            tracing::error!("cannot watch the device thread's stop eventfd: {e:?}");
        }
    }
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.evt.read();
        self.stopped.store(true, Ordering::SeqCst);
    }
}

/// The virtio devices of one VM and the thread serving them.
pub struct VirtioDevices {
    manager: Option<EventManager<Subscriber>>,
    stop: EventFd,
    stopped: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    aml: Vec<Vec<u8>>,
    next_slot: u32,
    /// User-mode networks behind the NICs; dropped (stopped) with the devices.
    #[cfg(feature = "usernet")]
    networks: Vec<UserNet>,
}

impl VirtioDevices {
    pub fn new() -> Result<Self, Error> {
        let setup = |e: std::io::Error| Error::Setup(format!("device event thread: {e}"));
        let mut manager = EventManager::<Subscriber>::new()
            .map_err(|e| Error::Setup(format!("device event manager: {e:?}")))?;
        let stop = EventFd::new(libc::EFD_NONBLOCK).map_err(setup)?;
        let stopped = Arc::new(AtomicBool::new(false));
        manager.add_subscriber(Arc::new(Mutex::new(Stopper {
            evt: stop.try_clone().map_err(setup)?,
            stopped: stopped.clone(),
        })));
        Ok(Self {
            manager: Some(manager),
            stop,
            stopped,
            thread: None,
            aml: Vec::new(),
            next_slot: 0,
            #[cfg(feature = "usernet")]
            networks: Vec::new(),
        })
    }

    /// Adds one virtio-net NIC on its (already started) user-mode network. The network
    /// lives as long as this set of devices.
    #[cfg(feature = "usernet")]
    pub fn add_user_net(
        &mut self,
        vm: &VmFd,
        mem: &GuestMemoryMmap,
        mmio_bus: &mut Bus,
        mac: MacAddr,
        network: UserNet,
        backend: SocketBackend,
    ) -> Result<(), Error> {
        let net = Arc::new(Mutex::new(
            Net::new(mac, Box::new(backend))
                .map_err(|e| Error::Setup(format!("virtio-net {mac}: {e}")))?,
        ));
        self.networks.push(network);
        self.add(vm, mem, mmio_bus, net.clone(), net)
    }

    /// Adds one virtio-blk disk.
    pub fn add_block(
        &mut self,
        vm: &VmFd,
        mem: &GuestMemoryMmap,
        mmio_bus: &mut Bus,
        disk: DiskImage,
    ) -> Result<(), Error> {
        let path = disk.path.clone();
        let block =
            Arc::new(Mutex::new(Block::new(disk).map_err(|e| {
                Error::Setup(format!("virtio-blk {}: {e}", path.display()))
            })?));
        self.add(vm, mem, mmio_bus, block.clone(), block)
    }

    fn add(
        &mut self,
        vm: &VmFd,
        mem: &GuestMemoryMmap,
        mmio_bus: &mut Bus,
        device: Arc<Mutex<dyn VirtioDevice>>,
        subscriber: Subscriber,
    ) -> Result<(), Error> {
        let slot = self.next_slot;
        let gsi = FIRST_DEVICE_GSI + slot;
        if gsi > LAST_DEVICE_GSI {
            return Err(Error::Setup(format!(
                "too many virtio devices: at most {}",
                LAST_DEVICE_GSI - FIRST_DEVICE_GSI + 1
            )));
        }
        let base = DEVICE_MMIO_START + u64::from(slot) * DEVICE_MMIO_WINDOW;
        let irq_evt = EventFd::new(libc::EFD_NONBLOCK)
            .map_err(|e| Error::Setup(format!("virtio irq eventfd: {e}")))?;
        vm.register_irqfd(&irq_evt, gsi)
            .map_err(Error::kvm("KVM_IRQFD"))?;
        let irq = EventFdInterrupt::new(irq_evt);
        let transport = MmioTransport::new(device, mem.clone(), Arc::new(irq), base, gsi)
            .map_err(|e| Error::Setup(format!("virtio-mmio transport: {e}")))?;
        for (queue, evt) in transport.queue_notify_evts().iter().enumerate() {
            vm.register_ioevent(
                evt,
                &IoEventAddress::Mmio(base + QUEUE_NOTIFY_OFFSET),
                queue as u32,
            )
            .map_err(Error::kvm("KVM_IOEVENTFD"))?;
        }
        let mut aml = Vec::new();
        transport.to_aml_bytes(&mut aml);
        self.aml.push(aml);
        mmio_bus
            .insert(Arc::new(Mutex::new(transport)), base, DEVICE_MMIO_WINDOW)
            .map_err(|e| Error::Setup(e.to_string()))?;
        self.manager
            .as_mut()
            .expect("devices are added before the thread starts")
            .add_subscriber(subscriber);
        self.next_slot += 1;
        Ok(())
    }

    /// Each device's ACPI description, in slot order.
    pub fn aml(&self) -> &[Vec<u8>] {
        &self.aml
    }

    /// Starts the event thread (only when there are devices to serve), confined by the
    /// device seccomp filter when `seccomp` is set: the filter is in place before this
    /// returns, or the VM does not start.
    pub fn start(&mut self, seccomp: bool) -> Result<(), Error> {
        if self.next_slot == 0 {
            return Ok(());
        }
        let mut manager = self.manager.take().expect("started once");
        let stopped = self.stopped.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("virtio".into())
            .spawn(move || {
                let confined = if seccomp {
                    crate::seccomp::install(crate::seccomp::ThreadKind::Device)
                } else {
                    Ok(())
                };
                let failed = confined.is_err();
                let _ = ready_tx.send(confined);
                if failed {
                    return;
                }
                while !stopped.load(Ordering::SeqCst) {
                    if let Err(e) = manager.run() {
                        tracing::error!("device event loop failed: {e:?}");
                        break;
                    }
                }
            })
            .map_err(Error::Thread)?;
        self.thread = Some(thread);
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Seccomp(e)),
            Err(_) => Err(Error::Setup("the device thread ended at its start".into())),
        }
    }

    /// Stops and joins the event thread. Called after the vCPUs are gone, so no new
    /// requests can arrive; requests in flight have completed (I/O is synchronous).
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.stop.write(1);
            let _ = thread.join();
        }
        #[cfg(feature = "usernet")]
        self.networks.clear();
    }
}

impl Drop for VirtioDevices {
    fn drop(&mut self) {
        self.stop();
    }
}
