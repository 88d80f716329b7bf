//! libslirp on its own thread, behind a frame socket.
//!
//! libslirp is single-threaded and wants its owner to run its poll loop and timers. Each NIC
//! gets one instance on a dedicated thread; the NIC's device talks to it through a
//! `SOCK_SEQPACKET` pair (one Ethernet frame per message, see
//! [`devices::virtio::net::SocketBackend`]). Every frame from the guest passes the
//! [`HostFilter`] before libslirp sees it.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_int, c_void};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::thread::JoinHandle;
use std::time::Instant;

use std::collections::VecDeque;

use devices::virtio::net::{MAX_FRAME_LEN, SocketBackend, recv_frame};
use libslirp_sys as sys;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::filter::{self, HostFilter, Verdict};
use crate::outbound::Outbound;
use crate::spec::PortForward;

mod callbacks;
use callbacks::{CALLBACKS, cb_add_poll, cb_get_revents};

/// What one user-mode network offers the guest.
#[derive(Clone, Debug, Default)]
pub struct UserNetConfig {
    /// Host TCP ports reachable at the gateway address 10.0.2.2.
    pub allow_ports: Vec<u16>,
    /// Host 127.0.0.1:host -> guest 10.0.2.15:guest TCP forwards.
    pub forwards: Vec<PortForward>,
    /// What the guest may reach beyond those host ports (nothing by default).
    pub outbound: Outbound,
    /// DHCP host name for the guest.
    pub hostname: Option<String>,
}

impl From<&crate::spec::NetSpec> for UserNetConfig {
    fn from(s: &crate::spec::NetSpec) -> Self {
        Self {
            allow_ports: s.allow_ports.clone(),
            forwards: s.forwards.clone(),
            outbound: s.outbound.clone(),
            hostname: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserNetError {
    #[error("user-mode network: cannot create its socket pair or eventfd: {0}")]
    Io(#[from] std::io::Error),
    #[error("user-mode network: libslirp failed to initialise")]
    Init,
    #[error(
        "user-mode network: cannot forward host port {host} to guest port {guest}: the host port is in use or not bindable"
    )]
    Forward { host: u16, guest: u16 },
    #[error("user-mode network: host name contains a NUL byte")]
    Hostname,
}

/// A running user-mode network. Dropping it stops its thread and frees libslirp.
pub struct UserNet {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl UserNet {
    /// Starts a network and returns it with the backend for the NIC's virtio-net device.
    /// Port forwards are bound before this returns, so a busy host port is an error here,
    /// before the VM starts.
    pub fn start(cfg: &UserNetConfig) -> Result<(UserNet, SocketBackend), UserNetError> {
        let (backend, net_end) = SocketBackend::pair()?;
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let filter = HostFilter::new(
            &cfg.allow_ports,
            filter::host_ipv4_nets(),
            cfg.outbound.clone(),
        );
        let hostname = match &cfg.hostname {
            Some(h) => Some(CString::new(h.as_str()).map_err(|_| UserNetError::Hostname)?),
            None => None,
        };
        let state = Box::new(State {
            net: net_end,
            filter,
            start: Instant::now(),
            pollfds: RefCell::new(Vec::new()),
            to_guest: RefCell::new(ToGuest::default()),
            timers: RefCell::new(Vec::new()),
        });
        let slirp = Slirp::new(&state, hostname.as_deref())?;
        for fw in &cfg.forwards {
            slirp.add_forward(*fw)?;
        }
        let stop_fd = stop.try_clone()?;
        let thread = std::thread::Builder::new()
            .name("usernet".into())
            .spawn(move || {
                // Keep the host name alive as long as libslirp may read it.
                let _hostname = hostname;
                run(slirp, state, stop_fd);
            })?;
        Ok((
            UserNet {
                stop,
                thread: Some(thread),
            },
            backend,
        ))
    }
}

impl Drop for UserNet {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Timer {
    cb: sys::SlirpTimerCb,
    cb_opaque: *mut c_void,
    /// Milliseconds on libslirp's clock; `None` when not armed.
    expire_ms: Option<i64>,
}

/// Everything the libslirp callbacks touch. Only ever used from the network's own thread
/// (and, before it starts, from the thread creating it); reached through `&State` only, with
/// interior mutability, because libslirp calls back into it while we are inside its calls.
struct State {
    net: OwnedFd,
    filter: HostFilter,
    start: Instant,
    pollfds: RefCell<Vec<libc::pollfd>>,
    timers: RefCell<Vec<*mut Timer>>,
    to_guest: RefCell<ToGuest>,
}

/// Frames for the guest that did not fit in the socket yet. A slow guest (an emulated CPU
/// reading a large HTTP download) would otherwise lose frames whenever libslirp sends a
/// burst, and TCP would crawl through retransmissions. Bounded, after which frames drop
/// as on a congested link.
#[derive(Default)]
struct ToGuest {
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
}

const TO_GUEST_MAX_BYTES: usize = 16 << 20;

/// One non-blocking send; `Ok(false)` if the socket is full.
fn try_send(fd: RawFd, frame: &[u8]) -> std::io::Result<bool> {
    // SAFETY: `frame` is valid for its length.
    let r = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT) };
    if r >= 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

impl State {
    /// Sends a frame to the guest, queueing it behind earlier ones if the socket is full.
    fn to_guest(&self, frame: &[u8]) {
        let mut q = self.to_guest.borrow_mut();
        if q.queue.is_empty() {
            match try_send(self.net.as_raw_fd(), frame) {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!("usernet: frame to the guest lost: {e}");
                    return;
                }
            }
        }
        if q.bytes + frame.len() > TO_GUEST_MAX_BYTES {
            tracing::debug!("usernet: guest not reading; dropping a frame");
            return;
        }
        q.bytes += frame.len();
        q.queue.push_back(frame.to_vec());
    }

    /// Sends queued frames until the socket is full again.
    fn flush_to_guest(&self) {
        let mut q = self.to_guest.borrow_mut();
        while let Some(f) = q.queue.front() {
            match try_send(self.net.as_raw_fd(), f) {
                Ok(true) => {
                    let n = f.len();
                    q.queue.pop_front();
                    q.bytes -= n;
                }
                Ok(false) => break,
                Err(_) => {
                    q.queue.clear();
                    q.bytes = 0;
                }
            }
        }
    }
}

impl State {
    fn now_ms(&self) -> i64 {
        self.start.elapsed().as_millis() as i64
    }
}

struct Slirp {
    ptr: *mut sys::Slirp,
}

// SAFETY: a libslirp instance may move between threads; it is only ever used by one at a
// time (created on the caller's thread, then handed to the network thread).
unsafe impl Send for Slirp {}
// SAFETY: as above; the raw pointers in State are only dereferenced on the owning thread.
unsafe impl Send for State {}

fn in_addr(a: Ipv4Addr) -> sys::in_addr {
    sys::in_addr {
        s_addr: u32::from(a).to_be(),
    }
}

impl Slirp {
    fn new(state: &State, hostname: Option<&CStr>) -> Result<Self, UserNetError> {
        // SAFETY: all-zero is a valid SlirpConfig (null pointers, false, zero addresses).
        let mut cfg: sys::SlirpConfig = unsafe { std::mem::zeroed() };
        // The Rust struct mirrors libslirp 4.2's layout: versions 1-3 only (see vmm-notes).
        cfg.version = 3;
        cfg.restricted = 0;
        cfg.in_enabled = true;
        cfg.vnetwork = in_addr(filter::VNETWORK);
        cfg.vnetmask = in_addr(filter::VNETMASK);
        cfg.vhost = in_addr(filter::GATEWAY);
        cfg.in6_enabled = false;
        cfg.vdhcp_start = in_addr(filter::GUEST);
        cfg.vnameserver = in_addr(filter::DNS);
        cfg.vhostname = hostname.map_or(std::ptr::null(), |h| h.as_ptr());
        cfg.if_mtu = 1500;
        cfg.if_mru = 1500;
        cfg.disable_host_loopback = false; // allowed ports reach the host via loopback
        cfg.enable_emu = false;
        cfg.disable_dns = false;
        // SAFETY: cfg and CALLBACKS outlive the call; `state` is boxed by the caller and
        // outlives the instance (freed after slirp_cleanup in `run`).
        let ptr = unsafe { sys::slirp_new(&cfg, &CALLBACKS, state as *const State as *mut c_void) };
        if ptr.is_null() {
            return Err(UserNetError::Init);
        }
        Ok(Self { ptr })
    }

    fn add_forward(&self, fw: PortForward) -> Result<(), UserNetError> {
        // SAFETY: valid instance; addresses by value.
        let r = unsafe {
            sys::slirp_add_hostfwd(
                self.ptr,
                0,
                in_addr(Ipv4Addr::LOCALHOST),
                c_int::from(fw.host),
                in_addr(filter::GUEST),
                c_int::from(fw.guest),
            )
        };
        if r != 0 {
            return Err(UserNetError::Forward {
                host: fw.host,
                guest: fw.guest,
            });
        }
        Ok(())
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        // SAFETY: the instance is valid and not used afterwards.
        unsafe { sys::slirp_cleanup(self.ptr) };
    }
}

/// Feeds one guest frame through the filter into libslirp.
fn guest_frame(slirp: &Slirp, state: &State, frame: &[u8]) {
    match state.filter.check(frame) {
        Verdict::Pass => {
            // SAFETY: valid instance; libslirp copies the frame.
            unsafe { sys::slirp_input(slirp.ptr, frame.as_ptr(), frame.len() as c_int) };
        }
        Verdict::Drop => tracing::trace!("usernet: dropped a guest frame"),
        Verdict::Reject => {
            if let Some(rst) = filter::tcp_reset_for(frame) {
                state.to_guest(&rst);
            }
        }
    }
}

fn run(slirp: Slirp, state: Box<State>, stop: EventFd) {
    let net_fd: RawFd = state.net.as_raw_fd();
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    loop {
        {
            let mut p = state.pollfds.borrow_mut();
            p.clear();
            let backlog = !state.to_guest.borrow().queue.is_empty();
            p.push(libc::pollfd {
                fd: net_fd,
                events: if backlog {
                    libc::POLLIN | libc::POLLOUT
                } else {
                    libc::POLLIN
                },
                revents: 0,
            });
            p.push(libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let mut timeout: u32 = 1000;
        // SAFETY: valid instance; the callback only touches `state` through a shared ref.
        unsafe {
            sys::slirp_pollfds_fill(
                slirp.ptr,
                &mut timeout,
                Some(cb_add_poll),
                &*state as *const State as *mut c_void,
            )
        };
        let now = state.now_ms();
        if let Some(next) = state
            .timers
            .borrow()
            .iter()
            // SAFETY: timers in the list are live (removed in timer_free before freeing).
            .filter_map(|&t| unsafe { (*t).expire_ms })
            .min()
        {
            timeout = timeout.min(next.saturating_sub(now).clamp(0, 1000) as u32);
        }
        let r = {
            let mut p = state.pollfds.borrow_mut();
            // SAFETY: the vector holds valid pollfd entries for its length.
            unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout as c_int) }
        };
        let (net_ev, stop_ev) = {
            let p = state.pollfds.borrow();
            (p[0].revents, p[1].revents)
        };
        if stop_ev != 0 {
            break;
        }
        // SAFETY: valid instance; get_revents reads `state.pollfds` only.
        unsafe {
            sys::slirp_pollfds_poll(
                slirp.ptr,
                c_int::from(r < 0),
                Some(cb_get_revents),
                &*state as *const State as *mut c_void,
            )
        };
        fire_timers(&state);
        if net_ev & libc::POLLOUT != 0 {
            state.flush_to_guest();
        }
        if net_ev & libc::POLLIN != 0 {
            loop {
                match recv_frame(net_fd, &mut buf) {
                    Ok(Some(0)) => continue,
                    Ok(Some(n)) => guest_frame(&slirp, &state, &buf[..n]),
                    Ok(None) => break,
                    Err(_) => {
                        // The device end closed: the VM is gone.
                        drop(slirp);
                        free_timers(&state);
                        return;
                    }
                }
            }
        } else if net_ev & (libc::POLLHUP | libc::POLLERR) != 0 {
            break;
        }
    }
    drop(slirp);
    free_timers(&state);
}

fn fire_timers(state: &State) {
    let now = state.now_ms();
    // Collect first: a callback may create, re-arm or free timers.
    let due: Vec<*mut Timer> = state
        .timers
        .borrow()
        .iter()
        .copied()
        // SAFETY: listed timers are live.
        .filter(|&t| unsafe { (*t).expire_ms.is_some_and(|e| e <= now) })
        .collect();
    for t in due {
        // Still listed? An earlier callback in this round may have freed it.
        if !state.timers.borrow().contains(&t) {
            continue;
        }
        // SAFETY: listed, hence live; disarm before calling (the callback may re-arm).
        let (cb, opaque) = unsafe {
            (*t).expire_ms = None;
            ((*t).cb, (*t).cb_opaque)
        };
        if let Some(cb) = cb {
            // SAFETY: libslirp gave us this callback and its argument.
            unsafe { cb(opaque) };
        }
    }
}

fn free_timers(state: &State) {
    for t in state.timers.borrow_mut().drain(..) {
        // SAFETY: each pointer came from Box::into_raw in timer_new and is freed once.
        drop(unsafe { Box::from_raw(t) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_for_a_slow_guest_queue_instead_of_dropping() {
        let (mut guest, net) = SocketBackend::pair().unwrap();
        let state = State {
            net,
            filter: HostFilter::new(&[], vec![], Outbound::none()),
            start: Instant::now(),
            pollfds: RefCell::new(Vec::new()),
            timers: RefCell::new(Vec::new()),
            to_guest: RefCell::new(ToGuest::default()),
        };
        const N: u32 = 3000; // well beyond what the socket buffer holds
        for i in 0..N {
            let mut f = vec![0u8; 1514];
            f[..4].copy_from_slice(&i.to_le_bytes());
            state.to_guest(&f);
        }
        assert!(
            !state.to_guest.borrow().queue.is_empty(),
            "socket never filled up"
        );
        let mut buf = vec![0u8; 2048];
        let mut next = 0u32;
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while next < N {
            assert!(
                Instant::now() < deadline,
                "only {next} of {N} frames arrived"
            );
            use devices::virtio::net::NetBackend;
            while let Some(n) = guest.recv(&mut buf).unwrap() {
                assert_eq!(n, 1514);
                assert_eq!(
                    u32::from_le_bytes(buf[..4].try_into().unwrap()),
                    next,
                    "order"
                );
                next += 1;
            }
            state.flush_to_guest();
        }
        assert_eq!(state.to_guest.borrow().bytes, 0);
    }
}
