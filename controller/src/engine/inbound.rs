//! Datagrams in: every one is opened (known key, good tag, fresh, not
//! replayed) before it is looked at. An agent's message counts only when
//! sealed with the key the config gives that switch and sent from the
//! agent's configured address; an answer (ACK, BATCH_ACK, NAK) counts
//! only for a transaction sent to that agent and still open. Rendezvous
//! messages must be sealed with one of `rendezvous.key_ids`; a
//! retransmitted request (same sender and request id) gets the same
//! answer and never a second lease.

use super::{Answer, Caller, Engine, ReplyTo, Request, TargetSpec};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use subcast_proto::{GrantOutcome, Message, RefuseReason, ReleaseAck, RendezvousGrant};

/// How long a UDP request's answer is kept for retransmissions.
pub const DEDUP_KEEP: Duration = Duration::from_secs(10);
pub const DEDUP_SWEEP: Duration = Duration::from_secs(1);

type Key = (SocketAddr, u32, u64);

#[derive(Debug)]
enum Entry {
    InProgress,
    Answered(Message, u32),
}

#[derive(Debug, Default)]
pub struct Dedup {
    map: HashMap<Key, Entry>,
    order: VecDeque<(Instant, Key)>,
}

impl Dedup {
    pub fn sweep(&mut self, now: Instant) {
        while let Some((t, k)) = self.order.front() {
            if now.saturating_duration_since(*t) < DEDUP_KEEP {
                break;
            }
            let k = *k;
            self.order.pop_front();
            if matches!(self.map.get(&k), Some(Entry::Answered(..))) {
                self.map.remove(&k);
            }
        }
    }
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

impl Engine {
    pub(super) fn on_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let dg = match self.opener.open(bytes, self.clock.unix_us(now)) {
            Ok(d) => d,
            Err(e) => {
                self.metrics.bad_datagram(e.kind());
                tracing::debug!(%from, error = %e, "datagram dropped");
                return;
            }
        };
        let key_id = dg.header.key_id;
        let sender = dg.header.sender_id;
        // The sender's seal time to now: a one-way delay where the clocks
        // agree (the same host, as in the labs and the bench).
        let transit = self
            .clock
            .unix_us(now)
            .saturating_sub(dg.header.timestamp_us) as f64
            / 1e6;
        match dg.message {
            Message::Hello(h) => {
                if self.agent_ok(h.switch_id, key_id, from) {
                    self.on_hello(now, h, from);
                }
            }
            Message::Heartbeat(hb) => {
                if self.agent_ok(hb.switch_id, key_id, from) {
                    self.on_heartbeat(now, hb, from);
                }
            }
            Message::Ack(a) => {
                self.metrics.phase("ack_transit", transit);
                if self.agent_ok(a.switch_id, key_id, from)
                    && !self
                        .fanout
                        .on_ack(a.switch_id, a.txid, &[a.port_count], false)
                {
                    self.metrics.bad_datagram("unexpected-answer");
                }
            }
            Message::BatchAck(b) => {
                self.metrics.phase("ack_transit", transit);
                if self.agent_ok(b.switch_id, key_id, from)
                    && !self
                        .fanout
                        .on_ack(b.switch_id, b.txid, &b.port_counts, true)
                {
                    self.metrics.bad_datagram("unexpected-answer");
                }
            }
            Message::Nak(k) => {
                if self.agent_ok(k.switch_id, key_id, from) {
                    tracing::debug!(switch = k.switch_id, txid = k.txid, reason = k.reason.name(), detail = %k.detail, "NAK");
                    if !self.fanout.on_nak(k.switch_id, k.txid, k.reason, k.detail) {
                        self.metrics.bad_datagram("unexpected-answer");
                    }
                }
            }
            Message::RendezvousRequest(r) => {
                if !self.cfg.rendezvous_key_ids.contains(&key_id) {
                    self.metrics.bad_datagram("rendezvous-key");
                    return;
                }
                let k = (from, sender, r.request_id);
                match self.dedup.map.get(&k) {
                    Some(Entry::InProgress) => return,
                    Some(Entry::Answered(m, kid)) => {
                        let (m, kid) = (m.clone(), *kid);
                        if let Some(b) = self.sealing.seal(kid, &m, self.clock.unix_us(now)) {
                            self.transmits.push_back((from, b));
                        }
                        return;
                    }
                    None => {
                        self.dedup.map.insert(k, Entry::InProgress);
                    }
                }
                let req = Request {
                    parent: r.parent.to_string(),
                    vlan: Some(r.vlan),
                    targets: r.targets.into_iter().map(TargetSpec::Member).collect(),
                    lifetime_ms: Some(u64::from(r.lifetime_ms)),
                    requester: udp_owner(key_id, sender),
                    path: "udp",
                };
                let caller = self.udp_caller(key_id, sender);
                self.rx_transit = Some(transit);
                self.request(
                    now,
                    req,
                    caller,
                    ReplyTo::Udp {
                        to: from,
                        key_id,
                        sender,
                        request_id: r.request_id,
                    },
                );
                self.rx_transit = None;
            }
            Message::RendezvousRelease(r) => {
                if !self.cfg.rendezvous_key_ids.contains(&key_id) {
                    self.metrics.bad_datagram("rendezvous-key");
                    return;
                }
                let caller = self.udp_caller(key_id, sender);
                let released = self.release_udp(now, r.lease_id, &caller);
                let m = Message::ReleaseAck(ReleaseAck {
                    lease_id: r.lease_id,
                    released,
                });
                if let Some(b) = self.sealing.seal(key_id, &m, self.clock.unix_us(now)) {
                    self.transmits.push_back((from, b));
                }
            }
            other => {
                self.metrics.bad_datagram("unexpected-type");
                tracing::debug!(%from, kind = other.name(), "unexpected message type");
            }
        }
    }

    fn udp_caller(&self, key_id: u32, sender: u32) -> Caller {
        let max = self
            .cfg
            .max_leases_per_sender
            .unwrap_or(self.cfg.max_leases_per_credential);
        Caller {
            name: udp_owner(key_id, sender),
            admin: false,
            max_leases: (max > 0).then_some(max),
        }
    }

    /// The switch exists, the message is sealed with its agent's key and
    /// comes from its configured address.
    fn agent_ok(&self, switch_id: u32, key_id: u32, from: SocketAddr) -> bool {
        match self.cfg.switch(switch_id) {
            Some(s) if s.agent_key_id != key_id => {
                self.metrics.bad_datagram("agent-key");
                tracing::warn!(
                    switch = switch_id,
                    key_id,
                    "agent message sealed with another switch's key; dropped"
                );
                false
            }
            Some(s) if canonical(s.agent) != canonical(from) => {
                self.metrics.bad_datagram("agent-address");
                tracing::warn!(switch = switch_id, %from, configured = %s.agent, "agent message from another address than the configured one; dropped (fix switches[].agent.address)");
                false
            }
            Some(_) => true,
            None => {
                self.metrics.bad_datagram("unknown-switch");
                tracing::warn!(
                    switch = switch_id,
                    "message from a switch id not in the config; add it under `switches:`"
                );
                false
            }
        }
    }

    pub(super) fn answer_udp(
        &mut self,
        now: Instant,
        to: SocketAddr,
        key_id: u32,
        sender: u32,
        request_id: u64,
        ans: &Answer,
    ) {
        let outcome = match ans {
            Answer::Granted(l) => GrantOutcome::Granted {
                group: l.group,
                lease_id: l.id,
                expires_at_ms: l.expires_ms,
                reused: l.reused,
            },
            Answer::Refused(r) => GrantOutcome::Refused {
                reason: r.reason,
                detail: truncate(&r.detail, 255),
            },
            _ => GrantOutcome::Refused {
                reason: RefuseReason::Internal,
                detail: "unexpected answer".into(),
            },
        };
        let m = Message::RendezvousGrant(RendezvousGrant {
            request_id,
            outcome,
        });
        if let Some(b) = self.sealing.seal(key_id, &m, self.clock.unix_us(now)) {
            self.transmits.push_back((to, b));
        }
        let k = (to, sender, request_id);
        self.dedup.map.insert(k, Entry::Answered(m, key_id));
        self.dedup.order.push_back((now, k));
    }
}

/// The owner name of a storage node on the UDP path.
pub fn udp_owner(key_id: u32, sender: u32) -> String {
    format!("udp:key {key_id}/node {sender}")
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
