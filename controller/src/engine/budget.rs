//! Per-switch budgets: how many subset groups the controller may ask a
//! switch to hold, how many it may hold now, and what to evict for room.
//!
//! budget = min(capacity the agent reports, `budget:` configured for the
//! switch); a switch whose agent reports no capacity gets its configured
//! budget or `budgets.default`. Occupancy counts every group that is, or
//! may be, installed on the switch: installed, being set, being cleared,
//! or lingering after an unanswered instruction until the agent's own
//! expiry. A new group needs a free slot on every switch of its VLAN.

use super::groups::{GState, Gid, Groups, PState};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct SwitchBudget {
    pub configured: Option<u32>,
    /// From HELLO/HEARTBEAT; 0 unknown.
    pub reported: u32,
    pub default: u32,
    pub used: u32,
    /// Pre-enumerated (pinned) groups on it.
    pub pinned: u32,
    /// Most groups ever counted at once (for tests and metrics).
    pub peak: u32,
}

impl SwitchBudget {
    pub fn limit(&self) -> u32 {
        match (self.configured, self.reported) {
            (Some(c), 0) => c,
            (Some(c), r) => c.min(r),
            (None, 0) => self.default,
            (None, r) => r,
        }
    }
}

/// How a new group can get room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Room on every switch once these groups are evicted; on each listed
    /// switch the new group's SET must follow that group's CLEAR.
    Room(Vec<(u32, Gid)>),
    /// This switch is full but CLEARs to it are in flight.
    Wait(u32),
    /// This switch is full and nothing on it can be evicted.
    Full(u32),
}

#[derive(Debug)]
pub struct Budgets {
    pub per: BTreeMap<u32, SwitchBudget>,
    reserve_percent: u32,
}

impl Budgets {
    pub fn new(cfg: &crate::config::Config) -> Budgets {
        Budgets {
            per: cfg
                .switches
                .iter()
                .map(|s| {
                    (
                        s.id,
                        SwitchBudget {
                            configured: s.budget,
                            reported: 0,
                            default: cfg.default_budget,
                            used: 0,
                            pinned: 0,
                            peak: 0,
                        },
                    )
                })
                .collect(),
            reserve_percent: cfg.miss_reserve_percent,
        }
    }

    /// Follows a reload: configured budgets, the default and the miss
    /// reserve change; switches come and go. Occupancy is kept.
    pub fn reconfigure(&mut self, cfg: &crate::config::Config) {
        self.per.retain(|id, _| cfg.switch(*id).is_some());
        for s in &cfg.switches {
            let b = self.per.entry(s.id).or_insert(SwitchBudget {
                configured: None,
                reported: 0,
                default: 0,
                used: 0,
                pinned: 0,
                peak: 0,
            });
            b.configured = s.budget;
            b.default = cfg.default_budget;
        }
        self.reserve_percent = cfg.miss_reserve_percent;
    }

    pub fn limit(&self, sw: u32) -> u32 {
        self.per.get(&sw).map_or(0, |b| b.limit())
    }

    pub fn used(&self, sw: u32) -> u32 {
        self.per.get(&sw).map_or(0, |b| b.used)
    }

    pub fn count(&mut self, sw: u32, up: bool) {
        if let Some(b) = self.per.get_mut(&sw) {
            if up {
                b.used += 1;
                b.peak = b.peak.max(b.used);
            } else {
                b.used = b.used.saturating_sub(1);
            }
        }
    }

    pub fn pin(&mut self, sw: u32, up: bool) {
        if let Some(b) = self.per.get_mut(&sw) {
            if up {
                b.pinned += 1;
            } else {
                b.pinned = b.pinned.saturating_sub(1);
            }
        }
    }

    /// Records the capacity an agent reported; true if it changed.
    pub fn report(&mut self, sw: u32, capacity: u32) -> bool {
        match self.per.get_mut(&sw) {
            Some(b) if b.reported != capacity => {
                b.reported = capacity;
                true
            }
            _ => false,
        }
    }

    /// Pinned groups a switch may still take: pre-enumeration leaves
    /// `miss_reserve_percent` of the budget (at least one slot) to misses.
    pub fn preenum_room(&self, sw: u32) -> u32 {
        let Some(b) = self.per.get(&sw) else { return 0 };
        let limit = b.limit();
        let reserve = (u64::from(limit) * u64::from(self.reserve_percent)).div_ceil(100) as u32;
        let share = limit.saturating_sub(reserve.max(1));
        share
            .saturating_sub(b.pinned)
            .min(limit.saturating_sub(b.used))
    }

    /// Room for one more group on every switch in `switches`, evicting
    /// least recently used groups where needed.
    pub fn admit(&self, switches: &[u32], groups: &Groups) -> Admit {
        let mut need: Vec<(u32, i64)> = switches
            .iter()
            .map(|s| (*s, i64::from(self.used(*s)) + 1 - i64::from(self.limit(*s))))
            .collect();
        let mut donors = Vec::new();
        if need.iter().any(|(_, n)| *n > 0) {
            for gid in groups.lru() {
                if need.iter().all(|(_, n)| *n <= 0) {
                    break;
                }
                let Some(g) = groups.get(gid) else { continue };
                let mut used = false;
                for (s, n) in &mut need {
                    if *n > 0
                        && g.presence(*s)
                            .is_some_and(|p| p.counted && p.st == PState::Present)
                    {
                        *n -= 1;
                        donors.push((*s, gid));
                        used = true;
                    }
                }
                let _ = used;
            }
        }
        match need.iter().find(|(_, n)| *n > 0) {
            None => Admit::Room(donors),
            Some((s, _)) => {
                let freeing = groups.by_id.values().any(|g| {
                    g.state == GState::Tearing
                        && g.presence(*s)
                            .is_some_and(|p| p.counted && p.st == PState::Clearing)
                });
                if freeing {
                    Admit::Wait(*s)
                } else {
                    Admit::Full(*s)
                }
            }
        }
    }
}
