//! Serving virtio-net from the VMM's event-manager thread.
//!
//! Watched for the device's whole life: the activate eventfd, both queue eventfds and the
//! backend's fd. When the guest has no RX buffers the backend fd is taken out of the epoll
//! set (it is level-triggered and would otherwise wake us in a loop) and put back when the
//! guest posts buffers on the RX queue.

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};

use super::device::{Net, RX_QUEUE, RxState, TX_QUEUE};
use crate::virtio::VirtioDevice;

const ACTIVATE: u32 = 0;
const RX: u32 = 1;
const TX: u32 = 2;
const BACKEND: u32 = 3;

impl Net {
    fn backend_events(&self) -> Events {
        Events::with_data_raw(self.backend.as_raw_fd(), BACKEND, EventSet::IN)
    }

    fn watch_backend(&mut self, ops: &mut EventOps, on: bool) {
        if on == self.backend_watched {
            return;
        }
        let r = if on {
            ops.add(self.backend_events())
        } else {
            ops.remove(self.backend_events())
        };
        match r {
            Ok(()) => self.backend_watched = on,
            Err(e) => tracing::error!("virtio-net {}: epoll update failed: {e:?}", self.mac()),
        }
    }

    fn serve_rx(&mut self, ops: &mut EventOps) {
        match self.process_rx() {
            RxState::Idle => self.watch_backend(ops, true),
            RxState::NeedBuffers | RxState::BackendGone => self.watch_backend(ops, false),
        }
    }
}

impl MutEventSubscriber for Net {
    fn init(&mut self, ops: &mut EventOps) {
        let evs = [
            Events::with_data(&self.activate_evt, ACTIVATE, EventSet::IN),
            Events::with_data(&self.queue_events()[RX_QUEUE], RX, EventSet::IN),
            Events::with_data(&self.queue_events()[TX_QUEUE], TX, EventSet::IN),
        ];
        for ev in evs {
            if let Err(e) = ops.add(ev) {
                tracing::error!("virtio-net {}: cannot watch eventfd: {e:?}", self.mac());
            }
        }
        self.watch_backend(ops, true);
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        match events.data() {
            ACTIVATE => {
                let _ = self.activate_evt.read();
                self.process_tx();
                self.serve_rx(ops);
            }
            RX => {
                let _ = self.queue_events()[RX_QUEUE].read();
                // New buffers: deliver what was waiting, then listen to the backend again.
                self.serve_rx(ops);
            }
            TX => {
                let _ = self.queue_events()[TX_QUEUE].read();
                self.process_tx();
            }
            BACKEND => {
                // Before activation process_rx drops frames (the link is not up yet), which
                // also keeps the level-triggered fd from spinning.
                self.serve_rx(ops);
            }
            other => tracing::warn!("virtio-net: event with unknown tag {other}"),
        }
    }
}
