//! Clearing groups: eviction (a budget needs room, the warm period is
//! over, an install failed), CLEAR outcomes, and groups that may linger
//! on a switch after an unanswered instruction. A group's address goes
//! back to the pool only when no switch may hold it any more: every CLEAR
//! acknowledged, or the agents' own expiry passed.

use super::fanout::{Done, ItemId, Outcome, Purpose};
use super::groups::{GState, Gid, PState};
use super::timers::Timer;
use super::{Answer, Engine, Released, ReplyTo, StoreOp};
use std::time::Instant;
use subcast_proto::BatchItem;

impl Engine {
    /// Clears a group everywhere; returns the CLEAR items per switch.
    pub(super) fn evict(&mut self, now: Instant, gid: Gid, cause: &str) -> Vec<(u32, ItemId)> {
        let Some(g) = self.groups.get(gid) else {
            return Vec::new();
        };
        if g.state == GState::Tearing {
            return Vec::new();
        }
        self.metrics.eviction(cause);
        self.stats.evictions += 1;
        tracing::debug!(group = %g.addr, targets = %g.targets_text(), cause, "evicting");
        self.start_teardown(now, gid);
        self.groups
            .get(gid)
            .map(|g| {
                g.presence
                    .iter()
                    .filter_map(|p| p.item.map(|i| (p.switch, i)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The group is no longer found by its key; CLEAR wherever it may be.
    pub(super) fn start_teardown(&mut self, now: Instant, gid: Gid) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        g.state = GState::Tearing;
        let (addr, pinned) = (g.addr, g.pinned);
        g.pinned = false;
        let sws: Vec<u32> = g.switches().collect();
        self.groups.unlist(gid);
        self.groups.forget_key(gid);
        if pinned {
            for sw in sws {
                self.budgets.pin(sw, false);
            }
        }
        // A restart must not bring it back.
        self.write(StoreOp::HoldGroup {
            group: addr,
            hold_until_ms: 0,
        });
        self.teardown_step(now, gid);
    }

    /// Sends the CLEARs a tearing group still needs; frees it when no
    /// switch may hold it.
    pub(super) fn teardown_step(&mut self, now: Instant, gid: Gid) {
        let Some(g) = self.groups.get(gid) else {
            return;
        };
        if g.state != GState::Tearing {
            return;
        }
        let addr = g.addr;
        let lease = g.first_lease;
        let todo: Vec<u32> = g
            .presence
            .iter()
            .filter(|p| {
                p.item.is_none()
                    && (p.st == PState::Present
                        || (matches!(p.st, PState::Lingering(_)) && !p.clear_tried))
            })
            .map(|p| p.switch)
            .collect();
        let mut items = Vec::new();
        for sw in todo {
            let it = self.fanout.queue(
                sw,
                gid,
                BatchItem::Clear { group: addr },
                Purpose::Clear,
                None,
                lease,
            );
            items.push((sw, it));
        }
        let g = self.groups.get_mut(gid).expect("checked above");
        for (sw, it) in items {
            if let Some(p) = g.presence_mut(sw) {
                p.st = PState::Clearing;
                p.item = Some(it);
                p.clear_tried = true;
            }
        }
        let settled = g.presence.iter().all(|p| p.item.is_none());
        if g.ghost && settled {
            // Swept: answered by every agent (or they are silent, and
            // requests for the VLAN fail on their own).
            g.ghost = false;
            let vlan = g.vlan;
            if let Some(n) = self.sweeping.get_mut(&vlan) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    tracing::info!(vlan, "restart sweep done");
                    self.slots_freed = true;
                }
            }
        }
        let g = self.groups.get(gid).expect("checked above");
        if g.gone_everywhere() && settled {
            self.free_group(now, gid);
        }
    }

    /// The group is gone from every switch: its address returns to the
    /// pool and releases waiting for the CLEAR are answered.
    fn free_group(&mut self, now: Instant, gid: Gid) {
        let Some(g) = self.groups.remove(gid) else {
            return;
        };
        if let Some(p) = self.pools.get_mut(&g.vlan) {
            p.release(g.addr);
        }
        if g.id < super::recover::GHOST_BASE {
            self.write(StoreOp::DeleteGroup { group: g.addr });
        }
        for (h, lease) in g.clear_waiters {
            self.deliver(
                now,
                ReplyTo::Http(h),
                Answer::Released(Released {
                    lease,
                    clear: g.clear_outcomes.clone(),
                    group_state: "cleared",
                }),
            );
        }
        self.slots_freed = true;
    }

    /// One agent's answer to a CLEAR.
    pub(super) fn clear_done(&mut self, now: Instant, d: Done) {
        let (gid, sw) = (d.item.gid, d.item.switch);
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        g.clear_outcomes.push((sw, d.outcome.name().to_owned()));
        let hard_end = g.hard_end;
        let Some(p) = g.presence_mut(sw) else {
            return;
        };
        if p.item == Some(d.item.id) {
            p.item = None;
        }
        let mut uncount = false;
        match d.outcome {
            Outcome::Acked(_) => {
                p.st = PState::Absent;
                uncount = true;
            }
            _ => {
                // It may still be there until the agent's own expiry.
                let until = hard_end.max(now);
                p.st = PState::Lingering(until);
                p.clear_tried = true;
                self.timers.at(until, Timer::Linger { gid, switch: sw });
            }
        }
        if uncount {
            self.uncount(gid, sw);
        }
        self.teardown_step(now, gid);
    }

    /// The presence on `sw` no longer counts. A slot handed over by an
    /// evicted group goes back to it if that group may still be there.
    pub(super) fn uncount(&mut self, gid: Gid, sw: u32) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let Some(p) = g.presence_mut(sw) else {
            return;
        };
        if !p.counted {
            return;
        }
        p.counted = false;
        let donor = p.donor.take();
        if let Some(d) = donor
            && let Some(dp) = self.groups.get_mut(d).and_then(|dg| dg.presence_mut(sw))
            && dp.st.may_hold()
            && !dp.counted
        {
            dp.counted = true;
            return;
        }
        self.budgets.count(sw, false);
        self.slots_freed = true;
    }

    pub(super) fn linger_due(&mut self, now: Instant, gid: Gid, sw: u32) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let Some(p) = g.presence_mut(sw) else {
            return;
        };
        match p.st {
            PState::Lingering(until) if until <= now && p.item.is_none() => {
                p.st = PState::Absent;
            }
            _ => return,
        }
        self.uncount(gid, sw);
        self.teardown_step(now, gid);
    }

    /// Clears the group if nothing holds it any more.
    pub(super) fn end_if_unused(&mut self, now: Instant, gid: Gid, cause: &str) {
        if let Some(g) = self.groups.get(gid)
            && g.refs == 0
            && g.waiters.is_empty()
            && g.round.is_none()
            && g.state == GState::Installed
        {
            self.evict(now, gid, cause);
        }
    }

    /// Starts the warm period of a group nothing holds.
    pub(super) fn start_warm(&mut self, now: Instant, gid: Gid) {
        if self.cfg.warm.is_zero() {
            self.end_if_unused(now, gid, "unused");
            return;
        }
        let warm = self.cfg.warm;
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        if g.tainted {
            self.end_if_unused(now, gid, "tainted");
            return;
        }
        g.warm_gen += 1;
        let generation = g.warm_gen;
        self.timers
            .at(now + warm, Timer::WarmEnd { gid, generation });
        self.groups.relist(gid, true);
    }
}
