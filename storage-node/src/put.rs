//! The client side of putting one chunk, without I/O.
//!
//! PUT_PROPOSAL to the negotiating group -> bids within a timeout -> R
//! targets by earliest start, queue depth, free space -> (rendezvous: the
//! owner asks the controller) -> PUT_ACCEPT to the negotiating group ->
//! DATA to the delivery destination(s), pulled by the owner's pacer ->
//! ACKs from every target. NACKed ranges are repeated to the target that
//! asked; a silent target is polled with a unicast PUT_ACCEPT, and after
//! `max_polls` it is replaced by the next bidder.

use crate::bids::Bidder;
use crate::groups::GroupAnswer;
use crate::members::Round;
use crate::outgoing::{Outbound, Outgoing, To, Transmit};
pub use crate::put_outcome::{PutError, PutEvent, PutOutcome};
pub use crate::put_params::{DataKey, PutParams, PutTimers};
pub use crate::put_phases::PutPhases;
use crate::put_phases::Timeline;
use crate::transport::Mode;
pub use hold::Hold;

mod hold;
mod ready;
mod turns;
use std::collections::VecDeque;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{
    AckStatus, BidStatus, Hash32, PutAccept, PutProposal, ReplicastMessage,
};
pub use turns::take_turns;

#[derive(Debug)]
struct Target {
    node: u32,
    addr: SocketAddr,
    acked: bool,
    polls: u32,
    mismatches: u32,
    next_poll: Option<Instant>,
    ready: bool,
    /// Poll it when the pass in flight is over: everything it asked for
    /// (or the first pass) has been sent since its last poll.
    poll_after_pass: bool,
    /// Polls answered with PUT_READY after the transfer began: the target
    /// has the chunk and is still writing it. Each one restarts its silence
    /// count, at most `MAX_WRITING_ANSWERS` times.
    writing_answers: u32,
}

/// A target that keeps saying "writing" for this many polls (10 s at the
/// default 25 ms interval) is replaced like a silent one.
const MAX_WRITING_ANSWERS: u32 = 400;

#[derive(Debug)]
enum State {
    Proposing {
        round: u32,
        deadline: Instant,
        grace: Option<Instant>,
    },
    AwaitRendezvous,
    Sending,
    Finished,
}

/// Putting one chunk.
#[derive(Debug)]
pub struct PutMachine {
    pub txid: u64,
    chunk_id: Hash32,
    payload: Arc<Vec<u8>>,
    p: PutParams,
    state: State,
    bidders: Vec<Bidder>,
    already: Vec<u32>,
    not_now: Vec<u32>,
    retry_after: Duration,
    targets: Vec<Target>,
    spares: VecDeque<Bidder>,
    delivery: Ipv6Addr,
    outgoing: Option<Outgoing>,
    control: VecDeque<Transmit>,
    events: VecDeque<PutEvent>,
    replaced: u32,
    data_not_before: Option<Instant>,
    lead_pending: bool,
    /// When unready targets get their ACCEPT again.
    ready_retry_at: Option<Instant>,
    /// DATA went out since the last pass ended.
    pass_sent: bool,
    /// Answers to the current proposal round against the known members.
    round: Round,
    /// Known members that left a round unanswered until its timeout.
    silent: Vec<u32>,
    /// The next round's proposal waits for the "not now" retry time.
    repropose_at: Option<Instant>,
    /// Why the fallback transport is used, if it is.
    fallback: Option<String>,
    tl: Timeline,
    /// DATA goes only once this is true (see [`Self::with_gate`]).
    gate: Option<Arc<AtomicBool>>,
    /// The ACCEPT (and so the DATA) waits for the owner (see
    /// [`Self::set_queued`]).
    queued: bool,
    /// The ACCEPT waits while this is held (see [`Self::with_hold`]).
    hold: Option<Hold>,
    /// DATA goes as keyed DATA under this (see [`Self::use_data_key`]).
    data_key: Option<DataKey>,
    /// The owner knows every target to be a member of the group it gives
    /// (see [`Self::set_warm`]).
    warm: bool,
}

impl PutMachine {
    pub fn new(txid: u64, payload: Arc<Vec<u8>>, p: PutParams, now: Instant) -> Self {
        let id = crate::chunking::chunk_id(&payload);
        Self::with_id(txid, id, payload, p, now)
    }

    /// [`Self::new`] for an owner that already hashed `payload` (`chunk_id`
    /// must be its id: checked in debug builds), so a chunk is not hashed
    /// twice before its proposal.
    pub fn with_id(
        txid: u64,
        chunk_id: Hash32,
        payload: Arc<Vec<u8>>,
        p: PutParams,
        now: Instant,
    ) -> Self {
        debug_assert_eq!(chunk_id, crate::chunking::chunk_id(&payload));
        let mut m = PutMachine {
            txid,
            chunk_id,
            payload,
            state: State::Proposing {
                round: 1,
                deadline: now + p.timers.bid_timeout,
                grace: None,
            },
            p,
            bidders: Vec::new(),
            already: Vec::new(),
            not_now: Vec::new(),
            retry_after: Duration::ZERO,
            targets: Vec::new(),
            spares: VecDeque::new(),
            delivery: Ipv6Addr::UNSPECIFIED,
            outgoing: None,
            control: VecDeque::new(),
            events: VecDeque::new(),
            replaced: 0,
            data_not_before: None,
            lead_pending: false,
            ready_retry_at: None,
            pass_sent: false,
            round: Round::default(),
            silent: Vec::new(),
            repropose_at: None,
            fallback: None,
            tl: Timeline {
                start: Some(now),
                ..Timeline::default()
            },
            gate: None,
            queued: false,
            hold: None,
            data_key: None,
            warm: false,
        };
        m.propose();
        m
    }

    /// Sends DATA as keyed DATA (0x47) under `k`, wrapped for every
    /// target in the PUT_ACCEPT; without it, DATA (0x43) with a tag list.
    /// Call before the ACCEPT (when the owner starts the put).
    pub fn use_data_key(&mut self, k: DataKey) {
        self.data_key = Some(k);
    }

    /// The transfer key wrapped for each of `targets` (empty: no keyed DATA).
    fn wrapped(&self, targets: &[u32]) -> Vec<[u8; subcast_proto::replicast::WRAPPED_KEY_LEN]> {
        self.data_key
            .as_ref()
            .and_then(|k| k.wrap_for(self.txid, targets))
            .unwrap_or_default()
    }

    pub fn chunk_id(&self) -> &Hash32 {
        &self.chunk_id
    }

    /// The chunk's negotiating group.
    pub fn group(&self) -> Ipv6Addr {
        self.p.group
    }

    /// The members of the negotiating group known to the owner: a round
    /// ends as soon as all of them answered (see [`crate::members`]).
    pub fn set_members(&mut self, members: Vec<u32>) {
        self.round.set_expected(members);
    }

    /// Who answered the proposal, and which known members stayed silent
    /// until a round's timeout (for [`crate::members::Membership::settle`]).
    pub fn round_report(&self) -> (Vec<u32>, Vec<u32>) {
        (self.round.answered().to_vec(), self.silent.clone())
    }

    fn ng(&self) -> SocketAddr {
        crate::transport::sock_addr(self.p.group, self.p.port)
    }

    fn propose(&mut self) {
        self.control.push_back(Transmit {
            dest: self.ng(),
            to: To::Members(self.p.group),
            msg: ReplicastMessage::PutProposal(PutProposal {
                txid: self.txid,
                chunk_id: self.chunk_id,
                size: self.payload.len() as u32,
                kind: self.p.kind,
                replicas: self.p.replicas.min(255) as u8,
            }),
        });
    }

    fn accept_msg(&self) -> ReplicastMessage {
        ReplicastMessage::PutAccept(PutAccept {
            txid: self.txid,
            chunk_id: self.chunk_id,
            size: self.payload.len() as u32,
            kind: self.p.kind,
            datagram_payload: self.p.datagram_payload as u16,
            group: self.delivery,
            keys: self.wrapped(&self.targets.iter().map(|t| t.node).collect::<Vec<_>>()),
            targets: self.targets.iter().map(|t| t.node).collect(),
        })
    }

    fn needed(&self) -> usize {
        self.p.replicas.saturating_sub(self.already.len())
    }

    /// A Replicast message addressed to this transaction.
    pub fn handle(&mut self, from: SocketAddr, sender: u32, msg: &ReplicastMessage, now: Instant) {
        match msg {
            ReplicastMessage::PutBid(b) if b.chunk_id == self.chunk_id => {
                if !matches!(self.state, State::Proposing { .. }) {
                    // Late bids become spares.
                    if b.status == BidStatus::Bid
                        && !self.targets.iter().any(|t| t.node == sender)
                        && !self.spares.iter().any(|s| s.node == sender)
                    {
                        self.spares.push_back(Bidder {
                            node: sender,
                            addr: from,
                            bid: b.clone(),
                        });
                    }
                    return;
                }
                self.bidders.retain(|x| x.node != sender);
                self.already.retain(|x| *x != sender);
                self.not_now.retain(|x| *x != sender);
                match b.status {
                    BidStatus::Bid => self.bidders.push(Bidder {
                        node: sender,
                        addr: from,
                        bid: b.clone(),
                    }),
                    BidStatus::AlreadyStored => self.already.push(sender),
                    BidStatus::NotNow => {
                        self.not_now.push(sender);
                        self.retry_after = self
                            .retry_after
                            .max(Duration::from_millis(u64::from(b.retry_after_ms)));
                    }
                }
                self.round.answer(sender);
                if self.round.complete() {
                    // Every known member answered: nothing more to wait for.
                    self.choose(now);
                } else if let State::Proposing { grace, .. } = &mut self.state
                    && grace.is_none()
                    && self.bidders.len() + self.already.len() >= self.p.replicas
                {
                    // R usable answers: a grace for better ones (`PutTimers`).
                    *grace = Some(now + self.p.timers.grace_after_r(self.round.informed()));
                }
            }
            ReplicastMessage::PutAck(a) if a.chunk_id == self.chunk_id => {
                let Some(i) = self.targets.iter().position(|t| t.node == sender) else {
                    return;
                };
                tracing::debug!(txid = self.txid, node = sender, status = ?a.status, "PUT_ACK");
                match a.status {
                    AckStatus::Stored => {
                        self.targets[i].acked = true;
                        self.targets[i].next_poll = None;
                    }
                    AckStatus::HashMismatch => {
                        let t = &mut self.targets[i];
                        t.mismatches += 1;
                        if t.mismatches > 2 {
                            self.replace(i, now);
                        } else {
                            let addr = t.addr;
                            t.next_poll = Some(now + self.p.timers.poll_interval);
                            if let Some(o) = &mut self.outgoing {
                                o.request_all(addr);
                            }
                        }
                    }
                    // Failed or refused (busy, full, too large): another
                    // bidder takes its place.
                    AckStatus::StoreFailed
                    | AckStatus::Busy
                    | AckStatus::Full
                    | AckStatus::TooLarge => self.replace(i, now),
                }
                self.check_done(now);
            }
            ReplicastMessage::PutReady(r) if r.chunk_id == self.chunk_id => {
                self.on_ready(sender, now);
            }
            ReplicastMessage::Nack(n) => {
                let Some(t) = self.targets.iter_mut().find(|t| t.node == sender) else {
                    return;
                };
                if t.acked {
                    return;
                }
                tracing::debug!(
                    txid = self.txid,
                    node = sender,
                    ranges = n.ranges.len(),
                    "NACK"
                );
                t.polls = 0;
                t.next_poll = Some(now + self.p.timers.poll_interval);
                t.poll_after_pass = true;
                let addr = t.addr;
                if let Some(o) = &mut self.outgoing {
                    o.request(addr, &n.ranges);
                }
            }
            _ => {}
        }
    }

    /// The answer to [`PutEvent::NeedRendezvous`]: a rendezvous group, the
    /// fallback transport (no room for a group), or why not.
    pub fn on_group(&mut self, answer: GroupAnswer, now: Instant) {
        if !matches!(self.state, State::AwaitRendezvous) {
            return;
        }
        match answer {
            GroupAnswer::Group(group) => self.start_sending(group, now),
            GroupAnswer::Fallback(why) => {
                tracing::info!(txid = self.txid, fallback = self.p.fallback.name(), %why, "no rendezvous group; falling back");
                self.fallback = Some(why);
                let delivery = match self.p.fallback {
                    Mode::Unicast => Ipv6Addr::UNSPECIFIED,
                    _ => self.p.group,
                };
                self.start_sending(delivery, now);
            }
            GroupAnswer::Failed(why) => self.fail(PutError::Rendezvous {
                chunk: crate::chunking::short(&self.chunk_id),
                why,
            }),
        }
    }

    fn fail(&mut self, e: PutError) {
        self.state = State::Finished;
        self.outgoing = None;
        self.events.push_back(PutEvent::Failed(e));
    }

    fn choose(&mut self, now: Instant) {
        let State::Proposing { round, .. } = self.state else {
            return;
        };
        if self.already.len() >= self.p.replicas {
            self.state = State::Finished;
            self.tl.done = Some(now);
            self.events.push_back(PutEvent::Done(self.outcome()));
            return;
        }
        let need = self.needed();
        if self.bidders.len() < need {
            if round < self.p.timers.max_rounds {
                // Members that said "not now" named when to ask again.
                let backoff = self.retry_after;
                self.state = State::Proposing {
                    round: round + 1,
                    deadline: now + backoff + self.p.timers.bid_timeout,
                    grace: None,
                };
                self.retry_after = Duration::ZERO;
                self.round.restart();
                if backoff.is_zero() {
                    self.propose();
                } else {
                    self.repropose_at = Some(now + backoff);
                }
                return;
            }
            let e = PutError::NotEnoughTargets {
                chunk: crate::chunking::short(&self.chunk_id),
                group: self.p.group,
                want: self.p.replicas,
                have: self.bidders.len() + self.already.len(),
                not_now: self.not_now.len(),
            };
            self.fail(e);
            return;
        }
        self.tl.chosen = Some(now);
        let mut sorted = std::mem::take(&mut self.bidders);
        crate::bids::rank(&mut sorted, self.txid);
        let spares = sorted.split_off(need);
        self.spares = spares.into();
        self.targets = sorted
            .into_iter()
            .map(|b| Target {
                node: b.node,
                addr: b.addr,
                acked: false,
                polls: 0,
                mismatches: 0,
                next_poll: None,
                ready: false,
                poll_after_pass: true,
                writing_answers: 0,
            })
            .collect();
        match self.p.mode {
            Mode::Rendezvous => {
                self.state = State::AwaitRendezvous;
                let targets = self
                    .targets
                    .iter()
                    .map(|t| crate::transport::canonical(t.addr.ip()))
                    .collect();
                self.events.push_back(PutEvent::NeedRendezvous {
                    parent: self.p.group,
                    targets,
                });
            }
            Mode::NgMulticast => self.start_sending(self.p.group, now),
            Mode::Unicast => self.start_sending(Ipv6Addr::UNSPECIFIED, now),
        }
    }

    fn start_sending(&mut self, delivery: Ipv6Addr, now: Instant) {
        tracing::debug!(txid = self.txid, targets = ?self.targets.iter().map(|t| t.node).collect::<Vec<_>>(), %delivery, "PUT_ACCEPT");
        self.delivery = delivery;
        self.tl.accept = Some(now);
        self.state = State::Sending;
        self.lead(delivery, now);
        let dests = if delivery.is_unspecified() {
            self.targets.iter().map(|t| t.addr).collect()
        } else {
            vec![crate::transport::sock_addr(delivery, self.p.port)]
        };
        let mut o = Outgoing::new(
            self.txid,
            self.payload.clone(),
            self.p.datagram_payload,
            dests.clone(),
        );
        let all: Vec<u32> = self.targets.iter().map(|t| t.node).collect();
        if !self.wrapped(&all).is_empty() {
            o = o.with_key(self.data_key.as_ref().map(|k| k.key.clone()));
        }
        if !delivery.is_unspecified() {
            o = o
                .with_group(dests[0], self.targets.iter().map(|t| t.addr).collect())
                .with_receivers(dests[0], self.targets.iter().map(|t| t.node).collect());
        }
        for t in &self.targets {
            o.set_receivers(t.addr, vec![t.node]);
        }
        self.outgoing = Some(o);
        self.control.push_back(Transmit {
            dest: self.ng(),
            to: To::Members(self.p.group),
            msg: self.accept_msg(),
        });
    }

    /// Replaces target `i` by the next spare, or fails the put.
    fn replace(&mut self, i: usize, now: Instant) {
        let old = self.targets.remove(i);
        tracing::warn!(node = old.node, chunk = %crate::chunking::short(&self.chunk_id), "target failed; replacing it");
        let Some(s) = self.spares.pop_front() else {
            let have = self.targets.len() + self.already.len();
            self.fail(PutError::NotEnoughTargets {
                chunk: crate::chunking::short(&self.chunk_id),
                group: self.p.group,
                want: self.p.replicas,
                have,
                not_now: self.not_now.len(),
            });
            return;
        };
        self.replaced += 1;
        self.targets.push(Target {
            node: s.node,
            addr: s.addr,
            acked: false,
            polls: 0,
            mismatches: 0,
            next_poll: Some(now + self.p.timers.poll_interval),
            ready: true,
            poll_after_pass: true,
            writing_answers: 0,
        });
        // Everyone learns the new target list; the new target gets every
        // datagram unicast (it is not on the rendezvous group).
        self.control.push_back(Transmit {
            dest: self.ng(),
            to: To::Members(self.p.group),
            msg: self.accept_msg(),
        });
        if let Some(o) = &mut self.outgoing {
            o.set_receivers(s.addr, vec![s.node]);
            o.request_all(s.addr);
        }
    }

    fn outcome(&self) -> PutOutcome {
        PutOutcome {
            chunk_id: self.chunk_id,
            size: self.payload.len(),
            stored_on: self.targets.iter().map(|t| t.node).collect(),
            already: self.already.clone(),
            replaced: self.replaced,
            datagrams_sent: self.outgoing.as_ref().map_or(0, |o| o.sent_datagrams),
            payload_bytes_sent: self.outgoing.as_ref().map_or(0, |o| o.sent_payload_bytes),
            fallback: self.fallback.clone(),
            ready_skipped: self.warm && self.on_rendezvous_group(self.delivery),
            phases: self.tl.phases(),
        }
    }

    fn check_done(&mut self, now: Instant) {
        if matches!(self.state, State::Sending) && self.targets.iter().all(|t| t.acked) {
            self.state = State::Finished;
            self.tl.done = Some(now);
            self.events.push_back(PutEvent::Done(self.outcome()));
            self.outgoing = None;
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Proposing {
                deadline, grace, ..
            } => {
                if self.repropose_at.is_some_and(|t| now >= t) {
                    self.repropose_at = None;
                    self.propose();
                }
                // The timeout, or the grace after R usable bids.
                if now >= deadline || grace.is_some_and(|g| now >= g) {
                    self.silent = self.round.silent();
                    self.choose(now);
                }
            }
            State::Sending => {
                if self.ready_retry_at.is_some_and(|t| now >= t) {
                    // Some ACCEPT or READY was lost: ask the unready again.
                    let msg = self.accept_msg();
                    for t in self.targets.iter().filter(|t| !t.ready) {
                        self.control.push_back(Transmit {
                            dest: t.addr,
                            to: To::Node(t.node),
                            msg: msg.clone(),
                        });
                    }
                    self.ready_retry_at = Some(now + self.p.timers.ready_retry);
                }
                // Silence counts from the end of the last pass: while DATA
                // is still going out (the pacer or other transfers hold it
                // back) a target has nothing to answer yet.
                let sending = self.outgoing.as_ref().is_some_and(|o| !o.idle());
                let mut failed = None;
                for (i, t) in self.targets.iter_mut().enumerate() {
                    if sending && t.next_poll.is_some_and(|p| now >= p) {
                        t.next_poll = Some(now + self.p.timers.poll_interval);
                        continue;
                    }
                    if t.acked || t.next_poll.is_none_or(|p| now < p) {
                        continue;
                    }
                    if t.polls >= self.p.timers.max_polls {
                        failed = Some(i);
                        break;
                    }
                    t.polls += 1;
                    tracing::debug!(
                        txid = self.txid,
                        node = t.node,
                        polls = t.polls,
                        "polling silent target"
                    );
                    t.next_poll = Some(now + self.p.timers.poll_interval);
                    let dest = t.addr;
                    self.control.push_back(Transmit {
                        dest,
                        to: To::Node(t.node),
                        msg: ReplicastMessage::PutAccept(PutAccept {
                            txid: self.txid,
                            chunk_id: self.chunk_id,
                            size: self.payload.len() as u32,
                            kind: self.p.kind,
                            datagram_payload: self.p.datagram_payload as u16,
                            group: self.delivery,
                            targets: Vec::new(),
                            keys: Vec::new(),
                        }),
                    });
                }
                if let Some(i) = failed {
                    self.replace(i, now);
                }
                // A poll names the target list: fill it in.
                let list: Vec<u32> = self.targets.iter().map(|t| t.node).collect();
                let keys = self.wrapped(&list);
                for t in self.control.iter_mut() {
                    if let ReplicastMessage::PutAccept(a) = &mut t.msg
                        && a.targets.is_empty()
                    {
                        a.targets = list.clone();
                        a.keys = keys.clone();
                    }
                }
            }
            State::AwaitRendezvous | State::Finished => {}
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Proposing {
                deadline, grace, ..
            } => Some(
                grace
                    .map_or(deadline, |g| g.min(deadline))
                    .min(self.repropose_at.unwrap_or(deadline)),
            ),
            State::Sending => self
                .targets
                .iter()
                .filter(|t| !t.acked)
                .filter_map(|t| t.next_poll)
                .chain(self.data_not_before)
                .chain(self.ready_retry_at)
                .min(),
            _ => None,
        }
    }

    /// Control datagrams first, then DATA as the owner's pacer allows.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Outbound> {
        if self.accept_held() {
            return None;
        }
        if let Some(t) = self.control.pop_front() {
            if self.tl.accept_sent.is_none() && matches!(t.msg, ReplicastMessage::PutAccept(_)) {
                self.tl.accept_sent = Some(now);
            }
            if self.lead_pending && matches!(t.msg, ReplicastMessage::PutAccept(_)) {
                self.lead_pending = false;
                if !self.targets.iter().all(|t| t.ready) {
                    self.data_not_before = Some(now + self.p.timers.join_lead);
                    self.ready_retry_at = Some(now + self.p.timers.ready_retry);
                } else {
                    self.data_not_before = None;
                }
            }
            return Some(Outbound::Control(t));
        }
        if let Some(t) = self.data_not_before {
            if now < t {
                return None;
            }
            self.data_not_before = None;
            self.ready_retry_at = None;
        }
        if self.gated() {
            return None;
        }
        let o = self.outgoing.as_mut()?;
        let t = o.next_datagram().map(Outbound::Data);
        self.pass_sent |= t.is_some();
        if t.is_some() && self.tl.first_data.is_none() {
            self.tl.first_data = Some(now);
        }
        if o.idle() && self.pass_sent {
            if self.tl.pass_done.is_none() {
                self.tl.pass_done = Some(now);
            }
            // A pass (the first, or a batch of repeats) is over. A target
            // that got its last datagram NACKs its own gaps; one that
            // lost the tail knows of no end: poll every target that has
            // not acknowledged after `tail_poll` (most ACK before it;
            // polling at once made each of them answer while writing).
            self.pass_sent = false;
            tracing::debug!(txid = self.txid, "pass sent");
            let poll = now + self.p.timers.tail_poll;
            for tg in self
                .targets
                .iter_mut()
                .filter(|t| !t.acked && t.poll_after_pass)
            {
                tg.poll_after_pass = false;
                tg.next_poll = Some(poll);
            }
        }
        t
    }

    pub fn poll_event(&mut self) -> Option<PutEvent> {
        if self.is_abandoned() && !self.is_finished() {
            self.state = State::Finished;
            self.outgoing = None;
            self.control.clear();
            self.events.clear();
            return Some(PutEvent::Failed(PutError::Abandoned {
                chunk: hex::encode(self.chunk_id),
            }));
        }
        self.events.pop_front()
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Whether [`Self::poll_transmit`] has something at `now` (the owner
    /// transmits at once, or when its pacer allows; DATA held for the
    /// targets' PUT_READY is not, and [`Self::poll_timeout`] says when).
    pub fn wants_to_send(&self, now: Instant) -> bool {
        if self.accept_held() || self.is_abandoned() {
            return false;
        }
        !self.control.is_empty()
            || (self.data_not_before.is_none_or(|t| now >= t)
                && !self.gated()
                && self.outgoing.as_ref().is_some_and(|o| !o.idle()))
    }
}
