//! The backend-independent agent as a sans-I/O state machine (quinn-proto's
//! shape): datagrams and the current time in; sealed datagrams, backend
//! actions and the next deadline out. No sockets, no timers, no awaiting.
//!
//! ```text
//! daemon                                  Agent
//!   recv_from(bytes, from) ------------->  handle_datagram(bytes, from, now)
//!   backend.execute(action)  <-----------  poll_action()
//!   result ----------------------------->  on_action_done(id, result, now)
//!   send_to(bytes, to)       <-----------  poll_transmit()
//!   sleep_until(deadline)    <-----------  poll_timeout()
//!   deadline reached ------------------->  handle_timeout(now)
//! ```
//!
//! Where each decision lives:
//! - [`auth`]: which datagrams reach the core (keys, sources, replay); the
//!   others are counted, never answered.
//! - [`validate`], [`rule`], [`plan`]: the ports of each item, from the
//!   switch's [`view::SwitchView`] (refreshed once when it cannot answer).
//! - [`apply`]: retransmission / refresh / replace, capacity, the changes
//!   sent to the switch, and the leases after it confirmed them.
//! - [`batch`]: SET_SUBSET, CLEAR and BATCH as one all-or-nothing list.
//! - [`leases`]: expiry. [`answers`]: retransmitted instructions get the
//!   same answer. [`hello`]: HELLO until HELLO_ACK, HEARTBEAT.
//! - [`metrics`]: Prometheus counters.
//!
//! One backend action runs at a time; instructions that arrive meanwhile
//! wait in order (their lookups happen when their turn comes, so they see
//! the result of the one before).

pub mod action;
pub mod answers;
pub mod apply;
pub mod auth;
pub mod batch;
pub mod clock;
pub mod hello;
pub mod leases;
pub mod metrics;
pub mod plan;
pub mod reload;
pub mod repush;
pub mod rule;
pub mod validate;
pub mod view;

#[cfg(test)]
mod tests;

use crate::backend::{BackendError, PortSet};
use action::{ActionId, ActionResult, BackendAction, Refresh};
use answers::Answers;
use apply::{ApplyCtx, Plan};
use auth::Gate;
use batch::Instruction;
pub use clock::Now;
use hello::HelloTimer;
use leases::{Lease, Leases};
use metrics::Metrics;
use plan::PlanCtx;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_proto::{Heartbeat, Hello, Key, Keyring, Message, Nak, NakReason, Sealer};
use validate::{Parents, Refusal};
use view::SwitchView;

/// Instructions waiting for the backend beyond this are refused (NAK
/// backend-error, "busy").
pub const MAX_QUEUED: usize = 1024;
/// Retry interval of a failed removal (expiry, repair, start cleanup).
pub const RETRY: Duration = Duration::from_secs(1);
/// How long an applied instruction's answer is kept for retransmissions.
pub const ANSWER_TTL: Duration = Duration::from_secs(120);
/// Most answers kept.
pub const ANSWER_CAP: usize = 8192;

/// What the core needs from the configuration.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub switch_id: u32,
    pub rendezvous_range: ipnet::Ipv6Net,
    pub max_lifetime_ms: u32,
    pub max_clock_skew_ms: u64,
    pub parents: Parents,
    /// Where HELLO and HEARTBEAT go.
    pub controller: SocketAddr,
    /// Source networks instructions are accepted from (empty: any).
    pub controller_sources: Vec<ipnet::IpNet>,
    pub heartbeat_interval: Duration,
    /// Configured table capacity: sets it (SNMP) or lowers the backend's.
    pub table_capacity: Option<u32>,
    /// Period of the guard sweep (switches whose table others can write).
    pub sweep_interval: Option<Duration>,
}

impl AgentSettings {
    pub fn from_config(c: &crate::config::Config) -> Self {
        AgentSettings {
            switch_id: c.switch_id,
            rendezvous_range: c.rendezvous_range,
            max_lifetime_ms: c.max_lifetime_ms,
            max_clock_skew_ms: c.max_clock_skew_ms,
            parents: Parents::new(&c.parent_groups),
            controller: c.controller,
            controller_sources: c.controller_sources.clone(),
            heartbeat_interval: Duration::from_millis(c.heartbeat_interval_ms),
            table_capacity: c.table_capacity,
            sweep_interval: c.sweep_interval(),
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Removing what an earlier run left; nothing else happens yet.
    Starting,
    Running,
    /// Removing everything before exit.
    Stopping,
    Stopped,
}

/// Work waiting for the backend, in order.
#[derive(Debug)]
enum Work {
    Clean,
    Instruction(Box<Instruction>),
    Expire,
    Sweep,
    /// Make the switch hold exactly the leases for these groups again
    /// (after an undo failed): (VLAN, group) -> ports that may be installed.
    Repair(BTreeMap<(u16, Ipv6Addr), PortSet>),
    /// Plan every live group again (a port changed state; `repush.rs`).
    Repush,
    Shutdown,
}

/// The action in the backend and what to do with its result.
#[derive(Debug)]
enum InFlight {
    Clean,
    Refresh(Box<Instruction>),
    Apply(Box<Instruction>, Plan),
    Expire(Vec<(Ipv6Addr, Lease)>),
    Sweep,
    Repair(BTreeMap<(u16, Ipv6Addr), PortSet>),
    /// Re-pushed groups and their new ports.
    Repush(Vec<(Ipv6Addr, PortSet)>),
    Shutdown,
}

/// The agent's state over one switch.
#[derive(Debug)]
pub struct Agent {
    settings: AgentSettings,
    view: Arc<dyn SwitchView>,
    gate: Gate,
    sealer: Sealer,
    leases: Leases,
    answers: Answers,
    hello: HelloTimer,
    metrics: Arc<Metrics>,
    started: Instant,
    instance: u64,
    phase: Phase,
    queue: VecDeque<Work>,
    inflight: Option<(ActionId, InFlight)>,
    next_id: u64,
    actions: VecDeque<BackendAction>,
    transmits: VecDeque<Transmit>,
    expire_queued: bool,
    next_sweep: Option<Instant>,
    /// Work to queue again at a time (failed cleanup or repair).
    retry: Vec<(Instant, Work)>,
    /// A [`Work::Repush`] waits in the queue.
    repush_queued: bool,
}

impl Agent {
    /// `controller_keys` open instructions (never the agent's own key);
    /// `own_key` seals everything the agent sends. The first action removes
    /// what an earlier run left in the rendezvous range; HELLO follows.
    pub fn new(
        settings: AgentSettings,
        view: Arc<dyn SwitchView>,
        controller_keys: Keyring,
        own_key: Key,
        metrics: Arc<Metrics>,
        now: Now,
    ) -> Self {
        let gate = Gate::new(
            controller_keys,
            settings.max_clock_skew_ms.saturating_mul(1000),
            settings.controller_sources.clone(),
            metrics.clone(),
            now,
        );
        let mut a = Agent {
            sealer: Sealer::new(own_key, settings.switch_id, now.unix_us),
            gate,
            hello: HelloTimer::new(settings.heartbeat_interval),
            settings,
            view,
            leases: Leases::default(),
            answers: Answers::new(ANSWER_TTL, ANSWER_CAP),
            metrics,
            started: now.at,
            instance: now.unix_us,
            phase: Phase::Starting,
            queue: VecDeque::from([Work::Clean]),
            inflight: None,
            next_id: 1,
            actions: VecDeque::new(),
            transmits: VecDeque::new(),
            expire_queued: false,
            next_sweep: None,
            retry: Vec::new(),
            repush_queued: false,
        };
        a.advance(now);
        a
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// This run's identity in HELLO (its start time in microseconds).
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// Whether the controller acknowledged this run's HELLO.
    pub fn hello_acked(&self) -> bool {
        self.hello.acked()
    }

    /// Whether the start cleanup is done (HELLO sent).
    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }

    /// Whether shutdown removed everything.
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// Whether no action is in the backend and nothing waits for it.
    pub fn is_idle(&self) -> bool {
        self.inflight.is_none() && self.queue.is_empty() && self.actions.is_empty()
    }

    /// The capacity reported in HELLO/HEARTBEAT and enforced on installs:
    /// the backend's, lowered (or, when it has none, set) by configuration.
    pub fn table_capacity(&self) -> Option<u32> {
        match (self.view.table_capacity(), self.settings.table_capacity) {
            (Some(b), Some(c)) => Some(b.min(c)),
            (b, c) => b.or(c),
        }
    }

    // ---- events in -------------------------------------------------------

    /// One datagram received from `from`.
    pub fn handle_datagram(&mut self, bytes: &[u8], from: SocketAddr, now: Now) {
        let Some(dg) = self.gate.open(bytes, from, now) else {
            return;
        };
        let sender = dg.header.sender_id;
        if let Message::HelloAck(h) = &dg.message {
            if h.switch_id == self.settings.switch_id && h.instance == self.instance {
                if !self.hello.acked() {
                    tracing::info!(instance = h.instance, "HELLO acknowledged");
                }
                self.hello.on_ack();
                self.metrics.hello_acked.set(1);
            } else {
                tracing::debug!(
                    switch = h.switch_id,
                    instance = h.instance,
                    "HELLO_ACK for another switch or run ignored"
                );
            }
            return;
        }
        let sealed_us = dg.header.timestamp_us;
        let Some(instr) = Instruction::from_message(&dg.message, from, sender, now) else {
            let kind = dg.message.name();
            self.metrics.count(kind, Some(NakReason::Malformed));
            let nak = Message::Nak(Nak {
                txid: dg.message.txid().unwrap_or(0),
                switch_id: self.settings.switch_id,
                reason: NakReason::Malformed,
                detail: format!(
                    "an agent accepts SET_SUBSET, CLEAR, BATCH and HELLO_ACK, not {kind}"
                ),
            });
            self.send(from, &nak, now);
            return;
        };
        self.metrics.stage(
            "transit_in",
            now.unix_us.saturating_sub(sealed_us) as f64 / 1e6,
        );
        let key = (sender, instr.txid);
        if let Some(answer) = self.answers.get(key, now.at).cloned() {
            tracing::debug!(
                txid = instr.txid,
                kind = instr.kind(),
                "retransmission: same answer again"
            );
            self.metrics.count(instr.kind(), None);
            self.send(from, &answer, now);
            return;
        }
        if self.is_pending(key) {
            tracing::debug!(
                txid = instr.txid,
                "retransmission of an instruction in progress: answered when done"
            );
            return;
        }
        if matches!(self.phase, Phase::Stopping | Phase::Stopped) {
            return;
        }
        if self.queue.len() >= MAX_QUEUED {
            let r = Refusal::new(
                NakReason::BackendError,
                format!("agent busy: {MAX_QUEUED} instructions wait for the switch"),
            );
            self.refuse(&instr, None, &r, now);
            return;
        }
        self.queue.push_back(Work::Instruction(Box::new(instr)));
        self.advance(now);
    }

    /// The result of the action `id`.
    pub fn on_action_done(&mut self, id: ActionId, result: ActionResult, now: Now) {
        let Some((want, what)) = self.inflight.take() else {
            tracing::warn!(?id, "result of an action not in flight ignored");
            return;
        };
        if want != id {
            tracing::warn!(?id, ?want, "result of another action ignored");
            self.inflight = Some((want, what));
            return;
        }
        match what {
            InFlight::Clean => match result {
                Ok(()) if self.phase != Phase::Starting => {}
                Ok(()) => {
                    self.phase = Phase::Running;
                    self.hello.start(now.at);
                    self.next_sweep = self.settings.sweep_interval.map(|d| now.at + d);
                    tracing::info!(switch_id = self.settings.switch_id, capacity = ?self.table_capacity(), "agent ready");
                    self.timers(now);
                }
                Err(_) if self.phase != Phase::Starting => {}
                Err(e) => {
                    tracing::error!(error = %e.error, "removing stale groups at start failed; retrying in 1 s (no HELLO until it succeeds)");
                    self.retry.push((now.at + RETRY, Work::Clean));
                }
            },
            InFlight::Refresh(mut instr) => match result {
                Ok(()) => {
                    instr.refreshed = true;
                    self.start_instruction(instr, now);
                }
                Err(e) => {
                    let r = backend_refusal(&e.error);
                    self.refuse(&instr, None, &r, now);
                }
            },
            InFlight::Apply(instr, plan) => match result {
                Ok(()) => self.confirm(&instr, plan, now),
                Err(e) => {
                    let item = e.change.and_then(|c| plan.change_item.get(c).copied());
                    if e.uncertain {
                        tracing::error!(txid = instr.txid, error = %e.error, "the switch refused part of an instruction and the undo failed: repairing");
                        self.queue
                            .push_front(Work::Repair(apply::suspects(&plan.changes)));
                    }
                    let r = backend_refusal(&e.error);
                    self.refuse(&instr, item, &r, now);
                }
            },
            InFlight::Expire(taken) => self.expired(taken, result, now),
            InFlight::Sweep => {
                if let Err(e) = result {
                    tracing::warn!(error = %e.error, "guard sweep failed");
                }
                self.next_sweep = self.settings.sweep_interval.map(|d| now.at + d);
            }
            InFlight::Repair(suspects) => match result {
                Ok(()) => tracing::info!(groups = suspects.len(), "switch repaired"),
                Err(e) => {
                    tracing::error!(error = %e.error, "repair failed; retrying in 1 s");
                    self.retry.push((now.at + RETRY, Work::Repair(suspects)));
                }
            },
            InFlight::Repush(done) => self.repush_done(done, result, now),
            InFlight::Shutdown => {
                if let Err(e) = result {
                    tracing::error!(error = %e.error, "removing groups at shutdown failed");
                }
                self.leases = Leases::default();
                self.phase = Phase::Stopped;
            }
        }
        self.metrics.installed_groups.set(self.leases.len() as i64);
        self.advance(now);
    }

    /// Timers: lease expiry, HELLO retries, HEARTBEAT, sweeps, retries.
    pub fn handle_timeout(&mut self, now: Now) {
        self.timers(now);
        self.advance(now);
    }

    /// Stops: pending instructions are dropped, every installed group is
    /// removed; [`Agent::is_stopped`] once done.
    pub fn shutdown(&mut self, now: Now) {
        if matches!(self.phase, Phase::Stopping | Phase::Stopped) {
            return;
        }
        self.phase = Phase::Stopping;
        self.queue.clear();
        self.retry.clear();
        self.queue.push_back(Work::Shutdown);
        self.advance(now);
    }

    // ---- outputs -----------------------------------------------------------

    /// The next action for the backend.
    pub fn poll_action(&mut self) -> Option<BackendAction> {
        self.actions.pop_front()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`Agent::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = if self.expire_queued || self.phase != Phase::Running {
            None
        } else {
            self.leases.next_deadline()
        };
        let running = self.phase == Phase::Running;
        [
            expiry,
            running.then(|| self.hello.poll_timeout()).flatten(),
            running.then_some(self.next_sweep).flatten(),
            self.gate.poll_timeout(),
            self.retry.iter().map(|(t, _)| *t).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- inside ------------------------------------------------------------

    fn timers(&mut self, now: Now) {
        self.gate.flush(now);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retry)
            .into_iter()
            .partition(|(t, _)| *t <= now.at);
        self.retry = later;
        for (_, w) in due {
            self.queue.push_front(w);
        }
        if self.phase != Phase::Running {
            return;
        }
        if !self.expire_queued && self.leases.next_deadline().is_some_and(|d| d <= now.at) {
            self.expire_queued = true;
            self.queue.push_back(Work::Expire);
        }
        if self.next_sweep.is_some_and(|t| t <= now.at) {
            self.next_sweep = None;
            self.queue.push_back(Work::Sweep);
        }
        if self.hello.hello_due(now.at) {
            let m = Message::Hello(Hello {
                switch_id: self.settings.switch_id,
                backend: self.view.kind(),
                port_count: self.view.port_count(),
                table_capacity: self.table_capacity().unwrap_or(0),
                instance: self.instance,
                software_version: env!("CARGO_PKG_VERSION").to_owned(),
            });
            self.metrics.hello_sent.inc();
            tracing::debug!(n = self.hello.sent, "HELLO");
            self.send(self.settings.controller, &m, now);
        }
        if self.hello.heartbeat_due(now.at) {
            let m = Message::Heartbeat(Heartbeat {
                switch_id: self.settings.switch_id,
                installed_groups: self.leases.len() as u32,
                uptime_s: now.at.saturating_duration_since(self.started).as_secs() as u32,
                table_capacity: self.table_capacity().unwrap_or(0),
            });
            self.send(self.settings.controller, &m, now);
        }
        self.metrics
            .table_capacity
            .set(i64::from(self.table_capacity().unwrap_or(0)));
    }

    fn is_pending(&self, key: answers::TxKey) -> bool {
        let same = |i: &Instruction| (i.sender_id, i.txid) == key;
        self.queue
            .iter()
            .any(|w| matches!(w, Work::Instruction(i) if same(i)))
            || matches!(&self.inflight, Some((_, InFlight::Refresh(i) | InFlight::Apply(i, _))) if same(i))
    }

    fn action_id(&mut self) -> ActionId {
        let id = ActionId(self.next_id);
        self.next_id += 1;
        id
    }

    fn emit(&mut self, make: impl FnOnce(ActionId) -> BackendAction, what: InFlight) {
        let id = self.action_id();
        self.actions.push_back(make(id));
        self.inflight = Some((id, what));
        self.metrics.backend_actions.inc();
    }

    /// Starts queued work until an action is in the backend.
    fn advance(&mut self, now: Now) {
        while self.inflight.is_none() {
            if self.phase == Phase::Starting && !matches!(self.queue.front(), Some(Work::Clean)) {
                return;
            }
            let Some(w) = self.queue.pop_front() else {
                return;
            };
            match w {
                Work::Clean => {
                    let range = self.settings.rendezvous_range;
                    self.emit(
                        |id| BackendAction::CleanStart { id, range },
                        InFlight::Clean,
                    );
                }
                Work::Instruction(i) => self.start_instruction(i, now),
                Work::Expire => {
                    self.expire_queued = false;
                    let taken = self.leases.take_expired(now.at);
                    if !taken.is_empty() {
                        let changes = taken
                            .iter()
                            .map(|(g, l)| action::Change::Remove {
                                vlan: l.vlan,
                                group: *g,
                                ports: l.ports.clone(),
                            })
                            .collect();
                        self.emit(
                            |id| BackendAction::Apply { id, changes },
                            InFlight::Expire(taken),
                        );
                    }
                }
                Work::Sweep => {
                    let range = self.settings.rendezvous_range;
                    let keep: BTreeSet<(u16, Ipv6Addr)> =
                        self.leases.iter().map(|(g, l)| (l.vlan, *g)).collect();
                    self.emit(
                        |id| BackendAction::Sweep { id, range, keep },
                        InFlight::Sweep,
                    );
                }
                Work::Repair(suspects) => {
                    let changes = apply::repair(&suspects, &self.leases);
                    self.emit(
                        |id| BackendAction::Apply { id, changes },
                        InFlight::Repair(suspects),
                    );
                }
                Work::Repush => self.start_repush(),
                Work::Shutdown => {
                    let changes: Vec<action::Change> = self
                        .leases
                        .iter()
                        .map(|(g, l)| action::Change::Remove {
                            vlan: l.vlan,
                            group: *g,
                            ports: l.ports.clone(),
                        })
                        .collect();
                    if changes.is_empty() {
                        self.phase = Phase::Stopped;
                    } else {
                        tracing::info!(
                            groups = changes.len(),
                            "stopping: removing installed groups"
                        );
                        self.emit(
                            |id| BackendAction::Apply { id, changes },
                            InFlight::Shutdown,
                        );
                    }
                }
            }
        }
    }

    /// Plans an instruction: answers it at once, or hands the backend a
    /// refresh or the changes.
    fn start_instruction(&mut self, instr: Box<Instruction>, now: Now) {
        let mut need = Refresh::default();
        let ctx = PlanCtx {
            parents: &self.settings.parents,
            range: &self.settings.rendezvous_range,
            view: self.view.as_ref(),
            refreshed: instr.refreshed,
        };
        let items = match plan::plan_items(&instr.items, ctx, &mut need) {
            Err((i, r)) => return self.refuse(&instr, Some(i), &r, now),
            Ok(None) => {
                tracing::debug!(
                    txid = instr.txid,
                    members = need.members.len(),
                    parents = need.parents.len(),
                    "reading the switch first"
                );
                return self.emit(
                    |id| BackendAction::Refresh { id, refresh: need },
                    InFlight::Refresh(instr),
                );
            }
            Ok(Some(items)) => items,
        };
        let ctx = ApplyCtx {
            leases: &self.leases,
            txid: instr.txid,
            received: instr.received.at,
            max_lifetime_ms: self.settings.max_lifetime_ms,
            capacity: self.table_capacity(),
        };
        match apply::build(items, ctx) {
            Err((i, r)) => self.refuse(&instr, i, &r, now),
            Ok(plan) if plan.changes.is_empty() => self.confirm(&instr, plan, now),
            Ok(plan) => {
                let changes = plan.changes.clone();
                self.emit(
                    |id| BackendAction::Apply { id, changes },
                    InFlight::Apply(instr, plan),
                );
            }
        }
    }

    /// The switch holds the plan's changes: record and answer.
    fn confirm(&mut self, instr: &Instruction, plan: Plan, now: Now) {
        let extended = plan
            .steps
            .iter()
            .filter(|s| matches!(s, apply::Step::Extend { .. }))
            .count();
        self.metrics.lease_refreshes.inc_by(extended as u64);
        let counts = apply::commit(plan, &mut self.leases);
        tracing::debug!(txid = instr.txid, kind = instr.kind(), ?counts, "applied");
        let answer = instr.ack(self.settings.switch_id, counts);
        self.answers
            .insert((instr.sender_id, instr.txid), answer.clone(), now.at);
        self.metrics.count(instr.kind(), None);
        self.observe(instr, now);
        self.send(instr.from, &answer, now);
    }

    fn refuse(&mut self, instr: &Instruction, item: Option<usize>, r: &Refusal, now: Now) {
        tracing::info!(kind = instr.kind(), txid = instr.txid, ?item, reason = r.reason.name(), detail = %r.detail, "NAK");
        self.metrics.count(instr.kind(), Some(r.reason));
        self.observe(instr, now);
        let nak = instr.nak(self.settings.switch_id, item, r);
        self.send(instr.from, &nak, now);
    }

    fn observe(&self, instr: &Instruction, now: Now) {
        self.metrics.installed_groups.set(self.leases.len() as i64);
        let took = now
            .at
            .saturating_duration_since(instr.received.at)
            .as_secs_f64();
        self.metrics.apply_latency.observe(took);
        self.metrics.stage("answer", took);
    }

    fn expired(&mut self, taken: Vec<(Ipv6Addr, Lease)>, result: ActionResult, now: Now) {
        match result {
            Ok(()) => {
                for (group, l) in &taken {
                    tracing::debug!(%group, txid = l.txid, "lease expired");
                }
                self.metrics.expired.inc_by(taken.len() as u64);
            }
            Err(e) => {
                tracing::error!(error = %e.error, groups = taken.len(), "removing expired groups failed; retrying");
                if e.uncertain {
                    let changes: Vec<action::Change> = taken
                        .iter()
                        .map(|(g, l)| action::Change::Remove {
                            vlan: l.vlan,
                            group: *g,
                            ports: l.ports.clone(),
                        })
                        .collect();
                    self.queue
                        .push_front(Work::Repair(apply::suspects(&changes)));
                }
                // The group the switch refused waits a second; the others
                // are retried at once (the removal is all or nothing).
                for (i, (group, mut l)) in taken.into_iter().enumerate() {
                    if e.change.is_none_or(|c| c == i) {
                        l.expires = now.at + RETRY;
                    }
                    if !e.uncertain {
                        self.leases.insert(group, l);
                    }
                }
            }
        }
    }

    fn send(&mut self, to: SocketAddr, m: &Message, now: Now) {
        let bytes = self.sealer.seal(m, now.unix_us);
        self.transmits.push_back(Transmit { to, bytes });
    }
}

fn backend_refusal(e: &BackendError) -> Refusal {
    match e {
        BackendError::TableFull(d) => Refusal::new(NakReason::TableFull, d.clone()),
        other => Refusal::new(NakReason::BackendError, other.to_string()),
    }
}
