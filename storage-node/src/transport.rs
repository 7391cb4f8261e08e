//! Transport modes and the UDP sockets of nodes and clients.

use serde::Deserialize;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

/// How payload datagrams reach the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A rendezvous group from the controller: sent once, reaches only the
    /// targets (needs the controller and switch agents).
    Rendezvous,
    /// Baseline: multicast to the whole negotiating group.
    #[default]
    NgMulticast,
    /// Baseline: one unicast copy to each target.
    Unicast,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Rendezvous => "rendezvous",
            Mode::NgMulticast => "ng-multicast",
            Mode::Unicast => "unicast",
        }
    }
}

/// Index of a network interface by name (0 = let the system choose).
pub fn ifindex(name: Option<&str>) -> io::Result<u32> {
    let Some(name) = name else { return Ok(0) };
    let p = format!("/sys/class/net/{name}/ifindex");
    let s = std::fs::read_to_string(&p).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("interface {name:?} not found ({p}: {e}); fix `interface` in the config"),
        )
    })?;
    s.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad ifindex in {p}")))
}

/// A UDP socket bound to `[::]:port`, multicast on `ifindex`, member of
/// `groups`, with large buffers; as a tokio socket.
pub fn udp_socket(
    port: u16,
    ifindex: u32,
    hops: u32,
    groups: &[Ipv6Addr],
) -> io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    // Best effort: the kernel caps these at net.core.[rw]mem_max, unless
    // we may force them (root; CAP_NET_ADMIN). A deep receive buffer rides
    // out bursts while the loop is busy.
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&s, 32 << 20).is_err() {
        let _ = s.set_recv_buffer_size(32 << 20);
    }
    let _ = s.set_send_buffer_size(8 << 20);
    s.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)).into())?;
    s.set_multicast_if_v6(ifindex)?;
    s.set_multicast_hops_v6(hops)?;
    s.set_multicast_loop_v6(true)?;
    for g in groups {
        s.join_multicast_v6(g, ifindex).map_err(|e| {
            io::Error::new(e.kind(), format!("joining {g} on interface {ifindex}: {e}"))
        })?;
    }
    s.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(s.into())
}

/// Bytes IPv6 and UDP add to every datagram on the wire.
pub const IP_UDP_OVERHEAD: usize = 48;
