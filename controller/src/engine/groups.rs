//! The table of rendezvous groups, keyed by (VLAN, parent, target set):
//! reference counts, warm groups, least-recently-used order, and where
//! each group is (or may be) installed.
//!
//! A group is `Installing` until every agent of its VLAN acknowledged its
//! SET, then `Installed`; leases are references to it. When the last
//! lease ends it stays installed (warm) and enters the LRU index of
//! evictable groups; a new lease takes it out again. `Tearing` groups are
//! being cleared and are no longer found by their key; their address goes
//! back to the pool when no switch may hold them any more.

use super::fanout::{ItemId, Purpose};
use super::types::{Handle, Refusal};
use crate::leases::Target;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;
use std::time::Instant;
use subcast_proto::Members;

pub type Gid = u64;

/// A group's identity: the same key always means the same forwarding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub vlan: u16,
    pub parent: Ipv6Addr,
    /// Indexes of the targets in the parent group's member list, sorted.
    pub targets: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GState {
    Installing,
    Installed,
    Tearing,
}

impl GState {
    pub fn name(self) -> &'static str {
        match self {
            GState::Installing => "installing",
            GState::Installed => "installed",
            GState::Tearing => "clearing",
        }
    }
}

/// Where a group stands on one switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PState {
    Absent,
    /// SET sent, not answered.
    Setting,
    Present,
    /// CLEAR sent, not answered.
    Clearing,
    /// May still be installed (an unanswered SET or a failed CLEAR) until
    /// the agent's own expiry, at this instant.
    Lingering(Instant),
}

impl PState {
    pub fn may_hold(self) -> bool {
        !matches!(self, PState::Absent)
    }
}

#[derive(Debug, Clone)]
pub struct Presence {
    pub switch: u32,
    pub st: PState,
    /// Counted in the switch's occupancy. An eviction's CLEAR that
    /// travels before the SET taking its place hands its slot over.
    pub counted: bool,
    /// This group's SET on the switch waits for `donor`'s CLEAR.
    pub donor: Option<Gid>,
    /// The item in flight or queued for this switch.
    pub item: Option<ItemId>,
    /// A CLEAR was already sent after a failure (it is not repeated).
    pub clear_tried: bool,
    /// The agent's last acknowledgement of a SET for this group.
    pub ack: Option<AckRecord>,
    /// The port count of its first acknowledged SET (what later SETs of
    /// the same members should find again).
    pub first_ports: Option<u16>,
}

/// One agent's acknowledgement of a SET: which transaction, how many
/// ports it installed, when, and for which round of the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRecord {
    pub txid: u64,
    pub purpose: Purpose,
    pub ports: u16,
    pub at_ms: u64,
    /// The group's round (install = 1, each refresh + 1) it answered.
    pub generation: u32,
}

impl Presence {
    pub fn new(switch: u32) -> Presence {
        Presence {
            switch,
            st: PState::Absent,
            counted: false,
            donor: None,
            item: None,
            clear_tried: false,
            ack: None,
            first_ports: None,
        }
    }
}

/// A round of SETs to every switch (install, refresh, re-push) whose
/// answers are being collected.
#[derive(Debug, Clone)]
pub struct Round {
    pub purpose: Purpose,
    pub started: Instant,
    pub pending: u32,
    /// The lower bound of the agents' expiry if every switch ACKs.
    pub held_until: Instant,
    pub failure: Option<Refusal>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: Gid,
    pub key: GroupKey,
    pub addr: Ipv6Addr,
    pub vlan: u16,
    pub parent: Ipv6Addr,
    pub targets: Vec<Target>,
    pub members: Members,
    pub state: GState,
    /// Granted leases holding it.
    pub refs: u32,
    /// Leases waiting for its install or refresh.
    pub waiters: Vec<u64>,
    pub pinned: bool,
    pub lru: Option<u64>,
    pub last_used: Instant,
    /// The latest end of any lease granted on it.
    pub max_lease_end: Instant,
    /// Every agent holds it at least until then (lower bound).
    pub held_until: Instant,
    /// No agent holds it after then (upper bound, agents' own expiry).
    pub hard_end: Instant,
    /// The latest `hold_until_ms` written to the store, and that write's
    /// sequence number.
    pub hold: (u64, u64),
    pub warm_gen: u64,
    pub presence: Vec<Presence>,
    pub round: Option<Round>,
    /// An agent missed a refresh or re-push: no new leases; cleared when
    /// its leases end.
    pub tainted: bool,
    pub first_lease: u64,
    pub created_ms: u64,
    /// Store write that must be durable before a grant on it.
    pub needs_seq: u64,
    /// Releases waiting for this group's CLEAR (warm_ms 0).
    pub clear_waiters: Vec<(Handle, crate::leases::Lease)>,
    pub clear_outcomes: Vec<(u32, String)>,
    pub hits: u64,
    /// Swept after a restart, not yet settled.
    pub ghost: bool,
    /// Rounds of SETs started (install, refreshes): what every switch's
    /// last ACK should have answered.
    pub generation: u32,
}

impl Group {
    pub fn switches(&self) -> impl Iterator<Item = u32> + '_ {
        self.presence.iter().map(|p| p.switch)
    }
    pub fn presence_mut(&mut self, sw: u32) -> Option<&mut Presence> {
        self.presence.iter_mut().find(|p| p.switch == sw)
    }
    pub fn presence(&self, sw: u32) -> Option<&Presence> {
        self.presence.iter().find(|p| p.switch == sw)
    }
    /// No switch may hold it any more.
    pub fn gone_everywhere(&self) -> bool {
        self.presence.iter().all(|p| p.st == PState::Absent)
    }
    /// Nothing holds it and nothing is in flight for it.
    pub fn evictable(&self) -> bool {
        self.state == GState::Installed
            && self.refs == 0
            && self.waiters.is_empty()
            && !self.pinned
            && self.round.is_none()
    }
    pub fn targets_text(&self) -> String {
        self.targets
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(Debug, Default)]
pub struct Groups {
    pub by_id: HashMap<Gid, Group>,
    pub by_key: HashMap<GroupKey, Gid>,
    pub by_addr: HashMap<Ipv6Addr, Gid>,
    lru: BTreeMap<u64, Gid>,
    next_id: Gid,
    next_lru: u64,
}

impl Groups {
    pub fn next_id(&mut self) -> Gid {
        self.next_id += 1;
        self.next_id
    }

    pub fn insert(&mut self, g: Group) {
        if g.state != GState::Tearing {
            self.by_key.insert(g.key.clone(), g.id);
        }
        self.by_addr.insert(g.addr, g.id);
        self.by_id.insert(g.id, g);
    }

    pub fn get(&self, id: Gid) -> Option<&Group> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: Gid) -> Option<&mut Group> {
        self.by_id.get_mut(&id)
    }

    pub fn find(&self, key: &GroupKey) -> Option<Gid> {
        self.by_key.get(key).copied()
    }

    /// The group is found by `key` from now on (a reload renumbered its
    /// parent group's members).
    pub fn rekey(&mut self, id: Gid, key: GroupKey) {
        self.forget_key(id);
        if let Some(g) = self.by_id.get_mut(&id) {
            g.key = key.clone();
            self.by_key.insert(key, id);
        }
    }

    /// The group is no longer found by its key (it is being cleared).
    pub fn forget_key(&mut self, id: Gid) {
        if let Some(g) = self.by_id.get(&id)
            && self.by_key.get(&g.key) == Some(&id)
        {
            self.by_key.remove(&g.key);
        }
    }

    pub fn remove(&mut self, id: Gid) -> Option<Group> {
        self.unlist(id);
        self.forget_key(id);
        let g = self.by_id.remove(&id)?;
        if self.by_addr.get(&g.addr) == Some(&id) {
            self.by_addr.remove(&g.addr);
        }
        Some(g)
    }

    /// Puts the group in (or out of) the LRU index as it is (or is not)
    /// evictable; `used` makes it the most recently used.
    pub fn relist(&mut self, id: Gid, used: bool) {
        let Some(g) = self.by_id.get_mut(&id) else {
            return;
        };
        let ok = g.evictable();
        match (ok, g.lru) {
            (false, Some(seq)) => {
                self.lru.remove(&seq);
                g.lru = None;
            }
            (true, Some(seq)) if used => {
                self.lru.remove(&seq);
                self.next_lru += 1;
                g.lru = Some(self.next_lru);
                self.lru.insert(self.next_lru, id);
            }
            (true, None) => {
                self.next_lru += 1;
                g.lru = Some(self.next_lru);
                self.lru.insert(self.next_lru, id);
            }
            _ => {}
        }
    }

    pub fn unlist(&mut self, id: Gid) {
        if let Some(g) = self.by_id.get_mut(&id)
            && let Some(seq) = g.lru.take()
        {
            self.lru.remove(&seq);
        }
    }

    /// Evictable groups, least recently used first.
    pub fn lru(&self) -> impl Iterator<Item = Gid> + '_ {
        self.lru.values().copied()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
