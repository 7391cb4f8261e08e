//! IPv4 and IPv6 in the configuration: pools, parent groups and members
//! of either family, in the 16-octet group form of `subcast_proto::group`
//! (an IPv4 group or member is kept IPv4-mapped, `::ffff:239.92.0.1`).
//!
//! IPv4 groups map to Ethernet addresses 01:00:5e + their low 23 bits, so
//! 32 IPv4 groups share each MAC (RFC 1112). A switch that forwards by MAC
//! (an SNMP switch's static multicast rows, any switch without IGMP
//! snooping) cannot tell them apart: two of them installed at once would
//! each reach the other's ports. The pool therefore never holds two
//! groups with one MAC: an IPv4 pool is /9 or longer (its addresses differ
//! only in the low 23 bits), the IPv4 pools of a VLAN do not overlap in
//! those bits, and no parent group of the VLAN shares a MAC with a pool
//! address.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use subcast_proto::{Family, GroupAddr};

/// A problem: what is wrong, and what to do.
pub(super) type Bad = (String, &'static str);

/// A pool prefix as written (`ff15::5c:1:0/112` or `239.92.128.0/24`),
/// in group form (an IPv4 prefix of length L becomes `::ffff:a.b.c.d/96+L`).
pub(super) fn parse_pool(s: &str) -> Result<Ipv6Net, Bad> {
    match s.parse::<IpNet>() {
        Ok(IpNet::V6(net)) => {
            let net = net.trunc();
            if !net.network().is_multicast() || net.prefix_len() < 8 {
                return Err((
                    format!("pool {net} is not inside ff00::/8"),
                    "rendezvous groups must be multicast: IPv6 like ff15::5c:1:0/112, or IPv4 like 239.92.128.0/24",
                ));
            }
            Ok(net)
        }
        Ok(IpNet::V4(net)) => {
            let net = net.trunc();
            if !net.network().is_multicast() || net.prefix_len() < 4 {
                return Err((
                    format!("pool {net} is not inside 224.0.0.0/4"),
                    "IPv4 rendezvous groups must be multicast; use the administratively scoped 239.0.0.0/8, e.g. 239.92.128.0/24",
                ));
            }
            if net.prefix_len() < 9 {
                return Err((
                    format!(
                        "IPv4 pool {net} is shorter than /9: several of its groups would share an Ethernet address (01:00:5e + the low 23 bits)"
                    ),
                    "use a /9 or longer prefix, e.g. 239.92.128.0/24",
                ));
            }
            Ipv6Net::new(net.network().to_ipv6_mapped(), net.prefix_len() + 96).map_err(|_| {
                (
                    format!("pool {net}: invalid prefix"),
                    "write e.g. 239.92.128.0/24",
                )
            })
        }
        Err(_) => Err((
            format!("pool {s:?} is not an IPv4 or IPv6 prefix"),
            "write e.g. ff15::5c:1:0/112 or 239.92.128.0/24",
        )),
    }
}

/// The family of a pool in group form.
pub(super) fn pool_family(net: &Ipv6Net) -> Family {
    net.network().family()
}

/// The low-23-bit range (first, last) of the MACs an IPv4 pool's groups use.
fn mac_range(net: &Ipv6Net) -> Option<(u32, u32)> {
    let v4 = net.network().ipv4_group()?;
    let net = Ipv4Net::new(v4, net.prefix_len().saturating_sub(96)).ok()?;
    let lo = u32::from(net.network()) & 0x7f_ffff;
    let hi = u32::from(net.broadcast()) & 0x7f_ffff;
    Some((lo, hi))
}

/// True when two IPv4 pools (group form) have groups with the same MAC.
pub(super) fn pools_share_macs(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    match (mac_range(a), mac_range(b)) {
        (Some((a0, a1)), Some((b0, b1))) => a0 <= b1 && b0 <= a1,
        _ => false,
    }
}

/// True when an IPv4 parent group has the MAC of an address of an IPv4 pool.
pub(super) fn parent_shares_mac(parent: Ipv6Addr, pool: &Ipv6Net) -> bool {
    match (parent.ipv4_group(), mac_range(pool)) {
        (Some(p), Some((lo, hi))) => {
            let m = u32::from(p) & 0x7f_ffff;
            lo <= m && m <= hi
        }
        _ => false,
    }
}

/// A parent group as written, in group form.
pub(super) fn parse_parent(s: &str, group: &str) -> Result<Ipv6Addr, Bad> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) if a.is_multicast() => Ok(a),
        Ok(IpAddr::V4(a)) if a.is_multicast() => Ok(a.to_ipv6_mapped()),
        Ok(a) => Err((
            format!("parent {a} of group {group} is not a multicast address"),
            "use an address in ff00::/8 (e.g. ff15::5c:0:1) or in 224.0.0.0/4 (e.g. 239.92.0.1)",
        )),
        Err(_) => Err((
            format!("parent {s:?} of group {group} is not an IPv4 or IPv6 address"),
            "use an address in ff00::/8 (e.g. ff15::5c:0:1) or in 224.0.0.0/4 (e.g. 239.92.0.1)",
        )),
    }
}

/// A member's IPv4 address as written, in group form (IPv4-mapped).
pub(super) fn parse_member_ipv4(s: &str) -> Option<Ipv6Addr> {
    let a = s.parse::<Ipv4Addr>().ok()?;
    (!a.is_multicast() && !a.is_unspecified() && !a.is_broadcast()).then(|| a.to_ipv6_mapped())
}

/// A member's IPv6 address as written (never IPv4-mapped).
pub(super) fn parse_member_ipv6(s: &str) -> Option<Ipv6Addr> {
    let a = s.parse::<Ipv6Addr>().ok()?;
    (!a.is_multicast() && !a.is_unspecified() && a.to_ipv4_mapped().is_none()).then_some(a)
}

/// A member's address: `ipv4:` or `ipv6:`, exactly one, of the parent
/// group's `family` (unknown when the parent did not parse); in group form.
pub(super) fn member_ip(
    c: &mut super::validate::Checker<'_>,
    m: &super::model::RawMember,
    group: &str,
    family: Option<Family>,
) -> Option<Ipv6Addr> {
    let name = &m.name.value;
    match (&m.ipv4, &m.ipv6) {
        (Some(_), Some(v6)) => {
            c.error(
                v6.referenced,
                format!("member {name} of group {group} has both ipv4 and ipv6"),
                "a member is named in its group's family: keep the one of the parent's family",
            );
            None
        }
        (None, None) => {
            c.error(
                m.name.referenced,
                format!("member {name} of group {group} has no address"),
                "add `ipv6: fd00::101` (IPv6 parent) or `ipv4: 10.0.0.101` (IPv4 parent)",
            );
            None
        }
        (Some(v4), None) => {
            let Some(a) = parse_member_ipv4(&v4.value) else {
                c.error(
                    v4.referenced,
                    format!(
                        "member {name} has ipv4 {:?}, not a unicast IPv4 address",
                        v4.value
                    ),
                    "write e.g. 10.0.0.101",
                );
                return None;
            };
            if family == Some(Family::Ipv6) {
                c.error(
                    v4.referenced,
                    format!(
                        "member {name} has an IPv4 address in group {group}, whose parent is IPv6"
                    ),
                    "name members of an IPv6 group with `ipv6:`",
                );
                return None;
            }
            Some(a)
        }
        (None, Some(v6)) => {
            let Some(a) = parse_member_ipv6(&v6.value) else {
                c.error(
                    v6.referenced,
                    format!(
                        "member {name} has ipv6 {:?}, not a unicast IPv6 address",
                        v6.value
                    ),
                    "write e.g. fd00::101 (an IPv4 member goes under `ipv4:`)",
                );
                return None;
            };
            if family == Some(Family::Ipv4) {
                c.error(
                    v6.referenced,
                    format!(
                        "member {name} has an IPv6 address in group {group}, whose parent is IPv4"
                    ),
                    "name members of an IPv4 group with `ipv4:`",
                );
                return None;
            }
            Some(a)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_of_both_families() {
        let p = parse_pool("239.92.128.0/24").unwrap();
        assert_eq!(p.to_string(), "::ffff:239.92.128.0/120");
        assert_eq!(pool_family(&p), Family::Ipv4);
        assert!(parse_pool("239.0.0.0/8").unwrap_err().0.contains("/9"));
        assert!(
            parse_pool("10.0.0.0/24")
                .unwrap_err()
                .0
                .contains("224.0.0.0/4")
        );
        assert_eq!(
            pool_family(&parse_pool("ff15::5c:1:0/112").unwrap()),
            Family::Ipv6
        );
        // 239.92.x and 239.220.x differ only in bit 7 of the second octet.
        let q = parse_pool("239.220.128.0/24").unwrap();
        assert!(pools_share_macs(&p, &q));
        assert!(!pools_share_macs(
            &p,
            &parse_pool("239.92.129.0/24").unwrap()
        ));
        assert!(parent_shares_mac(
            parse_parent("224.92.128.7", "g").unwrap(),
            &p
        ));
        assert!(!parent_shares_mac(
            parse_parent("239.92.0.1", "g").unwrap(),
            &p
        ));
        assert!(parse_member_ipv6("::ffff:10.0.0.1").is_none());
        assert!(parse_member_ipv4("239.0.0.1").is_none());
    }
}
