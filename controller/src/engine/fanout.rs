//! Instructions per agent: queueing, coalescing into BATCHes,
//! retransmission and outcomes. No I/O: the engine queues items, asks
//! for messages to send, and reports answers and the time.
//!
//! Rules:
//! - Items due for the same agent when the engine next sends travel as
//!   one BATCH (at most 128 items and one datagram); a lone item travels
//!   as SET_SUBSET or CLEAR.
//! - One item per (agent, group) is in flight at a time; later items for
//!   the group wait, so an agent never sees them out of order.
//! - An item `after` another goes in the same BATCH behind it, or once it
//!   is acknowledged (an eviction's CLEAR before the SET that takes its
//!   place: the agent applies a BATCH in order, all or nothing). If the
//!   earlier item fails, the later one is cancelled unsent.
//! - Retransmissions repeat the transaction (same txid, sealed afresh),
//!   first after `rto`, doubling (at most 1 s), `attempts` sends in all;
//!   then every item of it is `Silent`.
//! - A NAKed BATCH of several items is split: each item is sent again on
//!   its own, so one bad item does not fail the others. A BATCH NAKed as
//!   malformed means the agent does not know BATCH: it then gets single
//!   instructions only.

use super::ids::Ids;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_proto::{Batch, BatchItem, MAX_BATCH_ITEMS, MAX_DATAGRAM, Message, NakReason};

/// Header (32) and tag (32) around a body.
const MAX_BODY: usize = MAX_DATAGRAM - 64;
const MAX_RTO: Duration = Duration::from_secs(1);

pub type ItemId = u64;

/// Retransmission policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub rto: Duration,
    pub attempts: u32,
}

impl Policy {
    pub fn wait_after(&self, sends: u32) -> Duration {
        let shift = sends.saturating_sub(1).min(16);
        (self.rto * (1u32 << shift)).min(MAX_RTO.max(self.rto))
    }
    /// Time from the first send until a silent agent is given up.
    pub fn give_up_after(&self) -> Duration {
        (1..=self.attempts).map(|s| self.wait_after(s)).sum()
    }
}

/// Why an item is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// First SET of a new group.
    Install,
    /// Same port set, new txid: the agent extends the lifetime only.
    Refresh,
    /// SET again to an agent that lost its table (HELLO, restart).
    Repush,
    Clear,
}

impl Purpose {
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Install => "SET_SUBSET",
            Purpose::Refresh => "REFRESH",
            Purpose::Repush => "REPUSH",
            Purpose::Clear => "CLEAR",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Item {
    pub id: ItemId,
    pub switch: u32,
    pub gid: u64,
    pub body: BatchItem,
    pub purpose: Purpose,
    pub after: Option<ItemId>,
    after_ok: bool,
    pub solo: bool,
    /// The lease that caused it, for the audit log (0: none).
    pub lease: u64,
    size: usize,
    inflight: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Acked(u16),
    Naked {
        reason: NakReason,
        detail: String,
    },
    Silent,
    /// Never sent: the item it had to follow failed, or the engine took
    /// it back.
    Cancelled,
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Acked(_) => "acked",
            Outcome::Naked { .. } => "naked",
            Outcome::Silent => "silent",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// A finished item.
#[derive(Debug, Clone)]
pub struct Done {
    pub item: Item,
    pub outcome: Outcome,
    pub txid: u64,
    pub sends: u32,
    pub first_sent: Option<Instant>,
    pub last_sent: Option<Instant>,
    pub batch_len: usize,
}

#[derive(Debug)]
struct Tx {
    items: Vec<ItemId>,
    msg: Message,
    sends: u32,
    first_sent: Instant,
    last_sent: Instant,
    next_at: Instant,
}

#[derive(Debug, Default)]
struct AgentQ {
    queue: VecDeque<ItemId>,
    txs: HashMap<u64, Tx>,
    busy: HashSet<Ipv6Addr>,
    singles_only: bool,
}

/// Counters for metrics and benches.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub batches: u64,
    pub singles: u64,
    pub items_sent: u64,
    pub retransmits: u64,
    pub splits: u64,
}

#[derive(Debug)]
pub struct Fanout {
    policy: Policy,
    agents: BTreeMap<u32, AgentQ>,
    items: HashMap<ItemId, Item>,
    dependents: HashMap<ItemId, Vec<ItemId>>,
    dirty: HashSet<u32>,
    /// Every transaction in flight by when it is next due: (next_at,
    /// switch, txid). Kept beside `AgentQ::txs` so that the next deadline
    /// and the due transactions are found without scanning them all.
    deadlines: BTreeSet<(Instant, u32, u64)>,
    ready: VecDeque<(u32, Message)>,
    done: VecDeque<Done>,
    next_item: ItemId,
    pub stats: Stats,
}

impl Fanout {
    pub fn new(policy: Policy) -> Fanout {
        Fanout {
            policy,
            agents: BTreeMap::new(),
            items: HashMap::new(),
            dependents: HashMap::new(),
            dirty: HashSet::new(),
            deadlines: BTreeSet::new(),
            ready: VecDeque::new(),
            done: VecDeque::new(),
            next_item: 1,
            stats: Stats::default(),
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// A new retransmission policy (a reload); transactions in flight
    /// keep the schedule they have.
    pub fn set_policy(&mut self, p: Policy) {
        self.policy = p;
    }

    /// Queues `body` for `switch`; returns the item's id.
    pub fn queue(
        &mut self,
        switch: u32,
        gid: u64,
        body: BatchItem,
        purpose: Purpose,
        after: Option<ItemId>,
        lease: u64,
    ) -> ItemId {
        let id = self.next_item;
        self.next_item += 1;
        let size = Batch {
            txid: 0,
            items: vec![body.clone()],
        }
        .body_len()
            - 10;
        // A dependency already acknowledged (or gone) is no dependency.
        let after = after.filter(|a| self.items.contains_key(a));
        if let Some(a) = after {
            self.dependents.entry(a).or_default().push(id);
        }
        self.items.insert(
            id,
            Item {
                id,
                switch,
                gid,
                body,
                purpose,
                after,
                after_ok: false,
                solo: false,
                lease,
                size,
                inflight: None,
            },
        );
        self.agents.entry(switch).or_default().queue.push_back(id);
        self.dirty.insert(switch);
        id
    }

    /// Takes back a queued item that was not sent yet (its dependents are
    /// cancelled too). False if it is in flight or gone.
    pub fn cancel(&mut self, id: ItemId) -> bool {
        let Some(it) = self.items.get(&id) else {
            return false;
        };
        if it.inflight.is_some() {
            return false;
        }
        let sw = it.switch;
        if let Some(q) = self.agents.get_mut(&sw) {
            q.queue.retain(|x| *x != id);
        }
        self.finish(id, Outcome::Cancelled, 0, 0, None, None, 0);
        true
    }

    /// Whether `id` is still queued or in flight.
    pub fn pending(&self, id: ItemId) -> bool {
        self.items.contains_key(&id)
    }

    /// Why a queued or in-flight item is sent.
    pub fn purpose_of(&self, id: ItemId) -> Option<Purpose> {
        self.items.get(&id).map(|it| it.purpose)
    }

    /// The next datagram to send: (switch, message).
    pub fn poll_transmit(&mut self, now: Instant, ids: &mut Ids) -> Option<(u32, Message)> {
        if self.ready.is_empty() && !self.dirty.is_empty() {
            let dirty: Vec<u32> = self.dirty.drain().collect();
            for sw in dirty {
                while self.build(sw, now, ids) {}
            }
        }
        self.ready.pop_front()
    }

    /// Builds one transaction for `sw` from its queue; false when nothing
    /// more can go now.
    fn build(&mut self, sw: u32, now: Instant, ids: &mut Ids) -> bool {
        let Some(q) = self.agents.get_mut(&sw) else {
            return false;
        };
        let mut picked: Vec<ItemId> = Vec::new();
        let mut size = 10;
        let mut held: HashSet<Ipv6Addr> = HashSet::new();
        let mut rest = VecDeque::with_capacity(q.queue.len());
        let mut single: Option<ItemId> = None;
        while let Some(id) = q.queue.pop_front() {
            let Some(it) = self.items.get(&id) else {
                continue;
            };
            let g = it.body.group();
            let dep_ok = match it.after {
                None => true,
                Some(a) => it.after_ok || (picked.contains(&a) && !it.solo && !q.singles_only),
            };
            let eligible = single.is_none() && dep_ok && !q.busy.contains(&g) && !held.contains(&g);
            if eligible && (it.solo || q.singles_only) {
                if picked.is_empty() {
                    single = Some(id);
                    held.insert(g);
                } else {
                    rest.push_back(id);
                    held.insert(g);
                }
                continue;
            }
            if eligible && picked.len() < MAX_BATCH_ITEMS && size + it.size <= MAX_BODY {
                size += it.size;
                picked.push(id);
                held.insert(g);
            } else {
                held.insert(g);
                rest.push_back(id);
            }
        }
        // Items after the one taken alone stay for the next round.
        q.queue = rest;
        let chosen: Vec<ItemId> = match single {
            Some(id) => {
                // Put the batch candidates back in front, in order.
                for id in picked.into_iter().rev() {
                    q.queue.push_front(id);
                }
                vec![id]
            }
            None => picked,
        };
        if chosen.is_empty() {
            return false;
        }
        let txid = ids.txid();
        let msg = if chosen.len() == 1 {
            self.stats.singles += 1;
            self.items[&chosen[0]].body.to_single(txid)
        } else {
            self.stats.batches += 1;
            Message::Batch(Batch {
                txid,
                items: chosen.iter().map(|i| self.items[i].body.clone()).collect(),
            })
        };
        self.stats.items_sent += chosen.len() as u64;
        for id in &chosen {
            if let Some(it) = self.items.get_mut(id) {
                it.inflight = Some(txid);
                q.busy.insert(it.body.group());
            }
        }
        let next_at = now + self.policy.wait_after(1);
        q.txs.insert(
            txid,
            Tx {
                items: chosen,
                msg: msg.clone(),
                sends: 1,
                first_sent: now,
                last_sent: now,
                next_at,
            },
        );
        self.deadlines.insert((next_at, sw, txid));
        self.ready.push_back((sw, msg));
        true
    }

    /// An ACK (one count) or BATCH_ACK (one count per item) from `sw` for
    /// `txid`. False if no such transaction was sent to `sw`.
    pub fn on_ack(&mut self, sw: u32, txid: u64, counts: &[u16], batch: bool) -> bool {
        let Some(q) = self.agents.get_mut(&sw) else {
            return false;
        };
        let Some(tx) = q.txs.get(&txid) else {
            return false;
        };
        let is_batch = matches!(tx.msg, Message::Batch(_));
        if is_batch != batch || counts.len() != tx.items.len() {
            return false;
        }
        let Some(tx) = q.txs.remove(&txid) else {
            return false;
        };
        self.deadlines.remove(&(tx.next_at, sw, txid));
        self.unbusy(sw, &tx.items);
        let n = tx.items.len();
        for (id, c) in tx.items.iter().zip(counts) {
            self.finish(
                *id,
                Outcome::Acked(*c),
                txid,
                tx.sends,
                Some(tx.first_sent),
                Some(tx.last_sent),
                n,
            );
        }
        self.dirty.insert(sw);
        true
    }

    /// A NAK from `sw` for `txid`. False if no such transaction.
    pub fn on_nak(&mut self, sw: u32, txid: u64, reason: NakReason, detail: String) -> bool {
        let Some(q) = self.agents.get_mut(&sw) else {
            return false;
        };
        let Some(tx) = q.txs.remove(&txid) else {
            return false;
        };
        self.deadlines.remove(&(tx.next_at, sw, txid));
        self.unbusy(sw, &tx.items);
        self.dirty.insert(sw);
        if tx.items.len() > 1 {
            // Nothing was applied: send each item on its own.
            self.stats.splits += 1;
            for id in tx.items.iter().rev() {
                if let Some(it) = self.items.get_mut(id) {
                    it.inflight = None;
                    it.solo = true;
                    if let Some(q) = self.agents.get_mut(&sw) {
                        q.queue.push_front(*id);
                        if reason == NakReason::Malformed {
                            q.singles_only = true;
                        }
                    }
                }
            }
            return true;
        }
        let n = tx.items.len();
        for id in tx.items {
            self.finish(
                id,
                Outcome::Naked {
                    reason,
                    detail: detail.clone(),
                },
                txid,
                tx.sends,
                Some(tx.first_sent),
                Some(tx.last_sent),
                n,
            );
        }
        true
    }

    /// Retransmits what is due and gives up on agents that used all
    /// their attempts.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut silent: Vec<(u32, u64)> = Vec::new();
        while let Some(&(at, sw, txid)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(tx) = self.agents.get_mut(&sw).and_then(|q| q.txs.get_mut(&txid)) else {
                continue;
            };
            if tx.sends >= self.policy.attempts {
                silent.push((sw, txid));
            } else {
                tx.sends += 1;
                tx.last_sent = now;
                tx.next_at = now + self.policy.wait_after(tx.sends);
                self.ready.push_back((sw, tx.msg.clone()));
                self.stats.retransmits += 1;
                // Later than `now`: this loop does not meet it again.
                self.deadlines.insert((tx.next_at, sw, txid));
            }
        }
        for (sw, txid) in silent {
            let Some(q) = self.agents.get_mut(&sw) else {
                continue;
            };
            let Some(tx) = q.txs.remove(&txid) else {
                continue;
            };
            self.unbusy(sw, &tx.items);
            self.dirty.insert(sw);
            let n = tx.items.len();
            for id in tx.items {
                self.finish(
                    id,
                    Outcome::Silent,
                    txid,
                    tx.sends,
                    Some(tx.first_sent),
                    Some(tx.last_sent),
                    n,
                );
            }
        }
    }

    /// When [`Fanout::handle_timeout`] next has work.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|d| d.0)
    }

    /// True if a datagram may be ready without waiting.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.dirty.is_empty()
    }

    pub fn poll_done(&mut self) -> Option<Done> {
        self.done.pop_front()
    }

    /// Transactions in flight (all agents).
    pub fn in_flight(&self) -> usize {
        self.agents.values().map(|q| q.txs.len()).sum()
    }

    fn unbusy(&mut self, sw: u32, items: &[ItemId]) {
        let groups: Vec<Ipv6Addr> = items
            .iter()
            .filter_map(|id| self.items.get(id).map(|it| it.body.group()))
            .collect();
        if let Some(q) = self.agents.get_mut(&sw) {
            for g in groups {
                q.busy.remove(&g);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        id: ItemId,
        outcome: Outcome,
        txid: u64,
        sends: u32,
        first_sent: Option<Instant>,
        last_sent: Option<Instant>,
        batch_len: usize,
    ) {
        let Some(item) = self.items.remove(&id) else {
            return;
        };
        let ok = matches!(outcome, Outcome::Acked(_));
        self.done.push_back(Done {
            item,
            outcome,
            txid,
            sends,
            first_sent,
            last_sent,
            batch_len,
        });
        let deps = self.dependents.remove(&id).unwrap_or_default();
        for d in deps {
            if ok {
                if let Some(it) = self.items.get_mut(&d) {
                    it.after_ok = true;
                    self.dirty.insert(it.switch);
                }
            } else if self.items.get(&d).is_some_and(|it| it.inflight.is_none()) {
                // Not sent: it must not go without the item it follows.
                let sw = self.items[&d].switch;
                if let Some(q) = self.agents.get_mut(&sw) {
                    q.queue.retain(|x| *x != d);
                }
                self.finish(d, Outcome::Cancelled, 0, 0, None, None, 0);
            }
            // In flight in the same transaction: it gets that outcome.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        rto: Duration::from_millis(10),
        attempts: 4,
    };

    fn set(g: u16) -> BatchItem {
        BatchItem::Set {
            vlan: 10,
            parent: "ff15::1".parse().unwrap(),
            group: Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 5, g),
            lifetime_ms: 1000,
            members: subcast_proto::Members::List(vec![subcast_proto::Member::Mac(
                "02:00:00:00:00:01".parse().unwrap(),
            )]),
        }
    }

    fn clear(g: u16) -> BatchItem {
        BatchItem::Clear {
            group: Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 5, g),
        }
    }

    fn ids() -> Ids {
        Ids::new(1, 1000, [1; 32])
    }

    #[test]
    fn items_due_together_travel_as_one_batch_and_a_lone_one_alone() {
        let (mut f, mut ids, t0) = (Fanout::new(P), ids(), Instant::now());
        f.queue(1, 1, set(1), Purpose::Install, None, 0);
        f.queue(1, 2, set(2), Purpose::Install, None, 0);
        f.queue(2, 1, set(1), Purpose::Install, None, 0);
        let mut out = Vec::new();
        while let Some(m) = f.poll_transmit(t0, &mut ids) {
            out.push(m);
        }
        out.sort_by_key(|m| m.0);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0].1, Message::Batch(b) if b.items.len() == 2));
        assert!(matches!(&out[1].1, Message::SetSubset(_)));
        let txid = out[0].1.txid().unwrap();
        assert!(
            !f.on_ack(1, txid, &[1], false),
            "an ACK does not answer a BATCH"
        );
        assert!(
            !f.on_ack(2, txid, &[1, 1], true),
            "only the agent it was sent to"
        );
        assert!(f.on_ack(1, txid, &[1, 2], true));
        let d: Vec<Outcome> = std::iter::from_fn(|| f.poll_done())
            .map(|d| d.outcome)
            .collect();
        assert_eq!(d, vec![Outcome::Acked(1), Outcome::Acked(2)]);
    }

    #[test]
    fn one_item_per_group_in_flight_and_batches_stay_within_limits() {
        let (mut f, mut ids, t0) = (Fanout::new(P), ids(), Instant::now());
        for g in 0..300 {
            f.queue(1, g.into(), set(g), Purpose::Install, None, 0);
        }
        f.queue(1, 0, clear(0), Purpose::Clear, None, 0);
        let mut sizes = Vec::new();
        while let Some((_, m)) = f.poll_transmit(t0, &mut ids) {
            let Message::Batch(b) = &m else { panic!() };
            assert!(b.body_len() <= MAX_BODY);
            assert!(
                !b.items.iter().any(|i| matches!(i, BatchItem::Clear { .. })),
                "CLEAR of group 0 waits for its SET"
            );
            sizes.push(b.items.len());
        }
        assert_eq!(sizes, vec![128, 128, 44]);
    }

    #[test]
    fn dependent_goes_behind_its_dependency_or_is_cancelled() {
        let (mut f, mut ids, t0) = (Fanout::new(P), ids(), Instant::now());
        let c = f.queue(1, 9, clear(9), Purpose::Clear, None, 0);
        f.queue(1, 1, set(1), Purpose::Install, Some(c), 0);
        let (_, m) = f.poll_transmit(t0, &mut ids).unwrap();
        let Message::Batch(b) = &m else {
            panic!("{m:?}")
        };
        assert!(matches!(b.items[0], BatchItem::Clear { .. }));
        // NAK splits it; the SET then waits for the CLEAR's ACK.
        assert!(f.on_nak(1, b.txid, NakReason::TableFull, "x".into()));
        let (_, m) = f.poll_transmit(t0, &mut ids).unwrap();
        assert!(matches!(m, Message::Clear(_)));
        assert!(f.poll_transmit(t0, &mut ids).is_none(), "SET waits");
        assert!(f.on_nak(1, m.txid().unwrap(), NakReason::BackendError, "y".into()));
        let d: Vec<&str> = std::iter::from_fn(|| f.poll_done())
            .map(|d| d.outcome.name())
            .collect();
        assert_eq!(d, vec!["naked", "cancelled"]);
        assert!(f.poll_transmit(t0, &mut ids).is_none());
    }

    #[test]
    fn silence_after_all_attempts_with_backoff() {
        let (mut f, mut ids) = (Fanout::new(P), ids());
        let mut now = Instant::now();
        f.queue(1, 1, set(1), Purpose::Install, None, 0);
        let mut sends = 0;
        loop {
            while let Some((_, m)) = f.poll_transmit(now, &mut ids) {
                assert!(matches!(m, Message::SetSubset(_)));
                sends += 1;
            }
            let Some(t) = f.next_timeout() else { break };
            now = t;
            f.handle_timeout(now);
        }
        assert_eq!(sends, 4);
        let d = f.poll_done().unwrap();
        assert_eq!(d.outcome, Outcome::Silent);
        assert_eq!(d.sends, 4);
        assert_eq!(
            d.last_sent.unwrap() - d.first_sent.unwrap(),
            Duration::from_millis(10 + 20 + 40)
        );
    }

    #[test]
    fn malformed_batch_means_singles_from_then_on() {
        let (mut f, mut ids, t0) = (Fanout::new(P), ids(), Instant::now());
        f.queue(1, 1, set(1), Purpose::Install, None, 0);
        f.queue(1, 2, set(2), Purpose::Install, None, 0);
        let (_, m) = f.poll_transmit(t0, &mut ids).unwrap();
        assert!(f.on_nak(
            1,
            m.txid().unwrap(),
            NakReason::Malformed,
            "no BATCH".into()
        ));
        let a = f.poll_transmit(t0, &mut ids).unwrap().1;
        let b = f.poll_transmit(t0, &mut ids).unwrap().1;
        assert!(matches!(a, Message::SetSubset(_)) && matches!(b, Message::SetSubset(_)));
        f.queue(1, 3, set(3), Purpose::Install, None, 0);
        f.queue(1, 4, set(4), Purpose::Install, None, 0);
        let n = std::iter::from_fn(|| f.poll_transmit(t0, &mut ids))
            .filter(|(_, m)| matches!(m, Message::SetSubset(_)))
            .count();
        assert_eq!(n, 2);
    }

    #[test]
    fn next_timeout_is_the_earliest_transaction_still_in_flight() {
        let (mut f, mut ids, t0) = (Fanout::new(P), ids(), Instant::now());
        let ms = Duration::from_millis;
        // One transaction to each of three switches, sent 0, 1 and 2 ms apart.
        let mut tx = Vec::new();
        for sw in 1..=3u32 {
            f.queue(sw, 1, set(1), Purpose::Install, None, 0);
            let (_, m) = f.poll_transmit(t0 + ms(sw as u64 - 1), &mut ids).unwrap();
            tx.push(m.txid().unwrap());
        }
        assert_eq!(f.next_timeout(), Some(t0 + ms(10)));
        // Switch 1 answers: switch 2's is next, then a NAK of switch 2's.
        assert!(f.on_ack(1, tx[0], &[1], false));
        assert_eq!(f.next_timeout(), Some(t0 + ms(11)));
        assert!(f.on_nak(2, tx[1], NakReason::BackendError, "x".into()));
        assert_eq!(f.next_timeout(), Some(t0 + ms(12)));
        // Switch 3's retransmission moves its deadline by the backoff (20 ms).
        f.handle_timeout(t0 + ms(12));
        assert_eq!(f.poll_transmit(t0 + ms(12), &mut ids).map(|m| m.0), Some(3));
        assert_eq!(f.next_timeout(), Some(t0 + ms(32)));
        assert!(f.on_ack(3, tx[2], &[1], false));
        assert_eq!(f.next_timeout(), None);
        assert_eq!(f.in_flight(), 0);
    }
}
