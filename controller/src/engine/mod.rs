//! The controller's engine: a sans-I/O state machine in the quinn-proto
//! style. It takes events and the time, and hands out datagrams to send,
//! store writes, answers to HTTP requests and its next deadline; it owns
//! no socket, no database, no timer and no lock. The daemon
//! ([`crate::daemon`]) drives it; unit tests drive it under simulated time.
//!
//! Where each decision lives:
//! - [`resolve`]: is a request valid, which group key does it name;
//! - [`grant`]: hit, join or miss; refreshes; blocked misses;
//! - [`rounds`]: install and refresh rounds end: grant or refuse;
//! - [`groups`]: the group table, reference counts, LRU index;
//! - [`budget`]: per-switch budgets, occupancy, what to evict;
//! - [`evict`]: clearing groups, lingering after failed CLEARs;
//! - [`expiry`]: lease ends, warm ends, refreshes of agent lifetimes;
//! - [`fanout`]: per-agent instructions, BATCHes, retransmission;
//! - [`agents`]: HELLO, HELLO_ACK, HEARTBEAT, liveness, capacity;
//! - [`inbound`]: opening datagrams, who may say what, UDP rendezvous;
//! - [`preenum`]: target sets installed ahead of time;
//! - [`recover`]: restart from the store;
//! - [`reload`]: a new config applied live, or refused naming the key;
//! - [`inspect`]: what the status API, the CLI and the status page show.

mod agents;
mod budget;
mod evict;
mod expiry;
pub mod fanout;
mod grant;
pub mod groups;
mod ids;
mod inbound;
pub mod inspect;
mod outcomes;
mod preenum;
mod recover;
pub mod reload;
mod resolve;
mod rounds;
#[cfg(test)]
mod tests;
mod timers;
mod types;

pub use agents::AgentStatus;
pub use fanout::Policy;
pub use ids::Clock;
pub use inspect::{BudgetStatus, GroupStatus, RefusalRecord, SwitchPresence};
pub use recover::Loaded;
pub use reload::{Refused, ReloadReport};
pub use types::*;

use crate::config::Config;
use crate::leases::{Lease, LeaseBook};
use crate::metrics::Metrics;
use crate::pool::Pool;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where an answer goes.
#[derive(Debug, Clone)]
pub(crate) enum ReplyTo {
    Http(Handle),
    Udp {
        to: SocketAddr,
        key_id: u32,
        sender: u32,
        request_id: u64,
    },
}

/// A lease waiting for its group, with where its answer goes.
#[derive(Debug, Clone)]
pub(crate) struct Waiting {
    pub reply: ReplyTo,
    pub path: &'static str,
    pub since: Instant,
}

/// Counters the benches and tests read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub hits: u64,
    pub joins: u64,
    pub misses: u64,
    pub refusals: u64,
    pub evictions: u64,
    pub refreshes: u64,
    pub installs_acked: u64,
}

#[derive(Debug)]
pub struct Engine {
    pub(crate) cfg: Arc<Config>,
    pub(crate) metrics: Arc<Metrics>,
    clock: Clock,
    ids: ids::Ids,
    sealing: ids::Sealing,
    opener: ids::Opening,
    agents: agents::AgentTable,
    budgets: budget::Budgets,
    groups: groups::Groups,
    leases: LeaseBook,
    waiting: HashMap<u64, Waiting>,
    pools: HashMap<u16, Pool>,
    marks: HashMap<u16, recover::Mark>,
    fanout: fanout::Fanout,
    timers: timers::Timers,
    store_q: VecDeque<StoreWrite>,
    store_seq: u64,
    durable: u64,
    after_store: Vec<(u64, ReplyTo, Answer, Instant)>,
    parked: Vec<(u64, groups::Gid)>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    replies: VecDeque<(Handle, Answer)>,
    blocked: VecDeque<grant::Blocked>,
    slots_freed: bool,
    dedup: inbound::Dedup,
    usage: preenum::Usage,
    /// Per VLAN: addresses still being swept after a restart.
    sweeping: HashMap<u16, usize>,
    audit_buf: Vec<crate::store::AuditEntry>,
    refusals: VecDeque<RefusalRecord>,
    /// The one-way delay of the UDP request being handled (seconds), for
    /// the miss breakdown.
    rx_transit: Option<f64>,
    pub stats: Stats,
}

impl Engine {
    /// A fresh engine for `cfg`. `unix_us` is the wall clock at `now`;
    /// `seed` seeds the lease id generator (random in the daemon).
    pub fn new(
        cfg: Arc<Config>,
        metrics: Arc<Metrics>,
        now: Instant,
        unix_us: u64,
        seed: [u8; 32],
    ) -> Engine {
        let pools = cfg
            .vlans
            .values()
            .map(|v| (v.id, Pool::new(&v.pool, cfg.pool_slice.0, cfg.pool_slice.1)))
            .collect();
        let policy = Policy {
            rto: cfg.retransmit,
            attempts: cfg.attempts,
        };
        let mut e = Engine {
            clock: Clock::new(now, unix_us),
            ids: ids::Ids::new(cfg.controller_id, unix_us, seed),
            sealing: ids::Sealing::new(cfg.controller_id, cfg.keys.clone(), unix_us),
            opener: ids::Opening::new(&cfg.keys),
            agents: agents::AgentTable::new(&cfg),
            budgets: budget::Budgets::new(&cfg),
            groups: groups::Groups::default(),
            leases: LeaseBook::default(),
            waiting: HashMap::new(),
            pools,
            marks: HashMap::new(),
            fanout: fanout::Fanout::new(policy),
            timers: timers::Timers::default(),
            store_q: VecDeque::new(),
            store_seq: 0,
            durable: 0,
            after_store: Vec::new(),
            parked: Vec::new(),
            transmits: VecDeque::new(),
            replies: VecDeque::new(),
            blocked: VecDeque::new(),
            slots_freed: false,
            dedup: inbound::Dedup::default(),
            usage: preenum::Usage::default(),
            sweeping: HashMap::new(),
            audit_buf: Vec::new(),
            refusals: VecDeque::new(),
            rx_transit: None,
            stats: Stats::default(),
            cfg,
            metrics,
        };
        e.timers
            .at(now + inbound::DEDUP_SWEEP, timers::Timer::DedupSweep);
        e.timers
            .at(now + preenum::PERIOD, timers::Timer::Preenumerate);
        e
    }

    /// Re-anchors the wall clock (the driver calls it as it runs).
    pub fn sync_wall(&mut self, now: Instant, unix_us: u64) {
        self.clock = Clock::new(now, unix_us);
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    /// Handles one event.
    pub fn handle(&mut self, now: Instant, ev: Event) {
        match ev {
            Event::Datagram { from, bytes } => self.on_datagram(now, from, &bytes),
            Event::Request {
                handle,
                req,
                caller,
            } => self.request(now, req, caller, ReplyTo::Http(handle)),
            Event::Release {
                handle,
                lease_id,
                caller,
            } => self.release(now, handle, lease_id, &caller),
            Event::StoreDone { upto } => self.on_store_done(now, upto),
        }
        self.settle(now);
    }

    /// A datagram by reference (the daemon's receive path).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.on_datagram(now, from, bytes);
        self.settle(now);
    }

    /// Runs what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.fanout.handle_timeout(now);
        while let Some(t) = self.timers.pop_due(now) {
            self.on_timer(now, t);
        }
        self.settle(now);
    }

    /// The next instant `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.timers.next(), self.fanout.next_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(t);
        }
        let (sw, msg) = self.fanout.poll_transmit(now, &mut self.ids)?;
        let Some(s) = self.cfg.switch(sw) else {
            return self.poll_transmit(now);
        };
        let (addr, key) = (s.agent, s.key_id);
        if let subcast_proto::Message::Batch(b) = &msg {
            self.metrics.batches.inc();
            self.metrics.batch_items.inc_by(b.items.len() as u64);
        }
        match self.sealing.seal(key, &msg, self.clock.unix_us(now)) {
            Some(bytes) => Some((addr, bytes)),
            None => {
                tracing::error!(switch = sw, key_id = key, "no key to seal for agent");
                self.poll_transmit(now)
            }
        }
    }

    /// The next durable change for the store.
    pub fn poll_store(&mut self) -> Option<StoreWrite> {
        self.store_q.pop_front()
    }

    /// The next answer to an HTTP request.
    pub fn poll_reply(&mut self) -> Option<(Handle, Answer)> {
        self.replies.pop_front()
    }

    /// Work that follows from whatever just happened: item outcomes,
    /// blocked misses.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(d) = self.fanout.poll_done() {
                self.on_item_done(now, d);
                progressed = true;
            }
            if self.slots_freed {
                self.slots_freed = false;
                self.retry_blocked(now);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        self.flush_audit();
        self.metrics.leases_live.set(self.leases.len() as i64);
    }

    fn on_timer(&mut self, now: Instant, t: timers::Timer) {
        use timers::Timer::*;
        match t {
            LeaseEnd(id) => self.lease_due(now, id),
            WarmEnd { gid, generation } => self.warm_due(now, gid, generation),
            Refresh(gid) => self.refresh_due(now, gid),
            Linger { gid, switch } => self.linger_due(now, gid, switch),
            Blocked(id) => self.blocked_due(now, id),
            Join(sw) => {
                if self.agents.said_hello(sw) {
                    self.join_push(now, sw);
                }
            }
            Preenumerate => {
                self.preenumerate(now);
                self.timers.at(now + preenum::PERIOD, Preenumerate);
            }
            DedupSweep => {
                self.dedup.sweep(now);
                self.timers.at(now + inbound::DEDUP_SWEEP, DedupSweep);
            }
        }
    }

    /// Queues a durable write; returns its sequence number.
    fn write(&mut self, op: StoreOp) -> u64 {
        self.store_seq += 1;
        self.store_q.push_back(StoreWrite {
            seq: self.store_seq,
            op,
        });
        self.store_seq
    }

    fn on_store_done(&mut self, now: Instant, upto: u64) {
        if upto <= self.durable {
            return;
        }
        self.durable = upto;
        let due: Vec<_> = {
            let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.after_store)
                .into_iter()
                .partition(|(seq, ..)| *seq <= upto);
            self.after_store = keep;
            due
        };
        for (_, to, ans, since) in due {
            if let Answer::Granted(l) = &ans
                && !l.reused
            {
                self.metrics.phase(
                    "store_wait",
                    now.saturating_duration_since(since).as_secs_f64(),
                );
            }
            self.deliver(now, to, ans);
        }
        let parked: Vec<groups::Gid> = {
            let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked)
                .into_iter()
                .partition(|(seq, _)| *seq <= upto);
            self.parked = keep;
            due.into_iter().map(|(_, g)| g).collect()
        };
        for gid in parked {
            self.send_install(now, gid);
        }
    }

    /// Answers once `seq` is durable.
    fn answer(&mut self, now: Instant, to: ReplyTo, ans: Answer, seq: u64) {
        if seq > self.durable {
            self.after_store.push((seq, to, ans, now));
        } else {
            if let Answer::Granted(l) = &ans
                && !l.reused
            {
                self.metrics.phase("store_wait", 0.0);
            }
            self.deliver(now, to, ans);
        }
    }

    fn deliver(&mut self, now: Instant, to: ReplyTo, ans: Answer) {
        match to {
            ReplyTo::Http(h) => self.replies.push_back((h, ans)),
            ReplyTo::Udp {
                to,
                key_id,
                sender,
                request_id,
            } => self.answer_udp(now, to, key_id, sender, request_id, &ans),
        }
    }

    // ---- queries (the daemon answers status requests from these) ----

    pub fn leases(&self) -> Vec<Lease> {
        self.leases.list()
    }

    pub fn lease_count(&self) -> usize {
        self.leases.len()
    }

    pub fn lease(&self, id: u64) -> Option<Lease> {
        self.leases.get(id).map(|h| h.lease.clone())
    }

    /// Addresses of `vlan`'s pool slice in use (by groups, live or not).
    pub fn pool_in_use(&self, vlan: u16) -> usize {
        self.pools.get(&vlan).map_or(0, |p| p.in_use())
    }

    /// Timers and transactions pending (for tests and the bench).
    pub fn backlog(&self) -> (usize, usize) {
        (self.timers.len(), self.fanout.in_flight())
    }

    pub fn fanout_stats(&self) -> fanout::Stats {
        self.fanout.stats
    }

    fn ms_until(now: Instant, t: Instant) -> u32 {
        u32::try_from(t.saturating_duration_since(now).as_millis())
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Slack added to an agent's expiry to cover delivery delay.
    fn slack(&self) -> Duration {
        Duration::from_millis(500)
    }
}
