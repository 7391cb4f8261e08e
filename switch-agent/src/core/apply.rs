//! From planned items to switch changes, and back to leases once the switch
//! confirmed them. Where "retransmission", "refresh" and "replace" are
//! decided, and where the capacity is enforced.
//!
//! For each set item with its ports decided:
//! - the group is installed with this txid: a retransmission, nothing
//!   changes (not even the expiry);
//! - installed with the same VLAN and the same ports: a refresh, new expiry
//!   and txid, **no switch operation** (the controller renews warm groups
//!   this way);
//! - installed with other ports: one `Install` with the old ports as
//!   `previous` (the backend changes it hitlessly where it can);
//! - installed in another VLAN: `Remove` the old entry, `Install` the new;
//! - not installed: `Install`.
//!
//! A clear item of an installed group is a `Remove`; of anything else, a
//! no-op. The switch is asked for every change of one instruction at once.

use super::action::Change;
use super::leases::{self, Lease, Leases};
use super::plan::ItemPlan;
use super::validate::Refusal;
use crate::backend::PortSet;
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::Instant;
use subcast_proto::NakReason;

/// What one item does to the leases once the switch confirmed the changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Retransmission: nothing changes.
    Unchanged { count: u16 },
    /// Same ports, new txid: new expiry, no switch operation.
    Extend {
        group: Ipv6Addr,
        txid: u64,
        expires: Instant,
        count: u16,
    },
    /// Installed or replaced.
    Install { group: Ipv6Addr, lease: Lease },
    /// Removed.
    Remove { group: Ipv6Addr },
    /// A clear of a group the agent does not hold.
    Nothing,
}

impl Step {
    /// The port count the answer reports for this item.
    pub fn count(&self) -> u16 {
        match self {
            Step::Unchanged { count } | Step::Extend { count, .. } => *count,
            Step::Install { lease, .. } => port_count(&lease.ports),
            Step::Remove { .. } | Step::Nothing => 0,
        }
    }
}

/// The steps of one instruction and the switch changes they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub changes: Vec<Change>,
    /// The item each change belongs to.
    pub change_item: Vec<usize>,
}

pub fn port_count(p: &PortSet) -> u16 {
    u16::try_from(p.len()).unwrap_or(u16::MAX)
}

/// What building a plan needs from the agent.
#[derive(Debug, Clone, Copy)]
pub struct ApplyCtx<'a> {
    pub leases: &'a Leases,
    pub txid: u64,
    /// When the instruction arrived (leases run from then).
    pub received: Instant,
    pub max_lifetime_ms: u32,
    /// Most groups the agent may hold (`None`: no limit known).
    pub capacity: Option<u32>,
}

/// Builds the plan, refusing with `table-full` if the groups held afterwards
/// would exceed the capacity.
pub fn build(items: Vec<ItemPlan>, ctx: ApplyCtx<'_>) -> Result<Plan, (Option<usize>, Refusal)> {
    let mut plan = Plan {
        steps: Vec::with_capacity(items.len()),
        changes: Vec::new(),
        change_item: Vec::new(),
    };
    let mut held = ctx.leases.len() as i64;
    let mut first_new = None;
    for (i, item) in items.into_iter().enumerate() {
        match item {
            ItemPlan::Set {
                vlan,
                parent,
                group,
                lifetime_ms,
                ports,
                members,
            } => {
                let expires = leases::expiry(ctx.received, lifetime_ms, ctx.max_lifetime_ms);
                let lease = Lease {
                    txid: ctx.txid,
                    vlan,
                    parent,
                    ports: ports.clone(),
                    expires,
                    members,
                };
                match ctx.leases.get(&group) {
                    Some(old) if old.txid == ctx.txid => {
                        plan.steps.push(Step::Unchanged {
                            count: port_count(&old.ports),
                        });
                    }
                    Some(old) if old.vlan == vlan && old.ports == ports => {
                        plan.steps.push(Step::Extend {
                            group,
                            txid: ctx.txid,
                            expires,
                            count: port_count(&ports),
                        });
                    }
                    Some(old) if old.vlan == vlan => {
                        plan.changes.push(Change::Install {
                            vlan,
                            group,
                            ports,
                            previous: Some(old.ports.clone()),
                        });
                        plan.change_item.push(i);
                        plan.steps.push(Step::Install { group, lease });
                    }
                    Some(old) => {
                        plan.changes.push(Change::Remove {
                            vlan: old.vlan,
                            group,
                            ports: old.ports.clone(),
                        });
                        plan.changes.push(Change::Install {
                            vlan,
                            group,
                            ports,
                            previous: None,
                        });
                        plan.change_item.extend([i, i]);
                        plan.steps.push(Step::Install { group, lease });
                    }
                    None => {
                        held += 1;
                        first_new.get_or_insert(i);
                        plan.changes.push(Change::Install {
                            vlan,
                            group,
                            ports,
                            previous: None,
                        });
                        plan.change_item.push(i);
                        plan.steps.push(Step::Install { group, lease });
                    }
                }
            }
            ItemPlan::Clear { group } => match ctx.leases.get(&group) {
                Some(old) => {
                    held -= 1;
                    plan.changes.push(Change::Remove {
                        vlan: old.vlan,
                        group,
                        ports: old.ports.clone(),
                    });
                    plan.change_item.push(i);
                    plan.steps.push(Step::Remove { group });
                }
                None => plan.steps.push(Step::Nothing),
            },
        }
    }
    if let (Some(cap), Some(i)) = (ctx.capacity, first_new)
        && held > i64::from(cap)
    {
        return Err((
            Some(i),
            Refusal::new(
                NakReason::TableFull,
                format!(
                    "the switch would hold {held} subset groups, its capacity is {cap} \
                     (clear or let groups expire first)"
                ),
            ),
        ));
    }
    Ok(plan)
}

/// Records a confirmed plan in the leases; returns the count of each item.
pub fn commit(plan: Plan, leases: &mut Leases) -> Vec<u16> {
    let counts = plan.steps.iter().map(Step::count).collect();
    for s in plan.steps {
        match s {
            Step::Unchanged { .. } | Step::Nothing => {}
            Step::Extend {
                group,
                txid,
                expires,
                ..
            } => {
                if let Some(l) = leases.get_mut(&group) {
                    l.txid = txid;
                    l.expires = expires;
                }
            }
            Step::Install { group, lease } => {
                leases.insert(group, lease);
            }
            Step::Remove { group } => {
                leases.remove(&group);
            }
        }
    }
    counts
}

/// Groups whose switch state is uncertain after a failed undo, with every
/// port that may be installed for them: (VLAN, group) -> ports.
pub fn suspects(changes: &[Change]) -> BTreeMap<(u16, Ipv6Addr), PortSet> {
    let mut out: BTreeMap<(u16, Ipv6Addr), PortSet> = BTreeMap::new();
    for c in changes {
        let e = out.entry((c.vlan(), c.group())).or_default();
        match c {
            Change::Install {
                ports, previous, ..
            } => {
                e.extend(ports);
                e.extend(previous.iter().flatten());
            }
            Change::Remove { ports, .. } => e.extend(ports),
        }
    }
    out
}

/// The changes that make the switch hold exactly the leases again for the
/// `suspects` (see [`suspects`]).
pub fn repair(suspects: &BTreeMap<(u16, Ipv6Addr), PortSet>, leases: &Leases) -> Vec<Change> {
    suspects
        .iter()
        .map(|((vlan, group), maybe)| match leases.get(group) {
            Some(l) if l.vlan == *vlan => Change::Install {
                vlan: *vlan,
                group: *group,
                ports: l.ports.clone(),
                previous: Some(maybe.union(&l.ports).copied().collect()),
            },
            _ => Change::Remove {
                vlan: *vlan,
                group: *group,
                ports: maybe.clone(),
            },
        })
        .collect()
}
