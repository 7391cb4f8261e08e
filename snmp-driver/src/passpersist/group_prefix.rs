//! Rendezvous groups <-> row MACs.
//!
//! - IPv6: the `/96` (`--ipv6-group-prefix`) whose groups carry the rows. Linux bridges
//!   ignore L2 MDB entries (`grp 33:33:...`) for IPv6 traffic, so a row for MAC
//!   `33:33:aa:bb:cc:dd` is stored as static IPv6 MDB entries for group `PREFIX::aabb:ccdd`.
//! - IPv4 (optional, `--ipv4-group-prefix`, e.g. `239.92.0.0/16`): a row for MAC
//!   `01:00:5e:xx:yy:zz` is stored as static IPv4 MDB entries for the group of the prefix
//!   whose low 23 bits are the MAC's (RFC 1112). A MAC stands for 32 IPv4 groups; a prefix of
//!   /9 or longer picks one of them, and MACs whose bits disagree with a longer prefix are
//!   not rows of this handler.

use crate::mib::MacAddr;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv6 `/96` prefix for rendezvous groups, and optionally an IPv4 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupPrefix {
    base: [u8; 12],
    v4: Option<Ipv4Prefix>,
}

/// An IPv4 multicast prefix of length 9 to 32 (`--ipv4-group-prefix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Prefix {
    net: u32,
    len: u8,
}

/// A `--ipv6-group-prefix` that is not an IPv6 multicast /96.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IPv6 multicast /96 prefix (expected e.g. ff3e::/96)")]
pub struct GroupPrefixError(pub String);

/// A `--ipv4-group-prefix` that is not an IPv4 multicast prefix of length 9 to 32.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an IPv4 multicast prefix of length 9 to 32 (expected e.g. 239.92.0.0/16; \
     a shorter one would give one MAC several groups)"
)]
pub struct Ipv4PrefixError(pub String);

impl FromStr for GroupPrefix {
    type Err = GroupPrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || GroupPrefixError(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        if len != "96" {
            return Err(err());
        }
        let addr: Ipv6Addr = addr.parse().map_err(|_| err())?;
        if !addr.is_multicast() {
            return Err(err());
        }
        let o = addr.octets();
        let mut base = [0u8; 12];
        base.copy_from_slice(&o[..12]);
        Ok(GroupPrefix { base, v4: None })
    }
}

impl FromStr for Ipv4Prefix {
    type Err = Ipv4PrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || Ipv4PrefixError(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        let len: u8 = len.parse().map_err(|_| err())?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| err())?;
        if !(9..=32).contains(&len) || !addr.is_multicast() {
            return Err(err());
        }
        let mask = u32::MAX << (32 - u32::from(len));
        Ok(Ipv4Prefix {
            net: u32::from(addr) & mask,
            len,
        })
    }
}

impl Ipv4Prefix {
    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.len))
    }

    fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == self.net
    }
}

impl GroupPrefix {
    /// The same prefix with IPv4 rows too, for groups inside `v4`.
    pub fn with_ipv4(mut self, v4: Ipv4Prefix) -> Self {
        self.v4 = Some(v4);
        self
    }

    /// The group that carries rows for `mac`: an IPv6 group for a 33:33 MAC, an
    /// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as the MDB codec writes IPv4 groups)
    /// for an 01:00:5e MAC when an IPv4 prefix is set.
    pub fn group_of(&self, mac: MacAddr) -> Option<Ipv6Addr> {
        if mac.is_ipv6_multicast() {
            let mut o = [0u8; 16];
            o[..12].copy_from_slice(&self.base);
            o[12..].copy_from_slice(&mac.0[2..]);
            return Some(Ipv6Addr::from(o));
        }
        let v4 = self.v4?;
        if !mac.is_ipv4_multicast() {
            return None;
        }
        let low = u32::from_be_bytes([0, mac.0[3], mac.0[4], mac.0[5]]);
        let g = Ipv4Addr::from((v4.net & 0xff80_0000) | low);
        v4.contains(g).then(|| g.to_ipv6_mapped())
    }

    /// True if `group` lies inside the prefix (IPv4 groups as IPv4-mapped addresses).
    pub fn contains(&self, group: Ipv6Addr) -> bool {
        match group.to_ipv4_mapped() {
            Some(g) => self.v4.is_some_and(|p| p.contains(g)),
            None => group.octets()[..12] == self.base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_maps_macs() {
        let p: GroupPrefix = "ff3e::/96".parse().unwrap();
        let mac: MacAddr = "33:33:aa:bb:cc:dd".parse().unwrap();
        let g = p.group_of(mac).unwrap();
        assert_eq!(g, "ff3e::aabb:ccdd".parse::<Ipv6Addr>().unwrap());
        assert!(p.contains(g));
        assert!(!p.contains("ff3e:1::1".parse().unwrap()));
        assert!(p.group_of("01:00:5e:00:00:01".parse().unwrap()).is_none());
        assert!(!p.contains(Ipv4Addr::new(239, 92, 0, 1).to_ipv6_mapped()));
        assert!("ff3e::/64".parse::<GroupPrefix>().is_err());
        assert!("fd00::/96".parse::<GroupPrefix>().is_err());
    }

    #[test]
    fn ipv4_prefix_maps_01_00_5e_macs_to_its_groups() {
        let p = "ff3e::/96"
            .parse::<GroupPrefix>()
            .unwrap()
            .with_ipv4("239.92.0.0/16".parse().unwrap());
        let g = Ipv4Addr::new(239, 92, 128, 7);
        let mac = MacAddr::ipv4_multicast(g);
        assert_eq!(mac.to_string(), "01:00:5e:5c:80:07");
        assert_eq!(p.group_of(mac), Some(g.to_ipv6_mapped()));
        assert!(p.contains(g.to_ipv6_mapped()));
        // 01:00:5e:5d:.. is 239.93.x.x (or 224.93, ...): outside 239.92/16.
        assert_eq!(p.group_of("01:00:5e:5d:00:01".parse().unwrap()), None);
        assert!(!p.contains(Ipv4Addr::new(239, 93, 0, 1).to_ipv6_mapped()));
        // The IPv6 rows are unchanged.
        assert!(p.group_of("33:33:00:00:00:01".parse().unwrap()).is_some());
        // A /8 would map one MAC to 32 groups; not multicast is refused too.
        assert!("239.0.0.0/8".parse::<Ipv4Prefix>().is_err());
        assert!("10.0.0.0/16".parse::<Ipv4Prefix>().is_err());
        assert!("239.92.0.0".parse::<Ipv4Prefix>().is_err());
        // 239.128.0.0/9: the top 9 bits come from the prefix.
        let p9 = p.with_ipv4("239.128.0.0/9".parse().unwrap());
        let g = Ipv4Addr::new(239, 200, 1, 2);
        assert_eq!(
            p9.group_of(MacAddr::ipv4_multicast(g)),
            Some(g.to_ipv6_mapped())
        );
    }
}
