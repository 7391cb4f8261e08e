//! The controller policies' world: the controller's real engine and one real
//! agent core per switch, over in-memory switches that apply at most
//! `update_rate` table changes a second, datagrams delayed by the fabric's
//! links, a store that completes after `store_us`, and the storage nodes'
//! puts. One event queue in simulated time; no sockets, no threads.

use crate::fabric::Fabric;
use crate::load::{Arrivals, Picker, Put};
use crate::setup::{self, CtlSetup, NegGroup, VLAN};
use crate::stats::{Stats, SwitchStats};
use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_agent::backend::memory::MemSwitch;
use subcast_agent::core::action::BackendAction;
use subcast_agent::core::{Agent, Now};
use subcast_controller::engine::{Answer, Caller, Engine, Event, Handle, Request, TargetSpec};
use subcast_proto::{Keyring, Member};

/// Wall clock of the simulation's start (any fixed value: runs repeat).
pub const UNIX0_US: u64 = 1_800_000_000_000_000;

/// What every policy's run shares.
#[derive(Debug, Clone)]
pub struct RunParams {
    pub seconds: f64,
    pub seed: u64,
    pub payload_bytes: u64,
    /// Sender link speed: a put holds its lease for payload / speed.
    pub link_gbps: f64,
    /// Release right after the grant (the lab bench) instead of after the
    /// transfer.
    pub release_at_once: bool,
    pub update_rate: u32,
    pub store_us: u64,
    /// Controller CPU time per message it handles (a request, a release,
    /// an agent's datagram), µs: each controller serves them one at a time,
    /// so they queue behind each other. 0: the controller costs no time.
    pub ctl_us: u64,
    /// Latency of one batch of table changes on a switch, µs, on top of the
    /// `update_rate` time of its changes; batches overlap in this latency
    /// (a switch whose cost is a round trip to its driver, not its table).
    pub apply_us: u64,
    /// Extra one-way latency of every controller <-> agent datagram, µs (a
    /// process woken from idle to read it).
    pub agent_path_us: u64,
    pub arrivals: Arrivals,
    pub picker: Picker,
    /// Longest warm-up (agents' HELLO, pre-enumerated groups installed).
    pub max_warmup_s: f64,
    /// Load before the measured window (tables fill, caches warm).
    pub load_warmup_s: f64,
    /// Controllers side by side (disjoint pool slices, each switch's budget
    /// split between them); negotiating group g asks controller g mod n first.
    pub controllers: usize,
    /// Controller 0 dies this many seconds into the window.
    pub kill_at_s: Option<f64>,
    /// A node that got no answer for this long asks the next controller
    /// (and avoids the silent one from then on).
    pub failover_ms: u64,
}

impl RunParams {
    pub fn transfer_ns(&self) -> u64 {
        if self.release_at_once {
            0
        } else {
            (self.payload_bytes as f64 * 8.0 / self.link_gbps) as u64
        }
    }
}

#[derive(Debug)]
enum Ev {
    CtlRx(usize, SocketAddr, Vec<u8>),
    CtlWake(usize),
    StoreDone(usize, u64),
    Kill(usize),
    Sample,
    Timeout(Handle),
    AgentRx(usize, SocketAddr, Vec<u8>),
    AgentWake(usize),
    ActionDone(usize, BackendAction),
    Arrival,
    ClientNext(usize),
    CtlRequest(usize, Handle, Request),
    /// A node's release reaches controller `0` (handle of the release, lease).
    CtlRelease(usize, Handle, u64),
    /// A message the controller has spent its `ctl_us` on: handled now.
    Served(Box<Ev>),
    Answer(Handle, Answer),
    Release(Handle),
}

#[derive(Debug)]
struct Pending {
    put: Put,
    asked_ns: u64,
    client: Option<usize>,
    lease: Option<u64>,
    /// The controller asked (and that granted).
    ctl: usize,
    /// It was waiting on a controller when that controller died.
    orphaned: bool,
}

#[derive(Debug)]
struct Ctl {
    engine: Engine,
    addr: SocketAddr,
    wake: Option<u64>,
    alive: bool,
    /// The controller's CPU is taken until then (`ctl_us` per message).
    busy_until: u64,
}

#[derive(Debug)]
struct Sw {
    agent: Agent,
    mem: MemSwitch,
    busy_until: u64,
    wake: Option<u64>,
}

/// One controller-policy run.
#[derive(Debug)]
pub struct World<'a> {
    f: &'a Fabric,
    groups: &'a [NegGroup],
    p: &'a RunParams,
    base: Instant,
    now_ns: u64,
    q: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    ctls: Vec<Ctl>,
    sws: Vec<Sw>,
    by_addr: HashMap<SocketAddr, usize>,
    ctl_by_addr: HashMap<SocketAddr, usize>,
    /// Per node: controllers it found silent.
    shunned: HashMap<usize, u64>,
    /// Requests a node gave up on (a late grant is released at once).
    abandoned: HashMap<Handle, (usize, usize)>,
    rng: StdRng,
    pending: HashMap<Handle, Pending>,
    /// Releases in flight: the client to go on, the node that released.
    releasing: HashMap<Handle, (Option<usize>, usize)>,
    next_handle: Handle,
    window: (u64, u64),
    period_ns: u64,
    pub stats: Stats,
}

impl<'a> World<'a> {
    pub fn new(
        f: &'a Fabric,
        groups: &'a [NegGroup],
        p: &'a RunParams,
        ctl: &CtlSetup,
    ) -> Result<World<'a>> {
        let base = Instant::now();
        let n = p.controllers.max(1);
        let mut ctls = Vec::new();
        for c in 0..n {
            let share = CtlSetup {
                budget: (ctl.budget / n as u32).max(1),
                ..ctl.clone()
            };
            let cfg = setup::controller_config(&setup::controller_yaml(f, groups, &share, c, n))?;
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&p.seed.to_le_bytes());
            seed[8] = c as u8;
            ctls.push(Ctl {
                engine: Engine::new(
                    cfg,
                    Arc::new(subcast_controller::metrics::Metrics::new()),
                    base,
                    UNIX0_US,
                    seed,
                ),
                addr: setup::ctl_addr(c),
                wake: None,
                alive: true,
                busy_until: 0,
            });
        }
        // Agents say HELLO to (and heartbeat) one controller: the first.
        let ctl_addr = setup::ctl_addr(0);
        let now = Now::new(base, UNIX0_US);
        let sws = (0..f.switches.len())
            .map(|i| {
                let mem = setup::mem_switch(f, i, ctl.budget);
                let agent = Agent::new(
                    setup::agent_settings(f, groups, i, ctl.budget, ctl_addr),
                    Arc::new(mem.clone()),
                    Keyring::new([setup::ctl_key()]),
                    setup::agent_key(),
                    Arc::new(subcast_agent::core::metrics::Metrics::new()),
                    now,
                );
                Sw {
                    agent,
                    mem,
                    busy_until: 0,
                    wake: None,
                }
            })
            .collect();
        let by_addr = (0..f.switches.len())
            .map(|i| (setup::agent_addr(i), i))
            .collect();
        let ctl_by_addr = ctls.iter().enumerate().map(|(i, c)| (c.addr, i)).collect();
        let stats = Stats {
            switches: vec![SwitchStats::default(); f.switches.len()],
            ..Stats::default()
        };
        Ok(World {
            f,
            groups,
            p,
            base,
            now_ns: 0,
            q: BTreeMap::new(),
            seq: 0,
            ctls,
            sws,
            by_addr,
            ctl_by_addr,
            shunned: HashMap::new(),
            abandoned: HashMap::new(),
            rng: StdRng::seed_from_u64(p.seed),
            pending: HashMap::new(),
            releasing: HashMap::new(),
            next_handle: 1,
            window: (u64::MAX, u64::MAX),
            period_ns: 1_000_000_000 / u64::from(p.update_rate.max(1)),
            stats,
        })
    }

    fn at(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns)
    }

    fn now(&self) -> Now {
        Now::new(self.at(self.now_ns), UNIX0_US + self.now_ns / 1000)
    }

    fn ns_of(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.base).as_nanos() as u64).max(self.now_ns)
    }

    fn push(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.q.insert((t, self.seq), ev);
    }

    /// Runs the warm-up, then the measured window; the stats of the window
    /// and its start and end (ns).
    pub fn run(mut self) -> Result<(Stats, u64, u64)> {
        for i in 0..self.sws.len() {
            self.pump_agent(i);
        }
        for c in 0..self.ctls.len() {
            self.pump_ctl(c);
        }
        // Warm-up: until every agent said HELLO and nothing is in flight for
        // two seconds in a row (pre-enumerated groups installed).
        let step = 500_000_000;
        let max = (self.p.max_warmup_s * 1e9) as u64;
        let mut quiet = 0;
        let mut t = 0;
        let mut pinned = 0;
        while t < max {
            t += step;
            self.run_until(t);
            let hello = self.sws.iter().all(|s| s.agent.hello_acked());
            let idle = self.ctls.iter().all(|c| c.engine.backlog().1 == 0);
            // Pre-enumeration goes on in steps: until the pinned count stays.
            let now_pinned: u64 = self
                .ctls
                .iter()
                .flat_map(|c| c.engine.budgets())
                .map(|b| u64::from(b.pinned))
                .sum();
            let steady = now_pinned == pinned;
            pinned = now_pinned;
            quiet = if hello && idle && steady {
                quiet + 1
            } else {
                0
            };
            if quiet >= 4 {
                break;
            }
        }
        let load_start = self.now_ns.max(t);
        let start = load_start + (self.p.load_warmup_s * 1e9) as u64;
        let end = start + (self.p.seconds * 1e9) as u64;
        self.window = (start, end);
        match self.p.arrivals {
            Arrivals::Open { .. } => self.push(load_start, Ev::Arrival),
            Arrivals::Closed { clients } => {
                for c in 0..clients {
                    self.push(load_start, Ev::ClientNext(c));
                }
            }
        }
        if let Some(k) = self.p.kill_at_s {
            self.push(start + (k * 1e9) as u64, Ev::Kill(0));
        }
        self.run_until(start);
        for (i, s) in self.stats.switches.iter_mut().enumerate() {
            let n = self.sws[i].mem.state().groups.len();
            *s = SwitchStats::default();
            s.occupancy_at(start, n, start);
        }
        self.stats.offered = 0;
        self.stats.failovers = 0;
        self.run_until(end);
        let s = self.stats;
        Ok((s, start, end))
    }

    fn run_until(&mut self, end: u64) {
        while let Some(entry) = self.q.first_entry() {
            if entry.key().0 >= end {
                break;
            }
            let ((t, _), ev) = entry.remove_entry();
            self.now_ns = t;
            self.handle(ev);
        }
        self.now_ns = self.now_ns.max(end);
    }

    fn handle(&mut self, ev: Ev) {
        let ctl = match &ev {
            Ev::CtlRx(c, ..) | Ev::CtlRequest(c, ..) | Ev::CtlRelease(c, ..) => Some(*c),
            _ => None,
        };
        match ctl {
            Some(c) if self.p.ctl_us > 0 => {
                // The controller takes its messages one at a time.
                let done = self.ctls[c].busy_until.max(self.now_ns) + self.p.ctl_us * 1000;
                self.ctls[c].busy_until = done;
                self.push(done, Ev::Served(Box::new(ev)));
            }
            _ => self.process(ev),
        }
    }

    fn process(&mut self, ev: Ev) {
        let now = self.at(self.now_ns);
        match ev {
            Ev::Served(inner) => self.process(*inner),
            Ev::CtlRelease(c, handle, lease_id) => {
                if self.ctls[c].alive {
                    self.ctls[c].engine.handle(
                        now,
                        Event::Release {
                            handle,
                            lease_id,
                            caller: Caller::admin("sim"),
                        },
                    );
                    self.pump_ctl(c);
                }
            }
            Ev::CtlRx(c, from, bytes) => {
                if self.ctls[c].alive {
                    self.ctls[c].engine.handle_datagram(now, from, &bytes);
                    self.pump_ctl(c);
                }
            }
            Ev::CtlWake(c) => {
                if self.ctls[c].alive && self.ctls[c].wake == Some(self.now_ns) {
                    self.ctls[c].wake = None;
                    self.ctls[c].engine.handle_timeout(now);
                    self.pump_ctl(c);
                }
            }
            Ev::StoreDone(c, upto) => {
                if self.ctls[c].alive {
                    self.ctls[c].engine.handle(now, Event::StoreDone { upto });
                    self.pump_ctl(c);
                }
            }
            Ev::Kill(c) => self.kill(c),
            Ev::Sample => self.sample(),
            Ev::Timeout(h) => self.timed_out(h),
            Ev::AgentRx(i, from, bytes) => {
                let n = self.now();
                self.sws[i].agent.handle_datagram(&bytes, from, n);
                self.pump_agent(i);
            }
            Ev::AgentWake(i) => {
                if self.sws[i].wake == Some(self.now_ns) {
                    self.sws[i].wake = None;
                    let n = self.now();
                    self.sws[i].agent.handle_timeout(n);
                }
                self.pump_agent(i);
            }
            Ev::ActionDone(i, action) => {
                let result = self.sws[i].mem.execute(&action);
                let n = self.sws[i].mem.state().groups.len();
                let w = self.window.0;
                self.stats.switches[i].occupancy_at(self.now_ns, n, w);
                let nw = self.now();
                self.sws[i].agent.on_action_done(action.id(), result, nw);
                self.pump_agent(i);
            }
            Ev::Arrival => {
                if let Arrivals::Open { per_node } = self.p.arrivals {
                    let rate = per_node * self.f.hosts.len() as f64;
                    let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
                    let gap = (-u.ln() / rate * 1e9) as u64;
                    let t = self.now_ns + gap.max(1);
                    if t < self.window.1 {
                        self.push(t, Ev::Arrival);
                    }
                }
                let put = self.p.picker.pick(&mut self.rng, self.groups);
                self.ask(put, None);
            }
            Ev::ClientNext(c) => {
                if self.now_ns < self.window.1 {
                    let put = self.p.picker.pick(&mut self.rng, self.groups);
                    self.ask(put, Some(c));
                }
            }
            Ev::CtlRequest(c, handle, req) => {
                if self.ctls[c].alive {
                    self.ctls[c].engine.handle(
                        now,
                        Event::Request {
                            handle,
                            req,
                            caller: Caller::admin("sim"),
                        },
                    );
                    self.pump_ctl(c);
                }
            }
            Ev::Answer(h, a) => self.answered(h, a),
            Ev::Release(h) => {
                let Some(p) = self.pending.remove(&h) else {
                    return;
                };
                let Some(lease_id) = p.lease else { return };
                self.release(p.ctl, lease_id, p.client, p.put.sender);
            }
        }
    }

    fn ask(&mut self, put: Put, client: Option<usize>) {
        self.stats.offered += 1;
        let ctl = self.controller_for(&put);
        let p = Pending {
            put,
            asked_ns: self.now_ns,
            client,
            lease: None,
            ctl,
            orphaned: false,
        };
        self.send_request(p);
    }

    /// The controller a node asks for `put`: its group's, unless the node
    /// found that one silent.
    fn controller_for(&self, put: &Put) -> usize {
        let n = self.ctls.len();
        let shunned = self.shunned.get(&put.sender).copied().unwrap_or(0);
        (0..n)
            .map(|i| (put.group + i) % n)
            .find(|c| shunned & (1 << c) == 0)
            .unwrap_or(put.group % n)
    }

    fn send_request(&mut self, pending: Pending) {
        let handle = self.next_handle;
        self.next_handle += 1;
        let put = &pending.put;
        let lat = self.f.host_to_ctl_us(put.sender) * 1000;
        let req = Request {
            parent: self.groups[put.group].parent.to_string(),
            vlan: Some(VLAN),
            targets: put
                .targets
                .iter()
                .map(|t| TargetSpec::Member(Member::Mac(self.f.hosts[*t].mac)))
                .collect(),
            lifetime_ms: None,
            requester: self.f.hosts[put.sender].name.clone(),
            path: "http",
        };
        let c = pending.ctl;
        let mut pending = pending;
        if !self.ctls[c].alive && !pending.orphaned {
            // Asked a controller that is dead (the node does not know yet).
            pending.orphaned = true;
            self.stats.stranded += 1;
        }
        self.pending.insert(handle, pending);
        // The request travels to the controller first.
        self.push(self.now_ns + lat, Ev::CtlRequest(c, handle, req));
        if self.ctls.len() > 1 {
            self.push(
                self.now_ns + self.p.failover_ms * 1_000_000,
                Ev::Timeout(handle),
            );
        }
    }

    fn release(&mut self, c: usize, lease_id: u64, client: Option<usize>, sender: usize) {
        if !self.ctls[c].alive {
            if let Some(k) = client {
                self.push(self.now_ns, Ev::ClientNext(k));
            }
            return;
        }
        let handle = self.next_handle;
        self.next_handle += 1;
        self.releasing.insert(handle, (client, sender));
        // The release travels to the controller like a request.
        let lat = self.f.host_to_ctl_us(sender) * 1000;
        self.push(self.now_ns + lat, Ev::CtlRelease(c, handle, lease_id));
    }

    /// No answer in time: the node asks the next controller.
    fn timed_out(&mut self, h: Handle) {
        let Some(p) = self.pending.get(&h) else {
            return;
        };
        if p.lease.is_some() {
            return;
        }
        let Some(mut p) = self.pending.remove(&h) else {
            return;
        };
        let all = (1u64 << self.ctls.len()) - 1;
        let bits = self.shunned.entry(p.put.sender).or_default();
        *bits |= 1 << p.ctl;
        if *bits == all {
            // Every controller was silent once: try the others again.
            *bits = 1 << p.ctl;
        }
        self.abandoned.insert(h, (p.ctl, p.put.sender));
        self.stats.failovers += 1;
        p.ctl = self.controller_for(&p.put);
        self.send_request(p);
    }

    fn kill(&mut self, c: usize) {
        self.ctls[c].alive = false;
        self.stats.killed_at_ns = Some(self.now_ns);
        let mut n = 0;
        for p in self.pending.values_mut() {
            if p.ctl == c && p.lease.is_none() {
                p.orphaned = true;
                n += 1;
            }
        }
        self.stats.in_flight_at_kill = n;
        self.stats.stranded += n;
        self.push(self.now_ns, Ev::Sample);
    }

    /// After a kill: groups of the dead controller's slice still on switches.
    fn sample(&mut self) {
        let n = self.ctls.len() as u32;
        let (lo, hi) = slice_bounds(0, n);
        let left: usize = self
            .sws
            .iter()
            .map(|s| {
                s.mem
                    .state()
                    .groups
                    .keys()
                    .filter(|(_, g)| {
                        let i = u32::from(g.segments()[7]);
                        (lo..hi).contains(&i)
                    })
                    .count()
            })
            .sum();
        if left == 0 {
            if self.stats.dead_groups_gone_ns.is_none() {
                self.stats.dead_groups_gone_ns = Some(self.now_ns);
            }
        } else {
            self.stats.dead_groups_gone_ns = None;
            self.push(self.now_ns + 250_000_000, Ev::Sample);
        }
    }

    fn answered(&mut self, h: Handle, a: Answer) {
        if let Some((c, sender)) = self.abandoned.remove(&h) {
            if let Answer::Granted(l) = a {
                self.release(c, l.id, None, sender);
            }
            return;
        }
        if let Some((client, _)) = self.releasing.remove(&h) {
            if let Some(c) = client {
                self.push(self.now_ns, Ev::ClientNext(c));
            }
            return;
        }
        let Some(p) = self.pending.get_mut(&h) else {
            return;
        };
        let counted = p.asked_ns >= self.window.0 && self.now_ns < self.window.1;
        let waited_us = (self.now_ns - p.asked_ns) / 1000;
        let put = p.put.clone();
        let client = p.client;
        if p.orphaned && counted {
            self.stats.orphan_waits_us.push(waited_us);
        }
        let payload = u128::from(self.p.payload_bytes);
        let unicast_links: u64 = put
            .targets
            .iter()
            .map(|t| self.f.unicast_links(put.sender, *t))
            .sum();
        match a {
            Answer::Granted(lease) => {
                p.lease = Some(lease.id);
                if counted {
                    let w = self.f.walk(put.sender, |sw| {
                        self.sws[sw]
                            .mem
                            .state()
                            .groups
                            .get(&(VLAN, lease.group))
                            .cloned()
                    });
                    let s = &mut self.stats;
                    s.puts += 1;
                    s.granted += 1;
                    s.grant_us.push(waited_us);
                    if lease.reused {
                        s.reused += 1;
                    } else {
                        s.waits_us.push(waited_us);
                    }
                    if !w.exact(&put.targets) {
                        s.delivery_errors += 1;
                    }
                    s.sender_bytes += payload;
                    s.fabric_bytes += payload * u128::from(w.links);
                    s.sender_bytes_unicast += payload * put.targets.len() as u128;
                    s.fabric_bytes_unicast += payload * u128::from(unicast_links);
                }
                let t = self.now_ns + self.p.transfer_ns();
                self.push(t, Ev::Release(h));
            }
            Answer::Refused(r) => {
                self.pending.remove(&h);
                if counted {
                    let s = &mut self.stats;
                    s.puts += 1;
                    *s.refusals.entry(r.reason.name().to_owned()).or_default() += 1;
                    // The node falls back to unicast.
                    s.sender_bytes += payload * put.targets.len() as u128;
                    s.sender_bytes_unicast += payload * put.targets.len() as u128;
                    s.fabric_bytes += payload * u128::from(unicast_links);
                    s.fabric_bytes_unicast += payload * u128::from(unicast_links);
                }
                if let Some(c) = client {
                    self.push(self.now_ns, Ev::ClientNext(c));
                }
            }
            Answer::Released(_) | Answer::NotReleased(_) => {}
        }
    }

    fn pump_ctl(&mut self, c: usize) {
        let now = self.at(self.now_ns);
        let from = self.ctls[c].addr;
        while let Some((to, bytes)) = self.ctls[c].engine.poll_transmit(now) {
            if let Some(&i) = self.by_addr.get(&to) {
                let t = self.now_ns + (self.f.ctl_to_switch_us(i) + self.p.agent_path_us) * 1000;
                self.push(t, Ev::AgentRx(i, from, bytes));
            }
        }
        let mut upto = None;
        while let Some(w) = self.ctls[c].engine.poll_store() {
            upto = Some(w.seq);
        }
        if let Some(u) = upto {
            let t = self.now_ns + self.p.store_us * 1000;
            self.push(t, Ev::StoreDone(c, u));
        }
        while let Some((h, a)) = self.ctls[c].engine.poll_reply() {
            let node = match self.pending.get(&h) {
                Some(p) => Some(p.put.sender),
                None => self.releasing.get(&h).map(|r| r.1),
            };
            let lat = node.map_or(0, |n| self.f.host_to_ctl_us(n) * 1000);
            self.push(self.now_ns + lat, Ev::Answer(h, a));
        }
        if let Some(t) = self.ctls[c].engine.poll_timeout() {
            let t = self.ns_of(t);
            if self.ctls[c].wake.is_none_or(|w| t < w) {
                self.ctls[c].wake = Some(t);
                self.push(t, Ev::CtlWake(c));
            }
        }
    }

    fn pump_agent(&mut self, i: usize) {
        while let Some(a) = self.sws[i].agent.poll_action() {
            let done = match &a {
                BackendAction::Apply { changes, .. } => {
                    let start = self.sws[i].busy_until.max(self.now_ns);
                    let w = self.window.0;
                    for k in 1..=changes.len() as u64 {
                        self.stats.switches[i].update_at(start + k * self.period_ns, w);
                    }
                    let done = start + changes.len() as u64 * self.period_ns;
                    self.sws[i].busy_until = done;
                    done + self.p.apply_us * 1000
                }
                _ => self.now_ns,
            };
            self.push(done, Ev::ActionDone(i, a));
        }
        while let Some(tx) = self.sws[i].agent.poll_transmit() {
            let t = self.now_ns + (self.f.ctl_to_switch_us(i) + self.p.agent_path_us) * 1000;
            let from = setup::agent_addr(i);
            if let Some(&c) = self.ctl_by_addr.get(&tx.to) {
                self.push(t, Ev::CtlRx(c, from, tx.bytes));
            }
        }
        if let Some(t) = self.sws[i].agent.poll_timeout() {
            let t = self.ns_of(t);
            if self.sws[i].wake.is_none_or(|w| t < w) {
                self.sws[i].wake = Some(t);
                self.push(t, Ev::AgentWake(i));
            }
        }
    }
}

/// Controller `i` of `n`'s slice of the pool's 65,536 addresses (low 16
/// bits), as the controller's `Pool::new` cuts it.
pub fn slice_bounds(i: u32, n: u32) -> (u32, u32) {
    let total = 65_536u32;
    let n = n.max(1);
    let start = total / n * i + i.min(total % n);
    let len = total / n + u32::from(i < total % n);
    (start, start + len)
}
