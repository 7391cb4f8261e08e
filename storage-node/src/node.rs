//! The storage server's protocol core, without sockets: takes datagrams
//! and `now`, returns datagrams to send, groups to join or leave, timers.

use crate::outgoing::{Outgoing, Transmit};
use crate::receive::{NACK_RANGES, Receive, ReceiveEvent, ReceiveTimers};
use crate::store::{Store, StoreError};
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{
    AckStatus, BidStatus, GetOffer, MAX_OFFERED_VERSIONS, ManifestOffer, Nack, NotNowReason,
    OfferStatus, PutAccept, PutAck, PutBid, PutReady, ReplicastMessage,
};

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct NodeParams {
    pub node_id: u32,
    /// The negotiating groups this node is a member of (never left).
    pub groups: Vec<Ipv6Addr>,
    pub max_concurrent: usize,
    pub max_chunk_size: usize,
    pub reserve_bytes: u64,
    /// Bytes per second the node expects to ingest (for earliest start).
    pub ingest_rate: u64,
    pub timers: ReceiveTimers,
}

/// Group membership changes for the owner to apply on its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeAction {
    Join(Ipv6Addr),
    Leave(Ipv6Addr),
}

/// What a node counts (written to `stats.json` by the daemon).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NodeCounters {
    pub datagrams_in: u64,
    /// Malformed, unauthenticated or replayed datagrams (refused).
    pub refused_datagrams: u64,
    pub proposals: u64,
    pub bids: u64,
    pub not_now: u64,
    pub already_stored: u64,
    pub receives_started: u64,
    pub receives_expired: u64,
    pub data_datagrams_as_target: u64,
    pub data_bytes_as_target: u64,
    /// DATA this node was not a target of (the cost of flooding).
    pub data_datagrams_not_for_us: u64,
    pub data_bytes_not_for_us: u64,
    pub bad_data: u64,
    pub duplicates: u64,
    pub nacks_sent: u64,
    pub acks_sent: u64,
    pub hash_mismatches: u64,
    pub store_failures: u64,
    pub offers: u64,
    pub corrupt_reported: u64,
    pub fetches_served: u64,
    pub manifest_offers: u64,
}

/// The protocol core of one storage node.
#[derive(Debug)]
pub struct NodeCore {
    p: NodeParams,
    pub store: Store,
    receives: HashMap<(u32, u64), Receive>,
    serving: HashMap<(SocketAddr, u64), Outgoing>,
    serve_order: VecDeque<(SocketAddr, u64)>,
    control: VecDeque<Transmit>,
    actions: VecDeque<NodeAction>,
    recent: VecDeque<(u32, u64)>,
    joined: HashMap<Ipv6Addr, usize>,
    /// Bids given and not yet settled by an ACCEPT: (expiry, sender, txid, size).
    reserved: VecDeque<(Instant, u32, u64, u32)>,
    pub counters: NodeCounters,
}

/// How long a bid counts against the queue if no ACCEPT settles it.
const RESERVATION: Duration = Duration::from_millis(300);

const RECENT: usize = 256;

impl NodeCore {
    pub fn new(p: NodeParams, store: Store) -> Self {
        NodeCore {
            p,
            store,
            receives: HashMap::new(),
            serving: HashMap::new(),
            serve_order: VecDeque::new(),
            control: VecDeque::new(),
            actions: VecDeque::new(),
            recent: VecDeque::new(),
            joined: HashMap::new(),
            reserved: VecDeque::new(),
            counters: NodeCounters::default(),
        }
    }

    pub fn node_id(&self) -> u32 {
        self.p.node_id
    }

    /// A datagram that did not decode or authenticate.
    pub fn count_refused(&mut self) {
        self.counters.datagrams_in += 1;
        self.counters.refused_datagrams += 1;
    }

    fn send(&mut self, dest: SocketAddr, msg: ReplicastMessage) {
        self.control.push_back(Transmit { dest, msg });
    }

    fn join(&mut self, g: Ipv6Addr) {
        if self.p.groups.contains(&g) {
            return;
        }
        let n = self.joined.entry(g).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.actions.push_back(NodeAction::Join(g));
        }
    }

    fn leave(&mut self, g: Ipv6Addr) {
        if let Some(n) = self.joined.get_mut(&g) {
            *n -= 1;
            if *n == 0 {
                self.joined.remove(&g);
                self.actions.push_back(NodeAction::Leave(g));
            }
        }
    }

    fn end_receive(&mut self, key: (u32, u64)) -> Option<Receive> {
        let rx = self.receives.remove(&key)?;
        if let Some(g) = rx.group {
            self.leave(g);
        }
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(key);
        Some(rx)
    }

    /// An authenticated datagram from `from`, header sender id `sender`.
    pub fn handle(
        &mut self,
        from: SocketAddr,
        sender: u32,
        msg: ReplicastMessage,
        now: Instant,
        now_us: u64,
    ) {
        self.counters.datagrams_in += 1;
        match msg {
            ReplicastMessage::PutProposal(p) => {
                self.counters.proposals += 1;
                while self.reserved.front().is_some_and(|r| r.0 <= now) {
                    self.reserved.pop_front();
                }
                let (status, reason, retry) = if self.store.contains(&p.chunk_id) {
                    self.counters.already_stored += 1;
                    (BidStatus::AlreadyStored, NotNowReason::None, 0)
                } else if p.size as usize > self.p.max_chunk_size {
                    (BidStatus::NotNow, NotNowReason::TooLarge, 0)
                } else if self.store.free_bytes()
                    < u64::from(p.size).saturating_add(self.p.reserve_bytes)
                {
                    (BidStatus::NotNow, NotNowReason::Full, 60_000)
                } else if self.receives.len() + self.reserved.len() >= self.p.max_concurrent {
                    (BidStatus::NotNow, NotNowReason::Busy, 50)
                } else {
                    (BidStatus::Bid, NotNowReason::None, 0)
                };
                match status {
                    BidStatus::Bid => self.counters.bids += 1,
                    BidStatus::NotNow => self.counters.not_now += 1,
                    BidStatus::AlreadyStored => {}
                }
                // Earliest start: after what is being received and what
                // was promised to other proposals.
                let queued: u64 = self
                    .receives
                    .values()
                    .map(|r| u64::from(r.data.total() - r.data.received()) * 1400)
                    .chain(self.reserved.iter().map(|r| u64::from(r.3)))
                    .sum();
                let delay_us = queued.saturating_mul(1_000_000) / self.p.ingest_rate.max(1);
                let depth = self.receives.len() + self.reserved.len();
                if status == BidStatus::Bid {
                    self.reserved
                        .push_back((now + RESERVATION, sender, p.txid, p.size));
                }
                let bid = PutBid {
                    txid: p.txid,
                    chunk_id: p.chunk_id,
                    status,
                    reason,
                    earliest_start_us: now_us + delay_us,
                    queue_depth: depth as u32,
                    free_bytes: self.store.free_bytes(),
                    retry_after_ms: retry,
                };
                self.send(from, ReplicastMessage::PutBid(bid));
            }
            ReplicastMessage::PutAccept(a) => self.on_accept(from, sender, a, now),
            ReplicastMessage::Data(d) => {
                let key = (sender, d.txid);
                let Some(rx) = self.receives.get_mut(&key) else {
                    if self.recent.contains(&key) {
                        self.counters.duplicates += 1;
                    } else {
                        self.counters.data_datagrams_not_for_us += 1;
                        self.counters.data_bytes_not_for_us += d.payload.len() as u64;
                    }
                    return;
                };
                self.counters.data_datagrams_as_target += 1;
                self.counters.data_bytes_as_target += d.payload.len() as u64;
                match rx.on_data(&d, now) {
                    Ok(Some(ReceiveEvent::Complete)) => self.complete(key),
                    Ok(_) => {}
                    Err(_) => self.counters.bad_data += 1,
                }
            }
            ReplicastMessage::GetRequest(g) => {
                if !self.store.contains(&g.chunk_id) {
                    return;
                }
                let (status, size) = match self.store.get(&g.chunk_id) {
                    Ok(b) => (OfferStatus::Have, b.len() as u32),
                    Err(StoreError::Corrupt { .. }) => {
                        self.counters.corrupt_reported += 1;
                        (OfferStatus::Corrupt, 0)
                    }
                    Err(_) => return,
                };
                self.counters.offers += 1;
                self.send(
                    from,
                    ReplicastMessage::GetOffer(GetOffer {
                        txid: g.txid,
                        chunk_id: g.chunk_id,
                        status,
                        size,
                    }),
                );
            }
            ReplicastMessage::GetFetch(f) => {
                let key = (from, f.txid);
                if let Some(o) = self.serving.get_mut(&key) {
                    if f.ranges.is_empty() {
                        o.request_all(from);
                    } else {
                        o.request(from, &f.ranges);
                    }
                    return;
                }
                match self.store.get(&f.chunk_id) {
                    Ok(bytes) => {
                        self.counters.fetches_served += 1;
                        let mut o = Outgoing::new(
                            f.txid,
                            Arc::new(bytes),
                            usize::from(f.datagram_payload),
                            if f.ranges.is_empty() {
                                vec![from]
                            } else {
                                vec![]
                            },
                        );
                        if !f.ranges.is_empty() {
                            o.request(from, &f.ranges);
                        }
                        self.serving.insert(key, o);
                        self.serve_order.push_back(key);
                    }
                    Err(StoreError::Corrupt { .. }) => {
                        self.counters.corrupt_reported += 1;
                        self.send(
                            from,
                            ReplicastMessage::GetOffer(GetOffer {
                                txid: f.txid,
                                chunk_id: f.chunk_id,
                                status: OfferStatus::Corrupt,
                                size: 0,
                            }),
                        );
                    }
                    Err(_) => {}
                }
            }
            ReplicastMessage::ManifestQuery(q) => {
                let versions = self
                    .store
                    .versions(&q.name_hash, q.version, MAX_OFFERED_VERSIONS);
                if versions.is_empty() {
                    return;
                }
                self.counters.manifest_offers += 1;
                self.send(
                    from,
                    ReplicastMessage::ManifestOffer(ManifestOffer {
                        txid: q.txid,
                        name_hash: q.name_hash,
                        versions,
                    }),
                );
            }
            // Client-bound messages: not for a server.
            ReplicastMessage::PutBid(_)
            | ReplicastMessage::PutAck(_)
            | ReplicastMessage::Nack(_)
            | ReplicastMessage::PutReady(_)
            | ReplicastMessage::GetOffer(_)
            | ReplicastMessage::ManifestOffer(_) => {}
        }
    }

    fn ack(&mut self, to: SocketAddr, a: &PutAccept, status: AckStatus) {
        self.counters.acks_sent += 1;
        self.send(
            to,
            ReplicastMessage::PutAck(PutAck {
                txid: a.txid,
                chunk_id: a.chunk_id,
                status,
            }),
        );
    }

    fn on_accept(&mut self, from: SocketAddr, sender: u32, a: PutAccept, now: Instant) {
        let key = (sender, a.txid);
        self.reserved.retain(|r| (r.1, r.2) != key);
        if !a.targets.contains(&self.p.node_id) {
            // Not (or no longer) a target.
            self.end_receive(key);
            return;
        }
        if self.store.contains(&a.chunk_id) {
            self.end_receive(key);
            self.ack(from, &a, AckStatus::Stored);
            return;
        }
        if let Some(rx) = self.receives.get_mut(&key) {
            match rx.on_poll(now) {
                Some(ReceiveEvent::Nack(ranges)) => {
                    self.counters.nacks_sent += 1;
                    self.send(
                        from,
                        ReplicastMessage::Nack(Nack {
                            txid: a.txid,
                            ranges,
                        }),
                    );
                }
                Some(ReceiveEvent::Complete) => self.complete(key),
                _ => {}
            }
            return;
        }
        if a.size as usize > self.p.max_chunk_size {
            self.counters.bad_data += 1;
            return;
        }
        let group = (a.group.is_multicast()).then_some(a.group);
        if let Some(g) = group {
            self.join(g);
            if !self.p.groups.contains(&g) {
                // A rendezvous group: tell the sender once joined (the
                // owner applies the join before sending this).
                self.send(
                    from,
                    ReplicastMessage::PutReady(PutReady {
                        txid: a.txid,
                        chunk_id: a.chunk_id,
                    }),
                );
            }
        }
        self.counters.receives_started += 1;
        let rx = Receive::new(
            a.txid,
            a.chunk_id,
            a.kind,
            a.size as usize,
            usize::from(a.datagram_payload),
            from,
            group,
            self.p.timers,
            now,
        );
        self.receives.insert(key, rx);
    }

    fn complete(&mut self, key: (u32, u64)) {
        let Some(rx) = self.end_receive(key) else {
            return;
        };
        let (txid, id, kind, to) = (rx.txid, rx.chunk_id, rx.kind, rx.sender);
        let payload = rx.data.into_payload();
        let status = match self.store.put(kind, &id, &payload) {
            Ok(()) => AckStatus::Stored,
            Err(StoreError::HashMismatch(_)) => {
                self.counters.hash_mismatches += 1;
                AckStatus::HashMismatch
            }
            Err(e) => {
                tracing::error!(error = %e, "storing a received chunk failed");
                self.counters.store_failures += 1;
                AckStatus::StoreFailed
            }
        };
        self.counters.acks_sent += 1;
        self.send(
            to,
            ReplicastMessage::PutAck(PutAck {
                txid,
                chunk_id: id,
                status,
            }),
        );
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<(u32, u64)> = self
            .receives
            .iter()
            .filter(|(_, r)| r.deadline() <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let Some(rx) = self.receives.get_mut(&key) else {
                continue;
            };
            match rx.on_timeout(now) {
                Some(ReceiveEvent::Nack(ranges)) => {
                    let to = rx.sender;
                    self.counters.nacks_sent += 1;
                    let ranges = ranges.into_iter().take(NACK_RANGES).collect();
                    self.send(
                        to,
                        ReplicastMessage::Nack(Nack {
                            txid: key.1,
                            ranges,
                        }),
                    );
                }
                Some(ReceiveEvent::Complete) => self.complete(key),
                Some(ReceiveEvent::Expired) => {
                    self.counters.receives_expired += 1;
                    self.end_receive(key);
                }
                None => {}
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.receives.values().map(|r| r.deadline()).min()
    }

    /// Control answers first, then DATA of gets being served, round robin.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.control.pop_front() {
            return Some(t);
        }
        while let Some(key) = self.serve_order.pop_front() {
            let Some(o) = self.serving.get_mut(&key) else {
                continue;
            };
            match o.next_datagram() {
                Some(t) => {
                    self.serve_order.push_back(key);
                    return Some(t);
                }
                None => {
                    self.serving.remove(&key);
                }
            }
        }
        None
    }

    pub fn poll_action(&mut self) -> Option<NodeAction> {
        self.actions.pop_front()
    }

    /// Whether anything waits to be sent.
    pub fn wants_to_send(&self) -> bool {
        !self.control.is_empty() || !self.serve_order.is_empty()
    }

    pub fn receives_in_progress(&self) -> usize {
        self.receives.len()
    }
}

/// Default per-node params from a config.
pub fn params_from(c: &crate::config::Config) -> anyhow::Result<NodeParams> {
    let n = c.node()?;
    Ok(NodeParams {
        node_id: n.id,
        groups: c.member_groups(),
        max_concurrent: n.max_concurrent,
        max_chunk_size: n.max_chunk_size,
        reserve_bytes: n.reserve_bytes,
        ingest_rate: c.rate_bytes_per_s(),
        timers: ReceiveTimers {
            nack_delay: Duration::from_millis(40),
            max_nacks: 12,
        },
    })
}
