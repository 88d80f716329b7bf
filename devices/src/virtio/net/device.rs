//! The virtio-net device: config space with the MAC, TX and RX queue processing.

use std::fmt;
use std::mem::{offset_of, size_of};
use std::str::FromStr;
use std::sync::Arc;

use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP, virtio_net_config,
    virtio_net_hdr_v1,
};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::endian::Le16;
use vm_memory::{ByteValued, Bytes, GuestMemoryBackend};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::{MAX_FRAME_LEN, NetBackend};
use crate::virtio::{
    ActivateError, GuestMemoryMmap, InterruptKind, VIRTIO_ID_NET, VirtioDevice, VirtioInterrupt,
    feature, read_config_bytes,
};

/// `struct virtio_net_config` (virtio 1.2, 5.1.4) up to `mtu`: what the offered features
/// (MAC, STATUS) cover; later fields read as zero. Little-endian, naturally aligned, no
/// padding; held to the kernel header's layout below.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct ConfigSpace {
    mac: [u8; 6],
    status: Le16,
    max_virtqueue_pairs: Le16,
    mtu: Le16,
}

/// `struct virtio_net_hdr_v1`, which precedes every frame either way (with VERSION_1 it
/// always has `num_buffers`). The device sends it with no offloads: all zero but
/// `num_buffers`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct NetHeader {
    flags: u8,
    gso_type: u8,
    hdr_len: Le16,
    gso_size: Le16,
    csum_start: Le16,
    csum_offset: Le16,
    num_buffers: Le16,
}

// SAFETY: `repr(C)` structs of bytes and vm-memory's `repr(transparent)` little-endian
// integers, each at an offset that is a multiple of its alignment and sizes that are the
// sum of the fields (checked below): no padding, and any bytes are a valid value.
unsafe impl ByteValued for ConfigSpace {}
// SAFETY: as for `ConfigSpace`.
unsafe impl ByteValued for NetHeader {}

const _: () = {
    assert!(size_of::<ConfigSpace>() == 6 + 2 + 2 + 2);
    assert!(offset_of!(ConfigSpace, mac) == offset_of!(virtio_net_config, mac));
    assert!(offset_of!(ConfigSpace, status) == offset_of!(virtio_net_config, status));
    assert!(
        offset_of!(ConfigSpace, max_virtqueue_pairs)
            == offset_of!(virtio_net_config, max_virtqueue_pairs)
    );
    assert!(offset_of!(ConfigSpace, mtu) == offset_of!(virtio_net_config, mtu));
    assert!(size_of::<NetHeader>() == 1 + 1 + 2 * 5);
    assert!(size_of::<NetHeader>() == size_of::<virtio_net_hdr_v1>());
    assert!(offset_of!(NetHeader, hdr_len) == offset_of!(virtio_net_hdr_v1, hdr_len));
    assert!(offset_of!(NetHeader, gso_size) == offset_of!(virtio_net_hdr_v1, gso_size));
    assert!(offset_of!(NetHeader, num_buffers) == offset_of!(virtio_net_hdr_v1, num_buffers));
};

/// Length of the header in front of every frame on both queues.
pub const NET_HDR_LEN: usize = size_of::<NetHeader>();
pub const QUEUE_SIZE: u16 = 256;
const QUEUE_SIZES: [u16; 2] = [QUEUE_SIZE, QUEUE_SIZE];
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;

/// An Ethernet MAC address, written `52:54:00:12:34:56`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacAddrError {
    #[error("MAC address {0:?} is malformed; write six hex bytes like 52:54:00:12:34:56")]
    Malformed(String),
    #[error("MAC address {0} is a multicast address; the first byte must be even (e.g. 52:...)")]
    Multicast(String),
    #[error("MAC address {0} is all zeros")]
    Zero(String),
}

impl MacAddr {
    /// The `index`-th default NIC address, in the locally administered 52:54:00 range qemu
    /// also uses, so each NIC of a VM gets its own.
    pub fn default_for_nic(index: u8) -> Self {
        MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56u8.wrapping_add(index)])
    }
}

impl FromStr for MacAddr {
    type Err = MacAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(MacAddrError::Malformed(s.into()));
        }
        let mut mac = [0u8; 6];
        for (b, p) in mac.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return Err(MacAddrError::Malformed(s.into()));
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| MacAddrError::Malformed(s.into()))?;
        }
        if mac[0] & 1 != 0 {
            return Err(MacAddrError::Multicast(s.into()));
        }
        if mac == [0; 6] {
            return Err(MacAddrError::Zero(s.into()));
        }
        Ok(MacAddr(mac))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetStats {
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Malformed TX chains (bad memory, too short, too long, wrong direction).
    pub tx_dropped: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames for the guest dropped because its buffer was unusable or too small.
    pub rx_dropped: u64,
}

pub(crate) struct Active {
    pub(crate) mem: GuestMemoryMmap,
    pub(crate) interrupt: Arc<dyn VirtioInterrupt>,
    pub(crate) rx: Queue,
    pub(crate) tx: Queue,
}

/// What TX processing stopped on; both carry the number of chains completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// The TX queue is empty.
    Done(usize),
    /// The backend is full; wait for its fd to become writable, then call `process_tx`.
    BackendFull(usize),
}

/// What RX processing stopped on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxState {
    /// The backend has nothing more for now.
    Idle,
    /// A frame is waiting but the guest has posted no RX buffers.
    NeedBuffers,
    /// The backend failed or closed; stop watching it.
    BackendGone,
}

/// A virtio-net device with one queue pair.
pub struct Net {
    mac: MacAddr,
    pub(crate) backend: Box<dyn NetBackend>,
    config: ConfigSpace,
    acked_features: u64,
    queue_evts: Vec<EventFd>,
    pub(crate) activate_evt: EventFd,
    pub(crate) active: Option<Active>,
    rx_frame: Vec<u8>,
    rx_pending: Option<usize>,
    /// Event set the backend fd is registered with (`None`: not registered).
    pub(crate) backend_watch: Option<event_manager::EventSet>,
    /// RX wants backend readability (false while the guest has no RX buffers).
    pub(crate) rx_wants_backend: bool,
    /// TX waits for the backend to become writable.
    pub(crate) tx_blocked: bool,
    pub stats: NetStats,
}

impl Net {
    pub fn new(mac: MacAddr, backend: Box<dyn NetBackend>) -> std::io::Result<Self> {
        let config = ConfigSpace {
            mac: mac.0,
            status: (VIRTIO_NET_S_LINK_UP as u16).into(),
            max_virtqueue_pairs: 1.into(),
            mtu: 0.into(),
        };
        Ok(Self {
            mac,
            backend,
            config,
            acked_features: 0,
            queue_evts: vec![EventFd::new(EFD_NONBLOCK)?, EventFd::new(EFD_NONBLOCK)?],
            activate_evt: EventFd::new(EFD_NONBLOCK)?,
            active: None,
            rx_frame: vec![0u8; MAX_FRAME_LEN],
            rx_pending: None,
            backend_watch: None,
            rx_wants_backend: true,
            tx_blocked: false,
            stats: NetStats::default(),
        })
    }

    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Sends every frame the guest queued on TX, until the queue is empty or the backend is
    /// full (then the pending chain stays on the queue for [`Net::process_tx`] to retry once
    /// the backend is writable).
    pub fn process_tx(&mut self) -> TxState {
        let Some(a) = self.active.as_mut() else {
            return TxState::Done(0);
        };
        let mut frame = [0u8; NET_HDR_LEN + MAX_FRAME_LEN];
        let mut done = 0;
        let mut state = None;
        while let Some(chain) = a.tx.pop_descriptor_chain(&a.mem) {
            let head = chain.head_index();
            match gather_tx(&a.mem, chain, &mut frame) {
                Some(len) => {
                    let payload = &frame[NET_HDR_LEN..len];
                    match self.backend.send(payload) {
                        Ok(true) => {
                            self.stats.tx_frames += 1;
                            self.stats.tx_bytes += payload.len() as u64;
                        }
                        Ok(false) => {
                            // Put the chain back; it is read again when the backend drains.
                            a.tx.go_to_previous_position();
                            state = Some(TxState::BackendFull(done));
                            break;
                        }
                        Err(e) => {
                            tracing::warn!("virtio-net {}: backend send failed: {e}", self.mac);
                            self.stats.tx_dropped += 1;
                        }
                    }
                }
                None => self.stats.tx_dropped += 1,
            }
            if let Err(e) = a.tx.add_used(&a.mem, head, 0) {
                tracing::warn!("virtio-net: cannot update TX used ring: {e}");
            }
            done += 1;
        }
        if done > 0
            && a.tx.needs_notification(&a.mem).unwrap_or(true)
            && let Err(e) = a.interrupt.signal(InterruptKind::Queue(TX_QUEUE as u16))
        {
            tracing::warn!("virtio-net: cannot interrupt the guest: {e}");
        }
        state.unwrap_or(TxState::Done(done))
    }

    /// Moves frames from the backend into the guest's RX buffers until one side runs out.
    pub fn process_rx(&mut self) -> RxState {
        let mut delivered = 0;
        let state = loop {
            let len = match self.rx_pending {
                Some(len) => len,
                None => match self.backend.recv(&mut self.rx_frame) {
                    Ok(Some(0)) => {
                        self.stats.rx_dropped += 1; // oversized, truncated by the socket
                        continue;
                    }
                    Ok(Some(len)) => len,
                    Ok(None) => break RxState::Idle,
                    Err(e) => {
                        tracing::warn!("virtio-net {}: backend receive failed: {e}", self.mac);
                        break RxState::BackendGone;
                    }
                },
            };
            let Some(a) = self.active.as_mut() else {
                // Not active: the frame has nowhere to go.
                self.rx_pending = None;
                self.stats.rx_dropped += 1;
                continue;
            };
            let Some(chain) = a.rx.pop_descriptor_chain(&a.mem) else {
                self.rx_pending = Some(len);
                break RxState::NeedBuffers;
            };
            let head = chain.head_index();
            self.rx_pending = None;
            let used = match scatter_rx(&a.mem, chain, &self.rx_frame[..len]) {
                Some(n) => {
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += len as u64;
                    n
                }
                None => {
                    self.stats.rx_dropped += 1;
                    0
                }
            };
            if let Err(e) = a.rx.add_used(&a.mem, head, used) {
                tracing::warn!("virtio-net: cannot update RX used ring: {e}");
            }
            delivered += 1;
        };
        if delivered > 0
            && let Some(a) = self.active.as_mut()
            && a.rx.needs_notification(&a.mem).unwrap_or(true)
            && let Err(e) = a.interrupt.signal(InterruptKind::Queue(RX_QUEUE as u16))
        {
            tracing::warn!("virtio-net: cannot interrupt the guest: {e}");
        }
        state
    }
}

/// Copies a TX chain (header + frame, device-readable only) into `out`; returns its length,
/// or `None` if the chain is malformed: a writable descriptor, memory outside the guest,
/// shorter than the header or longer than a frame.
fn gather_tx(
    mem: &GuestMemoryMmap,
    chain: DescriptorChain<&GuestMemoryMmap>,
    out: &mut [u8; NET_HDR_LEN + MAX_FRAME_LEN],
) -> Option<usize> {
    let mut len = 0usize;
    for d in chain {
        if d.is_write_only() {
            return None;
        }
        let n = d.len() as usize;
        let end = len.checked_add(n).filter(|&e| e <= out.len())?;
        mem.read_slice(&mut out[len..end], d.addr()).ok()?;
        len = end;
    }
    (len > NET_HDR_LEN).then_some(len)
}

/// Writes header + frame into an RX chain (device-writable only). Returns the bytes written,
/// or `None` if the chain cannot hold them or is malformed.
fn scatter_rx(
    mem: &GuestMemoryMmap,
    chain: DescriptorChain<&GuestMemoryMmap>,
    frame: &[u8],
) -> Option<u32> {
    let hdr = NetHeader {
        num_buffers: 1.into(),
        ..NetHeader::default()
    };
    let total = NET_HDR_LEN + frame.len();
    if frame.len() > MAX_FRAME_LEN {
        return None;
    }
    // Check the whole chain first so a bad one leaves guest memory untouched.
    let descs: smallvec::SmallVec<[Descriptor; 4]> = chain.collect();
    let mut room = 0usize;
    for d in &descs {
        if !d.is_write_only() || !mem.check_range(d.addr(), d.len() as usize) {
            return None;
        }
        room = room.saturating_add(d.len() as usize);
    }
    if room < total {
        return None;
    }
    let mut buf = [0u8; NET_HDR_LEN + MAX_FRAME_LEN];
    buf[..NET_HDR_LEN].copy_from_slice(hdr.as_slice());
    buf[NET_HDR_LEN..total].copy_from_slice(frame);
    let mut off = 0usize;
    for d in &descs {
        if off == total {
            break;
        }
        let n = (d.len() as usize).min(total - off);
        mem.write_slice(&buf[off..off + n], d.addr()).ok()?;
        off += n;
    }
    Some(total as u32)
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn avail_features(&self) -> u64 {
        feature(VIRTIO_F_VERSION_1) | feature(VIRTIO_NET_F_MAC) | feature(VIRTIO_NET_F_STATUS)
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features & self.avail_features();
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.queue_evts
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(self.config.as_slice(), offset, data);
    }

    fn write_config(&mut self, offset: u64, _data: &[u8]) {
        // The MAC is fixed by the VM's configuration; the guest may not change it.
        tracing::debug!("virtio-net: ignoring config write at {offset:#x}");
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        interrupt: Arc<dyn VirtioInterrupt>,
        queues: Vec<Queue>,
    ) -> Result<(), ActivateError> {
        if self.active.is_some() {
            return Err(ActivateError::AlreadyActive);
        }
        let got = queues.len();
        let Ok([rx, tx]) = <[Queue; 2]>::try_from(queues) else {
            return Err(ActivateError::QueueCount { expected: 2, got });
        };
        self.active = Some(Active {
            mem,
            interrupt,
            rx,
            tx,
        });
        self.activate_evt.write(1).map_err(ActivateError::Signal)
    }

    fn reset(&mut self) {
        self.active = None;
        self.rx_pending = None;
        self.acked_features = 0;
    }
}
