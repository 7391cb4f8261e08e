//! A small synchronous rtnetlink socket: the test switch reads and writes its bridge with
//! it, without starting any process.
//!
//! - links (RTM_GETLINK, filtered by master) and FDB entries (RTM_GETNEIGH, family
//!   AF_BRIDGE) are built and parsed with `netlink-packet-route`;
//! - the MDB (RTM_GETMDB dump, RTM_NEWMDB, RTM_DELMDB) goes through the agent's codec,
//!   `subcast-mdb`. Adds are sent with `NLM_F_CREATE | NLM_F_REPLACE` (what
//!   `bridge mdb replace` sends) rather than the codec's `NLM_F_EXCL`, so that an entry the
//!   bridge learned from an MLD report becomes permanent instead of failing with EEXIST.
//!
//! One request at a time: send, then read until the ACK or NLMSG_DONE of that sequence
//! number. The socket lives in the network namespace of the thread that opened it.

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REPLACE, NLM_F_REQUEST,
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use std::io;
use std::net::Ipv6Addr;
use subcast_mdb::MdbEntry;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDR_LEN: usize = 16;
/// NLMSGERR_ATTR_MSG: the kernel's extended-ACK error text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// NLM_F_ACK_TLVS on an NLMSG_ERROR: extended-ACK attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// NLM_F_CAPPED on an NLMSG_ERROR: the original request is not echoed.
const NLM_F_CAPPED: u16 = 0x100;
/// Receive buffer: the kernel sends dump datagrams of at most 32 KiB.
const RECV_BUF: usize = 64 * 1024;
/// A dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is repeated this often.
const DUMP_ATTEMPTS: usize = 3;
/// errno of a get for an interface that does not exist.
const ENODEV: i32 = 19;

/// A netlink request failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened, or send/recv failed.
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel refused the request.
    #[error("{op}: {source}{}", ext.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kernel {
        /// What was asked.
        op: &'static str,
        /// The errno.
        source: io::Error,
        /// The kernel's extended-ACK message, if any.
        ext: Option<String>,
    },
    /// An answer could not be decoded.
    #[error("{op}: cannot decode the kernel's answer: {detail}")]
    Decode {
        /// What was asked.
        op: &'static str,
        /// What went wrong.
        detail: String,
    },
}

impl NetlinkError {
    /// The errno of a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// A NETLINK_ROUTE socket for requests and dumps.
#[derive(Debug)]
pub struct RouteSocket {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// One message of an answer: type, flags and the whole message (header included).
struct RawMessage<'a> {
    ty: u16,
    flags: u16,
    bytes: &'a [u8],
}

impl RouteSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        // Kernel error texts in ACKs, without the echoed request.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        Ok(RouteSocket {
            sock,
            seq: 1,
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends `request` (whose sequence number is `seq`) and hands every answer message of
    /// that sequence to `each` until the ACK (requests) or NLMSG_DONE (dumps). Returns
    /// true if the kernel flagged the dump as interrupted (NLM_F_DUMP_INTR).
    fn exchange(
        &mut self,
        op: &'static str,
        request: &[u8],
        seq: u32,
        mut each: impl FnMut(&RawMessage<'_>) -> Result<(), NetlinkError>,
    ) -> Result<bool, NetlinkError> {
        self.sock.send(request, 0)?;
        let mut interrupted = false;
        loop {
            self.buf.clear();
            let n = self.sock.recv(&mut self.buf, 0)?;
            if n > self.buf.len() {
                return Err(NetlinkError::Decode {
                    op,
                    detail: format!("datagram of {n} bytes truncated"),
                });
            }
            let mut off = 0;
            while off + NLMSG_HDR_LEN <= self.buf.len() {
                let rest = &self.buf[off..];
                let nl = NetlinkBuffer::new_checked(rest).map_err(|e| NetlinkError::Decode {
                    op,
                    detail: e.to_string(),
                })?;
                let len = nl.length() as usize;
                let msg = RawMessage {
                    ty: nl.message_type(),
                    flags: nl.flags(),
                    bytes: &rest[..len],
                };
                off += (len + 3) & !3;
                if nl.sequence_number() != seq {
                    continue;
                }
                interrupted |= msg.flags & NLM_F_DUMP_INTR != 0;
                match msg.ty {
                    NLMSG_ERROR | NLMSG_DONE => {
                        let errno = payload_i32(msg.bytes).unwrap_or(0);
                        if errno != 0 {
                            return Err(NetlinkError::Kernel {
                                op,
                                source: io::Error::from_raw_os_error(-errno),
                                ext: ext_ack_message(&msg),
                            });
                        }
                        return Ok(interrupted);
                    }
                    _ => each(&msg)?,
                }
            }
        }
    }

    /// Runs a dump and collects what `parse` makes of each message; repeats the dump if
    /// the kernel says a concurrent change interrupted it.
    fn dump<T>(
        &mut self,
        op: &'static str,
        build: impl Fn(u32) -> Vec<u8>,
        mut parse: impl FnMut(&[u8], &mut Vec<T>) -> Result<(), NetlinkError>,
    ) -> Result<Vec<T>, NetlinkError> {
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.next_seq();
            let req = build(seq);
            let mut out = Vec::new();
            if !self.exchange(op, &req, seq, |m| parse(m.bytes, &mut out))? {
                return Ok(out);
            }
        }
        Err(NetlinkError::Decode {
            op,
            detail: format!("dump interrupted by concurrent changes {DUMP_ATTEMPTS} times"),
        })
    }

    /// Sends one request with NLM_F_ACK and waits for the ACK.
    fn request(&mut self, op: &'static str, req: &[u8], seq: u32) -> Result<(), NetlinkError> {
        self.exchange(op, req, seq, |_| Ok(())).map(|_| ())
    }

    /// The ifindex of the interface called `name`.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetlinkError> {
        let seq = self.next_seq();
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let req = route_request(
            RouteNetlinkMessage::GetLink(msg),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
        );
        let mut found = None;
        let r = self.exchange("get link", &req, seq, |m| {
            if let Some(RouteNetlinkMessage::NewLink(l)) = parse_route("get link", m.bytes)? {
                found = Some(l.header.index);
            }
            Ok(())
        });
        match r {
            Ok(_) => Ok(found),
            Err(e) if e.errno() == Some(ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link whose master is `master` (the kernel filters by IFLA_MASTER).
    pub fn links_of_master(&mut self, master: u32) -> Result<Vec<LinkMessage>, NetlinkError> {
        self.dump(
            "dump links",
            |seq| {
                let mut msg = LinkMessage::default();
                msg.attributes.push(LinkAttribute::Controller(master));
                route_request(
                    RouteNetlinkMessage::GetLink(msg),
                    NLM_F_REQUEST | NLM_F_DUMP,
                    seq,
                )
            },
            |bytes, out| {
                if let Some(RouteNetlinkMessage::NewLink(l)) = parse_route("dump links", bytes)?
                    && l.attributes
                        .iter()
                        .any(|a| matches!(a, LinkAttribute::Controller(m) if *m == master))
                {
                    out.push(l);
                }
                Ok(())
            },
        )
    }

    /// FDB entries of bridge `master`: RTM_GETNEIGH dump of family AF_BRIDGE, keeping the
    /// entries whose NDA_MASTER is `master` (the bridge's own table, not the ports' `self`
    /// entries).
    pub fn fdb_of_master(&mut self, master: u32) -> Result<Vec<NeighbourMessage>, NetlinkError> {
        self.dump(
            "dump fdb",
            |seq| {
                let mut msg = NeighbourMessage::default();
                msg.header.family = AddressFamily::Bridge;
                route_request(
                    RouteNetlinkMessage::GetNeighbour(msg),
                    NLM_F_REQUEST | NLM_F_DUMP,
                    seq,
                )
            },
            |bytes, out| {
                if let Some(RouteNetlinkMessage::NewNeighbour(n)) = parse_route("dump fdb", bytes)?
                    && n.header.family == AddressFamily::Bridge
                    && n.attributes
                        .iter()
                        .any(|a| matches!(a, NeighbourAttribute::Controller(m) if *m == master))
                {
                    out.push(n);
                }
                Ok(())
            },
        )
    }

    /// Every MDB entry of every bridge in the namespace.
    pub fn mdb(&mut self) -> Result<Vec<MdbEntry>, NetlinkError> {
        self.dump(
            "dump mdb",
            |seq| {
                let mut b = Vec::new();
                subcast_mdb::emit_dump(&mut b, seq);
                b
            },
            |bytes, out| {
                let replies =
                    subcast_mdb::decode_replies(bytes).map_err(|e| NetlinkError::Decode {
                        op: "dump mdb",
                        detail: e.to_string(),
                    })?;
                for r in replies {
                    if let subcast_mdb::Reply::Entries { entries, .. } = r {
                        out.extend(entries);
                    }
                }
                Ok(())
            },
        )
    }

    /// Adds a permanent entry for `group` on `port` of `bridge`, replacing an entry the
    /// bridge learned (from MLD) for the same port.
    pub fn mdb_replace(
        &mut self,
        bridge: u32,
        port: u32,
        group: Ipv6Addr,
    ) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        let mut req = Vec::with_capacity(56);
        subcast_mdb::emit_set(&mut req, true, seq, bridge, port, 0, &group);
        // subcast-mdb emits adds with NLM_F_EXCL; ask for replace semantics instead.
        NetlinkBuffer::new(&mut req[..])
            .set_flags(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
        self.request("add mdb entry", &req, seq)
    }

    /// Deletes the entry for `group` on `port` of `bridge`.
    pub fn mdb_del(&mut self, bridge: u32, port: u32, group: Ipv6Addr) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        let mut req = Vec::with_capacity(56);
        subcast_mdb::emit_set(&mut req, false, seq, bridge, port, 0, &group);
        self.request("delete mdb entry", &req, seq)
    }
}

fn route_request(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

fn parse_route(
    op: &'static str,
    bytes: &[u8],
) -> Result<Option<RouteNetlinkMessage>, NetlinkError> {
    let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map_err(|e| {
        NetlinkError::Decode {
            op,
            detail: e.to_string(),
        }
    })?;
    Ok(match m.payload {
        NetlinkPayload::InnerMessage(r) => Some(r),
        _ => None,
    })
}

/// The i32 right after the netlink header (error code of NLMSG_ERROR / NLMSG_DONE).
fn payload_i32(msg: &[u8]) -> Option<i32> {
    let b = msg.get(NLMSG_HDR_LEN..NLMSG_HDR_LEN + 4)?;
    Some(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// The NLMSGERR_ATTR_MSG text of an extended ACK, if present.
fn ext_ack_message(msg: &RawMessage<'_>) -> Option<String> {
    if msg.ty != NLMSG_ERROR || msg.flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // errno, then the original request's header (capped) or the whole request.
    let echoed = if msg.flags & NLM_F_CAPPED != 0 {
        NLMSG_HDR_LEN
    } else {
        let h = msg.bytes.get(NLMSG_HDR_LEN + 4..NLMSG_HDR_LEN + 8)?;
        u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize
    };
    let mut rest = msg.bytes.get(NLMSG_HDR_LEN + 4 + echoed..)?;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let ty = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        if ty == NLMSGERR_ATTR_MSG {
            let text = &rest[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or(text);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        rest = rest.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_ack_text_is_read() {
        // NLMSG_ERROR, capped, with NLMSGERR_ATTR_MSG "no such port".
        let mut b = Vec::new();
        let text = b"no such port\0";
        let attr_len = 4 + text.len();
        let total = NLMSG_HDR_LEN + 4 + NLMSG_HDR_LEN + ((attr_len + 3) & !3);
        b.extend_from_slice(&(total as u32).to_ne_bytes());
        b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        b.extend_from_slice(&(NLM_F_ACK_TLVS | NLM_F_CAPPED).to_ne_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&(-22i32).to_ne_bytes());
        b.extend_from_slice(&[0; NLMSG_HDR_LEN]);
        b.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        b.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        b.extend_from_slice(text);
        while b.len() < total {
            b.push(0);
        }
        let m = RawMessage {
            ty: NLMSG_ERROR,
            flags: NLM_F_ACK_TLVS | NLM_F_CAPPED,
            bytes: &b,
        };
        assert_eq!(payload_i32(&b), Some(-22));
        assert_eq!(ext_ack_message(&m).as_deref(), Some("no such port"));
        // Truncated: no text, no panic.
        let m = RawMessage {
            ty: NLMSG_ERROR,
            flags: NLM_F_ACK_TLVS | NLM_F_CAPPED,
            bytes: &b[..b.len() - 8],
        };
        let _ = ext_ack_message(&m);
    }
}
