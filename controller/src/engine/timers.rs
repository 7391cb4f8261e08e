//! The engine's deadlines: one ordered queue; stale entries (a lease
//! released before its end, a group used again during its warm period)
//! are skipped when they fire rather than searched for and removed.

use std::collections::BTreeMap;
use std::time::Instant;

/// What is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// A lease's end.
    LeaseEnd(u64),
    /// A group's warm period is over (if `generation` still matches).
    WarmEnd { gid: u64, generation: u64 },
    /// A pinned group needs its agent-side lifetime extended.
    Refresh(u64),
    /// A group that may linger on a switch after a failed CLEAR is surely
    /// gone there (the agent's own expiry).
    Linger { gid: u64, switch: u32 },
    /// Misses waiting for room give up.
    Blocked(u64),
    /// A switch that joined a VLAN by a reload gets the groups that were
    /// still installing then.
    Join(u32),
    /// Pre-enumeration and usage bookkeeping.
    Preenumerate,
    /// Forget answers kept for retransmitted UDP requests.
    DedupSweep,
}

#[derive(Debug, Default)]
pub struct Timers {
    q: BTreeMap<(Instant, u64), Timer>,
    seq: u64,
}

impl Timers {
    pub fn at(&mut self, when: Instant, t: Timer) {
        self.seq += 1;
        self.q.insert((when, self.seq), t);
    }

    pub fn next(&self) -> Option<Instant> {
        self.q.keys().next().map(|k| k.0)
    }

    /// The next timer due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let (&k, _) = self.q.iter().next()?;
        if k.0 > now {
            return None;
        }
        self.q.remove(&k)
    }

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.q.len()
    }
}
