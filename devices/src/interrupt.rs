//! Interrupt lines from devices to the guest.

use std::io;
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

/// An edge-triggered interrupt line to one GSI. The VMM backs it with an eventfd registered
/// as a KVM irqfd, so raising it costs one `write(2)` and no VM exit.
pub trait InterruptLine: Send + Sync {
    fn trigger(&self) -> io::Result<()>;
}

/// An [`InterruptLine`] that writes to an eventfd (registered with KVM as an irqfd).
#[derive(Clone)]
pub struct EventFdInterrupt {
    evt: Arc<EventFd>,
}

impl EventFdInterrupt {
    pub fn new(evt: EventFd) -> Self {
        Self { evt: Arc::new(evt) }
    }

    pub fn eventfd(&self) -> &EventFd {
        &self.evt
    }
}

impl InterruptLine for EventFdInterrupt {
    fn trigger(&self) -> io::Result<()> {
        self.evt.write(1)
    }
}

/// Adapts an [`InterruptLine`] to vm-superio's `Trigger`.
pub struct SuperioTrigger(pub Arc<dyn InterruptLine>);

impl vm_superio::Trigger for SuperioTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.trigger()
    }
}

/// Counts triggers; for device tests.
#[derive(Default)]
pub struct CountingInterrupt(pub std::sync::atomic::AtomicUsize);

impl InterruptLine for CountingInterrupt {
    fn trigger(&self) -> io::Result<()> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}
