//! The JSON the API returns, built from the engine's state. The
//! inspection commands parse the same types, and the status page renders
//! them, so the three always show the same thing.

use crate::engine::{AgentStatus, BudgetStatus, GroupStatus, RefusalRecord};
use crate::leases::Lease;
use serde::{Deserialize, Serialize};

/// An agent and whether it is alive.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentView {
    pub name: String,
    pub switch_id: u32,
    /// Where instructions are sent.
    pub address: String,
    pub vlans: Vec<u16>,
    pub key_id: u32,
    /// up (heard within the agent timeout), down (heard before, silent
    /// since), unknown (never heard since this controller started).
    pub state: String,
    pub last_heard_ms_ago: Option<u64>,
    pub software_version: Option<String>,
    pub backend: Option<String>,
    pub installed_groups: Option<u32>,
    pub uptime_s: Option<u32>,
    /// Groups the agent says its switch can hold (0: unknown).
    pub table_capacity: Option<u32>,
    /// Groups the controller asks this switch to hold at most, and holds.
    pub budget: u32,
    pub occupancy: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    pub name: String,
    /// The member's address in an IPv6 group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// The member's address in an IPv4 group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    pub mac: String,
}

/// A negotiating (parent) group and its members.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupView {
    pub name: String,
    pub vlan: u16,
    pub parent: String,
    pub members: Vec<MemberView>,
}

/// What one switch's agent last acknowledged for a group.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresenceView {
    pub name: String,
    pub switch_id: u32,
    /// absent, setting, installed, clearing, lingering (did not answer:
    /// may hold the group until the agent's own expiry).
    pub state: String,
    /// An instruction for it queued or in flight: SET_SUBSET, REFRESH,
    /// REPUSH, CLEAR.
    pub in_flight: Option<String>,
    /// The transaction of the last acknowledged SET (decimal string).
    pub txid: Option<String>,
    /// What that SET was: SET_SUBSET (install), REFRESH, REPUSH.
    pub instruction: Option<String>,
    /// Ports the agent installed, as its ACK said.
    pub ports: Option<u16>,
    /// Ports at the group's first acknowledged SET on this switch.
    pub first_ports: Option<u16>,
    pub acked_at_ms: Option<u64>,
    /// The group's round that ACK answered (install = 1, +1 per refresh).
    pub round: Option<u32>,
    /// Why this switch does not agree with the others; absent when it
    /// does (or an instruction is still on its way).
    pub problem: Option<String>,
}

/// A rendezvous group the controller holds (or is setting, or clearing)
/// on the switches, and whether every switch agrees on it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubsetView {
    pub group: String,
    pub parent: String,
    pub vlan: u16,
    pub targets: Vec<String>,
    /// installing, live (leased), warm (kept for reuse), pinned
    /// (pre-enumerated), clearing.
    pub state: String,
    pub leases: u32,
    /// Grants that found it installed.
    pub hits: u64,
    /// Rounds of SETs (install = 1, +1 per refresh).
    pub round: u32,
    pub created_at_ms: u64,
    /// Takes no new leases; cleared when its leases end.
    pub tainted: bool,
    /// Every switch holds it from the latest round with the port count of
    /// its first SET.
    pub agree: bool,
    pub switches: Vec<PresenceView>,
}

/// Ports one switch installed for a lease's group, as its agent ACKed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstalledView {
    pub name: String,
    pub switch_id: u32,
    pub ports: Option<u16>,
    pub txid: Option<String>,
}

/// A lease on a rendezvous group.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaseView {
    /// Decimal string (64-bit ids do not survive JavaScript numbers).
    pub lease_id: String,
    /// The rendezvous group: send the payload here.
    pub group: String,
    pub parent: String,
    pub vlan: u16,
    /// Target member names.
    pub targets: Vec<String>,
    pub switches: Vec<u32>,
    /// pending or live.
    pub state: String,
    pub created_at_ms: u64,
    /// Unix ms; stop sending before this.
    pub expires_at_ms: u64,
    pub requester: String,
    /// The group was already installed for this target set: the grant
    /// needed no switch update.
    pub reused: bool,
    /// Per switch: ports installed for the group, as ACKed (status
    /// endpoints only; empty in a grant).
    #[serde(default)]
    pub installed: Vec<InstalledView>,
}

impl From<&Lease> for LeaseView {
    fn from(l: &Lease) -> Self {
        LeaseView {
            lease_id: l.id.to_string(),
            group: l.group.to_canonical().to_string(),
            parent: l.parent.to_canonical().to_string(),
            vlan: l.vlan,
            targets: l.targets.iter().map(|t| t.name.clone()).collect(),
            switches: l.switches.clone(),
            state: l.state.name().to_owned(),
            created_at_ms: l.created_ms,
            expires_at_ms: l.expires_ms,
            requester: l.requester.clone(),
            reused: l.reused,
            installed: Vec::new(),
        }
    }
}

/// A switch's budget and how much of it is used.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetView {
    pub name: String,
    pub switch_id: u32,
    /// Groups the controller may ask the switch to hold.
    pub budget: u32,
    /// Groups it holds or may hold now (at most `budget`, unless a reload
    /// lowered the budget below what live leases hold).
    pub occupancy: u32,
    /// Highest occupancy since the controller started.
    pub peak: u32,
    /// Capacity the agent reported (0: unknown).
    pub reported: u32,
    /// `budget:` in the config, if any.
    pub configured: Option<u32>,
    /// Pre-enumerated groups on it.
    pub pinned: u32,
}

/// A refused request.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefusalView {
    pub at_ms: u64,
    /// table-full, agent-unreachable, agent-refused, not-a-member, ...
    pub reason: String,
    pub message: String,
    pub switch: Option<String>,
    /// The credential that asked.
    pub requester: String,
    pub parent: String,
    pub targets: Vec<String>,
}

pub fn agent_view(a: AgentStatus, budgets: &[BudgetStatus], now_ms: u64) -> AgentView {
    let (s, seen, up) = (a.switch, a.seen, a.up);
    let b = budgets.iter().find(|b| b.switch_id == s.id);
    AgentView {
        name: s.name,
        switch_id: s.id,
        address: s.agent.to_string(),
        vlans: s.vlans,
        key_id: s.key_id,
        state: match (&seen, up) {
            (_, true) => "up",
            (Some(_), false) => "down",
            (None, _) => "unknown",
        }
        .to_owned(),
        last_heard_ms_ago: seen
            .as_ref()
            .map(|a| now_ms.saturating_sub(a.last_heard_ms)),
        software_version: seen
            .as_ref()
            .and_then(|a| a.hello.as_ref().map(|h| h.software_version.clone())),
        backend: seen
            .as_ref()
            .and_then(|a| a.hello.as_ref().map(|h| h.backend.name().to_owned())),
        installed_groups: seen
            .as_ref()
            .and_then(|a| a.heartbeat.as_ref().map(|h| h.installed_groups)),
        uptime_s: seen
            .as_ref()
            .and_then(|a| a.heartbeat.as_ref().map(|h| h.uptime_s)),
        table_capacity: seen.as_ref().and_then(|a| {
            a.heartbeat
                .as_ref()
                .map(|h| h.table_capacity)
                .or(a.hello.as_ref().map(|h| h.table_capacity))
        }),
        budget: b.map_or(0, |b| b.limit),
        occupancy: b.map_or(0, |b| b.used),
    }
}

pub fn subset_view(g: &GroupStatus) -> SubsetView {
    SubsetView {
        group: g.group.to_canonical().to_string(),
        parent: g.parent.to_canonical().to_string(),
        vlan: g.vlan,
        targets: g.targets.clone(),
        state: g.state.clone(),
        leases: g.leases,
        hits: g.hits,
        round: g.generation,
        created_at_ms: g.created_ms,
        tainted: g.tainted,
        agree: g.agree,
        switches: g
            .switches
            .iter()
            .map(|p| PresenceView {
                name: p.name.clone(),
                switch_id: p.switch_id,
                state: p.state.to_owned(),
                in_flight: p.in_flight.map(str::to_owned),
                txid: p.ack.map(|a| a.txid.to_string()),
                instruction: p.ack.map(|a| a.purpose.name().to_owned()),
                ports: p.ack.map(|a| a.ports),
                first_ports: p.first_ports,
                acked_at_ms: p.ack.map(|a| a.at_ms),
                round: p.ack.map(|a| a.generation),
                problem: p.problem.clone(),
            })
            .collect(),
    }
}

/// A lease with its group's per-switch ports (when the group is known).
pub fn lease_view(l: &Lease, g: Option<&GroupStatus>) -> LeaseView {
    let mut v = LeaseView::from(l);
    if let Some(g) = g {
        v.installed = g
            .switches
            .iter()
            .map(|p| InstalledView {
                name: p.name.clone(),
                switch_id: p.switch_id,
                ports: p.ack.filter(|_| p.state == "installed").map(|a| a.ports),
                txid: p.ack.map(|a| a.txid.to_string()),
            })
            .collect();
    }
    v
}

pub fn budget_view(b: BudgetStatus) -> BudgetView {
    BudgetView {
        name: b.name,
        switch_id: b.switch_id,
        budget: b.limit,
        occupancy: b.used,
        peak: b.peak,
        reported: b.reported,
        configured: b.configured,
        pinned: b.pinned,
    }
}

pub fn refusal_view(r: RefusalRecord) -> RefusalView {
    RefusalView {
        at_ms: r.at_ms,
        reason: r.reason,
        message: r.detail,
        switch: r.switch,
        requester: r.requester,
        parent: r.parent,
        targets: r.targets,
    }
}

/// A key a running controller cannot change, and why.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefusedKeyView {
    pub key: String,
    pub reason: String,
}

/// The outcome of a reload.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReloadView {
    /// The new config is in force (all of it); false: nothing changed.
    pub applied: bool,
    /// The file read again.
    pub file: Option<String>,
    /// What changed, one line each (tokens by name, keys by id).
    pub changes: Vec<String>,
    /// Keys that cannot change while the controller runs.
    pub refused: Vec<RefusedKeyView>,
    /// Errors in the file, as `check-config` prints them.
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    pub message: String,
}
