//! Deterministic simulation of a negotiating group: real `NodeCore`s with
//! real stores (temporary directories), client state machines, every
//! datagram encoded and decoded, seeded loss, simulated time (no sleeping).

use crate::get::{GetEvent, GetMachine, GetTimers, ManifestLookup};
use crate::node::{NodeAction, NodeCore, NodeParams};
use crate::outgoing::Transmit;
use crate::put::{PutError, PutEvent, PutMachine, PutParams, PutTimers};
use crate::receive::ReceiveTimers;
use crate::store::Store;
use crate::transport::Mode;
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{self, ChunkKind, ReplicastMessage};
use subcast_proto::{Key, Origin};

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

struct SimNode {
    core: NodeCore,
    addr: SocketAddr,
    joined: HashSet<Ipv6Addr>,
    alive: bool,
    _dir: tempfile::TempDir,
}

/// What the client side runs.
enum Side {
    Put(PutMachine),
    Get(GetMachine),
    Lookup(ManifestLookup),
}

struct Sim {
    nodes: Vec<SimNode>,
    now: Instant,
    rng: StdRng,
    loss: f64,
    key: Key,
    seq: u64,
    /// deliver time -> (from, sender id, dest, bytes)
    queue: BTreeMap<(Instant, u64), (SocketAddr, SocketAddr, Vec<u8>)>,
    /// Corrupt the payload of the first DATA datagram sent this many times.
    tamper: u32,
    /// Datagrams lost, delivered.
    lost: u64,
}

impl Sim {
    fn new(n: usize, loss: f64, seed: u64) -> Sim {
        let nodes = (0..n)
            .map(|i| {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open(dir.path()).unwrap();
                let p = NodeParams {
                    node_id: i as u32 + 1,
                    groups: vec![GROUP],
                    max_concurrent: 16,
                    max_chunk_size: 16 << 20,
                    reserve_bytes: 0,
                    ingest_rate: 100_000_000,
                    timers: ReceiveTimers::default(),
                };
                SimNode {
                    core: NodeCore::new(p, store),
                    addr: node_addr(i),
                    joined: HashSet::from([GROUP]),
                    alive: true,
                    _dir: dir,
                }
            })
            .collect();
        Sim {
            nodes,
            now: Instant::now(),
            rng: StdRng::seed_from_u64(seed),
            loss,
            key: Key::new(1, [5; 32]),
            seq: 1,
            queue: BTreeMap::new(),
            tamper: 0,
            lost: 0,
        }
    }

    fn emit(&mut self, from: SocketAddr, sender: u32, mut t: Transmit) {
        if let ReplicastMessage::Data(d) = &mut t.msg
            && self.tamper > 0
            && sender == CLIENT_ID
        {
            self.tamper -= 1;
            d.payload[0] ^= 0xff;
        }
        self.seq += 1;
        let bytes = replicast::encode(
            &self.key,
            Origin {
                key_id: 1,
                sender_id: sender,
                sequence: self.seq,
                timestamp_us: 0,
            },
            &t.msg,
        );
        // Multicast: one copy per receiver, each lost independently.
        let dests: Vec<SocketAddr> = match t.dest {
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
            let at = self.now + Duration::from_micros(100);
            self.seq += 1;
            self.queue.insert((at, self.seq), (from, d, bytes.clone()));
        }
    }

    /// Runs until the client side is finished or `limit` simulated time.
    fn run(&mut self, side: &mut Side, limit: Duration) -> Vec<ReplicastEvent> {
        let end = self.now + limit;
        let mut events = Vec::new();
        loop {
            // Client events.
            let finished = match side {
                Side::Put(m) => {
                    while let Some(e) = m.poll_event() {
                        if let PutEvent::NeedRendezvous { .. } = &e {
                            m.on_rendezvous(Ok("ff15::aaaa".parse().unwrap()), self.now);
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
            // Client transmits (no pacing in the simulation).
            loop {
                let t = match side {
                    Side::Put(m) => m.poll_transmit(self.now),
                    Side::Get(m) => m.poll_transmit(),
                    Side::Lookup(m) => m.poll_transmit(),
                };
                let Some(t) = t else { break };
                self.emit(client_addr(), CLIENT_ID, t);
            }
            for i in 0..self.nodes.len() {
                while let Some(a) = self.nodes[i].core.poll_action() {
                    match a {
                        NodeAction::Join(g) => self.nodes[i].joined.insert(g),
                        NodeAction::Leave(g) => self.nodes[i].joined.remove(&g),
                    };
                }
                while let Some(t) = self.nodes[i].core.poll_transmit() {
                    let (addr, id) = (self.nodes[i].addr, self.nodes[i].core.node_id());
                    if self.nodes[i].alive {
                        self.emit(addr, id, t);
                    }
                }
            }
            if finished || self.now > end {
                return events;
            }
            // Next thing to happen.
            let mut next = self.queue.keys().next().map(|k| k.0);
            let side_t = match side {
                Side::Put(m) => m.poll_timeout(),
                Side::Get(m) => m.poll_timeout(),
                Side::Lookup(m) => m.poll_timeout(),
            };
            for t in side_t.into_iter().chain(
                self.nodes
                    .iter()
                    .filter(|n| n.alive)
                    .filter_map(|n| n.core.poll_timeout()),
            ) {
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
                let dg = replicast::decode(&bytes).expect("own datagrams decode");
                let sender = dg.header.sender_id;
                if to == client_addr() {
                    match side {
                        Side::Put(m) => m.handle(from, sender, &dg.message, self.now),
                        Side::Get(m) => m.handle(from, sender, &dg.message, self.now),
                        Side::Lookup(m) => m.handle(sender, &dg.message, self.now),
                    }
                } else if let Some(n) = self.nodes.iter_mut().find(|n| n.addr == to)
                    && n.alive
                {
                    n.core.handle(from, sender, dg.message, self.now, 0);
                }
            }
            for n in self.nodes.iter_mut().filter(|n| n.alive) {
                n.core.handle_timeout(self.now);
            }
            match side {
                Side::Put(m) => m.handle_timeout(self.now),
                Side::Get(m) => m.handle_timeout(self.now),
                Side::Lookup(m) => m.handle_timeout(self.now),
            }
        }
    }

    fn holders(&self, id: &[u8; 32]) -> Vec<u32> {
        self.nodes
            .iter()
            .filter(|n| n.core.store.contains(id))
            .map(|n| n.core.node_id())
            .collect()
    }

    fn put(&self, payload: &[u8], mode: Mode, replicas: usize, kind: ChunkKind) -> Side {
        let p = PutParams {
            replicas,
            mode,
            group: GROUP,
            port: PORT,
            datagram_payload: 1372,
            kind,
            timers: PutTimers::default(),
        };
        Side::Put(PutMachine::new(7, Arc::new(payload.to_vec()), p, self.now))
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

#[test]
fn put_lands_on_exactly_r_nodes_in_every_mode() {
    for mode in [Mode::NgMulticast, Mode::Unicast, Mode::Rendezvous] {
        let mut sim = Sim::new(6, 0.0, 1);
        let data = payload(300_000, 1);
        let id = crate::chunking::chunk_id(&data);
        let mut side = sim.put(&data, mode, 3, ChunkKind::Data);
        let ev = sim.run(&mut side, Duration::from_secs(10));
        let o = put_done(&ev);
        assert_eq!(o.stored_on.len(), 3, "{mode:?}");
        let mut h = sim.holders(&id);
        h.sort();
        let mut s = o.stored_on.clone();
        s.sort();
        assert_eq!(h, s, "{mode:?}: chunk on exactly the targets");
        let chunk_dgrams = data.len().div_ceil(1372) as u64;
        match mode {
            // One copy, seen by the 3 non-targets too.
            Mode::NgMulticast => {
                assert_eq!(o.datagrams_sent, chunk_dgrams);
                assert_eq!(sim.not_for_us(), 3 * data.len() as u64);
            }
            Mode::Unicast => {
                assert_eq!(o.datagrams_sent, 3 * chunk_dgrams);
                assert_eq!(sim.not_for_us(), 0);
            }
            Mode::Rendezvous => {
                assert_eq!(o.datagrams_sent, chunk_dgrams);
                assert_eq!(
                    sim.not_for_us(),
                    0,
                    "the rendezvous group reaches only targets"
                );
            }
        }
    }
}

#[test]
fn put_and_get_complete_under_loss() {
    for (mode, seed) in [
        (Mode::NgMulticast, 11),
        (Mode::Unicast, 12),
        (Mode::Rendezvous, 13),
    ] {
        let mut sim = Sim::new(5, 0.05, seed);
        let data = payload(1 << 20, 2);
        let id = crate::chunking::chunk_id(&data);
        let mut side = sim.put(&data, mode, 3, ChunkKind::Data);
        let ev = sim.run(&mut side, Duration::from_secs(30));
        let o = put_done(&ev).clone();
        assert!(
            o.datagrams_sent > data.len().div_ceil(1372) as u64,
            "losses were repaired"
        );
        assert!(sim.lost > 0);
        assert_eq!(sim.holders(&id).len(), 3);
        let mut side = sim.get(id, data.len());
        let ev = sim.run(&mut side, Duration::from_secs(30));
        assert_eq!(get_done(&ev), &data);
    }
}

#[test]
fn dead_target_is_replaced() {
    let mut sim = Sim::new(5, 0.0, 3);
    let data = payload(50_000, 3);
    let id = crate::chunking::chunk_id(&data);
    // Every node bids; then the best-ranked ones die before the payload.
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    // Node 1 and 2 die right away (after proposals are queued).
    sim.nodes[0].alive = false;
    sim.nodes[1].alive = false;
    let ev = sim.run(&mut side, Duration::from_secs(30));
    let o = put_done(&ev);
    assert!(!o.stored_on.contains(&1) && !o.stored_on.contains(&2));
    assert_eq!(sim.holders(&id), vec![3, 4, 5]);

    // A target that bids, then dies mid-transfer.
    let mut sim = Sim::new(4, 0.0, 4);
    let data = payload(200_000, 4);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    // Run only the bidding phase, then kill node 1, which the seeded
    // tie-break of txid 7 chooses (`replaced == 1` below checks it).
    let _ = sim.run(&mut side, Duration::from_millis(1));
    let victim = 0;
    sim.nodes[victim].alive = false;
    let ev = sim.run(&mut side, Duration::from_secs(30));
    let o = put_done(&ev);
    assert_eq!(o.replaced, 1);
    assert_eq!(o.stored_on.len(), 3);
    assert!(!o.stored_on.contains(&(victim as u32 + 1)));
}

#[test]
fn not_enough_targets_is_a_clear_error() {
    let mut sim = Sim::new(2, 0.0, 5);
    let data = payload(1000, 5);
    let mut side = sim.put(&data, Mode::Unicast, 3, ChunkKind::Data);
    let ev = sim.run(&mut side, Duration::from_secs(30));
    let err = ev
        .iter()
        .find_map(|e| match e {
            ReplicastEvent::Put(PutEvent::Failed(e)) => Some(e.clone()),
            _ => None,
        })
        .expect("failure");
    assert!(matches!(
        err,
        PutError::NotEnoughTargets {
            want: 3,
            have: 2,
            ..
        }
    ));
    assert!(err.to_string().contains("only 2 of 3"), "{err}");
}

#[test]
fn second_put_is_deduplicated() {
    let mut sim = Sim::new(5, 0.0, 6);
    let data = payload(10_000, 6);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    put_done(&sim.run(&mut side, Duration::from_secs(10)));
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    let ev = sim.run(&mut side, Duration::from_secs(10));
    let o = put_done(&ev);
    assert!(o.stored_on.is_empty());
    assert_eq!(o.already.len(), 3);
    assert_eq!(o.datagrams_sent, 0);
}

#[test]
fn wrong_hash_payload_is_refused_then_repaired() {
    let mut sim = Sim::new(4, 0.0, 7);
    sim.tamper = 1;
    let data = payload(5_000, 7);
    let id = crate::chunking::chunk_id(&data);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    let ev = sim.run(&mut side, Duration::from_secs(30));
    put_done(&ev);
    let mismatches: u64 = sim
        .nodes
        .iter()
        .map(|n| n.core.counters.hash_mismatches)
        .sum();
    assert_eq!(
        mismatches, 3,
        "every target refused the altered payload once"
    );
    assert_eq!(sim.holders(&id).len(), 3);
    for n in &mut sim.nodes {
        if n.core.store.contains(&id) {
            assert_eq!(n.core.store.get(&id).unwrap(), data);
        }
    }
}

#[test]
fn corrupt_copy_is_reported_and_never_served() {
    let mut sim = Sim::new(4, 0.0, 8);
    let data = payload(100_000, 8);
    let id = crate::chunking::chunk_id(&data);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    put_done(&sim.run(&mut side, Duration::from_secs(10)));
    // Corrupt every holder's file but one.
    let holders = sim.holders(&id);
    for n in sim
        .nodes
        .iter()
        .filter(|n| holders[..2].contains(&n.core.node_id()))
    {
        let p = n.core.store.path_of(ChunkKind::Data, &id);
        let mut b = std::fs::read(&p).unwrap();
        b[7] ^= 0x40;
        std::fs::write(&p, b).unwrap();
    }
    let mut side = sim.get(id, data.len());
    let ev = sim.run(&mut side, Duration::from_secs(10));
    assert_eq!(get_done(&ev), &data);
    let reported: Vec<u32> = ev
        .iter()
        .filter_map(|e| match e {
            ReplicastEvent::Get(GetEvent::Corrupt { node, .. }) => Some(*node),
            _ => None,
        })
        .collect();
    assert_eq!(reported.len(), 2, "{reported:?}");
    let detected: u64 = sim
        .nodes
        .iter()
        .map(|n| n.core.store.counters.corrupt_detected)
        .sum();
    assert_eq!(detected, 2);
}

#[test]
fn manifests_are_found_by_name_with_versions() {
    let mut sim = Sim::new(4, 0.02, 9);
    for version in 1..=3u64 {
        let m = crate::manifest::Manifest {
            name: "b/o".into(),
            version,
            size: 3,
            chunk_size: 1024,
            object_hash: [0; 32],
            created_us: 0,
            chunks: vec![[version as u8; 32]],
        };
        let mut side = sim.put(&m.encode(), Mode::Unicast, 3, ChunkKind::Manifest);
        put_done(&sim.run(&mut side, Duration::from_secs(10)));
    }
    let mut side = Side::Lookup(ManifestLookup::new(
        3,
        crate::chunking::name_hash("b/o"),
        0,
        GROUP,
        PORT,
        3,
        GetTimers::default(),
        sim.now,
    ));
    sim.run(&mut side, Duration::from_secs(10));
    let Side::Lookup(l) = side else { panic!() };
    assert_eq!(
        l.versions.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(l.versions[&3].holders.len() >= 2, "{:?}", l.versions);
}
