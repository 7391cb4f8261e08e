//! A request becomes a hit (its target set's group is installed: grant
//! at once, no switch update), a join (the group is being installed:
//! granted with it) or a miss (a new group: budget, address, SET to every
//! agent of the VLAN, grant when all ACKed and the store has it).
//! Install and refresh rounds end here too.

use super::budget::Admit;
use super::fanout::Purpose;
use super::groups::{GState, Gid, Group, PState, Presence, Round};
use super::inspect::Asked;
use super::resolve::Resolved;
use super::timers::Timer;
use super::{Answer, Caller, Engine, GroupRow, Refusal, ReplyTo, Request, StoreOp, Waiting};
use crate::leases::{Held, Lease, LeaseState};
use std::time::{Duration, Instant};
use subcast_proto::{BatchItem, Member, Members, RefuseReason};

/// A miss waiting for room on a switch.
#[derive(Debug)]
pub(crate) struct Blocked {
    pub id: u64,
    pub req: Request,
    pub caller: Caller,
    pub reply: ReplyTo,
    pub since: Instant,
}

pub(super) enum Flow {
    Done,
    Blocked,
}

impl Engine {
    pub(super) fn request(&mut self, now: Instant, req: Request, caller: Caller, reply: ReplyTo) {
        match self.try_request(now, &req, &caller, &reply, now) {
            Ok(Flow::Done) => {}
            Ok(Flow::Blocked) => self.block(now, req, caller, reply),
            Err(r) => self.refuse(now, reply, r, Asked::request(&req)),
        }
    }

    pub(super) fn refuse(&mut self, now: Instant, reply: ReplyTo, r: Refusal, asked: Asked) {
        self.metrics.refused(r.reason.name());
        self.stats.refusals += 1;
        self.note_refusal(now, &r, asked);
        self.deliver(now, reply, Answer::Refused(r));
    }

    fn try_request(
        &mut self,
        now: Instant,
        req: &Request,
        caller: &Caller,
        reply: &ReplyTo,
        since: Instant,
    ) -> Result<Flow, Refusal> {
        let r = self.resolve(req)?;
        let switches: Vec<u32> = self
            .cfg
            .switches_in_vlan(r.key.vlan)
            .map(|s| s.id)
            .collect();
        if switches.is_empty() {
            return Err(Refusal::new(
                RefuseReason::AgentUnreachable,
                format!(
                    "no switch carries VLAN {}; list it under a switch's `vlans:`",
                    r.key.vlan
                ),
            ));
        }
        self.check_alive(now, &switches)?;
        if let Some(max) = caller.max_leases
            && max > 0
            && self.leases.held_by(&caller.name) >= max
        {
            return Err(Refusal::new(
                RefuseReason::QuotaExceeded,
                format!(
                    "{} holds {max} leases, its quota; release some first or raise its max_leases",
                    caller.name
                ),
            ));
        }
        self.usage.count(&r.key);
        if let Some(gid) = self.groups.find(&r.key) {
            let g = &self.groups.by_id[&gid];
            match g.state {
                GState::Installed if !g.tainted => {
                    self.hit(now, gid, r.lifetime, caller, reply.clone(), req.path, since);
                    return Ok(Flow::Done);
                }
                GState::Installing => {
                    self.join(now, gid, r.lifetime, caller, reply.clone(), req.path, since);
                    return Ok(Flow::Done);
                }
                _ => {}
            }
        }
        if self.sweeping.get(&r.key.vlan).is_some_and(|n| *n > 0) {
            return Ok(Flow::Blocked);
        }
        match self.budgets.admit(&switches, &self.groups) {
            Admit::Full(sw) => Err(Refusal::new(
                RefuseReason::TableFull,
                format!(
                    "{} holds {} of its budget of {} groups and every one is in use (leased, pinned or being installed); retry later or send another way",
                    self.switch_name(sw),
                    self.budgets.used(sw),
                    self.budgets.limit(sw)
                ),
            )
            .at(self.switch_name(sw))),
            Admit::Wait(_) => Ok(Flow::Blocked),
            Admit::Room(donors) => {
                let lease = self.create_group(now, r, switches, donors, Some(caller), false)?;
                if let Some(id) = lease {
                    self.waiting.insert(
                        id,
                        Waiting {
                            reply: reply.clone(),
                            path: req.path,
                            since,
                        },
                    );
                }
                self.stats.misses += 1;
                if let Some(t) = self.rx_transit {
                    self.metrics.phase("request_transit", t);
                }
                Ok(Flow::Done)
            }
        }
    }

    fn new_lease(
        &mut self,
        now: Instant,
        gid: Gid,
        end: Instant,
        owner: &str,
        state: LeaseState,
        reused: bool,
    ) -> Lease {
        let leases = &self.leases;
        let id = self.ids.lease(|x| leases.contains(x));
        let g = &self.groups.by_id[&gid];
        Lease {
            id,
            vlan: g.vlan,
            parent: g.parent,
            group: g.addr,
            targets: g.targets.clone(),
            switches: g.switches().collect(),
            created_ms: self.clock.unix_ms(now),
            expires_ms: self.clock.unix_ms(end),
            state,
            requester: owner.to_owned(),
            reused,
        }
    }

    /// Records a lease on `gid` (counted as a reference) and its end.
    fn hold_lease(&mut self, lease: &Lease, gid: Gid, end: Instant) {
        self.timers.at(end, Timer::LeaseEnd(lease.id));
        self.leases.insert(Held {
            lease: lease.clone(),
            gid,
            end,
        });
        if let Some(g) = self.groups.get_mut(gid) {
            g.refs += 1;
            if end > g.max_lease_end {
                g.max_lease_end = end;
            }
        }
        self.groups.relist(gid, true);
    }

    #[allow(clippy::too_many_arguments)]
    fn hit(
        &mut self,
        now: Instant,
        gid: Gid,
        lifetime: Duration,
        caller: &Caller,
        reply: ReplyTo,
        path: &'static str,
        since: Instant,
    ) {
        let end = now + lifetime;
        let mut lease = self.new_lease(now, gid, end, &caller.name, LeaseState::Live, true);
        self.hold_lease(&lease, gid, end);
        if let Some(g) = self.groups.get_mut(gid) {
            g.hits += 1;
            g.last_used = now;
        }
        self.stats.hits += 1;
        let seq = self.ensure_hold(gid, end);
        if self.needs_refresh_first(now, gid, end) {
            lease.state = LeaseState::Pending;
            if let Some(h) = self.leases.get_mut(lease.id) {
                h.lease.state = LeaseState::Pending;
            }
            if let Some(g) = self.groups.get_mut(gid) {
                g.waiters.push(lease.id);
            }
            self.waiting
                .insert(lease.id, Waiting { reply, path, since });
            return;
        }
        // No row for a hit's lease: the group's recorded hold covers it.
        self.metrics.grant(
            path,
            "hit",
            now.saturating_duration_since(since).as_secs_f64(),
        );
        self.answer(now, reply, Answer::Granted(lease), seq);
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        now: Instant,
        gid: Gid,
        lifetime: Duration,
        caller: &Caller,
        reply: ReplyTo,
        path: &'static str,
        since: Instant,
    ) {
        let end = now + lifetime;
        let lease = self.new_lease(now, gid, end, &caller.name, LeaseState::Pending, false);
        self.hold_lease(&lease, gid, end);
        self.ensure_hold(gid, end);
        if let Some(g) = self.groups.get_mut(gid) {
            g.waiters.push(lease.id);
        }
        self.waiting
            .insert(lease.id, Waiting { reply, path, since });
        self.write(StoreOp::PutLease(lease));
        self.stats.joins += 1;
    }

    /// The store write after which `end` is covered by the group's
    /// recorded hold (0: covered already). Holds grow in steps of
    /// `hold_ms`, so most hits write nothing before their grant.
    fn ensure_hold(&mut self, gid: Gid, end: Instant) -> u64 {
        let need = self.clock.unix_ms(end);
        let Some(g) = self.groups.get(gid) else {
            return 0;
        };
        let (seq, ms) = g.hold;
        if need <= ms {
            return seq;
        }
        let addr = g.addr;
        let ms = self.clock.unix_ms(end + self.cfg.hold);
        let seq = self.write(StoreOp::HoldGroup {
            group: addr,
            hold_until_ms: ms,
        });
        if let Some(g) = self.groups.get_mut(gid) {
            g.hold = (seq, ms);
        }
        seq
    }

    /// Starts a refresh when the agents' lifetime gets short of the
    /// group's need; true if a lease ending at `end` must wait for it
    /// (the agents might drop the group before a refresh could be
    /// repeated enough times).
    fn needs_refresh_first(&mut self, now: Instant, gid: Gid, end: Instant) -> bool {
        let (warm, hold) = (self.cfg.warm, self.cfg.hold);
        let guard = self.fanout.policy().give_up_after() + self.slack();
        let Some(g) = self.groups.get(gid) else {
            return false;
        };
        let need = g.max_lease_end + warm;
        let short = need + hold / 2 > g.held_until;
        let wait = end > g.held_until && g.held_until < now + guard;
        if (short || wait) && g.round.is_none() {
            self.start_refresh(now, gid, Purpose::Refresh);
        }
        wait
    }

    /// SETs the group again (same ports, new txid) on every switch that
    /// holds it, extending the agents' lifetime without a switch update.
    pub(super) fn start_refresh(&mut self, now: Instant, gid: Gid, purpose: Purpose) {
        let (warm, hold) = (self.cfg.warm, self.cfg.hold);
        let Some(g) = self.groups.get(gid) else {
            return;
        };
        let target = g.max_lease_end.max(now) + warm + hold;
        let body = set_item(g, Self::ms_until(now, target));
        let lease = g.first_lease;
        let sws: Vec<u32> = g
            .presence
            .iter()
            .filter(|p| p.st == PState::Present && p.item.is_none())
            .map(|p| p.switch)
            .collect();
        if sws.is_empty() {
            return;
        }
        let mut items = Vec::new();
        for sw in &sws {
            items.push((
                *sw,
                self.fanout
                    .queue(*sw, gid, body.clone(), purpose, None, lease),
            ));
        }
        let g = self.groups.get_mut(gid).expect("checked above");
        for (sw, it) in items {
            if let Some(p) = g.presence_mut(sw) {
                p.item = Some(it);
            }
        }
        g.generation += 1;
        g.round = Some(Round {
            purpose,
            started: now,
            pending: sws.len() as u32,
            held_until: far_future(now),
            failure: None,
        });
        self.groups.relist(gid, false);
    }

    /// A new group for `r` on `switches` (after evicting `donors`), with
    /// one pending lease for `owner`, or pinned and without a lease.
    /// Returns the lease id.
    pub(super) fn create_group(
        &mut self,
        now: Instant,
        r: Resolved,
        switches: Vec<u32>,
        donors: Vec<(u32, Gid)>,
        owner: Option<&Caller>,
        pinned: bool,
    ) -> Result<Option<u64>, Refusal> {
        let vlan = r.key.vlan;
        let pool = self
            .pools
            .get_mut(&vlan)
            .ok_or_else(|| Refusal::new(RefuseReason::Internal, "VLAN has no pool"))?;
        let before = pool.cursor();
        let Some(addr) = pool.allocate() else {
            return Err(Refusal::new(
                RefuseReason::PoolExhausted,
                format!(
                    "all {} addresses of VLAN {vlan}'s pool slice are in use; retry after a release, shorten leases or warm_ms, or enlarge the pool",
                    pool.size()
                ),
            ));
        };
        let fresh = (pool.cursor() > before).then(|| (pool.cursor() - 1) as u64);
        // Evict first: their CLEARs go before the new SET.
        let mut evicted: Vec<Gid> = Vec::new();
        for (_, d) in &donors {
            if !evicted.contains(d) {
                evicted.push(*d);
                self.evict(now, *d, "lru");
            }
        }
        let gid = self.groups.next_id();
        let end = now + r.lifetime;
        let mut presence: Vec<Presence> = Vec::with_capacity(switches.len());
        for sw in &switches {
            let mut p = Presence::new(*sw);
            p.st = PState::Setting;
            p.counted = true;
            let donor = donors.iter().find(|(s, _)| s == sw).map(|(_, d)| *d);
            let handed = donor.and_then(|d| self.groups.get_mut(d)).and_then(|dg| {
                let dp = dg.presence_mut(*sw)?;
                (dp.counted && dp.st.may_hold()).then(|| {
                    dp.counted = false;
                })
            });
            if handed.is_some() {
                p.donor = donor;
            } else {
                self.budgets.count(*sw, true);
            }
            if pinned {
                self.budgets.pin(*sw, true);
            }
            presence.push(p);
        }
        let parent = self.cfg.groups[r.gi].parent;
        let hold_ms = self.clock.unix_ms(end + self.cfg.hold);
        let row = GroupRow {
            group: addr,
            vlan,
            parent,
            targets: r.targets.clone(),
            switches: switches.clone(),
            hold_until_ms: hold_ms,
            pinned,
            created_ms: self.clock.unix_ms(now),
        };
        let members = Members::List(r.targets.iter().map(|t| Member::Mac(t.mac)).collect());
        let seq = self.write(StoreOp::PutGroup(row));
        self.groups.insert(Group {
            id: gid,
            key: r.key,
            addr,
            vlan,
            parent,
            targets: r.targets,
            members,
            state: GState::Installing,
            refs: 0,
            waiters: Vec::new(),
            pinned,
            lru: None,
            last_used: now,
            max_lease_end: if owner.is_some() { end } else { now },
            held_until: now,
            hard_end: now,
            hold: (seq, hold_ms),
            warm_gen: 0,
            presence,
            round: None,
            tainted: false,
            first_lease: 0,
            created_ms: self.clock.unix_ms(now),
            needs_seq: seq,
            clear_waiters: Vec::new(),
            clear_outcomes: Vec::new(),
            hits: 0,
            ghost: false,
            generation: 0,
        });
        let mut lease_id = None;
        if let Some(c) = owner {
            let lease = self.new_lease(now, gid, end, &c.name, LeaseState::Pending, false);
            self.hold_lease(&lease, gid, end);
            let seq = self.write(StoreOp::PutLease(lease.clone()));
            if let Some(g) = self.groups.get_mut(gid) {
                g.waiters.push(lease.id);
                g.first_lease = lease.id;
                g.needs_seq = seq;
            }
            lease_id = Some(lease.id);
        }
        match fresh.and_then(|i| self.mark_wait(vlan, i)) {
            Some(seq) => self.parked.push((seq, gid)),
            None => self.send_install(now, gid),
        }
        Ok(lease_id)
    }

    /// Queues the SET of a new group to every switch of its VLAN.
    pub(super) fn send_install(&mut self, now: Instant, gid: Gid) {
        let (warm, hold) = (self.cfg.warm, self.cfg.hold);
        let Some(g) = self.groups.get(gid) else {
            return;
        };
        let target = g.max_lease_end.max(now) + warm + hold;
        let body = set_item(g, Self::ms_until(now, target));
        let lease = g.first_lease;
        let plan: Vec<(u32, Option<u64>)> = g
            .presence
            .iter()
            .filter(|p| p.st == PState::Setting && p.item.is_none())
            .map(|p| {
                let after = p
                    .donor
                    .and_then(|d| self.groups.get(d))
                    .and_then(|dg| dg.presence(p.switch))
                    .and_then(|dp| dp.item);
                (p.switch, after)
            })
            .collect();
        let mut items = Vec::new();
        for (sw, after) in &plan {
            let it = self
                .fanout
                .queue(*sw, gid, body.clone(), Purpose::Install, *after, lease);
            items.push((*sw, it));
        }
        let g = self.groups.get_mut(gid).expect("checked above");
        for (sw, it) in items {
            if let Some(p) = g.presence_mut(sw) {
                p.item = Some(it);
            }
        }
        g.generation += 1;
        g.round = Some(Round {
            purpose: Purpose::Install,
            started: now,
            pending: plan.len() as u32,
            held_until: far_future(now),
            failure: None,
        });
    }

    /// Removes a lease without touching its group's warm state.
    pub(super) fn drop_lease(&mut self, id: u64) -> Option<Held> {
        let h = self.leases.remove(id)?;
        if !h.lease.reused {
            self.write(StoreOp::DeleteLease { id });
        }
        if let Some(g) = self.groups.get_mut(h.gid) {
            g.refs = g.refs.saturating_sub(1);
            g.waiters.retain(|w| *w != id);
        }
        Some(h)
    }

    fn block(&mut self, now: Instant, req: Request, caller: Caller, reply: ReplyTo) {
        let id = self.ids.txid();
        let wait = self.fanout.policy().give_up_after() * 2 + Duration::from_secs(1);
        self.timers.at(now + wait, Timer::Blocked(id));
        self.blocked.push_back(Blocked {
            id,
            req,
            caller,
            reply,
            since: now,
        });
    }

    pub(super) fn retry_blocked(&mut self, now: Instant) {
        let q = std::mem::take(&mut self.blocked);
        for b in q {
            match self.try_request(now, &b.req, &b.caller, &b.reply, b.since) {
                Ok(Flow::Done) => {}
                Ok(Flow::Blocked) => self.blocked.push_back(b),
                Err(r) => self.refuse(now, b.reply, r, Asked::request(&b.req)),
            }
        }
    }

    pub(super) fn blocked_due(&mut self, now: Instant, id: u64) {
        let Some(pos) = self.blocked.iter().position(|b| b.id == id) else {
            return;
        };
        let Some(b) = self.blocked.remove(pos) else {
            return;
        };
        let r = if self.sweeping.values().any(|n| *n > 0) {
            Refusal::new(
                RefuseReason::TableFull,
                "the controller is still clearing what it may have pushed before a restart; retry",
            )
        } else {
            Refusal::new(
                RefuseReason::TableFull,
                "no switch of the VLAN freed a slot in time (every group is in use); retry later or send another way",
            )
        };
        self.refuse(now, b.reply, r, Asked::request(&b.req));
    }
}

/// The SET item that (re)installs `g` for `lifetime_ms`.
pub(super) fn set_item(g: &Group, lifetime_ms: u32) -> BatchItem {
    BatchItem::Set {
        vlan: g.vlan,
        parent: g.parent,
        group: g.addr,
        lifetime_ms,
        members: g.members.clone(),
    }
}

pub(super) fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86_400 * 365)
}
