//! The bridge multicast database (MDB) over rtnetlink: our own small codec.
//!
//! Neither `netlink-packet-route` nor `rtnetlink` has MDB types, so this
//! module encodes RTM_NEWMDB / RTM_DELMDB / RTM_GETMDB itself and decodes the
//! kernel's answers. Layout (linux/if_bridge.h):
//!
//! ```text
//! br_port_msg   { u8 family (AF_BRIDGE = 7); 3 pad; u32 ifindex (the bridge) }
//! set/del:      br_port_msg, MDBA_SET_ENTRY (1) = br_mdb_entry
//! dump answer:  br_port_msg, MDBA_MDB (1) > MDBA_MDB_ENTRY (1) > MDBA_MDB_ENTRY_INFO (1)
//!               = br_mdb_entry followed by nested MDBA_MDB_EATTR_* attributes
//! br_mdb_entry  { u32 ifindex (port); u8 state; u8 flags; u16 vid;
//!                 16-byte address; be16 proto; 2 pad }  = 28 bytes
//! ```
//!
//! Contract (as the proto crate's): decoding is total. Any byte string gives
//! entries or an error, never a panic, and nothing is allocated from a length
//! field before the bytes it announces are known to be present.

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkBuffer,
};
use std::net::{Ipv4Addr, Ipv6Addr};

pub const RTM_NEWMDB: u16 = 84;
pub const RTM_DELMDB: u16 = 85;
pub const RTM_GETMDB: u16 = 86;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const AF_BRIDGE: u8 = 7;
const MDBA_MDB: u16 = 1;
const MDBA_MDB_ENTRY: u16 = 1;
const MDBA_MDB_ENTRY_INFO: u16 = 1;
const MDBA_SET_ENTRY: u16 = 1;
/// Entry state: survives without MLD refreshes.
pub const MDB_PERMANENT: u8 = 1;
pub const MDB_TEMPORARY: u8 = 0;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
/// Size of `struct br_mdb_entry` (26 bytes of fields, padded to 4).
pub const MDB_ENTRY_LEN: usize = 28;
const BR_PORT_MSG_LEN: usize = 8;
const NLMSG_HDR_LEN: usize = 16;
const NLA_HDR_LEN: usize = 4;
/// Attribute type bits that are flags, not the type (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The group address of an MDB entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MdbAddr {
    Ipv6(Ipv6Addr),
    Ipv4(Ipv4Addr),
    /// An L2 entry (proto 0) or an unknown protocol: kept, never ours.
    Other {
        proto: u16,
    },
}

impl MdbAddr {
    /// The entry for a group in the 16-octet group form of the push
    /// protocol: an IPv4-mapped address (`::ffff:239.92.128.1`) is an IPv4
    /// group, anything else an IPv6 group.
    pub fn from_group(group: Ipv6Addr) -> MdbAddr {
        match group.to_ipv4_mapped() {
            Some(v4) => MdbAddr::Ipv4(v4),
            None => MdbAddr::Ipv6(group),
        }
    }

    /// The group in that 16-octet form (IPv4 groups IPv4-mapped); `None`
    /// for L2 and unknown entries.
    pub fn group(&self) -> Option<Ipv6Addr> {
        match self {
            MdbAddr::Ipv6(a) => Some(*a),
            MdbAddr::Ipv4(a) => Some(a.to_ipv6_mapped()),
            MdbAddr::Other { .. } => None,
        }
    }
}

/// One (group, port) entry of the MDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MdbEntry {
    /// The bridge the entry belongs to.
    pub bridge: u32,
    /// The port (or the bridge itself, for a host join).
    pub port: u32,
    pub state: u8,
    pub flags: u8,
    pub vid: u16,
    pub addr: MdbAddr,
}

/// Why a netlink answer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MdbDecodeError {
    #[error("netlink message truncated: {0}")]
    Truncated(&'static str),
    #[error("netlink attribute length {len} invalid with {have} bytes left")]
    BadAttr { len: usize, have: usize },
}

/// Encodes a `br_mdb_entry` for a group in the 16-octet group form
/// ([`MdbAddr::from_group`]): an IPv6 group as 16 octets with proto
/// 0x86DD; an IPv4 group (IPv4-mapped) as its 4 octets in the first four
/// of the address union, 12 zero octets, proto 0x0800.
fn emit_entry(buf: &mut Vec<u8>, port: u32, state: u8, vid: u16, group: &Ipv6Addr) {
    buf.extend_from_slice(&port.to_ne_bytes());
    buf.push(state);
    buf.push(0); // flags
    buf.extend_from_slice(&vid.to_ne_bytes());
    match group.to_ipv4_mapped() {
        Some(v4) => {
            buf.extend_from_slice(&v4.octets());
            buf.extend_from_slice(&[0; 12]);
            buf.extend_from_slice(&ETH_P_IP.to_be_bytes());
        }
        None => {
            buf.extend_from_slice(&group.octets());
            buf.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
        }
    }
    buf.extend_from_slice(&[0, 0]);
}

/// Appends one complete netlink request (header included) adding
/// (`add == true`) or deleting a permanent group entry on `port` (`group`
/// IPv6, or IPv4 IPv4-mapped: see [`MdbAddr::from_group`]).
pub fn emit_set(
    buf: &mut Vec<u8>,
    add: bool,
    seq: u32,
    bridge: u32,
    port: u32,
    vid: u16,
    group: &Ipv6Addr,
) {
    let len = NLMSG_HDR_LEN + BR_PORT_MSG_LEN + NLA_HDR_LEN + MDB_ENTRY_LEN;
    let (ty, flags) = if add {
        (
            RTM_NEWMDB,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    } else {
        (RTM_DELMDB, NLM_F_REQUEST | NLM_F_ACK)
    };
    emit_nlmsg_header(buf, len, ty, flags, seq);
    emit_port_msg(buf, bridge);
    buf.extend_from_slice(&((NLA_HDR_LEN + MDB_ENTRY_LEN) as u16).to_ne_bytes());
    buf.extend_from_slice(&MDBA_SET_ENTRY.to_ne_bytes());
    emit_entry(buf, port, MDB_PERMANENT, vid, group);
}

/// What one request of a batch does to a permanent IPv6 entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    /// RTM_NEWMDB with NLM_F_CREATE | NLM_F_REPLACE: creates the entry, or
    /// makes an existing one (e.g. learned from an MLD report, temporary)
    /// permanent. The kernel answers EEXIST to a plain create instead and
    /// leaves a learned entry temporary: it would expire, or be deleted as
    /// learned.
    AddOrReplace,
    /// RTM_NEWMDB with NLM_F_CREATE | NLM_F_EXCL (EEXIST if present).
    AddExclusive,
    /// RTM_DELMDB (ENOENT if absent).
    Delete,
}

/// Appends one request of `op` on (`port`, `vid`, `group`). With
/// `ack == false` the kernel answers only a failure (NLMSG_ERROR with the
/// request's sequence number): send a batch of such requests followed by
/// [`emit_barrier`] and every error arrives before the barrier's
/// acknowledgement (the kernel handles one sendmsg's messages in order).
#[allow(clippy::too_many_arguments)]
pub fn emit_op(
    buf: &mut Vec<u8>,
    op: SetOp,
    ack: bool,
    seq: u32,
    bridge: u32,
    port: u32,
    vid: u16,
    group: &Ipv6Addr,
) {
    let len = NLMSG_HDR_LEN + BR_PORT_MSG_LEN + NLA_HDR_LEN + MDB_ENTRY_LEN;
    let (ty, mut flags) = match op {
        SetOp::AddOrReplace => (RTM_NEWMDB, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE),
        SetOp::AddExclusive => (RTM_NEWMDB, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL),
        SetOp::Delete => (RTM_DELMDB, NLM_F_REQUEST),
    };
    if ack {
        flags |= NLM_F_ACK;
    }
    emit_nlmsg_header(buf, len, ty, flags, seq);
    emit_port_msg(buf, bridge);
    buf.extend_from_slice(&((NLA_HDR_LEN + MDB_ENTRY_LEN) as u16).to_ne_bytes());
    buf.extend_from_slice(&MDBA_SET_ENTRY.to_ne_bytes());
    emit_entry(buf, port, MDB_PERMANENT, vid, group);
}

/// Appends an NLMSG_NOOP asking for an acknowledgement: the end marker of a
/// batch of [`emit_op`] requests sent without acknowledgements.
pub fn emit_barrier(buf: &mut Vec<u8>, seq: u32) {
    emit_nlmsg_header(
        buf,
        NLMSG_HDR_LEN,
        NLMSG_NOOP,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    );
}

/// Appends a dump request for the whole MDB (every bridge of the netns).
pub fn emit_dump(buf: &mut Vec<u8>, seq: u32) {
    emit_nlmsg_header(
        buf,
        NLMSG_HDR_LEN + BR_PORT_MSG_LEN,
        RTM_GETMDB,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    );
    emit_port_msg(buf, 0);
}

fn emit_nlmsg_header(buf: &mut Vec<u8>, len: usize, ty: u16, flags: u16, seq: u32) {
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
}

fn emit_port_msg(buf: &mut Vec<u8>, ifindex: u32) {
    buf.extend_from_slice(&[AF_BRIDGE, 0, 0, 0]);
    buf.extend_from_slice(&ifindex.to_ne_bytes());
}

/// One message of a kernel answer, as far as the MDB code cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// NLMSG_ERROR: `errno` 0 is an acknowledgement, otherwise a negative errno.
    Ack { seq: u32, errno: i32 },
    /// NLMSG_DONE: end of a dump.
    Done { seq: u32 },
    /// MDB entries: a dump answer (type RTM_GETMDB) or a notification
    /// (RTM_NEWMDB, or RTM_DELMDB for removed entries).
    Entries {
        seq: u32,
        ty: u16,
        entries: Vec<MdbEntry>,
    },
    /// Anything else (ignored).
    Other { seq: u32, ty: u16 },
}

/// Splits a received buffer into messages and decodes each. Total.
pub fn decode_replies(buf: &[u8]) -> Result<Vec<Reply>, MdbDecodeError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        let rest = &buf[off..];
        let nl = NetlinkBuffer::new_checked(rest)
            .map_err(|_| MdbDecodeError::Truncated("netlink header"))?;
        let len = nl.length() as usize;
        let seq = nl.sequence_number();
        let ty = nl.message_type();
        let payload = nl.payload();
        out.push(match ty {
            NLMSG_ERROR => {
                let code = payload
                    .get(..4)
                    .ok_or(MdbDecodeError::Truncated("NLMSG_ERROR code"))?;
                Reply::Ack {
                    seq,
                    errno: i32::from_ne_bytes([code[0], code[1], code[2], code[3]]),
                }
            }
            NLMSG_DONE => Reply::Done { seq },
            RTM_NEWMDB | RTM_DELMDB | RTM_GETMDB => Reply::Entries {
                seq,
                ty,
                entries: decode_mdb_message(payload)?,
            },
            _ => Reply::Other { seq, ty },
        });
        off += align4(len).max(NLMSG_HDR_LEN);
    }
    Ok(out)
}

/// Decodes the payload of one RTM_GETMDB (dump) / RTM_NEWMDB / RTM_DELMDB message (after the netlink header):
/// every (group, port) entry it holds. Total: never panics.
pub fn decode_mdb_message(payload: &[u8]) -> Result<Vec<MdbEntry>, MdbDecodeError> {
    let pm = payload
        .get(..BR_PORT_MSG_LEN)
        .ok_or(MdbDecodeError::Truncated("br_port_msg"))?;
    let bridge = u32::from_ne_bytes([pm[4], pm[5], pm[6], pm[7]]);
    let mut entries = Vec::new();
    for (ty, mdb) in Attrs::new(&payload[BR_PORT_MSG_LEN..]) {
        let mdb = mdb?;
        if ty != MDBA_MDB {
            continue;
        }
        for (ty, entry) in Attrs::new(mdb) {
            let entry = entry?;
            if ty != MDBA_MDB_ENTRY {
                continue;
            }
            for (ty, info) in Attrs::new(entry) {
                let info = info?;
                if ty != MDBA_MDB_ENTRY_INFO {
                    continue;
                }
                entries.push(parse_entry(bridge, info)?);
            }
        }
    }
    Ok(entries)
}

/// Parses a `br_mdb_entry` (extra trailing attributes are ignored).
pub fn parse_entry(bridge: u32, b: &[u8]) -> Result<MdbEntry, MdbDecodeError> {
    // The kernel's struct is 28 bytes; 26 carry fields.
    let b = b
        .get(..26)
        .ok_or(MdbDecodeError::Truncated("br_mdb_entry"))?;
    let port = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    let vid = u16::from_ne_bytes([b[6], b[7]]);
    let proto = u16::from_be_bytes([b[24], b[25]]);
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[8..24]);
    let addr = match proto {
        ETH_P_IPV6 => MdbAddr::Ipv6(Ipv6Addr::from(a)),
        ETH_P_IP => MdbAddr::Ipv4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
        proto => MdbAddr::Other { proto },
    };
    Ok(MdbEntry {
        bridge,
        port,
        state: b[4],
        flags: b[5],
        vid,
        addr,
    })
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// Iterator over netlink attributes: yields (type, payload) and stops after
/// the first malformed attribute.
struct Attrs<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Attrs<'a> {
    fn new(b: &'a [u8]) -> Self {
        Attrs {
            rest: b,
            failed: false,
        }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, Result<&'a [u8], MdbDecodeError>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.len() < NLA_HDR_LEN {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([self.rest[0], self.rest[1]]));
        let ty = u16::from_ne_bytes([self.rest[2], self.rest[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDR_LEN || len > self.rest.len() {
            self.failed = true;
            return Some((
                ty,
                Err(MdbDecodeError::BadAttr {
                    len,
                    have: self.rest.len(),
                }),
            ));
        }
        let value = &self.rest[NLA_HDR_LEN..len];
        let next = align4(len).min(self.rest.len());
        self.rest = &self.rest[next..];
        Some((ty, Ok(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nla(ty: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((NLA_HDR_LEN + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn dump_payload(bridge: u32, ports: &[u32], group: &Ipv6Addr) -> Vec<u8> {
        let mut infos = Vec::new();
        for &p in ports {
            let mut e = Vec::new();
            emit_entry(&mut e, p, MDB_PERMANENT, 0, group);
            // A nested timer attribute after the struct, as the kernel sends.
            e.extend_from_slice(&nla(0x8000 | 1, &7u32.to_ne_bytes()));
            infos.extend(nla(MDBA_MDB_ENTRY_INFO | 0x8000, &e));
        }
        let entry = nla(MDBA_MDB_ENTRY | 0x8000, &infos);
        let mdb = nla(MDBA_MDB | 0x8000, &entry);
        let mut p = Vec::new();
        emit_port_msg(&mut p, bridge);
        p.extend(mdb);
        p.extend(nla(2, &[1, 2, 3, 4])); // MDBA_ROUTER, ignored
        p
    }

    #[test]
    fn decodes_a_dump_message() {
        let g: Ipv6Addr = "ff15::5c00:1".parse().unwrap();
        let entries = decode_mdb_message(&dump_payload(9, &[3, 4], &g)).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].bridge, 9);
        assert_eq!(entries[0].port, 3);
        assert_eq!(entries[1].port, 4);
        assert_eq!(entries[0].addr, MdbAddr::Ipv6(g));
        assert_eq!(entries[0].state, MDB_PERMANENT);
    }

    #[test]
    fn ipv4_entries_round_trip() {
        let g = Ipv4Addr::new(239, 92, 128, 1).to_ipv6_mapped();
        let entries = decode_mdb_message(&dump_payload(9, &[3], &g)).unwrap();
        assert_eq!(
            entries[0].addr,
            MdbAddr::Ipv4(Ipv4Addr::new(239, 92, 128, 1))
        );
        assert_eq!(entries[0].addr.group(), Some(g));
        assert_eq!(MdbAddr::from_group(g), entries[0].addr);
        let mut b = Vec::new();
        emit_set(&mut b, true, 5, 2, 3, 0, &g);
        assert_eq!(b.len(), 56);
        let entry = &b[28..56];
        assert_eq!(&entry[8..12], &[239, 92, 128, 1]);
        assert_eq!(&entry[12..24], &[0; 12]);
        assert_eq!(&entry[24..26], &[0x08, 0x00]);
    }

    #[test]
    fn set_request_layout() {
        let g: Ipv6Addr = "ff15::1".parse().unwrap();
        let mut b = Vec::new();
        emit_set(&mut b, true, 5, 2, 3, 0, &g);
        assert_eq!(b.len(), 56);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 56);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), RTM_NEWMDB);
        assert_eq!(b[16], AF_BRIDGE);
        // The set entry parses back.
        let e = parse_entry(2, &b[28..]).unwrap();
        assert_eq!(e.port, 3);
        assert_eq!(e.addr, MdbAddr::Ipv6(g));
        assert_eq!(&b[52..54], &[0x86, 0xdd]);
    }

    #[test]
    fn op_flags_and_barrier() {
        let g: Ipv6Addr = "ff15::1".parse().unwrap();
        let flags = |b: &[u8]| u16::from_ne_bytes([b[6], b[7]]);
        let mut b = Vec::new();
        emit_op(&mut b, SetOp::AddOrReplace, false, 1, 2, 3, 0, &g);
        assert_eq!(flags(&b), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE);
        let mut e = Vec::new();
        emit_set(&mut e, true, 1, 2, 3, 0, &g);
        let mut x = Vec::new();
        emit_op(&mut x, SetOp::AddExclusive, true, 1, 2, 3, 0, &g);
        assert_eq!(e, x, "emit_set(add) is an exclusive add with ack");
        let mut d = Vec::new();
        emit_op(&mut d, SetOp::Delete, false, 1, 2, 3, 0, &g);
        assert_eq!(u16::from_ne_bytes([d[4], d[5]]), RTM_DELMDB);
        assert_eq!(flags(&d), NLM_F_REQUEST);
        let mut n = Vec::new();
        emit_barrier(&mut n, 9);
        assert_eq!(n.len(), NLMSG_HDR_LEN);
        assert_eq!(u16::from_ne_bytes([n[4], n[5]]), NLMSG_NOOP);
        assert_eq!(flags(&n), NLM_F_REQUEST | NLM_F_ACK);
    }

    #[test]
    fn decodes_ack_and_done() {
        let mut b = Vec::new();
        emit_nlmsg_header(&mut b, 36, NLMSG_ERROR, 0, 7);
        b.extend_from_slice(&(-17i32).to_ne_bytes());
        b.extend_from_slice(&[0; 16]);
        emit_nlmsg_header(&mut b, 20, NLMSG_DONE, 0, 8);
        b.extend_from_slice(&0i32.to_ne_bytes());
        let r = decode_replies(&b).unwrap();
        assert_eq!(
            r,
            vec![Reply::Ack { seq: 7, errno: -17 }, Reply::Done { seq: 8 }]
        );
    }

    #[test]
    fn truncated_is_an_error() {
        let g: Ipv6Addr = "ff15::1".parse().unwrap();
        let p = dump_payload(1, &[1], &g);
        let mdb_end = BR_PORT_MSG_LEN + usize::from(u16::from_ne_bytes([p[8], p[9]]));
        for cut in 0..mdb_end {
            // A cut inside the MDBA_MDB attribute never yields the entry.
            let r = decode_mdb_message(&p[..cut]);
            if let Ok(v) = r {
                assert!(v.is_empty(), "cut {cut} gave {v:?}");
            }
        }
        assert_eq!(decode_mdb_message(&p[..mdb_end]).unwrap().len(), 1);
    }

    proptest! {
        #[test]
        fn decoders_are_total(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_mdb_message(&bytes);
            let _ = decode_replies(&bytes);
        }

        #[test]
        fn dump_roundtrip(ports in proptest::collection::vec(1u32..5000, 0..20), g in any::<u128>()) {
            let g = Ipv6Addr::from(g);
            let e = decode_mdb_message(&dump_payload(4, &ports, &g)).unwrap();
            prop_assert_eq!(e.iter().map(|e| e.port).collect::<Vec<_>>(), ports);
            prop_assert!(e.iter().all(|e| e.addr == MdbAddr::Ipv6(g) && e.bridge == 4));
        }
    }
}
