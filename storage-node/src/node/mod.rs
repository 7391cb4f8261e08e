//! The storage server's protocol core, without sockets or disk: takes
//! datagrams and `now`, returns datagrams to send, groups to join or
//! leave, chunks to write or read ([`NodeAction`]), timers. It answers
//! from an in-memory [`StoreIndex`]; the owner performs the disk work off
//! its receive loop and reports back ([`NodeCore::on_stored`],
//! [`NodeCore::on_read`]).
//!
//! Files: [`accept`] (the target side of a put: bids, ACCEPT, DATA, the
//! ACK after the disk), [`serve`] (gets: offers, fetches, manifest
//! queries), [`limits`] (how much work the node takes on), [`scrub`]
//! (reading everything back in the background), [`repair`] (fetching a
//! lost copy back).

mod accept;
mod gc_sweep;
pub mod limits;
mod repair;
pub mod scrub;
mod serve;

use crate::bids::{BidLimits, Bids};
use crate::chunk_buf::{ChunkBuf, ChunkPool, PoolStats};
use crate::index::StoreIndex;
use crate::keys::Addresses;
use crate::manifest::Manifest;
use crate::outgoing::{Outbound, Outgoing, To, Transmit};
use crate::receive::{NACK_RANGES, Receive, ReceiveEvent, ReceiveTimers};
use limits::Limits;
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{
    ChunkKind, GetFetch, Hash32, Nack, PutProposal, ReplicastMessage, replicast_type,
};

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct NodeParams {
    pub node_id: u32,
    /// The negotiating groups this node is a member of (never left).
    pub groups: Vec<Ipv6Addr>,
    pub limits: Limits,
    /// Bytes per second the node expects to ingest (for earliest start).
    pub ingest_rate: u64,
    pub timers: ReceiveTimers,
    /// Peers' known addresses: an authenticated datagram of a peer from
    /// another address is refused (answers go to known addresses only).
    pub addresses: Addresses,
    /// Every negotiating group of the cluster, in placement order (where a
    /// lost copy is fetched back from).
    pub cluster_groups: Vec<Ipv6Addr>,
    /// The nodes' UDP port.
    pub port: u16,
    /// Payload octets per DATA datagram asked for when fetching.
    pub fetch_payload: usize,
    pub scrub: scrub::ScrubParams,
    /// Lost copies fetched back at once at most.
    pub max_repairs: usize,
}

impl NodeParams {
    fn bid_limits(&self) -> BidLimits {
        BidLimits {
            max_concurrent: self.limits.max_concurrent,
            max_chunk_size: self.limits.max_chunk_size,
            reserve_bytes: self.limits.reserve_bytes,
            ingest_rate: self.ingest_rate,
        }
    }
}

/// What the owner must do: group membership on its socket, and disk
/// work (off its receive loop), each reported back with its `job`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAction {
    Join(Ipv6Addr),
    Leave(Ipv6Addr),
    /// Verify BLAKE3(payload) == id, write, fsync, rename; then call
    /// [`NodeCore::on_stored`]. A received chunk's payload is in its
    /// pooled, aligned buffer ([`crate::store::Store::put_chunk`] writes
    /// it without a copy); dropping it after the write gives it back.
    Store {
        job: u64,
        kind: ChunkKind,
        id: Hash32,
        payload: ChunkBuf,
    },
    /// Read and verify a chunk; then call [`NodeCore::on_read`].
    Read {
        job: u64,
        id: Hash32,
    },
}

/// What a disk job was for.
#[derive(Debug)]
enum Job {
    /// ACK a put transfer once stored.
    Ack {
        to: SocketAddr,
        node: u32,
        txid: u64,
        id: Hash32,
        len: usize,
        manifest: Option<Box<Manifest>>,
    },
    /// Serve a fetch once read.
    Serve {
        from: SocketAddr,
        node: u32,
        f: GetFetch,
    },
    /// Offer a chunk once read and verified (or report it corrupt).
    Offer {
        from: SocketAddr,
        node: u32,
        txid: u64,
        id: Hash32,
    },
    /// Answer a proposal once the copy on disk is verified ("already
    /// stored") or found gone (a bid).
    BidAfterVerify {
        from: SocketAddr,
        node: u32,
        p: PutProposal,
        now_us: u64,
    },
    /// A scrub read.
    Scrub { id: Hash32 },
    /// A lost copy fetched back, being written.
    Repaired {
        id: Hash32,
        len: usize,
        manifest: Option<Box<Manifest>>,
    },
}

impl Job {
    fn is_read(&self) -> bool {
        matches!(
            self,
            Job::Serve { .. } | Job::Offer { .. } | Job::BidAfterVerify { .. } | Job::Scrub { .. }
        )
    }
}

/// What a node counts (written to `stats.json` and `/metrics` by the
/// daemon).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NodeCounters {
    pub datagrams_in: u64,
    /// Datagrams refused (malformed, unauthenticated, replayed, from a
    /// wrong address) and work refused by the limits.
    pub refused_datagrams: u64,
    /// Refusals by reason (`OpenError::kind`, `wrong-source`, `busy`,
    /// `full`, `too-large`, `busy-serving`, `busy-reading`, ...).
    pub refused_by_reason: std::collections::BTreeMap<&'static str, u64>,
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
    /// Chunks handed to the disk and not yet reported stored.
    pub stores_in_flight: u64,
    /// Answers dropped because the queue was full.
    pub queue_drops: u64,
    /// Scrub passes started, chunks verified, found corrupt, found missing.
    pub scrub_passes: u64,
    pub scrub_verified: u64,
    pub scrub_corrupt: u64,
    pub scrub_missing: u64,
    /// Lost copies queued for re-fetching, restored, not restorable.
    pub repairs_queued: u64,
    pub repairs_done: u64,
    pub repairs_failed: u64,
    /// PUT_ACCEPT to the last DATA of a put's data chunk (a manifest's
    /// DATA waits for its object's data chunks, so it is not counted).
    pub receive_latency: crate::latency::Histogram,
}

/// Queue lengths and buffers in use right now (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct NodeGauges {
    pub receives: usize,
    pub receive_buffer_bytes: u64,
    pub storing_bytes: u64,
    pub serves: usize,
    pub serve_buffer_bytes: u64,
    pub reads_in_flight: usize,
    pub control_queue: usize,
    pub actions_queue: usize,
    pub repairs: usize,
    pub repairs_waiting: usize,
    pub unverified_chunks: usize,
    pub chunks: usize,
    /// The receive buffers' pool.
    pub chunk_pool: PoolStats,
}

/// The protocol core of one storage node.
#[derive(Debug)]
pub struct NodeCore {
    p: NodeParams,
    /// What this node holds (the owner fills it from the store).
    pub index: StoreIndex,
    receives: HashMap<(u32, u64), Receive>,
    /// Octets of chunk buffers held by `receives`.
    receive_bytes: u64,
    /// Where receives take their chunk buffers (back after the write).
    pool: ChunkPool,
    /// Fetches being served, by (requester, txid).
    serving: HashMap<(u32, u64), Outgoing>,
    serve_order: VecDeque<(u32, u64)>,
    control: VecDeque<Transmit>,
    actions: VecDeque<NodeAction>,
    recent: VecDeque<(u32, u64)>,
    /// Transfers whose chunk, taken with its keyed DATA unverified, failed
    /// its hash: their repeat verifies every datagram (see
    /// `handle_keyed_data`).
    mismatched: VecDeque<(u32, u64)>,
    joined: HashMap<Ipv6Addr, usize>,
    /// Groups no transfer uses any more, still joined until the time.
    lingering: HashMap<Ipv6Addr, Instant>,
    bids: Bids,
    jobs: HashMap<u64, Job>,
    next_job: u64,
    /// Chunks being written: not yet held, but already being stored.
    storing: HashMap<Hash32, usize>,
    storing_bytes: u64,
    /// The chunk read last (an offer's read serves the fetch after it).
    last_read: Option<(Hash32, Arc<Vec<u8>>)>,
    scrubber: scrub::Scrubber,
    repairs: HashMap<u64, repair::Repair>,
    repair_queue: VecDeque<repair::Pending>,
    next_repair_txid: u64,
    /// The latest time the core was given.
    now: Instant,
    /// Unwrap the transfer keys of PUT_ACCEPTs (keyed DATA).
    keys: Option<Arc<subcast_proto::PairKeys>>,
    pub counters: NodeCounters,
}

const RECENT: usize = 256;

/// How long a rendezvous group stays joined after its last transfer.
pub const LINGER: Duration = Duration::from_secs(2);

/// Rendezvous groups kept joined without a transfer, at most.
pub const MAX_LINGERING: usize = 64;

impl NodeCore {
    pub fn new(p: NodeParams, index: StoreIndex) -> Self {
        NodeCore {
            index,
            receives: HashMap::new(),
            receive_bytes: 0,
            // Bounded like the receives it serves (see `ChunkPool`).
            pool: ChunkPool::new(p.limits.max_concurrent, p.limits.max_receive_bytes),
            serving: HashMap::new(),
            serve_order: VecDeque::new(),
            control: VecDeque::new(),
            actions: VecDeque::new(),
            recent: VecDeque::new(),
            mismatched: VecDeque::new(),
            joined: HashMap::new(),
            lingering: HashMap::new(),
            bids: Bids::default(),
            jobs: HashMap::new(),
            next_job: 1,
            storing: HashMap::new(),
            storing_bytes: 0,
            last_read: None,
            scrubber: scrub::Scrubber::default(),
            repairs: HashMap::new(),
            repair_queue: VecDeque::new(),
            // Repairs use random transaction ids (distinct across restarts).
            next_repair_txid: rand::random(),
            now: Instant::now(),
            keys: None,
            counters: NodeCounters::default(),
            p,
        }
    }

    /// Takes keyed DATA (0x47): the transfer key a PUT_ACCEPT carries is
    /// unwrapped with `keys`. Without them such an ACCEPT's DATA is not
    /// understood (its targets receive nothing and the sender replaces
    /// them).
    pub fn with_keys(mut self, keys: Arc<subcast_proto::PairKeys>) -> Self {
        self.keys = Some(keys);
        self
    }

    pub fn node_id(&self) -> u32 {
        self.p.node_id
    }

    /// A datagram that did not open, with the reason (`OpenError::kind`).
    /// DATA tagged for other nodes (a negotiating group's non-targets see
    /// it) is the cost of flooding, counted as such, not as a refusal.
    pub fn refused(&mut self, bytes: &[u8], reason: &'static str) {
        // Our own multicast (a repair's GET_REQUEST) looped back: not a
        // refusal.
        if !bytes
            .get(3)
            .is_some_and(|t| subcast_proto::replicast::is_keyed_type(*t))
            && bytes.get(12..16) == Some(&self.p.node_id.to_be_bytes()[..])
        {
            return;
        }
        self.counters.datagrams_in += 1;
        if reason == "not-for-me" && bytes.get(3) == Some(&replicast_type::DATA) {
            let body = usize::from(u16::from_be_bytes([bytes[6], bytes[7]]));
            self.counters.data_datagrams_not_for_us += 1;
            self.counters.data_bytes_not_for_us += body.saturating_sub(16) as u64;
            return;
        }
        self.refuse(reason);
    }

    fn refuse(&mut self, reason: &'static str) {
        self.counters.refused_datagrams += 1;
        *self.counters.refused_by_reason.entry(reason).or_insert(0) += 1;
    }

    /// Whether an authenticated datagram of `sender` may come from `from`
    /// (its known address, if the key file gives one); counts a refusal.
    fn source_ok(&mut self, sender: u32, from: SocketAddr) -> bool {
        if self.p.addresses.allows(sender, from) {
            return true;
        }
        self.counters.datagrams_in += 1;
        self.refuse("wrong-source");
        tracing::debug!(sender, %from, "datagram from a known peer at another address refused");
        false
    }

    /// Queues an answer to `node` at `dest`, unless the queue is full.
    fn send(&mut self, dest: SocketAddr, node: u32, msg: ReplicastMessage) {
        if self.control.len() >= self.p.limits.max_queue {
            self.counters.queue_drops += 1;
            return;
        }
        self.control.push_back(Transmit {
            dest,
            to: To::Node(node),
            msg,
        });
    }

    fn join(&mut self, g: Ipv6Addr) {
        if self.p.groups.contains(&g) {
            return;
        }
        let n = self.joined.entry(g).or_insert(0);
        *n += 1;
        // Still a member from a transfer that just ended: no join (and
        // so PUT_READY at once).
        if *n == 1 && self.lingering.remove(&g).is_none() {
            self.actions.push_back(NodeAction::Join(g));
        }
    }

    /// The last transfer on `g` ended: stay a member for [`LINGER`] (the
    /// sender keeps a rendezvous group for its next chunks to the same
    /// targets), at most [`MAX_LINGERING`] groups.
    fn leave(&mut self, g: Ipv6Addr) {
        if let Some(n) = self.joined.get_mut(&g) {
            *n -= 1;
            if *n == 0 {
                self.joined.remove(&g);
                self.lingering.insert(g, self.now + LINGER);
                while self.lingering.len() > MAX_LINGERING {
                    let Some((&old, _)) = self.lingering.iter().min_by_key(|(_, t)| **t) else {
                        break;
                    };
                    self.lingering.remove(&old);
                    self.actions.push_back(NodeAction::Leave(old));
                }
            }
        }
    }

    /// Leaves the groups whose linger is over.
    fn leave_lingering(&mut self, now: Instant) {
        if !self.lingering.values().any(|t| *t <= now) {
            return;
        }
        let over: Vec<Ipv6Addr> = self
            .lingering
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(g, _)| *g)
            .collect();
        for g in over {
            self.lingering.remove(&g);
            self.actions.push_back(NodeAction::Leave(g));
        }
    }

    fn job(&mut self, j: Job) -> u64 {
        let id = self.next_job;
        self.next_job += 1;
        self.jobs.insert(id, j);
        id
    }

    fn reads_in_flight(&self) -> usize {
        self.jobs.values().filter(|j| j.is_read()).count()
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
        self.now = now;
        if sender == self.p.node_id || !self.source_ok(sender, from) {
            return;
        }
        self.counters.datagrams_in += 1;
        if matches!(
            msg,
            ReplicastMessage::GetOffer(_) | ReplicastMessage::Data(_)
        ) && self.is_repair(msg.txid())
        {
            self.repair_message(from, sender, &msg, now);
            return;
        }
        match msg {
            ReplicastMessage::PutProposal(p) => self.on_proposal(from, sender, &p, now, now_us),
            ReplicastMessage::PutAccept(a) => self.on_accept(from, sender, a, now),
            ReplicastMessage::Data(d) => {
                self.counters.datagrams_in -= 1;
                self.handle_data(from, sender, d.txid, d.index, d.total, &d.payload, now);
            }
            ReplicastMessage::GetRequest(g) => self.on_get_request(from, sender, &g),
            ReplicastMessage::GetFetch(f) => self.on_fetch(from, sender, f),
            ReplicastMessage::ManifestQuery(q) => self.on_manifest_query(from, sender, &q),
            // Client-bound messages: not for a server.
            ReplicastMessage::PutBid(_)
            | ReplicastMessage::PutAck(_)
            | ReplicastMessage::Nack(_)
            | ReplicastMessage::PutReady(_)
            | ReplicastMessage::GetOffer(_)
            | ReplicastMessage::ManifestOffer(_) => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.leave_lingering(now);
        self.scrub_tick(now);
        if !self.repairs.is_empty() {
            self.drive_repairs(now);
        }
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
                    let (to, node) = (rx.sender, rx.sender_id);
                    self.counters.nacks_sent += 1;
                    let ranges = ranges.into_iter().take(NACK_RANGES).collect();
                    self.send(
                        to,
                        node,
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
        self.receives
            .values()
            .map(|r| r.deadline())
            .chain(self.scrub_timeout())
            .chain(self.repair_timeout())
            .chain(self.lingering.values().copied())
            .min()
    }

    /// Control answers first, then DATA of gets being served, round robin.
    pub fn poll_transmit(&mut self) -> Option<Outbound> {
        if let Some(t) = self.control.pop_front() {
            return Some(Outbound::Control(t));
        }
        while let Some(key) = self.serve_order.pop_front() {
            let Some(o) = self.serving.get_mut(&key) else {
                continue;
            };
            match o.next_datagram() {
                Some(t) => {
                    self.serve_order.push_back(key);
                    return Some(Outbound::Data(t));
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

    /// Queue lengths and buffers in use.
    pub fn gauges(&self) -> NodeGauges {
        NodeGauges {
            receives: self.receives.len(),
            receive_buffer_bytes: self.receive_bytes,
            storing_bytes: self.storing_bytes,
            serves: self.serving.len(),
            serve_buffer_bytes: self.serving.values().map(|o| o.chunk_len() as u64).sum(),
            reads_in_flight: self.reads_in_flight(),
            control_queue: self.control.len(),
            actions_queue: self.actions.len(),
            repairs: self.repairs.len(),
            repairs_waiting: self.repair_queue.len(),
            unverified_chunks: self.index.unverified(),
            chunks: self.index.len(),
            chunk_pool: self.pool.stats(),
        }
    }
}

/// Default per-node params from a config.
pub fn params_from(
    c: &crate::config::Config,
    id: &crate::config::Identity,
) -> anyhow::Result<NodeParams> {
    let n = c.node()?;
    Ok(NodeParams {
        node_id: id.keys.own_id(),
        addresses: id.addresses.clone(),
        groups: c.member_groups(),
        limits: n.limits(),
        cluster_groups: c.negotiating_groups.clone(),
        port: c.port,
        fetch_payload: c.datagram_payload(1),
        scrub: n.scrub_params(),
        max_repairs: n.max_repairs,
        ingest_rate: c.rate_bytes_per_s(),
        timers: ReceiveTimers::default(),
    })
}
