//! Rendezvous groups <-> row MACs: the IPv6 `/96` (`--ipv6-group-prefix`) whose groups carry
//! the rows. Linux bridges ignore L2 MDB entries (`grp 33:33:...`) for IPv6 traffic, so a
//! row for MAC `33:33:aa:bb:cc:dd` is stored as static IPv6 MDB entries for group
//! `PREFIX::aabb:ccdd`.

use crate::mib::MacAddr;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// An IPv6 `/96` prefix for rendezvous groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupPrefix {
    base: [u8; 12],
}

/// A `--ipv6-group-prefix` that is not an IPv6 multicast /96.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IPv6 multicast /96 prefix (expected e.g. ff3e::/96)")]
pub struct GroupPrefixError(pub String);

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
        Ok(GroupPrefix { base })
    }
}

impl GroupPrefix {
    /// The IPv6 group that carries rows for `mac` (which must be 33:33:..).
    pub fn group_of(&self, mac: MacAddr) -> Option<Ipv6Addr> {
        if !mac.is_ipv6_multicast() {
            return None;
        }
        let mut o = [0u8; 16];
        o[..12].copy_from_slice(&self.base);
        o[12..].copy_from_slice(&mac.0[2..]);
        Some(Ipv6Addr::from(o))
    }

    /// True if `group` lies inside the prefix.
    pub fn contains(&self, group: Ipv6Addr) -> bool {
        group.octets()[..12] == self.base
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
        assert!("ff3e::/64".parse::<GroupPrefix>().is_err());
        assert!("fd00::/96".parse::<GroupPrefix>().is_err());
    }
}
