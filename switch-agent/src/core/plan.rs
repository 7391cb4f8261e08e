//! Where the ports of each item are decided: validation (`validate.rs`),
//! then the switch's view for the members and the parent, then the subset
//! rule (`rule.rs`). No side effect.
//!
//! Every item is validated first (any refusal refuses the whole
//! instruction). Lookups the view cannot answer are collected for one
//! [`Refresh`] of the whole instruction; after it, what is still unknown is
//! absent.

use super::action::Refresh;
use super::rule;
use super::validate::{self, ParentScope, Parents, Refusal};
use super::view::{Lookup, SwitchView};
use crate::backend::PortSet;
use std::net::Ipv6Addr;
use subcast_proto::{BatchItem, Member, NakReason, SetSubset};

/// One item with its ports decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemPlan {
    Set {
        vlan: u16,
        parent: Ipv6Addr,
        group: Ipv6Addr,
        lifetime_ms: u32,
        ports: PortSet,
        /// The listed members as resolved (kept in the lease for re-pushes).
        members: Vec<Member>,
    },
    Clear {
        group: Ipv6Addr,
    },
}

/// What planning needs besides the items.
#[derive(Debug, Clone, Copy)]
pub struct PlanCtx<'a> {
    pub parents: &'a Parents,
    pub range: &'a ipnet::Ipv6Net,
    pub view: &'a dyn SwitchView,
    /// A refresh was done for this instruction: unknown means absent.
    pub refreshed: bool,
}

/// An item that was refused: its index and why.
pub type ItemRefusal = (usize, Refusal);

fn as_set(item: &BatchItem) -> Option<SetSubset> {
    match item {
        BatchItem::Set {
            vlan,
            parent,
            group,
            lifetime_ms,
            members,
        } => Some(SetSubset {
            txid: 0,
            vlan: *vlan,
            parent: *parent,
            group: *group,
            lifetime_ms: *lifetime_ms,
            members: members.clone(),
        }),
        BatchItem::Clear { .. } => None,
    }
}

/// Plans every item. `Ok(None)`: `need` lists what to refresh first.
pub fn plan_items(
    items: &[BatchItem],
    ctx: PlanCtx<'_>,
    need: &mut Refresh,
) -> Result<Option<Vec<ItemPlan>>, ItemRefusal> {
    // Checks that need no lookup, for every item.
    let mut resolved = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match as_set(item) {
            Some(s) => {
                let r = validate::resolve(&s, ctx.parents, ctx.range).map_err(|e| (i, e))?;
                resolved.push(Some((s, r)));
            }
            None => resolved.push(None),
        }
    }
    // Lookups.
    let mut looked = Vec::with_capacity(items.len());
    for (s, r) in resolved.iter().flatten() {
        let listed: Vec<(Member, Lookup<u32>)> = r
            .members
            .iter()
            .map(|m| (*m, ctx.view.port_toward(s.vlan, m)))
            .collect();
        let parent = match &r.scope {
            ParentScope::Configured(pg) => {
                let ports: Vec<Lookup<u32>> = pg
                    .members
                    .iter()
                    .map(|d| {
                        let m = Member::Mac(d.mac);
                        let l = ctx.view.port_toward(s.vlan, &m);
                        if l == Lookup::Unknown {
                            need.members.insert((s.vlan, m));
                        }
                        l
                    })
                    .collect();
                Lookup::Found(rule::parent_ports_from_members(
                    ports.into_iter().map(Lookup::found),
                ))
            }
            ParentScope::Switch => {
                let l = ctx.view.parent_ports(s.vlan, s.parent);
                if l == Lookup::Unknown {
                    need.parents.insert((s.vlan, s.parent));
                }
                l
            }
        };
        for (m, l) in &listed {
            if *l == Lookup::Unknown {
                need.members.insert((s.vlan, *m));
            }
        }
        looked.push((listed, parent));
    }
    if !need.is_empty() && !ctx.refreshed {
        return Ok(None);
    }
    // The rule, per item.
    let mut out = Vec::with_capacity(items.len());
    let mut looked = looked.into_iter();
    for (i, (item, res)) in items.iter().zip(&resolved).enumerate() {
        let Some((s, _)) = res else {
            out.push(ItemPlan::Clear {
                group: item.group(),
            });
            continue;
        };
        let (listed, parent) = looked.next().expect("one lookup per set item");
        let members: Vec<Member> = listed.iter().map(|(m, _)| *m).collect();
        let Some(parent_ports) = parent.found() else {
            return Err((
                i,
                Refusal::new(
                    NakReason::UnknownParent,
                    format!(
                        "parent {} is neither configured on this agent nor known to the switch",
                        s.parent
                    ),
                ),
            ));
        };
        let listed: Vec<(Member, Option<u32>)> =
            listed.into_iter().map(|(m, l)| (m, l.found())).collect();
        let ports = rule::subset_ports(&listed, &parent_ports).map_err(|e| (i, e))?;
        out.push(ItemPlan::Set {
            vlan: s.vlan,
            parent: s.parent,
            group: s.group,
            lifetime_ms: s.lifetime_ms,
            ports,
            members,
        });
    }
    Ok(Some(out))
}
