//! What the engine shows: per-switch budgets, every rendezvous group with
//! where it is installed and whether every switch agrees on it, and the
//! recent refusals. The status API, the inspection commands and the
//! status page read these; nothing here changes state.
//!
//! "Agrees": for an installed group, every switch of its VLAN holds it,
//! acknowledged the group's latest round of SETs (install = round 1, each
//! refresh one more), and installed as many ports as at its first SET
//! (same members, same forwarding table: same port set). Anything else
//! is flagged with what is wrong on which switch. What the controller
//! does not know is which ports those are: only each agent knows its
//! switch's forwarding table.

use super::Engine;
use super::groups::{AckRecord, GState, Group, PState, Presence};
use super::types::{Refusal, Request, TargetSpec};
use crate::leases::Lease;
use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::Instant;

/// How many refusals are kept for the status page.
pub const REFUSALS_KEPT: usize = 100;

/// Occupancy of one switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStatus {
    pub switch_id: u32,
    pub name: String,
    pub used: u32,
    pub limit: u32,
    pub reported: u32,
    pub configured: Option<u32>,
    pub pinned: u32,
    pub peak: u32,
}

/// One rendezvous group as shown by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    pub group: Ipv6Addr,
    pub parent: Ipv6Addr,
    pub vlan: u16,
    pub targets: Vec<String>,
    /// installing, live, warm, pinned, clearing.
    pub state: String,
    pub leases: u32,
    pub hits: u64,
    /// Rounds of SETs started (install = 1, then one per refresh).
    pub generation: u32,
    pub created_ms: u64,
    /// Takes no new leases (an agent missed a refresh or re-push, or a
    /// reload changed its parent group); cleared when its leases end.
    pub tainted: bool,
    /// Every switch of the VLAN, as the controller knows it.
    pub switches: Vec<SwitchPresence>,
    /// No switch is flagged.
    pub agree: bool,
}

/// A group on one switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchPresence {
    pub switch_id: u32,
    pub name: String,
    /// absent, setting, installed, clearing, lingering.
    pub state: &'static str,
    /// An instruction queued or in flight for it (SET_SUBSET, REFRESH,
    /// REPUSH, CLEAR).
    pub in_flight: Option<&'static str>,
    /// The agent's last acknowledgement of a SET.
    pub ack: Option<AckRecord>,
    /// Ports at the first acknowledged SET.
    pub first_ports: Option<u16>,
    /// Why this switch does not agree (None: it agrees, or an instruction
    /// is still on its way).
    pub problem: Option<String>,
}

/// A refused request, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalRecord {
    pub at_ms: u64,
    /// The stable reason name (table-full, agent-unreachable, ...).
    pub reason: String,
    pub detail: String,
    pub switch: Option<String>,
    pub requester: String,
    pub parent: String,
    pub targets: Vec<String>,
}

/// Who asked for what, for the refusal log.
#[derive(Debug, Clone, Default)]
pub(crate) struct Asked {
    pub requester: String,
    pub parent: String,
    pub targets: Vec<String>,
}

impl Asked {
    pub fn request(r: &Request) -> Asked {
        Asked {
            requester: r.requester.clone(),
            parent: r.parent.clone(),
            targets: r
                .targets
                .iter()
                .map(|t| match t {
                    TargetSpec::Text(s) => s.clone(),
                    TargetSpec::Member(m) => m.to_string(),
                })
                .collect(),
        }
    }
    pub fn lease(l: &Lease) -> Asked {
        Asked {
            requester: l.requester.clone(),
            parent: l.parent.to_string(),
            targets: l.targets.iter().map(|t| t.name.clone()).collect(),
        }
    }
}

pub(super) fn group_state(g: &Group) -> &'static str {
    match g.state {
        GState::Installing => "installing",
        GState::Tearing => "clearing",
        GState::Installed if g.pinned && g.refs == 0 => "pinned",
        GState::Installed if g.refs > 0 => "live",
        GState::Installed => "warm",
    }
}

fn presence_state(p: &Presence) -> &'static str {
    match p.st {
        PState::Absent => "absent",
        PState::Setting => "setting",
        PState::Present => "installed",
        PState::Clearing => "clearing",
        PState::Lingering(_) => "lingering",
    }
}

/// Why `p` disagrees with the rest of installed group `g` (None: agrees,
/// or still settling).
fn problem(g: &Group, p: &Presence, in_flight: bool) -> Option<String> {
    if in_flight || g.state == GState::Installing {
        return None;
    }
    if g.state == GState::Tearing {
        // Being cleared: only a switch that did not answer is in doubt.
        return matches!(p.st, PState::Lingering(_)).then(|| {
            "did not answer its CLEAR: it may hold the group until the agent's own expiry".into()
        });
    }
    match p.st {
        PState::Present => {
            let Some(a) = p.ack else {
                return Some("held but never acknowledged to this controller".into());
            };
            if a.generation < g.generation {
                return Some(format!(
                    "acknowledged round {} but the group is at round {}: it missed the latest refresh",
                    a.generation, g.generation
                ));
            }
            if let Some(first) = p.first_ports
                && first != a.ports
            {
                return Some(format!(
                    "installs {} ports now and {first} at first: its forwarding table changed since",
                    a.ports
                ));
            }
            if a.ports == 0 {
                return Some(
                    "0 ports: the agent found none of the targets behind a port of the parent group"
                        .into(),
                );
            }
            None
        }
        PState::Absent => Some("not installed".into()),
        PState::Setting => Some("being set".into()),
        PState::Clearing => Some("being cleared".into()),
        PState::Lingering(_) => {
            Some("did not answer: it may hold the group until the agent's own expiry".into())
        }
    }
}

impl Engine {
    pub(super) fn note_refusal(&mut self, now: Instant, r: &Refusal, asked: Asked) {
        if self.refusals.len() >= REFUSALS_KEPT {
            self.refusals.pop_front();
        }
        self.refusals.push_back(RefusalRecord {
            at_ms: self.clock.unix_ms(now),
            reason: r.reason.name().to_owned(),
            detail: r.detail.clone(),
            switch: r.switch.clone(),
            requester: asked.requester,
            parent: asked.parent,
            targets: asked.targets,
        });
    }

    /// The most recent refusals, oldest first.
    pub fn refusals(&self) -> Vec<RefusalRecord> {
        self.refusals.iter().cloned().collect()
    }

    pub fn budgets(&self) -> Vec<BudgetStatus> {
        self.budgets
            .per
            .iter()
            .map(|(id, b)| BudgetStatus {
                switch_id: *id,
                name: self
                    .cfg
                    .switch(*id)
                    .map_or_else(String::new, |s| s.name.clone()),
                used: b.used,
                limit: b.limit(),
                reported: b.reported,
                configured: b.configured,
                pinned: b.pinned,
                peak: b.peak,
            })
            .collect()
    }

    /// Every rendezvous group, by address.
    pub fn groups(&self) -> Vec<GroupStatus> {
        let mut v: Vec<GroupStatus> = self
            .groups
            .by_id
            .values()
            .filter(|g| !g.ghost)
            .map(|g| self.group_status(g))
            .collect();
        v.sort_by_key(|g| g.group);
        v
    }

    /// One rendezvous group by its address.
    pub fn group(&self, addr: Ipv6Addr) -> Option<GroupStatus> {
        let gid = self.groups.by_addr.get(&addr)?;
        self.groups.get(*gid).map(|g| self.group_status(g))
    }

    fn group_status(&self, g: &Group) -> GroupStatus {
        let switches: Vec<SwitchPresence> = g
            .presence
            .iter()
            .map(|p| {
                let in_flight = p
                    .item
                    .and_then(|i| self.fanout.purpose_of(i))
                    .map(|pu| pu.name());
                SwitchPresence {
                    switch_id: p.switch,
                    name: self
                        .cfg
                        .switch(p.switch)
                        .map_or_else(|| p.switch.to_string(), |s| s.name.clone()),
                    state: presence_state(p),
                    in_flight,
                    ack: p.ack,
                    first_ports: p.first_ports,
                    problem: problem(g, p, in_flight.is_some()),
                }
            })
            .collect();
        GroupStatus {
            group: g.addr,
            parent: g.parent,
            vlan: g.vlan,
            targets: g.targets.iter().map(|t| t.name.clone()).collect(),
            state: group_state(g).to_owned(),
            leases: g.refs,
            hits: g.hits,
            generation: g.generation,
            created_ms: g.created_ms,
            tainted: g.tainted,
            agree: switches.iter().all(|s| s.problem.is_none()),
            switches,
        }
    }

    /// Sets the gauges from the state (before `/metrics` is read).
    pub fn update_gauges(&self, now: Instant) {
        for b in self.budgets() {
            let l = crate::metrics::SwitchLabel { switch: b.name };
            self.metrics
                .occupancy
                .get_or_create(&l)
                .set(i64::from(b.used));
            self.metrics
                .budget
                .get_or_create(&l)
                .set(i64::from(b.limit));
        }
        let mut counts: HashMap<&'static str, i64> = HashMap::new();
        let mut disagree = 0;
        for g in self.groups.by_id.values() {
            *counts.entry(group_state(g)).or_default() += 1;
            if g.state != GState::Installing
                && g.presence
                    .iter()
                    .any(|p| problem(g, p, p.item.is_some()).is_some())
            {
                disagree += 1;
            }
        }
        for s in ["installing", "live", "warm", "pinned", "clearing"] {
            self.metrics
                .groups
                .get_or_create(&crate::metrics::StateLabel { state: s.into() })
                .set(counts.get(s).copied().unwrap_or(0));
        }
        self.metrics.groups_disagreeing.set(disagree);
        self.metrics
            .agents_up
            .set(self.agents(now).iter().filter(|a| a.up).count() as i64);
        self.metrics.leases_live.set(self.leases.len() as i64);
        self.metrics
            .replay_senders
            .set(self.opener.senders() as i64);
    }
}
