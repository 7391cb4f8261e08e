//! Q-BRIDGE-MIB (RFC 4363) and BRIDGE-MIB (RFC 4188) object identifiers, table indexes and
//! the PortList bitmap, shared by the manager ([`crate::SnmpSwitch`]) and the test agent
//! ([`crate::passpersist`]).
//!
//! Everything here is pure: decoders take untrusted input and never panic.

use std::collections::BTreeSet;

/// dot1dBasePortIfIndex (BRIDGE-MIB): index = bridge port number, value = ifIndex.
pub const DOT1D_BASE_PORT_IFINDEX: &[u32] = &[1, 3, 6, 1, 2, 1, 17, 1, 4, 1, 2];
/// dot1dBasePort (BRIDGE-MIB): index = bridge port number, value = the same number.
pub const DOT1D_BASE_PORT: &[u32] = &[1, 3, 6, 1, 2, 1, 17, 1, 4, 1, 1];
/// dot1qTpFdbEntry: index = fdbId (VLAN), MAC as 6 sub-identifiers.
pub const DOT1Q_TP_FDB_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 17, 7, 1, 2, 2, 1];
/// Column of dot1qTpFdbEntry: dot1qTpFdbPort.
pub const FDB_COL_PORT: u32 = 2;
/// Column of dot1qTpFdbEntry: dot1qTpFdbStatus.
pub const FDB_COL_STATUS: u32 = 3;
/// dot1qStaticMulticastEntry: index = VLAN, MAC (6 sub-ids), ReceivePort.
pub const DOT1Q_STATIC_MCAST_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 17, 7, 1, 3, 2, 1];
/// Column: dot1qStaticMulticastStaticEgressPorts (PortList).
pub const SM_COL_EGRESS: u32 = 3;
/// Column: dot1qStaticMulticastForbiddenEgressPorts (PortList).
pub const SM_COL_FORBIDDEN: u32 = 4;
/// Column: dot1qStaticMulticastStatus.
pub const SM_COL_STATUS: u32 = 5;
/// sysUpTime.0, used as a cheap "are you there and do you accept my credentials" probe.
pub const SYS_UPTIME_0: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];

/// dot1qStaticMulticastStatus values.
pub mod status {
    /// other(1)
    pub const OTHER: i64 = 1;
    /// invalid(2): writing it deletes the row; the test agent also reports it for rows that
    /// do not exist.
    pub const INVALID: i64 = 2;
    /// permanent(3)
    pub const PERMANENT: i64 = 3;
}

/// dot1qTpFdbStatus values.
pub mod fdb_status {
    /// other(1)
    pub const OTHER: i64 = 1;
    /// learned(3)
    pub const LEARNED: i64 = 3;
    /// self(4): one of the bridge's own addresses.
    pub const SELF: i64 = 4;
    /// mgmt(5): a static entry.
    pub const MGMT: i64 = 5;
}

pub use subcast_proto::MacAddr;

/// A MAC address as six sub-identifiers of a Q-BRIDGE-MIB table index.
pub trait MacSubIds: Sized {
    /// The six sub-identifiers of this MAC inside a table index.
    fn sub_ids(&self) -> [u32; 6];
    /// Reads a MAC from six index sub-identifiers; `None` if one is above 255.
    fn from_sub_ids(ids: &[u32]) -> Option<Self>;
}

impl MacSubIds for MacAddr {
    fn sub_ids(&self) -> [u32; 6] {
        self.0.map(u32::from)
    }

    fn from_sub_ids(ids: &[u32]) -> Option<Self> {
        if ids.len() != 6 {
            return None;
        }
        let mut mac = [0u8; 6];
        for (m, id) in mac.iter_mut().zip(ids) {
            *m = u8::try_from(*id).ok()?;
        }
        Some(MacAddr(mac))
    }
}

/// A set of bridge port numbers (1-based, as in BRIDGE-MIB dot1dBasePort).
pub type PortSet = BTreeSet<u16>;

/// Largest port number a PortList may carry here (the agent's PortList is at most 512 octets).
pub const MAX_PORT: u16 = 4096;

/// Encodes a PortList: octet 0 bit 0x80 = port 1, bit 0x01 = port 8, octet 1 = ports 9-16...
/// The result is at least `min_len` octets long and long enough for the highest port.
/// Ports 0 and above [`MAX_PORT`] cannot be expressed and are skipped.
pub fn encode_port_list(ports: &PortSet, min_len: usize) -> Vec<u8> {
    let max = ports
        .iter()
        .copied()
        .filter(|p| (1..=MAX_PORT).contains(p))
        .max()
        .unwrap_or(0);
    let len = usize::from(max).div_ceil(8).max(min_len);
    let mut out = vec![0u8; len];
    for &p in ports {
        if !(1..=MAX_PORT).contains(&p) {
            continue;
        }
        let i = usize::from(p - 1);
        out[i / 8] |= 0x80 >> (i % 8);
    }
    out
}

/// Decodes a PortList. Octets beyond what [`MAX_PORT`] needs are ignored if zero and are an
/// error otherwise.
pub fn decode_port_list(bytes: &[u8]) -> Result<PortSet, PortListError> {
    let mut set = PortSet::new();
    for (octet, &b) in bytes.iter().enumerate() {
        for bit in 0..8 {
            if b & (0x80 >> bit) != 0 {
                let port = octet * 8 + bit + 1;
                let port = u16::try_from(port)
                    .ok()
                    .filter(|p| *p <= MAX_PORT)
                    .ok_or(PortListError::PortTooHigh(port))?;
                set.insert(port);
            }
        }
    }
    Ok(set)
}

/// A PortList that names a port this code cannot represent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortListError {
    /// A bit for a port number above [`MAX_PORT`] is set.
    #[error("the port list names port {0}, above the supported maximum {MAX_PORT}")]
    PortTooHigh(usize),
}

/// The index of a dot1qStaticMulticastEntry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StaticMcastIndex {
    /// dot1qVlanIndex (1 for untagged bridges).
    pub vlan: u16,
    /// dot1qStaticMulticastAddress.
    pub mac: MacAddr,
    /// dot1qStaticMulticastReceivePort (0 = any port).
    pub receive_port: u16,
}

impl StaticMcastIndex {
    /// The index sub-identifiers: VLAN, six MAC octets, receive port.
    pub fn sub_ids(&self) -> Vec<u32> {
        let mut v = Vec::with_capacity(8);
        v.push(u32::from(self.vlan));
        v.extend(self.mac.sub_ids());
        v.push(u32::from(self.receive_port));
        v
    }

    /// Parses the index part of an OID (exactly 8 sub-identifiers).
    pub fn from_sub_ids(ids: &[u32]) -> Option<Self> {
        if ids.len() != 8 {
            return None;
        }
        Some(StaticMcastIndex {
            vlan: u16::try_from(ids[0]).ok()?,
            mac: MacAddr::from_sub_ids(&ids[1..7])?,
            receive_port: u16::try_from(ids[7]).ok()?,
        })
    }

    /// The full OID of one column of this row.
    pub fn column_oid(&self, column: u32) -> Vec<u32> {
        let mut oid = DOT1Q_STATIC_MCAST_ENTRY.to_vec();
        oid.push(column);
        oid.extend(self.sub_ids());
        oid
    }
}

/// Splits `oid` into (column, index sub-ids) if it lies under `entry`.
pub fn split_column<'a>(oid: &'a [u32], entry: &[u32]) -> Option<(u32, &'a [u32])> {
    let rest = oid.strip_prefix(entry)?;
    let (&col, idx) = rest.split_first()?;
    Some((col, idx))
}

/// The FDB table OID of one column for (fdb id, MAC).
pub fn fdb_oid(column: u32, fdb_id: u16, mac: MacAddr) -> Vec<u32> {
    let mut oid = DOT1Q_TP_FDB_ENTRY.to_vec();
    oid.push(column);
    oid.push(u32::from(fdb_id));
    oid.extend(mac.sub_ids());
    oid
}

/// Formats an OID as dotted text with a leading dot (the net-snmp convention).
pub fn format_oid(oid: &[u32]) -> String {
    let mut s = String::with_capacity(oid.len() * 3);
    for id in oid {
        s.push('.');
        s.push_str(&id.to_string());
    }
    s
}

/// Parses dotted OID text (leading dot optional). `None` on anything else.
pub fn parse_oid(text: &str) -> Option<Vec<u32>> {
    let t = text.trim();
    let t = t.strip_prefix('.').unwrap_or(t);
    if t.is_empty() {
        return Some(Vec::new());
    }
    t.split('.').map(|p| p.parse::<u32>().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn port_list_bit_order_matches_rfc() {
        let ports: PortSet = [1, 8, 9].into_iter().collect();
        assert_eq!(encode_port_list(&ports, 0), vec![0x81, 0x80]);
        assert_eq!(encode_port_list(&PortSet::new(), 2), vec![0, 0]);
        assert_eq!(decode_port_list(&[0x40, 0x01]).unwrap(), [2, 16].into());
    }

    #[test]
    fn port_list_rejects_huge_ports() {
        let mut bytes = vec![0u8; 600];
        bytes[599] = 1;
        assert!(decode_port_list(&bytes).is_err());
    }

    #[test]
    fn mac_mapping_and_parse() {
        let g: std::net::Ipv6Addr = "ff3e::aabb:ccdd".parse().unwrap();
        let m = MacAddr::ipv6_multicast(g);
        assert_eq!(m.to_string(), "33:33:aa:bb:cc:dd");
        assert_eq!("33:33:aa:bb:cc:dd".parse::<MacAddr>().unwrap(), m);
        assert!("33:33:aa:bb:cc".parse::<MacAddr>().is_err());
        assert!("33:33:aa:bb:cc:dd:ee".parse::<MacAddr>().is_err());
        assert!(MacAddr::from_sub_ids(&[1, 2, 3, 4, 5, 256]).is_none());
    }

    #[test]
    fn oid_text_roundtrip() {
        let o = vec![1, 3, 6, 1, 2, 1, 17];
        assert_eq!(parse_oid(&format_oid(&o)).unwrap(), o);
        assert!(parse_oid(".1.3.x").is_none());
    }

    proptest! {
        #[test]
        fn port_list_roundtrip(ports in proptest::collection::btree_set(1u16..=MAX_PORT, 0..40)) {
            let bytes = encode_port_list(&ports, 0);
            prop_assert_eq!(decode_port_list(&bytes).unwrap(), ports);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700),
                                ids in proptest::collection::vec(any::<u32>(), 0..12)) {
            let _ = decode_port_list(&bytes);
            let _ = StaticMcastIndex::from_sub_ids(&ids);
            let _ = MacAddr::from_sub_ids(&ids);
        }

        #[test]
        fn index_roundtrip(vlan in 1u16..4095, mac in any::<[u8; 6]>(), rp in 0u16..100) {
            let idx = StaticMcastIndex { vlan, mac: MacAddr(mac), receive_port: rp };
            prop_assert_eq!(StaticMcastIndex::from_sub_ids(&idx.sub_ids()), Some(idx));
        }
    }
}
