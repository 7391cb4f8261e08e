//! Permanent MDB entries over rtnetlink with replace semantics.
//!
//! A bridge learns groups by itself: a host's unsolicited MLD report (sent as soon
//! as its address is configured) registers the host's solicited-node group on its
//! port, and before the querier has settled reports are flooded, so neighbour
//! bridges register it on their trunks too. `bridge mdb add ... permanent` over
//! such a learned entry fails ("(*, G) group is already joined by port", EEXIST),
//! and delete-then-add only narrows the window (the next report re-creates it).
//! iproute2 6.1 has no `bridge mdb replace`; the kernel (6.3+) accepts RTM_NEWMDB
//! with NLM_F_REPLACE, which turns whatever entry is there into the permanent one
//! in one step. The messages are encoded by the shared `subcast-mdb` codec; only
//! the netlink flags differ from its `emit_set` (CREATE|EXCL there).

use std::net::Ipv6Addr;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use subcast_mdb::{Reply, decode_replies, emit_set};

use crate::error::{LabError, Result};
use crate::netns;

/// Offset of `nlmsg_flags` in the netlink header.
const FLAGS_AT: usize = 6;
/// Messages per send (each is 56 bytes; keeps the ack backlog small).
const PER_SEND: usize = 256;

/// Add or replace permanent entries `(port ifindex, group)` on bridge `bridge`
/// (ifindex) in namespace `ns`. Fails with the kernel's errno for the first entry
/// it refused.
pub(crate) fn replace_permanent(ns: &str, bridge: u32, entries: &[(u32, Ipv6Addr)]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let entries = entries.to_vec();
    let ns_name = ns.to_string();
    netns::in_netns(ns, move || send_all(bridge, &entries))?
        .map_err(|e| LabError::io(format!("MDB replace on br0 in {ns_name}"), e))
}

fn send_all(bridge: u32, entries: &[(u32, Ipv6Addr)]) -> std::io::Result<()> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    for (batch_no, batch) in entries.chunks(PER_SEND).enumerate() {
        let mut buf = Vec::with_capacity(batch.len() * 56);
        let first_seq = (batch_no * PER_SEND + 1) as u32;
        for (i, (port, group)) in batch.iter().enumerate() {
            let start = buf.len();
            emit_set(
                &mut buf,
                true,
                first_seq + i as u32,
                bridge,
                *port,
                0,
                group,
            );
            buf[start + FLAGS_AT..start + FLAGS_AT + 2].copy_from_slice(&flags.to_ne_bytes());
        }
        sock.send(&buf, 0)?;
        let mut acked = 0;
        while acked < batch.len() {
            let (data, _) = sock.recv_from_full()?;
            let replies = decode_replies(&data)
                .map_err(|e| std::io::Error::other(format!("netlink answer: {e}")))?;
            for r in replies {
                if let Reply::Ack { seq, errno } = r {
                    let Some(idx) = seq.checked_sub(first_seq).map(|i| i as usize) else {
                        continue;
                    };
                    let Some((port, group)) = batch.get(idx) else {
                        continue;
                    };
                    acked += 1;
                    if errno != 0 {
                        let os = std::io::Error::from_raw_os_error(-errno);
                        return Err(std::io::Error::new(
                            os.kind(),
                            format!("RTM_NEWMDB (replace) of {group} on port ifindex {port}: {os}"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
