//! Deterministic simulation of a negotiating group: real `NodeCore`s with
//! real stores (temporary directories), client state machines, every
//! datagram sealed with the sender's pair keys for the receivers its state
//! machine named and opened by each receiver with its own (a datagram not
//! tagged for a receiver is refused there, as in the daemon), seeded loss,
//! simulated time (no sleeping).

use crate::get::{GetEvent, GetMachine, GetTimers, ManifestLookup};
use crate::node::{NodeAction, NodeCore, NodeParams};
use crate::outgoing::{To, Transmit};
use crate::put::{PutError, PutEvent, PutMachine, PutParams, PutTimers};
use crate::receive::ReceiveTimers;
use crate::store::Store;
use crate::transport::Mode;

mod actions;
mod fast;
mod groups;
mod identity;
mod inline;
mod keyed;
mod limits;
mod puts;
mod repair;
mod rounds;
mod turns;
mod verify;
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{self, ChunkKind, ReplicastMessage};
use subcast_proto::{PairKeys, ReplayGuard};

const PORT: u16 = 7412;
const GROUP: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0x5c, 0);
const CLIENT_ID: u32 = 0x8000_0001;

fn node_addr(i: usize) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i as u16 + 1),
        PORT,
        0,
        0,
    ))
}

fn client_addr() -> SocketAddr {
    "[fd00::100]:40000".parse().unwrap()
}

/// The simulation's cluster secret.
const SECRET: [u8; 32] = [5; 32];

/// Pair keys of `id` with every node of an `n`-node simulation and the client.
fn sim_keys(id: u32, n: usize) -> PairKeys {
    let peers = (1..=n as u32).chain([CLIENT_ID]).filter(|p| *p != id);
    PairKeys::provision(1, &SECRET, id, peers).unwrap()
}

fn sim_params(id: u32) -> NodeParams {
    NodeParams {
        node_id: id,
        groups: vec![GROUP],
        limits: crate::node::limits::Limits {
            reserve_bytes: 0,
            ..Default::default()
        },
        ingest_rate: 100_000_000,
        timers: ReceiveTimers::default(),
        addresses: crate::keys::Addresses::default(),
        cluster_groups: vec![GROUP],
        port: PORT,
        fetch_payload: 1372,
        scrub: crate::node::scrub::ScrubParams::default(),
        max_repairs: 4,
    }
}

struct SimNode {
    core: NodeCore,
    keys: PairKeys,
    guard: ReplayGuard,
    /// The node's disk (the simulation performs its store actions at once).
    store: Store,
    addr: SocketAddr,
    joined: HashSet<Ipv6Addr>,
    alive: bool,
    /// Extra latency of every datagram this node sends (a slow node).
    lag: Duration,
    _dir: tempfile::TempDir,
}

/// What the client side runs.
enum Side {
    Put(PutMachine),
    Get(GetMachine),
    Lookup(ManifestLookup),
}

/// A store action in flight: (due, node index, job, kind, id, payload).
type PendingWrite = (
    Instant,
    usize,
    u64,
    ChunkKind,
    [u8; 32],
    crate::chunk_buf::ChunkBuf,
);

struct Sim {
    nodes: Vec<SimNode>,
    now: Instant,
    rng: StdRng,
    loss: f64,
    client_keys: PairKeys,
    client_guard: ReplayGuard,
    seq: u64,
    /// deliver time -> (from, sender id, dest, bytes)
    queue: BTreeMap<(Instant, u64), (SocketAddr, SocketAddr, Vec<u8>)>,
    /// Corrupt the payload of the first DATA datagram sent this many times.
    tamper: u32,
    /// Datagrams lost, delivered.
    lost: u64,
    /// When the first PUT_ACCEPT left the client.
    first_accept_at: Option<Instant>,
    /// When the first DATA left the client.
    first_data_at: Option<Instant>,
    /// DATA datagrams the client sent (first pass and repairs).
    client_data: u64,
    /// The client's link: one datagram per `client_gap` (zero: no limit).
    client_gap: Duration,
    /// Chunks that may transfer at once (`put_transfers`; see
    /// `put/turns.rs`); `None`: all of them.
    transfers: Option<usize>,
    client_link_free: Instant,
    /// The simulated controller refuses groups for a full table.
    table_full: bool,
    /// Rendezvous groups the client asked for.
    groups_asked: u64,
    /// As the client's group cache: until when every target of a group is
    /// a known member (after a put on it ended), so DATA skips PUT_READY.
    warm: HashMap<Ipv6Addr, Instant>,
    /// (txid, delivery group) of every PUT_ACCEPT the client sent.
    accepts: Vec<(u64, Ipv6Addr)>,
    /// A store action completes this long after the core asked for it
    /// (zero: at once).
    disk_delay: Duration,
    /// Store actions in flight: (due, node index, job, kind, id, payload).
    disk: Vec<PendingWrite>,
    /// Transaction ids of the client's DATA, runs collapsed.
    data_txids: Vec<u64>,
    /// Puts send keyed DATA (0x47) under a transfer key.
    keyed: bool,
    /// Keyed DATA datagrams the client sent.
    client_keyed: u64,
    /// Of `client_keyed`, sent as untagged DATA (0x4e).
    client_untagged: u64,
    /// Indexes of the client's DATA lost on its own link the first time
    /// each is sent (so every target misses them).
    drop_data: Vec<u32>,
}

impl Sim {
    fn new(n: usize, loss: f64, seed: u64) -> Sim {
        Sim::with_keys(n, loss, seed, false)
    }

    /// `single_key`: every node and the client in the insecure single-key
    /// mode (one shared key) instead of pair keys.
    fn with_keys(n: usize, loss: f64, seed: u64, single_key: bool) -> Sim {
        let keys = move |id: u32| {
            if single_key {
                PairKeys::shared(1, id, &SECRET)
            } else {
                sim_keys(id, n)
            }
        };
        let nodes = (0..n)
            .map(|i| {
                let dir = tempfile::tempdir().unwrap();
                let mut store = Store::open(dir.path()).unwrap();
                let index = store.index();
                let id = i as u32 + 1;
                SimNode {
                    core: NodeCore::new(sim_params(id), index).with_keys(Arc::new(keys(id))),
                    keys: keys(id),
                    guard: ReplayGuard::new(u64::MAX / 4),
                    store,
                    addr: node_addr(i),
                    joined: HashSet::from([GROUP]),
                    alive: true,
                    lag: Duration::ZERO,
                    _dir: dir,
                }
            })
            .collect();
        Sim {
            nodes,
            now: Instant::now(),
            rng: StdRng::seed_from_u64(seed),
            loss,
            client_keys: keys(CLIENT_ID),
            client_guard: ReplayGuard::new(u64::MAX / 4),
            seq: 1,
            queue: BTreeMap::new(),
            tamper: 0,
            lost: 0,
            first_accept_at: None,
            first_data_at: None,
            client_data: 0,
            client_gap: Duration::ZERO,
            transfers: None,
            client_link_free: Instant::now(),
            table_full: false,
            groups_asked: 0,
            warm: HashMap::new(),
            accepts: Vec::new(),
            data_txids: Vec::new(),
            disk_delay: Duration::ZERO,
            disk: Vec::new(),
            keyed: false,
            client_keyed: 0,
            client_untagged: 0,
            drop_data: Vec::new(),
        }
    }

    /// Whether the client's DATA `index` is lost now (see `drop_data`).
    fn dropped(&mut self, index: u32) -> bool {
        let at = self.drop_data.iter().position(|i| *i == index);
        at.map(|k| self.drop_data.swap_remove(k)).is_some()
    }

    /// Runs the nodes alone (scrubs, repairs) for `d` of simulated time.
    fn run_for(&mut self, d: Duration) {
        self.run_many(&mut [], d);
    }

    /// Restarts node `i` (index `i`, id `i + 1`) with `params`: its index
    /// is rebuilt from its store, as the daemon does at start.
    fn restart(&mut self, i: usize, params: NodeParams) {
        let n = &mut self.nodes[i];
        let index = n.store.index();
        n.core = NodeCore::new(params, index).with_keys(Arc::new(n.keys.clone()));
        n.guard = ReplayGuard::new(u64::MAX / 4);
    }

    /// Delivers raw `bytes` from `from` to `to` after `delay`.
    fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>, delay: Duration) {
        self.seq += 1;
        let at = self.now + delay;
        self.queue.insert((at, self.seq), (from, to, bytes));
    }

    fn emit(&mut self, from: SocketAddr, sender: u32, mut t: Transmit) {
        if sender == CLIENT_ID {
            match &t.msg {
                ReplicastMessage::PutAccept(a) => {
                    self.first_accept_at.get_or_insert(self.now);
                    self.accepts.push((a.txid, a.group));
                }
                ReplicastMessage::Data(d) => {
                    self.first_data_at.get_or_insert(self.now);
                    self.client_data += 1;
                    if self.data_txids.last() != Some(&d.txid) {
                        self.data_txids.push(d.txid);
                    }
                    let index = d.index;
                    if self.dropped(index) {
                        return;
                    }
                }
                _ => {}
            }
        }
        if let ReplicastMessage::Data(d) = &mut t.msg
            && self.tamper > 0
            && sender == CLIENT_ID
        {
            self.tamper -= 1;
            d.payload[0] ^= 0xff;
        }
        self.seq += 1;
        let receivers: Vec<u32> = match &t.to {
            To::Node(n) => vec![*n],
            To::Nodes(v) => v.to_vec(),
            // Every member of the (one) negotiating group.
            To::Members(_) => (1..=self.nodes.len() as u32).collect(),
        };
        let keys = if sender == CLIENT_ID {
            &self.client_keys
        } else {
            &self.nodes[sender as usize - 1].keys
        };
        let bytes = replicast::seal(keys, self.seq, 0, &receivers, &t.msg)
            .expect("the simulation's peers have pair keys");
        self.send_bytes(from, sender, t.dest, bytes);
    }

    /// The client's keyed DATA: sealed under its transfer key.
    fn emit_keyed(&mut self, d: &crate::outgoing::OutData, key: &replicast::TransferKey) {
        self.first_data_at.get_or_insert(self.now);
        self.client_data += 1;
        self.client_keyed += 1;
        if self.data_txids.last() != Some(&d.txid) {
            self.data_txids.push(d.txid);
        }
        if self.dropped(d.index) {
            return;
        }
        let mut bytes = Vec::new();
        if d.tagged {
            replicast::seal_keyed_data_into(&mut bytes, key, d.txid, d.index, d.payload());
        } else {
            self.client_untagged += 1;
            replicast::seal_untagged_data_into(&mut bytes, d.txid, d.index, d.payload());
        }
        self.send_bytes(client_addr(), CLIENT_ID, d.dest, bytes);
    }

    /// Puts sealed `bytes` on the simulated network.
    fn send_bytes(&mut self, from: SocketAddr, sender: u32, dest: SocketAddr, bytes: Vec<u8>) {
        // The client's link sends one datagram at a time.
        let mut depart = self.now;
        if sender != CLIENT_ID {
            depart += self.nodes[sender as usize - 1].lag;
        }
        if sender == CLIENT_ID && !self.client_gap.is_zero() {
            depart = self.client_link_free.max(self.now);
            self.client_link_free = depart + self.client_gap;
        }
        // Multicast: one copy per receiver, each lost independently.
        let dests: Vec<SocketAddr> = match dest {
            SocketAddr::V6(a) if a.ip().is_multicast() => self
                .nodes
                .iter()
                .filter(|n| n.joined.contains(a.ip()) && n.addr != from)
                .map(|n| n.addr)
                .collect(),
            d => vec![d],
        };
        for d in dests {
            if self.rng.random_bool(self.loss) {
                self.lost += 1;
                continue;
            }
            // Fixed latency: each path keeps its order, as a switch does.
            let at = depart + Duration::from_micros(100);
            self.seq += 1;
            self.queue.insert((at, self.seq), (from, d, bytes.clone()));
        }
    }

    /// Runs until the client side is finished or `limit` simulated time.
    fn run(&mut self, side: &mut Side, limit: Duration) -> Vec<ReplicastEvent> {
        self.run_many(std::slice::from_mut(side), limit)
    }

    /// The group the simulated controller gives a target set (the same
    /// set, the same group), or the fallback when `table_full`.
    fn group_for(&self, targets: &[Ipv6Addr]) -> crate::groups::GroupAnswer {
        if self.table_full {
            return crate::groups::GroupAnswer::Fallback("table-full: switch S".into());
        }
        let mut t = targets.to_vec();
        t.sort();
        let h = t
            .iter()
            .fold(0u16, |h, a| h.wrapping_mul(31) ^ a.segments()[7]);
        crate::groups::GroupAnswer::Group(Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xaaaa, h))
    }

    /// Runs several client state machines at once (one client, one link)
    /// until all are finished or `limit` simulated time.
    fn run_many(&mut self, sides: &mut [Side], limit: Duration) -> Vec<ReplicastEvent> {
        let end = self.now + limit;
        let mut events = Vec::new();
        loop {
            // Client events.
            let mut finished = true;
            for side in sides.iter_mut() {
                finished &= match side {
                    Side::Put(m) => {
                        while let Some(e) = m.poll_event() {
                            if let PutEvent::NeedRendezvous { targets, .. } = &e {
                                let a = self.group_for(targets);
                                self.groups_asked += 1;
                                if let crate::groups::GroupAnswer::Group(g) = &a {
                                    m.set_warm(self.warm.get(g).is_some_and(|t| *t > self.now));
                                }
                                m.on_group(a, self.now);
                            }
                            if let (PutEvent::Done(_), Some((g, until))) =
                                (&e, m.warm_until(self.now))
                            {
                                self.warm.insert(g, until);
                            }
                            events.push(ReplicastEvent::Put(e));
                        }
                        m.is_finished()
                    }
                    Side::Get(m) => {
                        while let Some(e) = m.poll_event() {
                            events.push(ReplicastEvent::Get(e));
                        }
                        m.is_finished()
                    }
                    Side::Lookup(m) => m.is_finished(),
                };
            }
            if let Some(k) = self.transfers {
                let puts = sides.iter_mut().filter_map(|s| match s {
                    Side::Put(m) => Some(m),
                    _ => None,
                });
                crate::put::take_turns(puts, k);
            }
            // Client transmits, round robin, while the link's queue is
            // short (pacing: `client_gap`).
            let window = Duration::from_micros(50);
            loop {
                if !self.client_gap.is_zero() && self.client_link_free > self.now + window {
                    break;
                }
                let mut any = false;
                for side in sides.iter_mut() {
                    let t = match side {
                        Side::Put(m) => match m.poll_transmit(self.now) {
                            Some(crate::outgoing::Outbound::Data(d)) if d.key.is_some() => {
                                any = true;
                                if let Some(k) = &d.key {
                                    self.emit_keyed(&d, k);
                                }
                                continue;
                            }
                            o => o.map(|o| o.into_transmit()),
                        },
                        Side::Get(m) => m.poll_transmit(),
                        Side::Lookup(m) => m.poll_transmit(),
                    };
                    if let Some(t) = t {
                        any = true;
                        self.emit(client_addr(), CLIENT_ID, t);
                    }
                }
                if !any {
                    break;
                }
            }
            for i in 0..self.nodes.len() {
                while let Some(a) = self.nodes[i].core.poll_action() {
                    let n = &mut self.nodes[i];
                    match a {
                        NodeAction::Join(g) => {
                            n.joined.insert(g);
                        }
                        NodeAction::Leave(g) => {
                            n.joined.remove(&g);
                        }
                        NodeAction::Store {
                            job,
                            kind,
                            id,
                            payload,
                        } => {
                            if self.disk_delay.is_zero() {
                                let r = n.store.put_chunk(kind, &id, &payload);
                                n.core.on_stored(job, r);
                            } else {
                                let due = self.now + self.disk_delay;
                                self.disk.push((due, i, job, kind, id, payload));
                            }
                        }
                        NodeAction::Read { job, id } => {
                            let r = n.store.get(&id);
                            n.core.on_read(job, r);
                        }
                    }
                }
                while let Some(t) = self.nodes[i]
                    .core
                    .poll_transmit()
                    .map(|o| o.into_transmit())
                {
                    let (addr, id) = (self.nodes[i].addr, self.nodes[i].core.node_id());
                    if self.nodes[i].alive {
                        self.emit(addr, id, t);
                    }
                }
            }
            if (finished && !sides.is_empty()) || self.now > end {
                return events;
            }
            // Next thing to happen.
            let mut next = self.queue.keys().next().map(|k| k.0);
            let side_t = sides.iter().filter_map(|side| match side {
                Side::Put(m) => m.poll_timeout(),
                Side::Get(m) => m.poll_timeout(),
                Side::Lookup(m) => m.poll_timeout(),
            });
            let node_t: Vec<Instant> = self
                .nodes
                .iter()
                .filter(|n| n.alive)
                .filter_map(|n| n.core.poll_timeout())
                .collect();
            let link = (!self.client_gap.is_zero() && self.client_link_free > self.now + window)
                .then(|| self.client_link_free - window);
            let disk_t = self.disk.iter().map(|d| d.0).min();
            for t in side_t.chain(node_t).chain(link).chain(disk_t) {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
            let Some(next) = next else {
                return events;
            };
            self.now = self.now.max(next);
            // Deliver what is due.
            while let Some((&k, _)) = self.queue.iter().next() {
                if k.0 > self.now {
                    break;
                }
                let (from, to, bytes) = self.queue.remove(&k).unwrap();
                if to == client_addr() {
                    let Ok(dg) =
                        replicast::open(&self.client_keys, &mut self.client_guard, &bytes, 0)
                    else {
                        continue;
                    };
                    let sender = dg.header.sender_id;
                    let txid = dg.message.txid();
                    for side in sides.iter_mut() {
                        match side {
                            Side::Put(m) if m.txid == txid => {
                                m.handle(from, sender, &dg.message, self.now)
                            }
                            Side::Get(m) if m.txid == txid => {
                                m.handle(from, sender, &dg.message, self.now)
                            }
                            Side::Lookup(m) if m.txid == txid => {
                                m.handle(sender, &dg.message, self.now)
                            }
                            _ => {}
                        }
                    }
                } else if let Some(n) = self.nodes.iter_mut().find(|n| n.addr == to)
                    && n.alive
                {
                    if let Ok(Some(d)) = replicast::KeyedData::parse(&bytes) {
                        n.core.handle_keyed_data(from, &d, self.now);
                        continue;
                    }
                    match replicast::open(&n.keys, &mut n.guard, &bytes, 0) {
                        Ok(dg) => n
                            .core
                            .handle(from, dg.header.sender_id, dg.message, self.now, 0),
                        Err(e) => n.core.refused(&bytes, e.kind()),
                    }
                }
            }
            // Writes that are done.
            let now = self.now;
            let (done, rest): (Vec<_>, Vec<_>) = self.disk.drain(..).partition(|d| d.0 <= now);
            self.disk = rest;
            for (_, i, job, kind, id, payload) in done {
                let n = &mut self.nodes[i];
                let r = n.store.put_chunk(kind, &id, &payload);
                n.core.on_stored(job, r);
            }
            for n in self.nodes.iter_mut().filter(|n| n.alive) {
                n.core.handle_timeout(self.now);
            }
            for side in sides.iter_mut() {
                match side {
                    Side::Put(m) => m.handle_timeout(self.now),
                    Side::Get(m) => m.handle_timeout(self.now),
                    Side::Lookup(m) => m.handle_timeout(self.now),
                }
            }
        }
    }

    fn holders(&self, id: &[u8; 32]) -> Vec<u32> {
        self.nodes
            .iter()
            .filter(|n| n.store.contains(id))
            .map(|n| n.core.node_id())
            .collect()
    }

    fn put(&self, payload: &[u8], mode: Mode, replicas: usize, kind: ChunkKind) -> Side {
        self.put_tx(7, payload, mode, replicas, kind)
    }

    fn put_tx(
        &self,
        txid: u64,
        payload: &[u8],
        mode: Mode,
        replicas: usize,
        kind: ChunkKind,
    ) -> Side {
        let p = PutParams {
            replicas,
            mode,
            group: GROUP,
            port: PORT,
            datagram_payload: 1372,
            kind,
            timers: PutTimers::default(),
            fallback: Mode::NgMulticast,
        };
        let mut m = PutMachine::new(txid, Arc::new(payload.to_vec()), p, self.now);
        if self.keyed {
            m.use_data_key(crate::put::DataKey::random(Arc::new(
                self.client_keys.clone(),
            )));
        }
        Side::Put(m)
    }

    fn get(&self, id: [u8; 32], size: usize) -> Side {
        Side::Get(GetMachine::new(
            9,
            id,
            GROUP,
            PORT,
            1372,
            16 << 20,
            Some(size),
            GetTimers::default(),
            self.now,
        ))
    }

    fn not_for_us(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.core.counters.data_bytes_not_for_us)
            .sum()
    }
}

#[derive(Debug)]
enum ReplicastEvent {
    Put(PutEvent),
    Get(GetEvent),
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

fn put_done(ev: &[ReplicastEvent]) -> &crate::put::PutOutcome {
    ev.iter()
        .find_map(|e| match e {
            ReplicastEvent::Put(PutEvent::Done(o)) => Some(o),
            _ => None,
        })
        .unwrap_or_else(|| panic!("put did not finish: {ev:?}"))
}

fn get_done(ev: &[ReplicastEvent]) -> &Vec<u8> {
    ev.iter()
        .find_map(|e| match e {
            ReplicastEvent::Get(GetEvent::Done(b)) => Some(b),
            _ => None,
        })
        .unwrap_or_else(|| panic!("get did not finish: {ev:?}"))
}
