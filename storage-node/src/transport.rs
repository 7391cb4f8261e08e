//! Transport modes and the UDP sockets of nodes and clients.

use serde::Deserialize;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

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

/// Refuses a configured `mtu` larger than the MTU of the named interface:
/// DATA datagrams are sized to the configured one and sent without
/// fragmentation, so every one would be refused (EMSGSIZE) and no transfer
/// could finish. Without an interface name nothing is checked (the system
/// picks the interface per destination).
pub fn check_mtu(name: Option<&str>, mtu: usize) -> io::Result<()> {
    let Some(name) = name else { return Ok(()) };
    let p = format!("/sys/class/net/{name}/mtu");
    let link = std::fs::read_to_string(&p)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {name}'s MTU ({p}): {e}")))?;
    let link: usize = link
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad MTU in {p}")))?;
    mtu_fits(name, mtu, link)
}

/// The rule of [`check_mtu`], given the link's MTU.
pub fn mtu_fits(name: &str, mtu: usize, link: usize) -> io::Result<()> {
    if mtu <= link {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "`mtu: {mtu}` in the config is larger than the MTU of {name} ({link}): DATA \
             datagrams would not fit the link and every one would be refused; set `mtu: {link}` \
             (or raise the MTU of {name} and of every link on the way)"
        ),
    ))
}

/// The address family of a node's or client's sockets, from the config
/// (README "IPv4"). Inside the node every address is an [`Ipv6Addr`]; an
/// IPv4 one in its IPv4-mapped form (`::ffff:239.1.2.3`), as Replicast and
/// the rendezvous messages carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Ipv6,
    Ipv4,
}

impl Family {
    /// Bytes the IP and UDP headers add to a datagram: 48 for IPv6, 28 for IPv4.
    pub fn ip_udp_overhead(self) -> usize {
        match self {
            Family::Ipv6 => 48,
            Family::Ipv4 => 28,
        }
    }

    /// The family of an address in the node's form.
    pub fn of(a: &Ipv6Addr) -> Family {
        if a.to_ipv4_mapped().is_some() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv6 => "IPv6",
            Family::Ipv4 => "IPv4",
        }
    }
}

/// An address in the node's form: IPv4 as IPv4-mapped IPv6.
pub fn canonical(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Whether `a` (node form) is a multicast group of its family.
pub fn is_group(a: &Ipv6Addr) -> bool {
    match a.to_ipv4_mapped() {
        Some(v4) => v4.is_multicast(),
        None => a.is_multicast(),
    }
}

/// The socket address to send to for `a` (node form) and `port`: an IPv4
/// one for an IPv4-mapped address.
pub fn sock_addr(a: Ipv6Addr, port: u16) -> SocketAddr {
    match a.to_ipv4_mapped() {
        Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
        None => SocketAddr::V6(SocketAddrV6::new(a, port, 0, 0)),
    }
}

/// A UDP socket bound to `[::]:port` (IPv6) or `0.0.0.0:port` (IPv4),
/// multicast on `ifindex`, member of `groups` (node form, all of
/// `family`), with large buffers; as a tokio socket.
pub fn udp_socket(
    family: Family,
    port: u16,
    ifindex: u32,
    hops: u32,
    groups: &[Ipv6Addr],
) -> io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = match family {
        Family::Ipv6 => Domain::IPV6,
        Family::Ipv4 => Domain::IPV4,
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if family == Family::Ipv6 {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    // Best effort: the kernel caps these at net.core.[rw]mem_max, unless
    // we may force them (root; CAP_NET_ADMIN). A deep receive buffer rides
    // out bursts while the loop is busy.
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&s, 32 << 20).is_err() {
        let _ = s.set_recv_buffer_size(32 << 20);
    }
    let _ = s.set_send_buffer_size(8 << 20);
    match family {
        Family::Ipv6 => {
            s.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)).into())?;
            s.set_multicast_if_v6(ifindex)?;
            s.set_multicast_hops_v6(hops)?;
            s.set_multicast_loop_v6(true)?;
        }
        Family::Ipv4 => {
            s.bind(
                &SocketAddr::V4(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, port)).into(),
            )?;
            if ifindex != 0 {
                // IP_MULTICAST_IF by interface index (struct ip_mreqn).
                rustix::net::sockopt::set_ip_multicast_if_with_ifindex(
                    &s,
                    &std::net::Ipv4Addr::UNSPECIFIED,
                    &std::net::Ipv4Addr::UNSPECIFIED,
                    ifindex,
                )?;
            }
            s.set_multicast_ttl_v4(hops)?;
            s.set_multicast_loop_v4(true)?;
            // Only the groups joined on this socket, not every group any
            // socket of the host joined (Linux's default for IPv4).
            s.set_multicast_all_v4(false)?;
        }
    }
    for g in groups {
        join(&s, g, ifindex).map_err(|e| {
            io::Error::new(e.kind(), format!("joining {g} on interface {ifindex}: {e}"))
        })?;
    }
    s.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(s.into())
}

/// Joins group `g` (node form) on interface `ifindex`, in its family.
pub fn join<S: std::os::fd::AsFd>(s: &S, g: &Ipv6Addr, ifindex: u32) -> io::Result<()> {
    let s = socket2::SockRef::from(s);
    match g.to_ipv4_mapped() {
        Some(v4) => s.join_multicast_v4_n(&v4, &socket2::InterfaceIndexOrAddress::Index(ifindex)),
        None => s.join_multicast_v6(g, ifindex),
    }
}

/// Leaves group `g` (node form) on interface `ifindex`.
pub fn leave<S: std::os::fd::AsFd>(s: &S, g: &Ipv6Addr, ifindex: u32) -> io::Result<()> {
    let s = socket2::SockRef::from(s);
    match g.to_ipv4_mapped() {
        Some(v4) => s.leave_multicast_v4_n(&v4, &socket2::InterfaceIndexOrAddress::Index(ifindex)),
        None => s.leave_multicast_v6(g, ifindex),
    }
}

/// Bytes IPv6 and UDP add to every datagram on the wire: what pacing
/// counts (IPv4 adds 28, [`Family::ip_udp_overhead`]; pacing counts 48 in
/// both families, a 20-octet margin for IPv4).
pub const IP_UDP_OVERHEAD: usize = 48;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mtu_larger_than_the_links_is_refused_with_the_fix() {
        assert!(mtu_fits("eth0", 1500, 1500).is_ok());
        assert!(mtu_fits("eth0", 1400, 9000).is_ok());
        let e = mtu_fits("eth0", 9000, 1500).unwrap_err().to_string();
        assert!(e.contains("`mtu: 9000`"), "{e}");
        assert!(e.contains("set `mtu: 1500`"), "{e}");
        // Loopback: read from the system.
        assert!(check_mtu(Some("lo"), 1500).is_ok());
        assert!(check_mtu(None, 9000).is_ok());
        let e = check_mtu(Some("no-such-if0"), 1500)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no-such-if0"), "{e}");
    }
}
