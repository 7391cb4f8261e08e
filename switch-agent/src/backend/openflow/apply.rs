//! One action's changes as one OpenFlow bundle (ONF extension 230 on 1.3),
//! atomic and ordered: the switch applies every group and flow mod of the
//! action, or none.
//!
//! Two round trips: OPEN + every ADD + BARRIER, then (if no ADD was refused)
//! COMMIT + BARRIER, else DISCARD. Checking the ADDs first matters: Open
//! vSwitch refuses a malformed message when it is added (and would commit the
//! others), while a message that fails on the tables (a full flow table, an
//! unknown group) fails the commit, which then applies nothing.
//!
//! Per change: a new group is GROUP_MOD ADD (type ALL, one bucket per port) +
//! FLOW_MOD ADD `ipv6_dst=X -> group`; a replaced group is GROUP_MOD MODIFY
//! (hitless); a removed one is a FLOW_MOD DELETE by cookie + GROUP_MOD DELETE.
//! The switch can disagree with what the backend owns: a group id already on
//! the switch (GROUP_EXISTS: a leftover) is taken over with MODIFY, a group it
//! owns but the switch lost (UNKNOWN_GROUP) is added again; the bundle is then
//! retried.

use super::{
    Owned, SUBSET_COOKIE, SUBSET_GROUP_BASE, Shared, check_errors, flow_for, group_mod_for, session,
};
use crate::backend::BackendError;
use crate::core::action::{ActionError, ActionResult, Change};
use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use subcast_ofp13::bundle::{BundleAdd, BundleControl, OFPBF_ATOMIC, OFPBF_ORDERED, ctrl};
use subcast_ofp13::error::{OFPET_GROUP_MOD_FAILED, OFPGMFC_GROUP_EXISTS, OFPGMFC_UNKNOWN_GROUP};
use subcast_ofp13::group_mod::{OFPGC_ADD, OFPGC_DELETE, OFPGC_MODIFY, OFPGT_ALL};
use subcast_ofp13::{Frame, GroupMod, Message};

const FLAGS: u16 = OFPBF_ATOMIC | OFPBF_ORDERED;
/// Retries after the switch disagreed about which groups exist.
const MAX_RETRIES: usize = 4;

static BUNDLE_ID: AtomicU32 = AtomicU32::new(1);

/// What the switch holds, as learned from refused bundles.
#[derive(Debug, Default)]
struct Disagreements {
    /// Group ids on the switch that the backend did not know of.
    exists: HashSet<u32>,
    /// Group ids the backend owns that the switch lost.
    missing: HashSet<u32>,
}

/// The messages of a bundle, each with the change it belongs to, and the
/// ownership after it commits.
struct Plan {
    msgs: Vec<(Message, usize)>,
    owned_after: Vec<((u16, Ipv6Addr), Option<Owned>)>,
}

fn plan(
    changes: &[Change],
    owned: &HashMap<(u16, Ipv6Addr), Owned>,
    new_gids: &HashMap<(u16, Ipv6Addr), u32>,
    d: &Disagreements,
) -> Plan {
    let mut msgs = Vec::new();
    let mut after = Vec::new();
    let mut owned_now: HashMap<(u16, Ipv6Addr), u32> =
        owned.iter().map(|(k, o)| (*k, o.gid)).collect();
    for (i, c) in changes.iter().enumerate() {
        let key = (c.vlan(), c.group());
        match c {
            Change::Install {
                vlan, group, ports, ..
            } => {
                let (gid, known) = match owned_now.get(&key) {
                    Some(g) if !d.missing.contains(g) => (*g, true),
                    Some(g) => (*g, false),
                    None => (new_gids[&key], false),
                };
                if known || d.exists.contains(&gid) {
                    msgs.push((
                        Message::GroupMod(group_mod_for(OFPGC_MODIFY, gid, ports)),
                        i,
                    ));
                } else {
                    msgs.push((Message::GroupMod(group_mod_for(OFPGC_ADD, gid, ports)), i));
                }
                if !known {
                    msgs.push((Message::FlowMod(flow_for(*vlan, *group, gid)), i));
                }
                owned_now.insert(key, gid);
                after.push((
                    key,
                    Some(Owned {
                        gid,
                        ports: ports.clone(),
                    }),
                ));
            }
            Change::Remove { .. } => {
                if let Some(gid) = owned_now.remove(&key) {
                    msgs.push((session::delete_by_cookie(SUBSET_COOKIE | u64::from(gid)), i));
                    msgs.push((
                        Message::GroupMod(GroupMod {
                            command: OFPGC_DELETE,
                            group_type: OFPGT_ALL,
                            group_id: gid,
                            buckets: vec![],
                        }),
                        i,
                    ));
                }
                after.push((key, None));
            }
        }
    }
    Plan {
        msgs,
        owned_after: after,
    }
}

/// The group id a refused GROUP_MOD was about (from the error's data: the
/// BUNDLE_ADD that carried it, as the switch echoes it).
fn refused_gid(f: &Frame, sent: &HashMap<u32, (Message, usize)>) -> Option<u32> {
    match sent.get(&f.xid) {
        Some((Message::GroupMod(g), _)) => Some(g.group_id),
        _ => None,
    }
}

/// Allocates ids for the groups `changes` installs that the backend does not own.
fn allocate(shared: &Shared, changes: &[Change]) -> HashMap<(u16, Ipv6Addr), u32> {
    let mut st = shared.lock();
    let mut out = HashMap::new();
    for c in changes {
        let key = (c.vlan(), c.group());
        if matches!(c, Change::Install { .. })
            && !st.owned.contains_key(&key)
            && !out.contains_key(&key)
        {
            let taken: HashSet<u32> = st.owned.values().map(|o| o.gid).collect();
            let gid = loop {
                let n = st.next_gid;
                st.next_gid = if n >= 0x00ff_ffff { 1 } else { n + 1 };
                let gid = SUBSET_GROUP_BASE | n;
                if !taken.contains(&gid) {
                    break gid;
                }
            };
            out.insert(key, gid);
        }
    }
    out
}

/// Applies `changes` in one atomic bundle.
pub async fn apply(shared: &Shared, changes: &[Change]) -> ActionResult {
    let new_gids = allocate(shared, changes);
    let mut d = Disagreements::default();
    for _ in 0..MAX_RETRIES {
        let owned = shared.lock().owned.clone();
        let p = plan(changes, &owned, &new_gids, &d);
        if p.msgs.is_empty() {
            commit_ownership(shared, p.owned_after);
            return Ok(());
        }
        let bundle_id = BUNDLE_ID.fetch_add(1, Ordering::Relaxed);
        let ctl = |typ| {
            Frame::new(
                shared.next_xid(),
                Message::BundleControl(BundleControl::request(bundle_id, typ, FLAGS)),
            )
        };
        let mut sent: HashMap<u32, (Message, usize)> = HashMap::new();
        let mut frames = vec![ctl(ctrl::OPEN_REQUEST)];
        for (m, i) in &p.msgs {
            let xid = shared.next_xid();
            sent.insert(xid, (m.clone(), *i));
            frames.push(Frame::new(
                xid,
                Message::BundleAdd(BundleAdd::new(bundle_id, FLAGS, xid, m.clone())),
            ));
        }
        let replies = shared.transact_frames(frames).await?;
        if let Err(error) = check_errors(&replies) {
            // An ADD was refused as it was added: discard the bundle.
            let _ = shared
                .transact_frames(vec![ctl(ctrl::DISCARD_REQUEST)])
                .await;
            let change = first_error(&replies)
                .and_then(|f| sent.get(&f.xid))
                .map(|(_, i)| *i);
            return Err(ActionError::clean(error, change));
        }
        let adds: Vec<u32> = sent.keys().copied().collect();
        let replies = match shared
            .transact_frames_also(vec![ctl(ctrl::COMMIT_REQUEST)], &adds)
            .await
        {
            Ok(r) => r,
            // No answer to the commit: it may or may not have been applied.
            Err(error) => {
                return Err(ActionError {
                    error,
                    change: None,
                    uncertain: true,
                });
            }
        };
        let Err(error) = check_errors(&replies) else {
            commit_ownership(shared, p.owned_after);
            return Ok(());
        };
        // The commit failed: nothing was applied. Retry if the switch only
        // disagreed about which groups exist.
        let mut retry = false;
        for f in &replies {
            let Message::Error(e) = &f.message else {
                continue;
            };
            if e.typ != OFPET_GROUP_MOD_FAILED {
                continue;
            }
            match (e.code, refused_gid(f, &sent)) {
                (OFPGMFC_GROUP_EXISTS, Some(g)) => retry |= d.exists.insert(g),
                (OFPGMFC_UNKNOWN_GROUP, Some(g)) => retry |= d.missing.insert(g),
                _ => {}
            }
        }
        if !retry {
            let change = first_error(&replies)
                .and_then(|f| sent.get(&f.xid))
                .map(|(_, i)| *i);
            tracing::info!(%error, ?change, "OpenFlow bundle refused: nothing applied");
            return Err(ActionError::clean(error, change));
        }
        tracing::info!(exists = ?d.exists, missing = ?d.missing, "the switch disagreed about its groups: bundle retried");
    }
    Err(ActionError::clean(
        BackendError::Refused("the switch kept refusing the bundle's groups".into()),
        None,
    ))
}

fn first_error(frames: &[Frame]) -> Option<&Frame> {
    frames
        .iter()
        .find(|f| matches!(f.message, Message::Error(_)))
}

fn commit_ownership(shared: &Shared, after: Vec<((u16, Ipv6Addr), Option<Owned>)>) {
    let mut st = shared.lock();
    for (k, o) in after {
        match o {
            Some(o) => {
                st.owned.insert(k, o);
            }
            None => {
                st.owned.remove(&k);
            }
        }
    }
}
