//! Follows the bridge's MDB notifications (RTNLGRP_MDB): keeps the mirror
//! (`mirror.rs`) current and guards the rendezvous range.
//!
//! The guard: a host that MLD-joins a rendezvous group would be added to it
//! by snooping; every entry inside the range the bridge learned (state
//! temporary) is deleted as soon as it is notified. The agent's own entries
//! are permanent and untouched.
//!
//! Notifications can be lost (the socket's receive buffer overflows under a
//! burst: ENOBUFS). After any receive error the task reads the whole MDB
//! again, replaces the mirror and deletes the learned entries in the range
//! it finds, so a burst of joins cannot slip through.

use super::mdb::{self, SetOp};
use super::socket::{MdbSocket, Op};
use super::{BridgeState, lock};
use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const RTNLGRP_MDB: u32 = 26;

/// A socket subscribed to MDB notifications (made before the first dump,
/// so no change between the dump and the subscription is missed).
pub fn subscribe(rcvbuf: Option<usize>) -> std::io::Result<TokioSocket> {
    let mut sock = TokioSocket::new(netlink_sys::protocols::NETLINK_ROUTE)?;
    if let Some(n) = rcvbuf {
        sock.socket_ref().set_rx_buf_sz(n)?;
    }
    sock.socket_mut()
        .bind(&SocketAddr::new(0, 1 << (RTNLGRP_MDB - 1)))?;
    Ok(sock)
}

/// Deletes learned entries inside the guarded range (errors ignored: an
/// entry already gone is what we want).
async fn delete_learned(
    req: &mut MdbSocket,
    bridge: u32,
    learned: &[(u32, u16, std::net::Ipv6Addr)],
) {
    if learned.is_empty() {
        return;
    }
    let ops: Vec<Op> = learned
        .iter()
        .map(|(port, vid, group)| Op {
            op: SetOp::Delete,
            port: *port,
            vid: *vid,
            group: *group,
        })
        .collect();
    if let Err(e) = req.batch(bridge, &ops).await {
        tracing::error!(error = ?e, "closed group: delete not completed");
    }
}

/// Reads the MDB again after lost notifications.
async fn resync(state: &Arc<Mutex<BridgeState>>, req: &mut MdbSocket, bridge: u32) {
    let mut backoff = Duration::from_millis(50);
    let entries = loop {
        match req.dump().await {
            Ok(e) => break e,
            Err(e) => {
                tracing::error!(error = %e, "MDB resync: dump failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    };
    let learned = {
        let mut st = lock(state);
        st.mdb.replace(entries);
        st.resyncs += 1;
        match st.guard.as_ref() {
            Some((range, removed)) => {
                let l = st.mdb.learned_in(range);
                removed.inc_by(l.len() as u64);
                l
            }
            None => Vec::new(),
        }
    };
    for (port, _, group) in &learned {
        tracing::info!(%group, port, "closed group: removing an MLD- or IGMP-learned entry found by the resync");
    }
    delete_learned(req, bridge, &learned).await;
}

/// The notification loop (runs until the backend is dropped).
pub async fn follow(
    sock: TokioSocket,
    state: Arc<Mutex<BridgeState>>,
    mut req: MdbSocket,
    bridge: u32,
) {
    loop {
        let bytes = match sock.recv_from_full().await {
            Ok((b, _)) => b,
            Err(e) => {
                tracing::warn!(error = %e, "MDB notifications lost: reading the whole MDB again");
                resync(&state, &mut req, bridge).await;
                continue;
            }
        };
        let Ok(replies) = mdb::decode_replies(&bytes) else {
            continue;
        };
        let mut learned = Vec::new();
        {
            let mut st = lock(&state);
            for r in replies {
                let mdb::Reply::Entries { ty, entries, .. } = r else {
                    continue;
                };
                for e in entries {
                    st.mdb.apply(ty, &e);
                    if let (Some((range, removed)), Some(g)) = (&st.guard, e.addr.group())
                        && ty == mdb::RTM_NEWMDB
                        && e.bridge == bridge
                        && e.port != bridge
                        && e.state == mdb::MDB_TEMPORARY
                        && range.contains(&g)
                    {
                        tracing::info!(group = %g, port = e.port, "closed group: removing an MLD- or IGMP-learned entry");
                        removed.inc();
                        learned.push((e.port, e.vid, g));
                    }
                }
            }
        }
        delete_learned(&mut req, bridge, &learned).await;
    }
}
