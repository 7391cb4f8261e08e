//! The engine under simulated time: simulated agents that speak the real
//! sealed protocol (SET_SUBSET, CLEAR, BATCH, HELLO_ACK) with their own
//! tables and lifetimes, a simulated store with a delay, and a storage
//! node on the UDP path. No sockets, no sleeps.

mod failures;
mod inspect;
mod rates;
mod reload;
mod restart;
mod reuse;

use super::*;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::Ipv6Addr;
use subcast_proto::{
    Ack, BackendKind, BatchAck, BatchItem, Hello, Key, Keyring, Message, Nak, NakReason, Opener,
    ReplayGuard, Sealer,
};

pub const AGENT_KEY: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c01";
pub const NODE_KEY: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c02";
const ONE_WAY: Duration = Duration::from_micros(50);

#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    Ack,
    /// Drop the first N datagrams of each txid, then answer.
    LoseFirst(u32),
    Nak(NakReason),
    Silent,
}

#[derive(Debug)]
pub struct Installed {
    pub members: subcast_proto::Members,
    pub expires: Instant,
}

#[derive(Debug)]
pub struct SimAgent {
    pub id: u32,
    pub addr: SocketAddr,
    opener: Opener,
    sealer: Sealer,
    pub table: BTreeMap<Ipv6Addr, Installed>,
    pub behaviour: Behaviour,
    /// Speaks BATCH (the merged agent) or NAKs it as malformed (older).
    pub batch: bool,
    /// Refuses (table-full) to hold more than this.
    pub capacity: Option<usize>,
    pub peak: usize,
    pub received: Vec<Message>,
    seen: HashMap<u64, u32>,
    answered: HashMap<u64, Message>,
    pub hello_acks: Vec<u64>,
    pub instance: u64,
    /// Backend programming operations (a re-SET of the same ports is none).
    pub writes: u64,
    /// Answer SETs with this port count (a switch whose FDB changed).
    pub ports_override: Option<u16>,
}

impl SimAgent {
    pub fn new(i: u32, unix_us: u64) -> SimAgent {
        let key = Key::from_hex(1, AGENT_KEY).unwrap();
        SimAgent {
            id: i,
            addr: agent_addr(i),
            opener: Opener::new(Keyring::new([key.clone()]), ReplayGuard::default()),
            sealer: Sealer::new(key, i, unix_us),
            table: BTreeMap::new(),
            behaviour: Behaviour::Ack,
            batch: true,
            capacity: None,
            peak: 0,
            received: Vec::new(),
            seen: HashMap::new(),
            answered: HashMap::new(),
            hello_acks: Vec::new(),
            instance: 1,
            writes: 0,
            ports_override: None,
        }
    }

    fn expire(&mut self, now: Instant) {
        self.table.retain(|_, i| i.expires > now);
    }

    fn ports(m: &subcast_proto::Members) -> u16 {
        match m {
            subcast_proto::Members::List(l) => l.len() as u16,
            subcast_proto::Members::Bitmap(b) => b.indices().count() as u16,
        }
    }

    /// Applies `items` all or nothing; the port counts, or a NAK reason.
    fn apply(
        &mut self,
        items: &[BatchItem],
        now: Instant,
    ) -> Result<Vec<u16>, (NakReason, String)> {
        if let Behaviour::Nak(r) = self.behaviour {
            return Err((r, format!("simulated {} on switch {}", r.name(), self.id)));
        }
        let mut size = self.table.len() as i64;
        for it in items {
            match it {
                BatchItem::Set { group, .. } if !self.table.contains_key(group) => size += 1,
                BatchItem::Clear { group } if self.table.contains_key(group) => size -= 1,
                _ => {}
            }
            if let Some(c) = self.capacity
                && size > c as i64
            {
                return Err((
                    NakReason::TableFull,
                    format!("switch {} holds {c}", self.id),
                ));
            }
        }
        let mut out = Vec::new();
        for it in items {
            match it {
                BatchItem::Set {
                    group,
                    lifetime_ms,
                    members,
                    ..
                } => {
                    let same = self.table.get(group).is_some_and(|i| i.members == *members);
                    if !same {
                        self.writes += 1;
                    }
                    self.table.insert(
                        *group,
                        Installed {
                            members: members.clone(),
                            expires: now + Duration::from_millis(u64::from(*lifetime_ms)),
                        },
                    );
                    out.push(self.ports_override.unwrap_or(Self::ports(members)));
                }
                BatchItem::Clear { group } => {
                    if self.table.remove(group).is_some() {
                        self.writes += 1;
                    }
                    out.push(0);
                }
            }
            self.peak = self.peak.max(self.table.len());
        }
        Ok(out)
    }

    /// Handles a datagram; the answer to send back, if any.
    fn on_datagram(&mut self, bytes: &[u8], now: Instant, unix_us: u64) -> Option<Vec<u8>> {
        self.expire(now);
        let dg = self.opener.open(bytes, unix_us).ok()?;
        let m = dg.message;
        self.received.push(m.clone());
        if let Message::HelloAck(a) = &m {
            self.hello_acks.push(a.instance);
            return None;
        }
        let txid = m.txid()?;
        let seen = self.seen.entry(txid).or_default();
        *seen += 1;
        match self.behaviour {
            Behaviour::Silent => return None,
            Behaviour::LoseFirst(n) if *seen <= n => return None,
            _ => {}
        }
        if let Some(a) = self.answered.get(&txid) {
            return Some(self.sealer.seal(&a.clone(), unix_us));
        }
        let (items, batch) = match &m {
            Message::SetSubset(s) => (vec![BatchItem::from_set(s)], false),
            Message::Clear(c) => (vec![BatchItem::Clear { group: c.group }], false),
            Message::Batch(b) if self.batch => (b.items.clone(), true),
            Message::Batch(_) => {
                let nak = Message::Nak(Nak {
                    txid,
                    switch_id: self.id,
                    reason: NakReason::Malformed,
                    detail: "an agent accepts SET_SUBSET and CLEAR, not BATCH".into(),
                });
                return Some(self.sealer.seal(&nak, unix_us));
            }
            _ => return None,
        };
        let reply = match self.apply(&items, now) {
            Ok(counts) if batch => Message::BatchAck(BatchAck {
                txid,
                switch_id: self.id,
                port_counts: counts,
            }),
            Ok(counts) => Message::Ack(Ack {
                txid,
                switch_id: self.id,
                port_count: counts[0],
            }),
            Err((reason, detail)) => Message::Nak(Nak {
                txid,
                switch_id: self.id,
                reason,
                detail,
            }),
        };
        self.answered.insert(txid, reply.clone());
        Some(self.sealer.seal(&reply, unix_us))
    }

    pub fn groups(&mut self, now: Instant) -> Vec<Ipv6Addr> {
        self.expire(now);
        self.table.keys().copied().collect()
    }

    pub fn count(&self, name: &str) -> usize {
        self.received.iter().filter(|m| m.name() == name).count()
    }

    /// SET and CLEAR instructions, single or inside BATCHes.
    pub fn items(&self) -> Vec<BatchItem> {
        let mut v = Vec::new();
        for m in &self.received {
            match m {
                Message::SetSubset(s) => v.push(BatchItem::from_set(s)),
                Message::Clear(c) => v.push(BatchItem::Clear { group: c.group }),
                Message::Batch(b) => v.extend(b.items.iter().cloned()),
                _ => {}
            }
        }
        v
    }
}

#[derive(Debug)]
enum Ev {
    ToEngine(SocketAddr, Vec<u8>),
    StoreDone(u64),
}

/// The durable state as the simulated store holds it.
#[derive(Debug, Default, Clone)]
pub struct Db {
    pub groups: BTreeMap<Ipv6Addr, GroupRow>,
    pub leases: BTreeMap<u64, crate::leases::Lease>,
    pub marks: BTreeMap<u16, u64>,
}

impl Db {
    fn apply(&mut self, op: &StoreOp) {
        match op {
            StoreOp::PutGroup(g) => {
                self.groups.insert(g.group, g.clone());
            }
            StoreOp::HoldGroup {
                group,
                hold_until_ms,
            } => {
                if let Some(g) = self.groups.get_mut(group) {
                    g.hold_until_ms = *hold_until_ms;
                    if *hold_until_ms == 0 {
                        g.pinned = false;
                    }
                }
            }
            StoreOp::DeleteGroup { group } => {
                self.groups.remove(group);
                self.leases.retain(|_, l| l.group != *group);
            }
            StoreOp::PutLease(l) => {
                self.leases.insert(l.id, l.clone());
            }
            StoreOp::DeleteLease { id } => {
                self.leases.remove(id);
            }
            StoreOp::PoolMark { vlan, upto } => {
                self.marks.insert(*vlan, *upto);
            }
            _ => {}
        }
    }

    pub fn loaded(&self) -> Loaded {
        Loaded {
            groups: self.groups.values().cloned().collect(),
            leases: self.leases.values().cloned().collect(),
            marks: self.marks.iter().map(|(k, v)| (*k, *v)).collect(),
        }
    }
}

pub struct Sim {
    pub e: Engine,
    pub now: Instant,
    t0: Instant,
    unix0: u64,
    pub agents: BTreeMap<SocketAddr, SimAgent>,
    q: BinaryHeap<Reverse<(Instant, u64)>>,
    evs: HashMap<u64, Ev>,
    seq: u64,
    pub store_delay: Duration,
    pub db: Db,
    /// Writes handed out but not yet durable (lost at a crash).
    pub store_pending: Vec<StoreWrite>,
    pub replies: HashMap<Handle, Answer>,
    next_handle: Handle,
    node: (Sealer, Opener),
    pub node_addr: SocketAddr,
    pub udp_answers: Vec<Message>,
}

pub struct Opts {
    pub switches: u32,
    pub warm_ms: u64,
    pub hold_ms: u64,
    pub budget: Option<u32>,
    pub extra: String,
    pub group_extra: String,
    pub pool: String,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            switches: 3,
            warm_ms: 10_000,
            hold_ms: 10_000,
            budget: None,
            extra: String::new(),
            group_extra: String::new(),
            pool: "ff15::5c:1:0/120".into(),
        }
    }
}

pub fn agent_addr(i: u32) -> SocketAddr {
    format!("127.0.0.1:{}", 20_000 + i).parse().unwrap()
}

pub fn config(o: &Opts) -> Arc<Config> {
    load(&config_text(o))
}

/// A config from YAML text (panics with the problems if it has errors).
pub fn load(s: &str) -> Arc<Config> {
    match crate::config::load_str(s, std::path::Path::new(".")) {
        Ok((c, _)) => Arc::new(c),
        Err(p) => panic!("test config: {p:#?}\n{s}"),
    }
}

/// The YAML of [`config`].
pub fn config_text(o: &Opts) -> String {
    let mut s = format!(
        "controller:\n  id: 1\n  udp_listen: \"127.0.0.1:0\"\n  database: \":memory:\"\n  agent_timeout_ms: 100000\n\
keys:\n  - {{ id: 1, hex: \"{AGENT_KEY}\" }}\n  - {{ id: 2, hex: \"{NODE_KEY}\" }}\n\
vlans:\n  - id: 10\n    pool: [\"{}\"]\nswitches:\n",
        o.pool
    );
    for i in 1..=o.switches {
        let b = o
            .budget
            .map(|b| format!(", budget: {b}"))
            .unwrap_or_default();
        s += &format!(
            "  - {{ name: s{i}, id: {i}, vlans: [10], agent: {{ address: \"{}\", key_id: 1 }}{b} }}\n",
            agent_addr(i)
        );
    }
    s += &format!(
        "groups:\n  - name: chunks-0\n    vlan: 10\n    parent: \"ff15::5c:0:1\"\n{}    members:\n",
        o.group_extra
    );
    for h in 1..=6 {
        s += &format!(
            "      - {{ name: h{h}, ipv6: \"fd00:5c::10{h}\", mac: \"02:5c:00:00:01:0{h}\" }}\n"
        );
    }
    s += &format!(
        "leases: {{ default_ms: 2000, max_ms: 60000, warm_ms: {}, hold_ms: {} }}\nfanout: {{ retransmit_ms: 10, attempts: 4 }}\n\
rendezvous:\n  key_ids: [2]\n{}",
        o.warm_ms, o.hold_ms, o.extra
    );
    s
}

impl Sim {
    pub fn new(o: Opts) -> Sim {
        Self::with_db(o, None)
    }

    pub fn with_db(o: Opts, db: Option<Crashed>) -> Sim {
        let cfg = config(&o);
        let (now, agents, db0, unix0) = match db {
            Some(c) => (c.now, Some(c.agents), c.db, c.unix_us),
            None => (Instant::now(), None, Db::default(), 1_800_000_000_000_000),
        };
        let agents = agents.unwrap_or_else(|| {
            (1..=o.switches)
                .map(|i| (agent_addr(i), SimAgent::new(i, unix0)))
                .collect()
        });
        let t0 = now;
        let mut e = Engine::new(cfg, Arc::new(Metrics::new()), now, unix0, [9; 32]);
        e.recover(now, db0.loaded());
        let nk = Key::from_hex(2, NODE_KEY).unwrap();
        let mut sim = Sim {
            e,
            now,
            t0,
            unix0,
            agents,
            q: BinaryHeap::new(),
            evs: HashMap::new(),
            seq: 0,
            store_delay: Duration::from_micros(30),
            db: db0,
            store_pending: Vec::new(),
            replies: HashMap::new(),
            next_handle: 0,
            node: (
                Sealer::new(nk.clone(), 77, unix0),
                Opener::new(Keyring::new([nk]), ReplayGuard::default()),
            ),
            node_addr: "127.0.0.1:30000".parse().unwrap(),
            udp_answers: Vec::new(),
        };
        sim.pump();
        // The first pool mark becomes durable.
        sim.run(Duration::from_millis(1));
        sim
    }

    fn unix_us(&self, t: Instant) -> u64 {
        self.unix0 + t.duration_since(self.t0).as_micros() as u64
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.q.push(Reverse((at, self.seq)));
        self.evs.insert(self.seq, ev);
    }

    /// Moves everything the engine has to hand out.
    fn pump(&mut self) {
        let now = self.now;
        while let Some((to, bytes)) = self.e.poll_transmit(now) {
            let us = self.unix_us(now);
            if to == self.node_addr {
                if let Ok(dg) = self.node.1.open(&bytes, us) {
                    self.udp_answers.push(dg.message);
                }
                continue;
            }
            if let Some(a) = self.agents.get_mut(&to)
                && let Some(reply) = a.on_datagram(&bytes, now + ONE_WAY, us)
            {
                let from = a.addr;
                self.push(now + ONE_WAY * 2, Ev::ToEngine(from, reply));
            }
        }
        let writes: Vec<StoreWrite> = std::iter::from_fn(|| self.e.poll_store()).collect();
        if let Some(last) = writes.last().map(|w| w.seq) {
            self.store_pending.extend(writes);
            let at = now + self.store_delay;
            self.push(at, Ev::StoreDone(last));
        }
        while let Some((h, a)) = self.e.poll_reply() {
            self.replies.insert(h, a);
        }
    }

    /// Runs the simulation for `d` of simulated time.
    pub fn run(&mut self, d: Duration) {
        self.pump();
        let end = self.now + d;
        loop {
            let next_ev = self.q.peek().map(|r| r.0.0);
            let next_t = self.e.poll_timeout();
            let next = match (next_ev, next_t) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(x) => x,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            let us = self.unix_us(self.now);
            self.e.sync_wall(self.now, us);
            while let Some(Reverse((t, id))) = self.q.peek().copied() {
                if t > self.now {
                    break;
                }
                self.q.pop();
                match self.evs.remove(&id) {
                    Some(Ev::ToEngine(from, bytes)) => {
                        self.e.handle(self.now, Event::Datagram { from, bytes })
                    }
                    Some(Ev::StoreDone(upto)) => {
                        let (done, keep): (Vec<_>, Vec<_>) =
                            std::mem::take(&mut self.store_pending)
                                .into_iter()
                                .partition(|w| w.seq <= upto);
                        for w in &done {
                            self.db.apply(&w.op);
                        }
                        self.store_pending = keep;
                        self.e.handle(self.now, Event::StoreDone { upto })
                    }
                    None => {}
                }
                self.pump();
            }
            if self.e.poll_timeout().is_some_and(|t| t <= self.now) {
                self.e.handle_timeout(self.now);
            }
            self.pump();
        }
        self.now = end;
        let us = self.unix_us(self.now);
        self.e.sync_wall(self.now, us);
        self.e.handle_timeout(self.now);
        self.pump();
    }

    /// Sends an HTTP-style request; returns its handle.
    pub fn ask(&mut self, targets: &[&str], lifetime_ms: u64, owner: &str) -> Handle {
        self.next_handle += 1;
        let h = self.next_handle;
        let req = Request {
            parent: "chunks-0".into(),
            vlan: None,
            targets: targets
                .iter()
                .map(|t| TargetSpec::Text((*t).into()))
                .collect(),
            lifetime_ms: Some(lifetime_ms),
            requester: owner.into(),
            path: "http",
        };
        let caller = Caller {
            name: owner.into(),
            admin: owner == "admin",
            max_leases: None,
        };
        self.e.handle(
            self.now,
            Event::Request {
                handle: h,
                req,
                caller,
            },
        );
        self.replies_now();
        h
    }

    /// Answers given in the same turn (hits); instructions go at the next
    /// `run`, so requests asked together are coalesced.
    fn replies_now(&mut self) {
        while let Some((h, a)) = self.e.poll_reply() {
            self.replies.insert(h, a);
        }
    }

    pub fn ask_as(&mut self, targets: &[&str], lifetime_ms: u64, caller: Caller) -> Handle {
        self.next_handle += 1;
        let h = self.next_handle;
        let req = Request {
            parent: "chunks-0".into(),
            vlan: None,
            targets: targets
                .iter()
                .map(|t| TargetSpec::Text((*t).into()))
                .collect(),
            lifetime_ms: Some(lifetime_ms),
            requester: caller.name.clone(),
            path: "http",
        };
        self.e.handle(
            self.now,
            Event::Request {
                handle: h,
                req,
                caller,
            },
        );
        self.replies_now();
        h
    }

    /// Requests and runs until answered (at most 5 s).
    pub fn grant(
        &mut self,
        targets: &[&str],
        lifetime_ms: u64,
    ) -> Result<crate::leases::Lease, Refusal> {
        let h = self.ask(targets, lifetime_ms, "node");
        self.answer(h)
    }

    pub fn answer(&mut self, h: Handle) -> Result<crate::leases::Lease, Refusal> {
        for _ in 0..5000 {
            if let Some(a) = self.replies.remove(&h) {
                return match a {
                    Answer::Granted(l) => Ok(l),
                    Answer::Refused(r) => Err(r),
                    other => panic!("{other:?}"),
                };
            }
            self.run(Duration::from_millis(1));
        }
        panic!("no answer to request {h}");
    }

    pub fn release(&mut self, id: u64, owner: &str) -> Answer {
        self.next_handle += 1;
        let h = self.next_handle;
        let caller = Caller {
            name: owner.into(),
            admin: owner == "admin",
            max_leases: None,
        };
        self.e.handle(
            self.now,
            Event::Release {
                handle: h,
                lease_id: id,
                caller,
            },
        );
        self.pump();
        for _ in 0..5000 {
            if let Some(a) = self.replies.remove(&h) {
                return a;
            }
            self.run(Duration::from_millis(1));
        }
        panic!("no answer to release {id}");
    }

    /// A datagram to the engine from `from`.
    pub fn inject(&mut self, from: SocketAddr, bytes: Vec<u8>) {
        self.e.handle(self.now, Event::Datagram { from, bytes });
        self.pump();
    }

    pub fn node_say(&mut self, m: &Message) {
        let us = self.unix_us(self.now);
        let b = self.node.0.seal(m, us);
        let from = self.node_addr;
        self.inject(from, b);
    }

    pub fn hello(&mut self, i: u32, instance: u64, capacity: u32) {
        let addr = agent_addr(i);
        let us = self.unix_us(self.now);
        let a = self.agents.get_mut(&addr).unwrap();
        a.instance = instance;
        let m = Message::Hello(Hello {
            switch_id: i,
            backend: BackendKind::LinuxBridge,
            port_count: 4,
            table_capacity: capacity,
            instance,
            software_version: "sim".into(),
        });
        let b = a.sealer.seal(&m, us);
        self.inject(addr, b);
    }

    /// A simulated agent for switch `i` (a reload adds the switch).
    pub fn add_agent(&mut self, i: u32) {
        let us = self.unix_us(self.now);
        self.agents.insert(agent_addr(i), SimAgent::new(i, us));
    }

    /// Applies `yaml` as a reload.
    pub fn reload(&mut self, yaml: &str) -> Result<ReloadReport, Vec<Refused>> {
        let r = self.e.reload(self.now, load(yaml));
        self.pump();
        r
    }

    pub fn agent(&mut self, i: u32) -> &mut SimAgent {
        self.agents.get_mut(&agent_addr(i)).unwrap()
    }

    /// Groups installed on switch `i` now.
    pub fn table(&mut self, i: u32) -> Vec<Ipv6Addr> {
        let now = self.now;
        self.agent(i).groups(now)
    }

    pub fn all_tables(&mut self) -> Vec<Vec<Ipv6Addr>> {
        let n = self.agents.len() as u32;
        (1..=n).map(|i| self.table(i)).collect()
    }

    pub fn sealed_by_agent(&mut self, i: u32, m: &Message) -> Vec<u8> {
        let us = self.unix_us(self.now);
        self.agent(i).sealer.seal(m, us)
    }

    /// Simulated "crash" (what was not durable is lost); the controller
    /// comes back `down` later.
    pub fn crash(self, down: Duration) -> Crashed {
        let unix_us = self.unix_us(self.now) + down.as_micros() as u64;
        Crashed {
            db: self.db,
            now: self.now + down,
            agents: self.agents,
            unix_us,
        }
    }
}

pub struct Crashed {
    pub db: Db,
    pub now: Instant,
    pub agents: BTreeMap<SocketAddr, SimAgent>,
    pub unix_us: u64,
}
