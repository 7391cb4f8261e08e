//! The `forged_data` attack: keyed DATA (0x47) forged for transfers that are
//! in flight. The rogue's own node is a target of some chunks, so the first
//! DATA of such a transfer reaches the rogue host's `eth0`. A packet socket
//! there (outside the rogue's node) reads it, and the rogue at once sends DATA
//! with the same txid, sealed under a transfer key of its own, to every other
//! node. The transfer's other targets hold the real key (they sent READY
//! before the first DATA went out), so they must refuse it as `bad-mac`; the
//! others as not theirs (`data-not-for-us`) or, once the transfer is over,
//! `transfer-over`. The puts going on meanwhile must all complete and verify.

use std::collections::HashSet;
use std::io::Read;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use socket2::{Domain, Protocol, Socket, Type};
use subcast_proto::replicast::{KeyedData, TransferKey, seal_keyed_data_into};

use crate::stack::NODE_PORT;

/// Transfers the rogue forges DATA for before it stops.
pub const TRANSFERS: usize = 20;
/// Forged DATA datagrams per transfer and node (indexes 0, 1, ...).
const PER_NODE: u32 = 1;
/// The rogue gives up waiting for more transfers after this.
const LIMIT: Duration = Duration::from_secs(20);
/// Payload octets of a forged datagram.
const PAYLOAD: usize = 1024;

/// txids of keyed DATA arriving at `netns` from anyone but `own` (its own
/// node's DATA leaves from there), each once, sent on `tx`. A packet socket
/// (`ETH_P_ALL`, cooked: IPv6 packets without the Ethernet header) reads every
/// interface of the namespace until `stop`. `ready` is sent once it reads.
fn sniff(
    netns: String,
    own: Ipv6Addr,
    tx: mpsc::Sender<u64>,
    ready: mpsc::Sender<Result<()>>,
    stop: Arc<AtomicBool>,
) {
    let ready2 = ready.clone();
    let run = move || -> std::io::Result<()> {
        let s = Socket::new(
            Domain::PACKET,
            Type::DGRAM,
            Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
        )?;
        s.set_read_timeout(Some(Duration::from_millis(50)))?;
        let _ = ready.send(Ok(()));
        let mut seen = HashSet::new();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::SeqCst) {
            let n = match (&s).read(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(txid) = keyed_data_txid(&buf[..n], own)
                && seen.insert(txid)
                && tx.send(txid).is_err()
            {
                break;
            }
        }
        Ok(())
    };
    let err = match labs::netns::in_netns(&netns, run) {
        Ok(Ok(())) => return,
        Ok(Err(e)) => anyhow!("packet socket in {netns}: {e}"),
        Err(e) => anyhow!("{e}"),
    };
    let _ = ready2.send(Err(err));
}

/// `ETH_P_ALL` (every protocol), from `<linux/if_ether.h>`.
const ETH_P_ALL: u16 = 0x0003;

/// The txid of a keyed DATA datagram to the node port in IPv6 packet `p`
/// (no extension headers) not sent by `own`.
fn keyed_data_txid(p: &[u8], own: Ipv6Addr) -> Option<u64> {
    if p.len() < 48 || p[0] >> 4 != 6 || p[6] != 17 {
        return None;
    }
    let src: [u8; 16] = p[8..24].try_into().ok()?;
    if Ipv6Addr::from(src) == own || u16::from_be_bytes([p[42], p[43]]) != NODE_PORT {
        return None;
    }
    KeyedData::parse(&p[48..]).ok().flatten().map(|d| d.txid)
}

/// What the rogue did.
pub struct Forged {
    /// Transfers it forged DATA for.
    pub transfers: usize,
    /// Forged datagrams sent.
    pub sent: u64,
    /// Milliseconds from the first forged transfer to the last.
    pub span_ms: u64,
}

/// Waits for keyed DATA of transfers in flight to reach the rogue (`netns`,
/// its node at `own`), and for each of the first [`TRANSFERS`] sends
/// [`PER_NODE`] forged datagrams to every node of `to` with `send`.
pub fn forge_live(
    netns: &str,
    own: Ipv6Addr,
    to: &[SocketAddrV6],
    mut send: impl FnMut(&[u8], SocketAddrV6) -> Result<()>,
) -> Result<Forged> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let sniffer = {
        let (ns, stop) = (netns.to_owned(), stop.clone());
        std::thread::spawn(move || sniff(ns, own, tx, ready_tx, stop))
    };
    let result = (|| -> Result<Forged> {
        ready
            .recv()
            .map_err(|_| anyhow!("the sniffer in {netns} ended before it read"))??;
        // A transfer key of the rogue's own: not the one the targets hold.
        let key = TransferKey::from_bytes(rand::random());
        let payload = vec![0x5a; PAYLOAD];
        let (t0, deadline) = (Instant::now(), Instant::now() + LIMIT);
        let mut f = Forged {
            transfers: 0,
            sent: 0,
            span_ms: 0,
        };
        let mut first = None;
        let mut buf = Vec::with_capacity(PAYLOAD + 64);
        while f.transfers < TRANSFERS {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(txid) = rx.recv_timeout(left) else {
                break;
            };
            let now = Instant::now();
            first.get_or_insert(now);
            for index in 0..PER_NODE {
                for a in to {
                    buf.clear();
                    seal_keyed_data_into(&mut buf, &key, txid, index, &payload);
                    send(&buf, *a)?;
                    f.sent += 1;
                }
            }
            f.transfers += 1;
            f.span_ms = first.map_or(0, |t| now.duration_since(t).as_millis() as u64);
        }
        if f.transfers == 0 {
            return Err(anyhow!(
                "no keyed DATA reached the rogue within {:?} of {:?} (is its node never a target?)",
                LIMIT,
                t0.elapsed()
            ));
        }
        Ok(f)
    })();
    stop.store(true, Ordering::SeqCst);
    let _ = sniffer.join();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(src: Ipv6Addr, port: u16, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[6] = 17;
        p[8..24].copy_from_slice(&src.octets());
        p[42..44].copy_from_slice(&port.to_be_bytes());
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn only_keyed_data_from_others_to_the_node_port_is_taken() {
        let key = TransferKey::from_bytes([7; 32]);
        let mut d = Vec::new();
        seal_keyed_data_into(&mut d, &key, 0x1234, 3, &[1, 2, 3]);
        let (own, other) = ("fd00:5c::3".parse().unwrap(), "fd00:5c::1".parse().unwrap());
        assert_eq!(
            keyed_data_txid(&packet(other, NODE_PORT, &d), own),
            Some(0x1234)
        );
        assert_eq!(keyed_data_txid(&packet(own, NODE_PORT, &d), own), None);
        assert_eq!(keyed_data_txid(&packet(other, 7411, &d), own), None);
        assert_eq!(
            keyed_data_txid(&packet(other, NODE_PORT, b"junk"), own),
            None
        );
        assert_eq!(keyed_data_txid(&[0x60; 20], own), None);
    }
}
