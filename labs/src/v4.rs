//! IPv4 in a lab (`family: ipv4` and `dual`): addresses, the IGMP rules of the
//! bridges, and sending to an IPv4 group.
//!
//! Groups travel through the lab's API in the protocol's group form: an IPv6
//! group as is, an IPv4 group IPv4-mapped (`::ffff:239.92.128.1`, what
//! `subcast_proto::group_field` writes). [`group_ip`] and [`ip_group`] convert.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{LabError, Result};
use crate::netns;

/// Prefix length of the lab's IPv4 subnet: hosts in 10.92.0.0/16, switches'
/// management addresses in 10.93.0.0/16, one link-local subnet 10.92.0.0/15.
pub(crate) const PREFIX_LEN: u8 = 15;

/// Unregistered IPv4 group the settling probe sends to (never used by tests).
pub(crate) const PROBE_GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 92, 255, 255);

/// IPv4 address of host number `index` (1-based): `10.92.HI.LO`.
pub fn host_ipv4(index: u16) -> Ipv4Addr {
    let [hi, lo] = index.to_be_bytes();
    Ipv4Addr::new(10, 92, hi, lo)
}

/// IPv4 management address of switch number `index` (1-based): `10.93.HI.LO`.
pub fn switch_ipv4(index: u16) -> Ipv4Addr {
    let [hi, lo] = index.to_be_bytes();
    Ipv4Addr::new(10, 93, hi, lo)
}

/// The protocol's group form of an address: IPv6 as is, IPv4 IPv4-mapped.
pub fn group_ip(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The address of a group in the protocol's group form: an IPv4-mapped group is
/// IPv4 (`239.92.128.1`), anything else IPv6 (for tcpdump filters, APIs, reports).
pub fn ip_group(g: Ipv6Addr) -> IpAddr {
    g.to_canonical()
}

/// nftables rule text (family bridge): IGMP queries arriving on `ports`.
pub(crate) fn igmp_query_rule(ports: &str) -> String {
    format!("    iifname {{ {ports} }} igmp type membership-query counter drop\n")
}

/// nftables rule text (family bridge): IGMP reports and leaves arriving on `ports`.
pub(crate) fn igmp_report_rule(ports: &str) -> String {
    format!(
        "    iifname {{ {ports} }} igmp type {{ membership-report-v1, membership-report-v2, \
         membership-report-v3, leave-group }} counter drop\n"
    )
}

/// Send `count` datagrams to `group:port` out of `ifname` in namespace `ns`
/// (TTL 1, no loopback); the payload as in `Lab::send_multicast`.
pub(crate) fn send_from_v4(
    ns: &str,
    ifname: &str,
    group: Ipv4Addr,
    port: u16,
    count: u64,
    payload_len: usize,
) -> Result<()> {
    let ifname = ifname.to_string();
    netns::in_netns(ns, move || -> Result<()> {
        let io = |e| LabError::io(format!("sending IPv4 multicast on {ifname}"), e);
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(io)?;
        // Bound to the interface: the route lookup takes it for multicast even
        // without a route to 224.0.0.0/4.
        s.bind_device(Some(ifname.as_bytes())).map_err(io)?;
        s.set_multicast_ttl_v4(1).map_err(io)?;
        s.set_multicast_loop_v4(false).map_err(io)?;
        let dst = SocketAddrV4::new(group, port).into();
        crate::lab::send_numbered(&s, &dst, count, payload_len).map_err(io)
    })?
}

/// A UDP socket bound to `0.0.0.0:port` that has joined `groups` on the
/// interface with address `local` (IGMP joins).
pub(crate) fn join_v4(
    ns: &str,
    local: Ipv4Addr,
    port: u16,
    groups: Vec<Ipv4Addr>,
) -> Result<std::net::UdpSocket> {
    netns::in_netns(ns, move || -> std::io::Result<std::net::UdpSocket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
        for g in &groups {
            s.join_multicast_v4(g, &local)?;
        }
        Ok(s.into())
    })?
    .map_err(|e| LabError::io(format!("IPv4 UDP socket in {ns}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_group_forms() {
        assert_eq!(host_ipv4(1), Ipv4Addr::new(10, 92, 0, 1));
        assert_eq!(host_ipv4(0x0102), Ipv4Addr::new(10, 92, 1, 2));
        assert_eq!(switch_ipv4(3), Ipv4Addr::new(10, 93, 0, 3));
        let g: IpAddr = "239.92.128.7".parse().unwrap();
        let m = group_ip(g);
        assert_eq!(m, "::ffff:239.92.128.7".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ip_group(m), g);
        let v6: Ipv6Addr = "ff05::5c:2:1".parse().unwrap();
        assert_eq!(group_ip(IpAddr::V6(v6)), v6);
        assert_eq!(ip_group(v6), IpAddr::V6(v6));
    }
}
