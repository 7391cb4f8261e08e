//! Lease ends, releases, warm periods and refreshes of pinned groups.
//!
//! When the last lease on a group ends (released or expired) the group
//! stays installed for `warm_ms` (a later request for the same targets is
//! a hit), then is cleared; with `warm_ms: 0` it is cleared at once and a
//! release answers only after the CLEAR. A pinned (pre-enumerated) group
//! never warms out; its agents' lifetime is refreshed before it runs out.

use super::fanout::Purpose;
use super::groups::{GState, Gid};
use super::{Answer, Caller, Engine, Handle, ReleaseError, Released, ReplyTo};
use crate::leases::LeaseState;
use std::time::Instant;
use subcast_proto::RefuseReason;

impl Engine {
    pub(super) fn lease_due(&mut self, now: Instant, id: u64) {
        let Some(h) = self.leases.get(id) else {
            return;
        };
        if h.end > now {
            return;
        }
        self.metrics.expired.inc();
        let asked = super::inspect::Asked::lease(&h.lease);
        if h.lease.state == LeaseState::Pending
            && let Some(w) = self.waiting.remove(&id)
        {
            let r = super::Refusal::new(
                RefuseReason::AgentUnreachable,
                "the lease's lifetime ended before every agent answered; ask for a longer lifetime",
            );
            self.refuse(now, w.reply, r, asked);
        }
        self.end_lease(now, id);
    }

    /// Ends a lease; returns what became of its group: "in-use",
    /// "warm", "pinned", "cleared" or "" (no such lease).
    pub(super) fn end_lease(&mut self, now: Instant, id: u64) -> &'static str {
        let Some(h) = self.drop_lease(id) else {
            return "";
        };
        let gid = h.gid;
        let Some(g) = self.groups.get(gid) else {
            return "cleared";
        };
        if g.refs > 0 || g.state != GState::Installed || g.round.is_some() {
            return "in-use";
        }
        if g.pinned {
            self.groups.relist(gid, true);
            return "pinned";
        }
        if g.tainted || self.cfg.warm.is_zero() {
            self.evict(now, gid, if g.tainted { "tainted" } else { "unused" });
            return "cleared";
        }
        self.start_warm(now, gid);
        "warm"
    }

    pub(super) fn release(&mut self, now: Instant, handle: Handle, id: u64, caller: &Caller) {
        let ans = match self.release_check(id, caller) {
            Err(e) => Answer::NotReleased(e),
            Ok(()) => {
                self.metrics.released.inc();
                let h = self.leases.get(id).cloned().expect("checked");
                let gid = h.gid;
                let clear_now = self.cfg.warm.is_zero()
                    && self
                        .groups
                        .get(gid)
                        .is_some_and(|g| g.refs == 1 && !g.pinned && g.state == GState::Installed);
                if clear_now && let Some(g) = self.groups.get_mut(gid) {
                    // Answered when the CLEAR is done.
                    g.clear_waiters.push((handle, h.lease.clone()));
                    g.clear_outcomes.clear();
                    self.end_lease(now, id);
                    return;
                }
                let state = self.end_lease(now, id);
                Answer::Released(Released {
                    lease: h.lease,
                    clear: Vec::new(),
                    group_state: state,
                })
            }
        };
        self.deliver(now, ReplyTo::Http(handle), ans);
    }

    /// A release over UDP: answered at once (true if released).
    pub(super) fn release_udp(&mut self, now: Instant, id: u64, caller: &Caller) -> bool {
        if self.release_check(id, caller).is_err() {
            return false;
        }
        self.metrics.released.inc();
        self.end_lease(now, id);
        true
    }

    fn release_check(&self, id: u64, caller: &Caller) -> Result<(), ReleaseError> {
        let Some(h) = self.leases.get(id) else {
            return Err(ReleaseError::Unknown);
        };
        if !caller.admin && h.lease.requester != caller.name {
            return Err(ReleaseError::NotOwner {
                owner: h.lease.requester.clone(),
            });
        }
        if h.lease.state == LeaseState::Pending {
            return Err(ReleaseError::Pending);
        }
        Ok(())
    }

    pub(super) fn warm_due(&mut self, now: Instant, gid: Gid, generation: u64) {
        if let Some(g) = self.groups.get(gid)
            && g.warm_gen == generation
            && g.evictable()
        {
            self.evict(now, gid, "warm");
        }
    }

    pub(super) fn refresh_due(&mut self, now: Instant, gid: Gid) {
        if let Some(g) = self.groups.get(gid)
            && g.pinned
            && g.state == GState::Installed
            && g.round.is_none()
        {
            self.start_refresh(now, gid, Purpose::Refresh);
        }
    }
}
