//! The controller's UDP socket: agent messages (HELLO, HEARTBEAT, ACK,
//! NAK) and the binary rendezvous path (RENDEZVOUS_REQUEST / RELEASE).
//!
//! Every datagram is opened (known key, good tag, fresh, not replayed)
//! before it is looked at. Agent messages must be sealed with the key the
//! config gives that switch; rendezvous messages with one of
//! `rendezvous.key_ids`. Answers to a storage node are sealed with the key
//! it used. A retransmitted request (same sender and request id) gets the
//! same answer and never a second lease.

use crate::engine::{Controller, Request, TargetSpec};
use crate::fanout::Reply;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subcast_proto::{
    GrantOutcome, Keyring, MAX_DATAGRAM, Message, Opener, ReleaseAck, RendezvousGrant, ReplayGuard,
    now_us,
};

/// How long a request's answer is kept for retransmitted requests.
const DEDUP_KEEP: Duration = Duration::from_secs(30);

#[derive(Debug)]
enum Done {
    InProgress,
    Answered(Message, u32),
}

type DedupMap = HashMap<(SocketAddr, u32, u64), (Instant, Done)>;

/// Receives and dispatches datagrams until the socket fails.
pub async fn run(ctl: Arc<Controller>) {
    let keyring = Keyring::new(ctl.config.keys.values().cloned());
    let mut opener = Opener::new(keyring, ReplayGuard::default());
    let socket = ctl.pusher.socket().clone();
    let dedup: Arc<Mutex<DedupMap>> = Arc::default();
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut last_sweep = Instant::now();
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP port unreachable from a dead agent surfaces here on
                // some systems; it is not fatal.
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        if last_sweep.elapsed() > Duration::from_secs(5) {
            last_sweep = Instant::now();
            if let Ok(mut d) = dedup.lock() {
                d.retain(|_, (t, _)| t.elapsed() < DEDUP_KEEP);
            }
        }
        let dg = match opener.open(&buf[..n], now_us()) {
            Ok(d) => d,
            Err(e) => {
                ctl.metrics.bad_datagram(e.kind());
                tracing::debug!(%from, error = %e, "datagram dropped");
                continue;
            }
        };
        let key_id = dg.header.key_id;
        let sender = dg.header.sender_id;
        match dg.message {
            Message::Hello(h) => {
                if agent_key_ok(&ctl, h.switch_id, key_id) {
                    tracing::info!(switch = h.switch_id, %from, version = %h.software_version, "agent HELLO");
                    ctl.on_hello(h, from);
                }
            }
            Message::Heartbeat(hb) => {
                if agent_key_ok(&ctl, hb.switch_id, key_id) {
                    ctl.on_heartbeat(hb, from);
                }
            }
            Message::Ack(a) => {
                if agent_key_ok(&ctl, a.switch_id, key_id) {
                    ctl.pusher.deliver(
                        a.txid,
                        Reply::Ack {
                            switch_id: a.switch_id,
                            port_count: a.port_count,
                        },
                    );
                }
            }
            Message::Nak(k) => {
                if agent_key_ok(&ctl, k.switch_id, key_id) {
                    ctl.pusher.deliver(
                        k.txid,
                        Reply::Nak {
                            switch_id: k.switch_id,
                            reason: k.reason,
                            detail: k.detail,
                        },
                    );
                }
            }
            Message::RendezvousRequest(r) => {
                if !ctl.config.rendezvous_key_ids.contains(&key_id) {
                    ctl.metrics.bad_datagram("rendezvous-key");
                    continue;
                }
                let k = (from, sender, r.request_id);
                let cached = {
                    let Ok(mut d) = dedup.lock() else { continue };
                    match d.get(&k) {
                        Some((_, Done::InProgress)) => continue,
                        Some((_, Done::Answered(m, kid))) => Some((m.clone(), *kid)),
                        None => {
                            d.insert(k, (Instant::now(), Done::InProgress));
                            None
                        }
                    }
                };
                if let Some((m, kid)) = cached {
                    send(&ctl, &m, kid, from).await;
                    continue;
                }
                let ctl = ctl.clone();
                let dedup = dedup.clone();
                tokio::spawn(async move {
                    let req = Request {
                        parent: r.parent.to_string(),
                        vlan: Some(r.vlan),
                        targets: r.targets.into_iter().map(TargetSpec::Member).collect(),
                        lifetime_ms: Some(u64::from(r.lifetime_ms)),
                        requester: format!("udp:{from}"),
                        path: "udp",
                    };
                    let outcome = match ctl.rendezvous(req).await {
                        Ok(l) => GrantOutcome::Granted {
                            group: l.group,
                            lease_id: l.id,
                            expires_at_ms: l.expires_ms,
                        },
                        Err(f) => GrantOutcome::Refused {
                            reason: f.reason,
                            detail: truncate(&f.detail, 255),
                        },
                    };
                    let m = Message::RendezvousGrant(RendezvousGrant {
                        request_id: r.request_id,
                        outcome,
                    });
                    if let Ok(mut d) = dedup.lock() {
                        d.insert(k, (Instant::now(), Done::Answered(m.clone(), key_id)));
                    }
                    send(&ctl, &m, key_id, from).await;
                });
            }
            Message::RendezvousRelease(r) => {
                if !ctl.config.rendezvous_key_ids.contains(&key_id) {
                    ctl.metrics.bad_datagram("rendezvous-key");
                    continue;
                }
                let ctl = ctl.clone();
                tokio::spawn(async move {
                    let released = matches!(ctl.release(r.lease_id).await, Ok(Some(_)));
                    let m = Message::ReleaseAck(ReleaseAck {
                        lease_id: r.lease_id,
                        released,
                    });
                    send(&ctl, &m, key_id, from).await;
                });
            }
            other => {
                ctl.metrics.bad_datagram("unexpected-type");
                tracing::debug!(%from, kind = other.name(), "unexpected message type");
            }
        }
    }
}

fn agent_key_ok(ctl: &Controller, switch_id: u32, key_id: u32) -> bool {
    match ctl.config.switch(switch_id) {
        Some(s) if s.agent_key_id == key_id => true,
        Some(_) => {
            ctl.metrics.bad_datagram("agent-key");
            tracing::warn!(
                switch = switch_id,
                key_id,
                "agent message sealed with another switch's key; dropped"
            );
            false
        }
        None => {
            ctl.metrics.bad_datagram("unknown-switch");
            tracing::warn!(
                switch = switch_id,
                "message from a switch id not in the config; add it under `switches:`"
            );
            false
        }
    }
}

async fn send(ctl: &Controller, m: &Message, key_id: u32, to: SocketAddr) {
    if let Some(bytes) = ctl.pusher.seal(key_id, m)
        && let Err(e) = ctl.pusher.socket().send_to(&bytes, to).await
    {
        tracing::debug!(%to, error = %e, "reply not sent");
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
