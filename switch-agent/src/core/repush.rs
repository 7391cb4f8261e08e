//! Re-push: when a switch port changes spanning-tree state (or, afterwards, a
//! member is learned behind another port), every live group is planned again
//! from its lease's members with the same rule as a SET_SUBSET, and the groups
//! whose ports differ are reinstalled in one action (add before delete, so
//! hitless). The backend says when (`Backend::topology_events`); the daemon
//! calls [`Agent::on_topology_change`].
//!
//! A member the switch cannot place yet (the bridge flushes its FDB on a
//! topology change and learns the member again from its next frame) keeps the
//! group's old ports that still forward, together with the ports of the
//! members it can place; once the member is learned, the next re-push
//! completes the group. A port that does not forward is never installed.

use super::action::{ActionResult, BackendAction, Change};
use super::plan::{self, ItemPlan, PlanCtx};
use super::{Agent, InFlight, Now, RETRY, Work, action::Refresh, apply};
use crate::backend::PortSet;
use std::net::Ipv6Addr;
use subcast_proto::{BatchItem, Member, Members};

impl Agent {
    /// The switch's ports changed state (or a member moved): re-plan every
    /// live group once the backend is free. Events that arrive before that
    /// run are merged into it.
    pub fn on_topology_change(&mut self, now: Now) {
        self.metrics.topology_events.inc();
        if self.phase != super::Phase::Running {
            return;
        }
        if !self.repush_queued {
            self.repush_queued = true;
            self.queue.push_back(Work::Repush);
        }
        self.advance(now);
    }

    /// Starts the queued re-push: the changes, or nothing when every group
    /// already has its ports.
    pub(super) fn start_repush(&mut self) {
        self.repush_queued = false;
        let planned = self.replan();
        if planned.is_empty() {
            tracing::debug!(
                groups = self.leases.len(),
                "re-push: every group already follows the tree"
            );
            return;
        }
        let changes: Vec<Change> = planned
            .iter()
            .map(|(g, vlan, old, new)| Change::Install {
                vlan: *vlan,
                group: *g,
                ports: new.clone(),
                previous: Some(old.clone()),
            })
            .collect();
        for (g, _, old, new) in &planned {
            tracing::info!(group = %g, ?old, ?new, "re-push: the group follows the switch's forwarding ports");
        }
        let done = planned.into_iter().map(|(g, _, _, new)| (g, new)).collect();
        self.emit(
            |id| BackendAction::Apply { id, changes },
            InFlight::Repush(done),
        );
    }

    /// The result of a re-push action.
    pub(super) fn repush_done(
        &mut self,
        done: Vec<(Ipv6Addr, PortSet)>,
        result: ActionResult,
        now: Now,
    ) {
        match result {
            Ok(()) => {
                self.metrics.topology_repushes.inc_by(done.len() as u64);
                for (g, ports) in done {
                    if let Some(l) = self.leases.get_mut(&g) {
                        l.ports = ports;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e.error, "re-push refused by the switch; retrying in 1 s");
                if e.uncertain {
                    let changes: Vec<Change> = done
                        .iter()
                        .filter_map(|(g, p)| {
                            let l = self.leases.get(g)?;
                            Some(Change::Install {
                                vlan: l.vlan,
                                group: *g,
                                ports: p.clone(),
                                previous: Some(l.ports.clone()),
                            })
                        })
                        .collect();
                    self.queue
                        .push_front(Work::Repair(apply::suspects(&changes)));
                }
                self.retry.push((now.at + RETRY, Work::Repush));
            }
        }
    }

    /// (group, VLAN, installed ports, ports now) of every lease whose ports
    /// differ from what the rule gives on the switch as it is now.
    fn replan(&self) -> Vec<(Ipv6Addr, u16, PortSet, PortSet)> {
        let mut out = Vec::new();
        let mut leases: Vec<_> = self.leases.iter().collect();
        leases.sort_by_key(|(g, _)| **g);
        for (g, l) in leases {
            let view = self.view.as_ref();
            let placed: Vec<Member> = l
                .members
                .iter()
                .filter(|m| view.port_toward(l.vlan, m).found().is_some())
                .copied()
                .collect();
            let complete = placed.len() == l.members.len();
            let mut ports = self.plan_ports(*g, l.vlan, l.parent, &placed);
            if !complete {
                // Members not learned yet: keep the old ports that forward.
                let keep = l.ports.iter().copied().filter(|p| view.port_forwards(*p));
                ports.get_or_insert_with(PortSet::new).extend(keep);
            }
            match ports {
                Some(p) if !p.is_empty() && p != l.ports => {
                    out.push((*g, l.vlan, l.ports.clone(), p))
                }
                Some(_) => {}
                None => {
                    tracing::warn!(group = %g, "re-push: no member of the group can be placed on a forwarding port; the group is left as it is");
                }
            }
        }
        out
    }

    /// The ports of `group` for `members` by the rule (`None`: refused, e.g.
    /// no member placed, or a member outside the parent's ports).
    fn plan_ports(
        &self,
        group: Ipv6Addr,
        vlan: u16,
        parent: Ipv6Addr,
        members: &[Member],
    ) -> Option<PortSet> {
        if members.is_empty() {
            return None;
        }
        let item = BatchItem::Set {
            vlan,
            parent,
            group,
            lifetime_ms: 1,
            members: Members::List(members.to_vec()),
        };
        let ctx = PlanCtx {
            parents: &self.settings.parents,
            range: &self.settings.rendezvous_range,
            view: self.view.as_ref(),
            refreshed: true,
        };
        match plan::plan_items(std::slice::from_ref(&item), ctx, &mut Refresh::default()) {
            Ok(Some(items)) => items.into_iter().find_map(|i| match i {
                ItemPlan::Set { ports, .. } => Some(ports),
                ItemPlan::Clear { .. } => None,
            }),
            Ok(None) => None,
            Err((_, r)) => {
                tracing::debug!(group = %group, detail = %r.detail, "re-push: the rule refuses the group's members now");
                None
            }
        }
    }
}
