//! Unicast members (IPv4, IPv6 or MAC) and the two ways a message names a subset:
//! an explicit list, or a BIER-style bitmap over the parent group's ordered
//! member list.

use crate::error::DecodeError;
use crate::wire::{Reader, Writer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A 48-bit IEEE MAC address, written `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The Ethernet address an IPv6 multicast group maps to (RFC 2464:
    /// 33:33 followed by the low 32 bits of the group).
    pub fn ipv6_multicast(group: Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// True for 33:33:xx:xx:xx:xx, the addresses of IPv6 multicast groups.
    pub fn is_ipv6_multicast(&self) -> bool {
        self.0[0] == 0x33 && self.0[1] == 0x33
    }

    /// The Ethernet address an IPv4 multicast group maps to (RFC 1112:
    /// 01:00:5e followed by the low 23 bits of the group). 32 groups share
    /// each MAC: the 5 high bits after 1110 are lost.
    pub fn ipv4_multicast(group: Ipv4Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
    }

    /// The Ethernet address of a group in the protocol's 16-octet form:
    /// [`MacAddr::ipv4_multicast`] for an IPv4-mapped group
    /// (`::ffff:239.92.128.1`), [`MacAddr::ipv6_multicast`] otherwise.
    pub fn of_group(group: Ipv6Addr) -> MacAddr {
        match group.to_ipv4_mapped() {
            Some(v4) => MacAddr::ipv4_multicast(v4),
            None => MacAddr::ipv6_multicast(group),
        }
    }

    /// True for 01:00:5e:00:00:00 to 01:00:5e:7f:ff:ff, the addresses of
    /// IPv4 multicast groups.
    pub fn is_ipv4_multicast(&self) -> bool {
        self.0[..3] == [0x01, 0x00, 0x5e] && self.0[3] & 0x80 == 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error for a MAC address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets like 02:00:00:00:00:01")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(MacParseError(s.to_owned()));
        }
        let mut m = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(MacParseError(s.to_owned()));
            }
            m[i] = u8::from_str_radix(p, 16).map_err(|_| MacParseError(s.to_owned()))?;
        }
        Ok(MacAddr(m))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One unicast member of a group, as a switch can locate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Member {
    Mac(MacAddr),
    Ipv6(Ipv6Addr),
    Ipv4(Ipv4Addr),
}

impl Member {
    /// The member's IP family; `None` for a MAC address (fits either).
    pub fn family(&self) -> Option<crate::group::Family> {
        match self {
            Member::Mac(_) => None,
            Member::Ipv6(_) => Some(crate::group::Family::Ipv6),
            Member::Ipv4(_) => Some(crate::group::Family::Ipv4),
        }
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Member::Mac(m) => write!(f, "{m}"),
            Member::Ipv6(a) => write!(f, "{a}"),
            Member::Ipv4(a) => write!(f, "{a}"),
        }
    }
}

/// Member entry type codes on the wire.
const MEMBER_MAC: u8 = 1;
const MEMBER_IPV6: u8 = 2;
const MEMBER_IPV4: u8 = 3;
/// The smallest member entry (type + IPv4 address).
pub(crate) const MIN_MEMBER_LEN: usize = 5;
/// At most this many members in one list.
pub const MAX_MEMBERS: usize = 512;

impl Member {
    pub(crate) fn emit(&self, w: &mut Writer) {
        match self {
            Member::Mac(m) => {
                w.u8(MEMBER_MAC);
                w.bytes(&m.0);
            }
            Member::Ipv6(a) => {
                w.u8(MEMBER_IPV6);
                w.ipv6(a);
            }
            Member::Ipv4(a) => {
                w.u8(MEMBER_IPV4);
                w.bytes(&a.octets());
            }
        }
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8("member type")? {
            MEMBER_MAC => Ok(Member::Mac(MacAddr(r.array("member MAC")?))),
            MEMBER_IPV6 => {
                let a = r.ipv6("member IPv6")?;
                if a.is_multicast() || a.is_unspecified() {
                    return Err(DecodeError::Invalid {
                        field: "member IPv6",
                        why: "a member must be a unicast address",
                    });
                }
                if a.to_ipv4_mapped().is_some() {
                    return Err(DecodeError::Invalid {
                        field: "member IPv6",
                        why: "an IPv4-mapped address: send an IPv4 member (type 3)",
                    });
                }
                Ok(Member::Ipv6(a))
            }
            MEMBER_IPV4 => {
                let a = Ipv4Addr::from(r.array::<4>("member IPv4")?);
                if a.is_multicast() || a.is_unspecified() || a.is_broadcast() {
                    return Err(DecodeError::Invalid {
                        field: "member IPv4",
                        why: "a member must be a unicast address",
                    });
                }
                Ok(Member::Ipv4(a))
            }
            _ => Err(DecodeError::Invalid {
                field: "member type",
                why: "must be 1 (MAC), 2 (IPv6) or 3 (IPv4)",
            }),
        }
    }
}

/// Emits a member list: a two-octet count, then the entries.
pub(crate) fn emit_list(list: &[Member], w: &mut Writer) {
    w.u16(list.len() as u16);
    for m in list {
        m.emit(w);
    }
}

pub(crate) fn parse_list(r: &mut Reader<'_>) -> Result<Vec<Member>, DecodeError> {
    let n = usize::from(r.u16("member count")?);
    if n == 0 {
        return Err(DecodeError::Invalid {
            field: "member count",
            why: "a subset needs at least one member",
        });
    }
    if n > MAX_MEMBERS {
        return Err(DecodeError::Invalid {
            field: "member count",
            why: "more than 512 members",
        });
    }
    r.check_count(n, MIN_MEMBER_LEN, "member list")?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(Member::parse(r)?);
    }
    Ok(v)
}

/// A BIER-style bitmap: bit `i` (counting from the most significant bit of
/// the first octet) selects member `i` of the parent group's ordered member
/// list. Its length is a multiple of 64 bits, from 64 to 4096.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bitmap {
    #[serde(with = "hex_bytes")]
    bytes: Vec<u8>,
}

pub const MIN_BITMAP_BITS: usize = 64;
pub const MAX_BITMAP_BITS: usize = 4096;

impl Bitmap {
    /// An empty bitmap of `bits` bits (rounded up to a multiple of 64,
    /// at least 64).
    pub fn with_len(bits: usize) -> Self {
        let bits = bits.clamp(MIN_BITMAP_BITS, MAX_BITMAP_BITS).div_ceil(64) * 64;
        Bitmap {
            bytes: vec![0; bits / 8],
        }
    }

    /// A bitmap selecting the given member indices, long enough to hold the
    /// largest; `None` if an index is beyond 4095.
    pub fn from_indices(indices: impl IntoIterator<Item = usize>) -> Option<Self> {
        let idx: Vec<usize> = indices.into_iter().collect();
        let max = idx.iter().copied().max().unwrap_or(0);
        if max >= MAX_BITMAP_BITS {
            return None;
        }
        let mut b = Bitmap::with_len(max + 1);
        for i in idx {
            b.set(i);
        }
        Some(b)
    }

    pub fn len_bits(&self) -> usize {
        self.bytes.len() * 8
    }

    pub fn set(&mut self, i: usize) {
        if let Some(o) = self.bytes.get_mut(i / 8) {
            *o |= 0x80 >> (i % 8);
        }
    }

    pub fn get(&self, i: usize) -> bool {
        self.bytes
            .get(i / 8)
            .is_some_and(|o| o & (0x80 >> (i % 8)) != 0)
    }

    /// The selected member indices, ascending.
    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len_bits()).filter(|&i| self.get(i))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u16(self.len_bits() as u16);
        w.bytes(&self.bytes);
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let bits = usize::from(r.u16("bitmap length")?);
        if !(MIN_BITMAP_BITS..=MAX_BITMAP_BITS).contains(&bits) || bits % 64 != 0 {
            return Err(DecodeError::Invalid {
                field: "bitmap length",
                why: "must be a multiple of 64 from 64 to 4096 bits",
            });
        }
        let bytes = r.bytes(bits / 8, "bitmap")?.to_vec();
        let b = Bitmap { bytes };
        if b.indices().next().is_none() {
            return Err(DecodeError::Invalid {
                field: "bitmap",
                why: "a subset needs at least one member bit set",
            });
        }
        Ok(b)
    }
}

/// How a `SET_SUBSET` names its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Members {
    /// Explicit unicast addresses (MAC, and IP of the groups' family).
    List(Vec<Member>),
    /// Indices into the parent group's ordered member list.
    Bitmap(Bitmap),
}

const FORM_LIST: u8 = 1;
const FORM_BITMAP: u8 = 2;

impl Members {
    pub(crate) fn emit(&self, w: &mut Writer) {
        match self {
            Members::List(l) => {
                w.u8(FORM_LIST);
                emit_list(l, w);
            }
            Members::Bitmap(b) => {
                w.u8(FORM_BITMAP);
                b.emit(w);
            }
        }
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8("member form")? {
            FORM_LIST => Ok(Members::List(parse_list(r)?)),
            FORM_BITMAP => Ok(Members::Bitmap(Bitmap::parse(r)?)),
            _ => Err(DecodeError::Invalid {
                field: "member form",
                why: "must be 1 (list) or 2 (bitmap)",
            }),
        }
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}
