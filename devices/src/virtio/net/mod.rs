//! virtio-net: one RX and one TX queue, a fixed MAC, no offloads.
//!
//! Frames go to and come from a [`NetBackend`]: the user-mode NAT in the `usernet` crate
//! today, a host tap/bridge later. The backend is pollable so the device's event subscriber
//! can wait on it in the same event loop as its queues.

pub mod device;
pub mod event_handler;

pub use device::{MacAddr, Net, NetStats, TxState};

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Largest frame the device passes either way: 1500-byte MTU + Ethernet header + a VLAN tag.
/// Without GSO offloads nothing larger is legitimate.
pub const MAX_FRAME_LEN: usize = 1518;

/// Where a NIC's frames go. Implementations must be non-blocking.
pub trait NetBackend: Send {
    /// Sends one Ethernet frame from the guest. `Ok(false)` means the backend is full and
    /// did not take the frame: the device keeps it on the queue and waits for the backend's
    /// fd to become writable. Only a broken backend returns an error.
    fn send(&mut self, frame: &[u8]) -> io::Result<bool>;
    /// Receives one frame for the guest into `buf`; `Ok(None)` when none is pending.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Readable when frames are pending.
    fn as_raw_fd(&self) -> RawFd;
}

/// A backend that is one end of a `SOCK_SEQPACKET`/`SOCK_DGRAM` socket pair carrying one
/// frame per message. The user-mode NAT runs its stack on its own thread behind the other
/// end; tests play the network there.
pub struct SocketBackend {
    fd: OwnedFd,
}

impl SocketBackend {
    /// Creates a connected pair: the backend, and the network's end (non-blocking both).
    pub fn pair() -> io::Result<(Self, OwnedFd)> {
        let mut fds = [0; 2];
        // SAFETY: socketpair fills two fds we then own.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just created and are owned by nobody else.
        let (a, b) = unsafe {
            use std::os::fd::FromRawFd;
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        };
        // Room for a few hundred frames each way so bursts are not dropped.
        for fd in [&a, &b] {
            let size: libc::c_int = 1 << 20;
            // SAFETY: setsockopt with a valid int option.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUF,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as u32,
                );
            }
        }
        Ok((Self { fd: a }, b))
    }

    pub fn from_fd(fd: OwnedFd) -> Self {
        Self { fd }
    }
}

/// The socket itself, for a NIC outside this process (qemu's `-netdev dgram` takes it).
impl From<SocketBackend> for OwnedFd {
    fn from(b: SocketBackend) -> OwnedFd {
        b.fd
    }
}

/// Sends one message on a non-blocking socket; `Ok(false)` if the socket is full.
pub fn send_frame(fd: RawFd, frame: &[u8]) -> io::Result<bool> {
    // SAFETY: `frame` is a valid buffer for its length.
    let r = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(true)
}

/// Receives one message from a non-blocking socket; `Ok(None)` if none is pending.
/// Fails with `UnexpectedEof` once the peer has gone.
pub fn recv_frame(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is a valid writable buffer for its length.
    let r = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(e);
    }
    if r == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "network peer closed",
        ));
    }
    // MSG_TRUNC reports the real length: a frame larger than `buf` was cut; drop it.
    if r as usize > buf.len() {
        return Ok(Some(0));
    }
    Ok(Some(r as usize))
}

impl NetBackend for SocketBackend {
    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        send_frame(self.fd.as_raw_fd(), frame)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        recv_frame(self.fd.as_raw_fd(), buf)
    }

    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests;
