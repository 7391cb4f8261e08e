//! The client side of putting one chunk, without I/O.
//!
//! PUT_PROPOSAL to the negotiating group -> bids within a timeout -> R
//! targets by earliest start, queue depth, free space -> (rendezvous: the
//! owner asks the controller) -> PUT_ACCEPT to the negotiating group ->
//! DATA to the delivery destination(s), pulled by the owner's pacer ->
//! ACKs from every target. NACKed ranges are repeated to the target that
//! asked; a silent target is polled with a unicast PUT_ACCEPT, and after
//! `max_polls` it is replaced by the next bidder.

use crate::outgoing::{Outgoing, Transmit};
use crate::transport::Mode;
use std::collections::VecDeque;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{
    AckStatus, BidStatus, ChunkKind, Hash32, PutAccept, PutBid, PutProposal, ReplicastMessage,
};

/// Timing of a put.
#[derive(Debug, Clone, Copy)]
pub struct PutTimers {
    /// Longest wait for bids in one round.
    pub bid_timeout: Duration,
    /// Once R usable bids are in, wait this much longer for better ones.
    pub bid_grace: Duration,
    /// Proposal rounds before giving up.
    pub max_rounds: u32,
    /// Silence from a target before it is polled.
    pub poll_interval: Duration,
    /// Unanswered polls before a target is replaced.
    pub max_polls: u32,
    /// Rendezvous: longest wait between PUT_ACCEPT and the first DATA for
    /// the targets' PUT_READY (joined the rendezvous group).
    pub join_lead: Duration,
}

impl Default for PutTimers {
    fn default() -> Self {
        PutTimers {
            bid_timeout: Duration::from_millis(200),
            bid_grace: Duration::from_millis(3),
            max_rounds: 5,
            poll_interval: Duration::from_millis(250),
            max_polls: 6,
            join_lead: Duration::from_millis(100),
        }
    }
}

/// What a put needs to know.
#[derive(Debug, Clone)]
pub struct PutParams {
    pub replicas: usize,
    pub mode: Mode,
    /// The chunk's negotiating group.
    pub group: Ipv6Addr,
    /// The nodes' UDP port.
    pub port: u16,
    pub datagram_payload: usize,
    pub kind: ChunkKind,
    pub timers: PutTimers,
}

/// Why a put failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    #[error(
        "chunk {chunk}: only {have} of {want} targets available in negotiating group {group} ({not_now} said \"not now\"); start more nodes, free disk space, or lower --replicas"
    )]
    NotEnoughTargets {
        chunk: String,
        group: Ipv6Addr,
        want: usize,
        have: usize,
        not_now: usize,
    },
    #[error(
        "chunk {chunk}: the controller gave no rendezvous group ({why}); check the controller, or use --transport ng-multicast"
    )]
    Rendezvous { chunk: String, why: String },
}

/// Result of a successful put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub chunk_id: Hash32,
    pub size: usize,
    /// Node ids that stored the chunk in this put.
    pub stored_on: Vec<u32>,
    /// Node ids that already held it (deduplication).
    pub already: Vec<u32>,
    /// Targets that failed and were replaced.
    pub replaced: u32,
    pub datagrams_sent: u64,
    pub payload_bytes_sent: u64,
}

/// What the owner must do besides transmitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutEvent {
    /// Ask the controller for a rendezvous group of `parent` reaching
    /// `targets`, then call [`PutMachine::on_rendezvous`].
    NeedRendezvous {
        parent: Ipv6Addr,
        targets: Vec<Ipv6Addr>,
    },
    Done(PutOutcome),
    Failed(PutError),
}

#[derive(Debug, Clone)]
struct Bidder {
    node: u32,
    addr: SocketAddr,
    bid: PutBid,
}

#[derive(Debug)]
struct Target {
    node: u32,
    addr: SocketAddr,
    acked: bool,
    polls: u32,
    mismatches: u32,
    next_poll: Option<Instant>,
    ready: bool,
}

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
}

impl PutMachine {
    pub fn new(txid: u64, payload: Arc<Vec<u8>>, p: PutParams, now: Instant) -> Self {
        let chunk_id = crate::chunking::chunk_id(&payload);
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
        };
        m.propose();
        m
    }

    pub fn chunk_id(&self) -> &Hash32 {
        &self.chunk_id
    }

    fn ng(&self) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(self.p.group, self.p.port, 0, 0))
    }

    fn propose(&mut self) {
        self.control.push_back(Transmit {
            dest: self.ng(),
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
                if let State::Proposing { grace, .. } = &mut self.state
                    && grace.is_none()
                    && self.bidders.len() + self.already.len() >= self.p.replicas
                {
                    *grace = Some(now + self.p.timers.bid_grace);
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
                    AckStatus::StoreFailed => self.replace(i, now),
                }
                self.check_done();
            }
            ReplicastMessage::PutReady(r) if r.chunk_id == self.chunk_id => {
                if let Some(t) = self.targets.iter_mut().find(|t| t.node == sender) {
                    t.ready = true;
                }
                if self.targets.iter().all(|t| t.ready) && !self.lead_pending {
                    self.data_not_before = None;
                }
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
                let addr = t.addr;
                if let Some(o) = &mut self.outgoing {
                    o.request(addr, &n.ranges);
                }
            }
            _ => {}
        }
    }

    /// The controller's answer: a rendezvous group, or why not.
    pub fn on_rendezvous(&mut self, result: Result<Ipv6Addr, String>, now: Instant) {
        if !matches!(self.state, State::AwaitRendezvous) {
            return;
        }
        match result {
            Ok(group) => self.start_sending(group, now),
            Err(why) => self.fail(PutError::Rendezvous {
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
            self.events.push_back(PutEvent::Done(self.outcome()));
            return;
        }
        let need = self.needed();
        if self.bidders.len() < need {
            if round < self.p.timers.max_rounds {
                let wait = self.p.timers.bid_timeout.max(self.retry_after);
                self.state = State::Proposing {
                    round: round + 1,
                    deadline: now + wait,
                    grace: None,
                };
                self.retry_after = Duration::ZERO;
                self.propose();
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
        let mut sorted = std::mem::take(&mut self.bidders);
        // Starts within the same millisecond count as equal; then the
        // shorter queue, the emptier disk, and a random tie-break.
        let salt = self.txid;
        sorted.sort_by_key(|b| {
            (
                b.bid.earliest_start_us / 1000,
                b.bid.queue_depth,
                std::cmp::Reverse(b.bid.free_bytes >> 30),
                (u64::from(b.node) ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32,
            )
        });
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
            })
            .collect();
        match self.p.mode {
            Mode::Rendezvous => {
                self.state = State::AwaitRendezvous;
                let targets = self
                    .targets
                    .iter()
                    .filter_map(|t| match t.addr {
                        SocketAddr::V6(a) => Some(*a.ip()),
                        SocketAddr::V4(_) => None,
                    })
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
        if self.p.mode == Mode::Rendezvous {
            // Counted from when the ACCEPT actually leaves (poll_transmit).
            self.data_not_before = Some(now + Duration::from_secs(3600));
            self.lead_pending = true;
        }
        self.state = State::Sending;
        let dests = if delivery.is_unspecified() {
            self.targets.iter().map(|t| t.addr).collect()
        } else {
            vec![SocketAddr::V6(SocketAddrV6::new(
                delivery,
                self.p.port,
                0,
                0,
            ))]
        };
        self.outgoing = Some(Outgoing::new(
            self.txid,
            self.payload.clone(),
            self.p.datagram_payload,
            dests,
        ));
        self.control.push_back(Transmit {
            dest: self.ng(),
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
        });
        // Everyone learns the new target list; the new target gets every
        // datagram unicast (it is not on the rendezvous group).
        self.control.push_back(Transmit {
            dest: self.ng(),
            msg: self.accept_msg(),
        });
        if let Some(o) = &mut self.outgoing {
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
        }
    }

    fn check_done(&mut self) {
        if matches!(self.state, State::Sending) && self.targets.iter().all(|t| t.acked) {
            self.state = State::Finished;
            self.events.push_back(PutEvent::Done(self.outcome()));
            self.outgoing = None;
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Proposing {
                deadline, grace, ..
            } => {
                if now >= deadline || grace.is_some_and(|g| now >= g) {
                    self.choose(now);
                }
            }
            State::Sending => {
                let mut failed = None;
                for (i, t) in self.targets.iter_mut().enumerate() {
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
                        msg: ReplicastMessage::PutAccept(PutAccept {
                            txid: self.txid,
                            chunk_id: self.chunk_id,
                            size: self.payload.len() as u32,
                            kind: self.p.kind,
                            datagram_payload: self.p.datagram_payload as u16,
                            group: self.delivery,
                            targets: Vec::new(),
                        }),
                    });
                }
                if let Some(i) = failed {
                    self.replace(i, now);
                }
                // A poll names the target list: fill it in.
                let list: Vec<u32> = self.targets.iter().map(|t| t.node).collect();
                for t in self.control.iter_mut() {
                    if let ReplicastMessage::PutAccept(a) = &mut t.msg
                        && a.targets.is_empty()
                    {
                        a.targets = list.clone();
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
            } => Some(grace.map_or(deadline, |g| g.min(deadline))),
            State::Sending => self
                .targets
                .iter()
                .filter(|t| !t.acked)
                .filter_map(|t| t.next_poll)
                .chain(self.data_not_before)
                .min(),
            _ => None,
        }
    }

    /// Control datagrams first, then DATA as the owner's pacer allows.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(t) = self.control.pop_front() {
            if self.lead_pending && matches!(t.msg, ReplicastMessage::PutAccept(_)) {
                self.lead_pending = false;
                if !self.targets.iter().all(|t| t.ready) {
                    self.data_not_before = Some(now + self.p.timers.join_lead);
                } else {
                    self.data_not_before = None;
                }
            }
            return Some(t);
        }
        if let Some(t) = self.data_not_before {
            if now < t {
                return None;
            }
            self.data_not_before = None;
        }
        let o = self.outgoing.as_mut()?;
        let t = o.next_datagram();
        if t.is_none() || o.idle() {
            if self
                .targets
                .iter()
                .any(|t| !t.acked && t.next_poll.is_none())
            {
                tracing::debug!(txid = self.txid, "first pass sent");
            }
            // First pass (or a batch of repeats) over: start the poll clocks.
            let poll = now + self.p.timers.poll_interval;
            for tg in self.targets.iter_mut().filter(|t| !t.acked) {
                if tg.next_poll.is_none() {
                    tg.next_poll = Some(poll);
                }
            }
        }
        t
    }

    pub fn poll_event(&mut self) -> Option<PutEvent> {
        self.events.pop_front()
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Whether DATA is waiting for the pacer.
    pub fn wants_to_send(&self) -> bool {
        !self.control.is_empty() || self.outgoing.as_ref().is_some_and(|o| !o.idle())
    }
}
