//! Serving virtio-net from the VMM's event-manager thread.
//!
//! Watched for the device's whole life: the activate eventfd and both queue eventfds. The
//! backend's fd is watched for what the device currently waits on: readability while the
//! guest has RX buffers (it is level-triggered, so it leaves the epoll set when the guest
//! has none and returns when the guest posts some), writability while a TX frame waits for
//! room in the backend.

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};

use super::device::{Net, RX_QUEUE, RxState, TX_QUEUE, TxState};
use crate::virtio::VirtioDevice;

const ACTIVATE: u32 = 0;
const RX: u32 = 1;
const TX: u32 = 2;
const BACKEND: u32 = 3;

impl Net {
    /// Brings the backend fd's epoll registration in line with what RX and TX wait for.
    fn update_backend_watch(&mut self, ops: &mut EventOps) {
        let mut want = EventSet::empty();
        if self.rx_wants_backend {
            want |= EventSet::IN;
        }
        if self.tx_blocked {
            want |= EventSet::OUT;
        }
        let want = (!want.is_empty()).then_some(want);
        if want == self.backend_watch {
            return;
        }
        let fd = self.backend.as_raw_fd();
        let r = match (self.backend_watch, want) {
            (None, Some(w)) => ops.add(Events::with_data_raw(fd, BACKEND, w)),
            (Some(_), Some(w)) => ops.modify(Events::with_data_raw(fd, BACKEND, w)),
            (Some(old), None) => ops.remove(Events::with_data_raw(fd, BACKEND, old)),
            (None, None) => Ok(()),
        };
        match r {
            Ok(()) => self.backend_watch = want,
            Err(e) => tracing::error!("virtio-net {}: epoll update failed: {e:?}", self.mac()),
        }
    }

    fn serve_rx(&mut self) {
        self.rx_wants_backend = match self.process_rx() {
            RxState::Idle => true,
            RxState::NeedBuffers | RxState::BackendGone => false,
        };
    }

    fn serve_tx(&mut self) {
        self.tx_blocked = matches!(self.process_tx(), TxState::BackendFull(_));
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
        self.update_backend_watch(ops);
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        match events.data() {
            ACTIVATE => {
                let _ = self.activate_evt.read();
                self.serve_tx();
                self.serve_rx();
            }
            RX => {
                let _ = self.queue_events()[RX_QUEUE].read();
                // New buffers: deliver what was waiting, then listen to the backend again.
                self.serve_rx();
            }
            TX => {
                let _ = self.queue_events()[TX_QUEUE].read();
                if !self.tx_blocked {
                    self.serve_tx();
                }
            }
            BACKEND => {
                let set = events.event_set();
                if set.contains(EventSet::OUT) && self.tx_blocked {
                    self.serve_tx();
                }
                if set.intersects(EventSet::IN | EventSet::HANG_UP | EventSet::ERROR) {
                    // Before activation process_rx drops frames (the link is not up yet),
                    // which also keeps the level-triggered fd from spinning.
                    self.serve_rx();
                }
            }
            other => tracing::warn!("virtio-net: event with unknown tag {other}"),
        }
        if !self.is_active() {
            self.tx_blocked = false;
        }
        self.update_backend_watch(ops);
    }
}
