//! Rounds of SETs to every switch of a group (install, refresh) and the
//! answers that end them: the group becomes installed and its waiting
//! leases are granted, or the round failed and they are refused with the
//! switch that failed it. Re-pushes to one restarted agent end here too.

use super::fanout::{Done, Outcome, Purpose};
use super::groups::{AckRecord, GState, Gid, PState};
use super::timers::Timer;
use super::{Answer, Engine, Refusal};
use crate::leases::LeaseState;
use std::time::{Duration, Instant};
use subcast_proto::{BatchItem, NakReason, RefuseReason};

impl Engine {
    /// One agent's answer to a SET (install, refresh, re-push).
    pub(super) fn set_done(&mut self, now: Instant, d: Done) {
        let (gid, sw) = (d.item.gid, d.item.switch);
        let life = match &d.item.body {
            BatchItem::Set { lifetime_ms, .. } => Duration::from_millis(u64::from(*lifetime_ms)),
            BatchItem::Clear { .. } => Duration::ZERO,
        };
        let first = d.first_sent.unwrap_or(now);
        let last = d.last_sent.unwrap_or(now);
        let slack = self.slack();
        let name = self.switch_name(sw);
        let purpose = d.item.purpose;
        let failure = match &d.outcome {
            Outcome::Acked(_) => None,
            Outcome::Naked { reason, detail } => Some(
                Refusal::new(
                    if *reason == NakReason::TableFull {
                        RefuseReason::TableFull
                    } else {
                        RefuseReason::AgentRefused
                    },
                    format!("{name} refused: {} ({detail})", reason.name()),
                )
                .at(name.clone()),
            ),
            Outcome::Silent => Some(
                Refusal::new(
                    RefuseReason::AgentUnreachable,
                    format!(
                        "{name} did not answer {} sends of SET_SUBSET; is the agent running and reachable?",
                        d.sends
                    ),
                )
                .at(name.clone()),
            ),
            Outcome::Cancelled => Some(
                Refusal::new(
                    RefuseReason::AgentRefused,
                    format!("{name} did not clear an older group to make room for this one"),
                )
                .at(name.clone()),
            ),
        };
        let now_ms = self.clock.unix_ms(now);
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let generation = g.generation;
        let Some(p) = g.presence_mut(sw) else {
            return;
        };
        if p.item == Some(d.item.id) {
            p.item = None;
        }
        let mut uncount = false;
        match &d.outcome {
            Outcome::Acked(ports) => {
                if matches!(
                    p.st,
                    PState::Setting | PState::Lingering(_) | PState::Present
                ) {
                    p.st = PState::Present;
                }
                p.ack = Some(AckRecord {
                    txid: d.txid,
                    purpose,
                    ports: *ports,
                    at_ms: now_ms,
                    generation,
                });
                p.first_ports.get_or_insert(*ports);
                g.hard_end = g.hard_end.max(now + life + slack);
            }
            Outcome::Naked { .. } | Outcome::Cancelled => {
                // Nothing was applied; a refreshed group keeps its lifetime.
                if purpose != Purpose::Refresh {
                    p.st = PState::Absent;
                    uncount = true;
                }
            }
            Outcome::Silent => {
                let until = last + life + slack;
                p.st = PState::Lingering(until);
                g.hard_end = g.hard_end.max(until);
                self.timers.at(until, Timer::Linger { gid, switch: sw });
            }
        }
        let in_round = g.round.as_ref().is_some_and(|r| r.purpose == purpose);
        if in_round && let Some(r) = g.round.as_mut() {
            r.pending = r.pending.saturating_sub(1);
            if failure.is_none() {
                r.held_until = r.held_until.min(first + life);
            } else if r.failure.is_none() {
                r.failure = failure.clone();
            }
        }
        let round_over = in_round && g.round.as_ref().is_some_and(|r| r.pending == 0);
        let tearing = g.state == GState::Tearing;
        if purpose == Purpose::Repush && failure.is_some() && !tearing {
            g.tainted = true;
            tracing::warn!(group = %g.addr, switch = sw, "re-push failed; the group takes no new leases");
        }
        if uncount {
            self.uncount(gid, sw);
        }
        if purpose == Purpose::Repush && failure.is_some() && !tearing {
            self.groups.forget_key(gid);
            self.end_if_unused(now, gid, "tainted");
        }
        if round_over {
            self.finish_round(now, gid);
        } else if tearing {
            self.teardown_step(now, gid);
        }
    }

    fn finish_round(&mut self, now: Instant, gid: Gid) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let Some(round) = g.round.take() else {
            return;
        };
        let waiters = std::mem::take(&mut g.waiters);
        match (round.purpose, round.failure) {
            (Purpose::Install, None) if g.state == GState::Installing => {
                g.state = GState::Installed;
                g.held_until = round.held_until;
                self.stats.installs_acked += 1;
                self.metrics.phase(
                    "agents",
                    now.saturating_duration_since(round.started).as_secs_f64(),
                );
                let seq = g.needs_seq;
                let first = g.first_lease;
                for id in waiters {
                    self.grant_waiter(now, id, seq, if id == first { "miss" } else { "join" });
                }
                self.after_install(now, gid);
            }
            (Purpose::Refresh, None) => {
                g.held_until = g.held_until.max(round.held_until);
                self.stats.refreshes += 1;
                let held = g.held_until;
                let seq = g.hold.0;
                let guard = self.fanout.policy().give_up_after() + self.slack();
                let mut again = false;
                for id in waiters {
                    let end = self.leases.get(id).map(|h| h.end);
                    match end {
                        Some(e) if e <= held || held >= now + guard => {
                            self.grant_waiter(now, id, seq, "hit")
                        }
                        Some(_) => {
                            again = true;
                            if let Some(g) = self.groups.get_mut(gid) {
                                g.waiters.push(id);
                            }
                        }
                        None => {}
                    }
                }
                if again {
                    self.start_refresh(now, gid, Purpose::Refresh);
                }
                self.after_install(now, gid);
            }
            (Purpose::Install, failure) => {
                let r = failure.unwrap_or_else(|| {
                    Refusal::new(RefuseReason::Internal, "group install ended undecided")
                });
                tracing::info!(group = %g.addr, reason = r.reason.name(), detail = %r.detail, "install failed");
                for id in waiters {
                    self.refuse_waiter(now, id, r.clone());
                }
                // Leases restored after a restart hold it without waiting.
                let held: Vec<u64> = self
                    .leases
                    .iter()
                    .filter(|h| h.gid == gid)
                    .map(|h| h.lease.id)
                    .collect();
                for id in held {
                    self.drop_lease(id);
                }
                self.metrics.eviction("failed");
                self.start_teardown(now, gid);
            }
            (_, failure) => {
                let r = failure.unwrap_or_else(|| {
                    Refusal::new(RefuseReason::Internal, "refresh ended undecided")
                });
                tracing::warn!(group = %g.addr, detail = %r.detail, "refresh failed; the group takes no new leases");
                g.tainted = true;
                self.groups.forget_key(gid);
                for id in waiters {
                    self.refuse_waiter(now, id, r.clone());
                }
                self.end_if_unused(now, gid, "tainted");
            }
        }
    }

    /// After an install or refresh: warm if unused, refresh timer if pinned.
    fn after_install(&mut self, now: Instant, gid: Gid) {
        let Some(g) = self.groups.get(gid) else {
            return;
        };
        if g.pinned {
            let at = g
                .held_until
                .checked_sub(self.cfg.hold / 2)
                .unwrap_or(now)
                .max(now);
            self.timers.at(at, Timer::Refresh(gid));
        }
        if g.refs == 0 && g.state == GState::Installed && !g.pinned {
            self.start_warm(now, gid);
        }
        self.groups.relist(gid, false);
    }

    fn grant_waiter(&mut self, now: Instant, id: u64, seq: u64, kind: &'static str) {
        let Some(h) = self.leases.get_mut(id) else {
            return;
        };
        h.lease.state = LeaseState::Live;
        let lease = h.lease.clone();
        if let Some(w) = self.waiting.remove(&id) {
            self.metrics.grant(
                w.path,
                kind,
                now.saturating_duration_since(w.since).as_secs_f64(),
            );
            self.answer(now, w.reply, Answer::Granted(lease), seq);
        }
    }

    fn refuse_waiter(&mut self, now: Instant, id: u64, r: Refusal) {
        let asked = self
            .drop_lease(id)
            .map(|h| super::inspect::Asked::lease(&h.lease))
            .unwrap_or_default();
        if let Some(w) = self.waiting.remove(&id) {
            self.refuse(now, w.reply, r, asked);
        }
    }
}
