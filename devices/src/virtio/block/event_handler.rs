//! Serving the queue from the VMM's event-manager thread.
//!
//! The subscriber watches two eventfds for the device's whole life: the queue's notify fd
//! (signalled by KVM's ioeventfd, or by the transport for a QueueNotify write) and the
//! activate fd (signalled when a vCPU thread activates the device). Notifications before
//! activation are drained and ignored, so nothing has to be (de)registered at run time.

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};

use super::device::Block;
use crate::virtio::VirtioDevice;

const ACTIVATE: u32 = 0;
const QUEUE: u32 = 1;

impl MutEventSubscriber for Block {
    fn init(&mut self, ops: &mut EventOps) {
        let evs = [
            Events::with_data(&self.activate_evt, ACTIVATE, EventSet::IN),
            Events::with_data(&self.queue_events()[0], QUEUE, EventSet::IN),
        ];
        for ev in evs {
            if let Err(e) = ops.add(ev) {
                tracing::error!(
                    "virtio-blk {}: cannot watch eventfd: {e:?}",
                    self.disk.path.display()
                );
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        match events.data() {
            ACTIVATE => {
                let _ = self.activate_evt.read();
            }
            QUEUE => {
                let _ = self.queue_events()[0].read();
            }
            other => {
                tracing::warn!("virtio-blk: event with unknown tag {other}");
                return;
            }
        }
        if self.is_active() {
            self.process_queue();
        }
    }
}
