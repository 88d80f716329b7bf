//! User-mode networking for the vmtest microVM: no root, no host configuration.
//!
//! Each NIC gets a [`UserNet`]: a libslirp instance (NAT, DHCP handing out 10.0.2.15, a DNS
//! proxy at 10.0.2.3, the host at the gateway 10.0.2.2) on its own thread, joined to the
//! NIC's virtio-net device by a frame socket. The guest is untrusted: a [`filter::HostFilter`]
//! lets it reach the host only on the TCP ports the caller allows (see [`NetSpec`]), and
//! beyond the host only what its [`Outbound`] rules name (nothing by default).
//!
//! The `libslirp` feature (default) brings the network itself; without it only the NIC
//! specs, the outbound rules and the filter are built, so a VMM can parse and check NICs
//! without linking libslirp.

pub mod filter;
pub mod outbound;
#[cfg(feature = "libslirp")]
pub mod slirp;
pub mod spec;

pub use outbound::{Outbound, OutboundError, OutboundRule};
#[cfg(feature = "libslirp")]
pub use slirp::{UserNet, UserNetConfig, UserNetError};
pub use spec::{MacAddr, NetSpec, NetSpecError, PortForward, resolve_nics};
