//! Group addresses of both families in one 16-octet field.
//!
//! Every group field on the wire (parent Y, subset X, a grant's group,
//! PUT_ACCEPT's group) is 16 octets. An IPv6 group is an IPv6 multicast
//! address (ff00::/8), as before; an IPv4 group is an IPv4 multicast
//! address (224.0.0.0/4) in IPv4-mapped form (`::ffff:a.b.c.d`, RFC 4291
//! section 2.5.5.2). The family is thus carried by each address, the
//! messages are the same for both families, and IPv6 encodings are
//! unchanged. In memory a group stays an [`Ipv6Addr`]; [`GroupAddr`]
//! turns it into the address a socket, a bridge or a switch uses.
//!
//! Members carry their family in their type octet ([`crate::Member`]).
//! A SET_SUBSET, a BATCH set item and a RENDEZVOUS_REQUEST name groups of
//! one family: Y and X are of the same family, and an IP member is of the
//! groups' family (a MAC member fits either).

use crate::error::DecodeError;
use crate::member::Member;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address family of a group or member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }

    /// The family of an IP address.
    pub fn of(a: &IpAddr) -> Family {
        match a {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A group address as found in a 16-octet group field.
pub trait GroupAddr {
    /// The IPv4 group this field carries, if it is IPv4-mapped.
    fn ipv4_group(&self) -> Option<Ipv4Addr>;
    /// IPv4 for an IPv4-mapped address, IPv6 otherwise.
    fn family(&self) -> Family;
    /// The address as IPv4 or IPv6 (`239.1.2.3` rather than `::ffff:239.1.2.3`).
    fn to_ip(&self) -> IpAddr;
    /// True for an IPv6 multicast address or a mapped IPv4 multicast one.
    fn is_group(&self) -> bool;
}

impl GroupAddr for Ipv6Addr {
    fn ipv4_group(&self) -> Option<Ipv4Addr> {
        self.to_ipv4_mapped()
    }
    fn family(&self) -> Family {
        if self.to_ipv4_mapped().is_some() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }
    fn to_ip(&self) -> IpAddr {
        self.to_canonical()
    }
    fn is_group(&self) -> bool {
        match self.to_ipv4_mapped() {
            Some(v4) => v4.is_multicast(),
            None => self.is_multicast(),
        }
    }
}

/// The 16-octet group field for an IP group of either family.
pub fn group_field(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Checks a received group field: an IPv6 multicast address, or an IPv4
/// multicast address in IPv4-mapped form.
pub(crate) fn check_group(a: Ipv6Addr, field: &'static str) -> Result<Ipv6Addr, DecodeError> {
    match a.to_ipv4_mapped() {
        Some(v4) if !v4.is_multicast() => Err(DecodeError::Invalid {
            field,
            why: "an IPv4 group must be a multicast address (224.0.0.0/4)",
        }),
        Some(_) => Ok(a),
        None if !a.is_multicast() => Err(DecodeError::Invalid {
            field,
            why: "must be an IPv6 multicast address (ff00::/8) or an IPv4-mapped IPv4 multicast address (::ffff:224.0.0.0/100)",
        }),
        None => Ok(a),
    }
}

/// Checks that the subset group is of the parent's family.
pub(crate) fn check_same_family(parent: Ipv6Addr, group: Ipv6Addr) -> Result<(), DecodeError> {
    if parent.family() != group.family() {
        return Err(DecodeError::Invalid {
            field: "subset group",
            why: "must be of the parent group's address family",
        });
    }
    Ok(())
}

/// Checks that every IP member is of the group's family.
pub(crate) fn check_member_family(members: &[Member], family: Family) -> Result<(), DecodeError> {
    for m in members {
        match (m.family(), family) {
            (None, _) => {}
            (Some(a), b) if a == b => {}
            (Some(Family::Ipv4), _) => {
                return Err(DecodeError::Invalid {
                    field: "member IPv4",
                    why: "an IPv4 member in an IPv6 group: name it by its IPv6 or MAC address",
                });
            }
            (Some(Family::Ipv6), _) => {
                return Err(DecodeError::Invalid {
                    field: "member IPv6",
                    why: "an IPv6 member in an IPv4 group: name it by its IPv4 or MAC address",
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_checks() {
        let v4 = group_field("239.1.2.3".parse().unwrap());
        assert_eq!(v4.to_string(), "::ffff:239.1.2.3");
        assert_eq!(v4.family(), Family::Ipv4);
        assert_eq!(v4.to_ip().to_string(), "239.1.2.3");
        assert!(check_group(v4, "g").is_ok());
        let v6: Ipv6Addr = "ff3e::1".parse().unwrap();
        assert_eq!(v6.family(), Family::Ipv6);
        assert!(check_group(v6, "g").is_ok());
        let unicast4 = group_field("10.0.0.1".parse().unwrap());
        assert!(check_group(unicast4, "g").is_err());
        assert!(check_group("fd00::1".parse().unwrap(), "g").is_err());
        assert!(check_same_family(v6, v4).is_err());
        let m4 = Member::Ipv4("10.0.0.1".parse().unwrap());
        assert!(check_member_family(&[m4], Family::Ipv4).is_ok());
        assert!(check_member_family(&[m4], Family::Ipv6).is_err());
    }
}
