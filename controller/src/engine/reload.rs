//! Reload: a new config, already checked like `check-config` does, is
//! compared with the running one and applied in one step, or not at all.
//!
//! What changes live: keys, agents (address, keys), switches added (they
//! get every installed group of their VLANs once their agent says HELLO)
//! or removed (only when they hold no group), parent groups and their
//! members, pre-enumeration, tokens, lease and fan-out settings, budgets
//! and pool growth (prefixes added after the existing ones).
//!
//! What cannot, and why (the reload is refused, naming the key):
//! `controller.id` (lease and transaction ids carry it), `udp_listen`,
//! `api.listen` and `api.max_body_bytes` (bound when the daemon starts),
//! `database` (opened at start), `pool_slice` and any pool change other
//! than growth (addresses of the old pool may be installed on switches),
//! and removing a VLAN or a switch that still holds rendezvous groups.
//!
//! No lease is dropped. A group whose target set no longer fits its
//! parent group (member removed, MAC changed, parent gone) takes no new
//! lease and is cleared when its leases end. A budget lowered below a
//! switch's occupancy evicts warm groups (least recently used first),
//! then idle pre-enumerated ones; live groups stay, and the switch takes
//! no new group until its leases bring it under the new budget.

use super::fanout::{Policy, Purpose};
use super::grant::set_item;
use super::groups::{GState, Gid, GroupKey, PState, Presence};
use super::timers::Timer;
use super::{Engine, StoreOp};
use crate::config::{Config, Preenumerate};
use crate::pool::Pool;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// A key whose change cannot be applied to a running controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Where in the file, e.g. `api.listen` or `switches[s3]`.
    pub key: String,
    pub reason: String,
}

impl Refused {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Refused {
        Refused {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// What a reload changed, one line per change (no secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    pub changes: Vec<String>,
}

impl Engine {
    /// Applies `new` if every change can be made live; otherwise changes
    /// nothing and says which keys cannot change, and why.
    pub fn reload(&mut self, now: Instant, new: Arc<Config>) -> Result<ReloadReport, Vec<Refused>> {
        let old = self.cfg.clone();
        let mut refused = fixed(&old, &new);
        let mut pools: HashMap<u16, Pool> = HashMap::new();
        for (vid, v) in &old.vlans {
            match new.vlans.get(vid) {
                None => {
                    let n = self.groups_in(*vid, None);
                    if n > 0 || self.sweeping.get(vid).is_some_and(|s| *s > 0) {
                        refused.push(Refused::new(
                            format!("vlans[{vid}]"),
                            format!("{n} rendezvous groups of VLAN {vid} are held or being cleared; remove the VLAN once they are gone (or restart)"),
                        ));
                    }
                }
                Some(nv) if nv.pool != v.pool => {
                    let (i, c) = new.pool_slice;
                    match self.pools.get(vid).and_then(|p| p.grown(&nv.pool, i, c)) {
                        Some(p) => {
                            pools.insert(*vid, p);
                        }
                        None => refused.push(Refused::new(
                            format!("vlans[{vid}].pool"),
                            "addresses of the running pool may be installed on switches and are remembered below the pool mark; only growth applies live (prefixes added after the existing ones, or the last one made longer); restart to change the pool otherwise",
                        )),
                    }
                }
                Some(_) => {}
            }
        }
        for s in &old.switches {
            match new.switch(s.id) {
                None => {
                    let n = self.groups_in_switch(s.id, None);
                    if n > 0 {
                        refused.push(Refused::new(
                            format!("switches[{}]", s.name),
                            format!("switch {} may still hold {n} rendezvous groups; remove it once they are cleared (its leases ended), or restart", s.name),
                        ));
                    }
                }
                Some(ns) => {
                    for v in s.vlans.iter().filter(|v| !ns.vlans.contains(v)) {
                        let n = self.groups_in_switch(s.id, Some(*v));
                        if n > 0 {
                            refused.push(Refused::new(
                                format!("switches[{}].vlans", s.name),
                                format!("switch {} may still hold {n} rendezvous groups of VLAN {v}; take the VLAN off once they are cleared, or restart", s.name),
                            ));
                        }
                    }
                }
            }
        }
        if !refused.is_empty() {
            return Err(refused);
        }
        let mut report = ReloadReport {
            changes: describe(&old, &new),
        };
        for (vid, v) in &new.vlans {
            if !old.vlans.contains_key(vid) {
                let (i, c) = new.pool_slice;
                pools.insert(*vid, Pool::new(&v.pool, i, c));
            }
        }
        self.cfg = new.clone();
        self.sealing.set_keys(new.keys.clone());
        self.opener.set_keys(&new.keys);
        self.fanout.set_policy(Policy {
            rto: new.retransmit,
            attempts: new.attempts,
        });
        self.agents.sync(&new);
        self.budgets.reconfigure(&new);
        self.pools.retain(|v, _| new.vlans.contains_key(v));
        self.marks.retain(|v, _| new.vlans.contains_key(v));
        self.pools.extend(pools);
        let joined = self.follow_switches(&old, &new);
        self.rekey_groups(now, &mut report);
        self.unpin_unwanted_all(now);
        for s in &new.switches {
            if let Some(line) = self.fit_budget(now, s.id) {
                report.changes.push(line);
            }
        }
        for sw in joined {
            if self.agents.said_hello(sw) {
                self.join_push(now, sw);
            }
            // Groups still installing now get theirs once installed.
            let later = now + self.fanout.policy().give_up_after() + self.slack();
            self.timers.at(later, Timer::Join(sw));
        }
        self.slots_freed = true;
        self.timers.at(now, Timer::Preenumerate);
        self.settle(now);
        tracing::info!(changes = ?report.changes, "config reloaded");
        Ok(report)
    }

    /// Groups (held, being set or cleared) of `vlan` on any switch.
    fn groups_in(&self, vlan: u16, sw: Option<u32>) -> usize {
        self.groups
            .by_id
            .values()
            .filter(|g| g.vlan == vlan)
            .filter(|g| {
                g.presence.iter().any(|p| {
                    sw.is_none_or(|s| s == p.switch) && (p.st.may_hold() || p.item.is_some())
                })
            })
            .count()
    }

    fn groups_in_switch(&self, sw: u32, vlan: Option<u16>) -> usize {
        self.groups
            .by_id
            .values()
            .filter(|g| vlan.is_none_or(|v| v == g.vlan))
            .filter(|g| {
                g.presence
                    .iter()
                    .any(|p| p.switch == sw && (p.st.may_hold() || p.item.is_some()))
            })
            .count()
    }

    /// Every group's presences follow its VLAN's switches; returns the
    /// switches that joined a VLAN.
    fn follow_switches(&mut self, old: &Config, new: &Config) -> Vec<u32> {
        let mut joined = BTreeSet::new();
        for g in self.groups.by_id.values_mut() {
            if g.state == GState::Tearing {
                continue;
            }
            let now_in: Vec<u32> = new.switches_in_vlan(g.vlan).map(|s| s.id).collect();
            g.presence
                .retain(|p| now_in.contains(&p.switch) || p.st.may_hold() || p.item.is_some());
            for sw in now_in {
                if g.presence(sw).is_none() {
                    g.presence.push(Presence::new(sw));
                    joined.insert(sw);
                }
            }
        }
        for s in &new.switches {
            for v in &s.vlans {
                let was = old.switch(s.id).is_some_and(|o| o.vlans.contains(v));
                if !was {
                    joined.insert(s.id);
                }
            }
        }
        joined.into_iter().collect()
    }

    /// Groups are found by (VLAN, parent, member indexes): renumber them
    /// for the new member lists; a group whose targets are no longer all
    /// members (or whose parent is gone) takes no new lease.
    fn rekey_groups(&mut self, now: Instant, report: &mut ReloadReport) {
        let gids: Vec<Gid> = self
            .groups
            .by_id
            .values()
            .filter(|g| g.state != GState::Tearing && !g.tainted)
            .map(|g| g.id)
            .collect();
        let mut tainted = 0;
        for gid in gids {
            let g = &self.groups.by_id[&gid];
            match key_for(&self.cfg, g.vlan, g.parent, &g.targets) {
                Some(k) if k == g.key => {}
                Some(k) => self.groups.rekey(gid, k),
                None => {
                    tainted += 1;
                    let g = self.groups.get_mut(gid).expect("listed above");
                    tracing::info!(group = %g.addr, targets = %g.targets_text(), "reload: its targets are no longer members of its parent group; no new leases, cleared when its leases end");
                    g.tainted = true;
                    self.unpin(gid);
                    self.groups.forget_key(gid);
                    self.end_if_unused(now, gid, "tainted");
                }
            }
        }
        if tainted > 0 {
            report.changes.push(format!(
                "{tainted} rendezvous groups no longer match their parent group: they take no new lease and are cleared when their leases end"
            ));
        }
    }

    fn unpin(&mut self, gid: Gid) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        if !g.pinned {
            return;
        }
        g.pinned = false;
        let sws: Vec<u32> = g.switches().collect();
        for s in sws {
            self.budgets.pin(s, false);
        }
        self.groups.relist(gid, false);
    }

    /// Pre-enumerated groups the new config no longer asks for become
    /// ordinary (warm if unused). `top:` sets are re-chosen by the next
    /// pre-enumeration pass.
    fn unpin_unwanted_all(&mut self, now: Instant) {
        let unwanted: Vec<Gid> = self
            .groups
            .by_id
            .values()
            .filter(|g| g.pinned)
            .filter(|g| {
                let pg = self
                    .cfg
                    .groups
                    .iter()
                    .find(|p| p.parent == g.parent && p.vlan == g.vlan);
                match pg.map(|p| (p.preenumerate, p.replicas)) {
                    Some((Preenumerate::All, k)) => g.key.targets.len() != k as usize,
                    Some((Preenumerate::Top(_), _)) => false,
                    _ => true,
                }
            })
            .map(|g| g.id)
            .collect();
        for gid in unwanted {
            self.unpin(gid);
            if let Some(g) = self.groups.get(gid)
                && g.refs == 0
                && g.state == GState::Installed
            {
                self.start_warm(now, gid);
            }
        }
    }

    /// Brings switch `sw` under its budget: evicts warm groups (least
    /// recently used first), then idle pre-enumerated ones, never a group
    /// with a lease. Says what it did when the switch was over.
    fn fit_budget(&mut self, now: Instant, sw: u32) -> Option<String> {
        let (used, limit) = (self.budgets.used(sw), self.budgets.limit(sw));
        if used <= limit {
            return None;
        }
        // Slots already on their way out.
        let freeing = self
            .groups
            .by_id
            .values()
            .filter(|g| {
                g.state == GState::Tearing
                    && g.presence(sw)
                        .is_some_and(|p| p.counted && p.st == PState::Clearing)
            })
            .count() as u32;
        let mut excess = (used - limit).saturating_sub(freeing);
        let on_sw = |g: &super::groups::Group| {
            g.presence(sw)
                .is_some_and(|p| p.counted && p.st == PState::Present)
        };
        let warm: Vec<Gid> = self
            .groups
            .lru()
            .filter(|gid| self.groups.get(*gid).is_some_and(on_sw))
            .take(excess as usize)
            .collect();
        let evicted = warm.len() as u32;
        for gid in warm {
            self.evict(now, gid, "budget");
        }
        excess -= evicted;
        let idle_pinned: Vec<Gid> = self
            .groups
            .by_id
            .values()
            .filter(|g| {
                g.pinned && g.refs == 0 && g.round.is_none() && g.state == GState::Installed
            })
            .filter(|g| on_sw(g))
            .map(|g| g.id)
            .take(excess as usize)
            .collect();
        let unpinned = idle_pinned.len() as u32;
        for gid in idle_pinned {
            self.unpin(gid);
            self.evict(now, gid, "budget");
        }
        excess -= unpinned;
        let name = self.switch_name(sw);
        let mut line = format!(
            "{name}: budget {limit} is below its occupancy {used}: {evicted} warm and {unpinned} pre-enumerated groups evicted"
        );
        if excess > 0 {
            line.push_str(&format!(
                "; still over by {excess} (groups with leases stay): it takes no new group until they end"
            ));
        }
        tracing::warn!("{line}");
        Some(line)
    }

    /// Installs on `sw` every installed group of its VLANs it does not
    /// hold (it joined by a reload). A group that does not fit in the
    /// switch's budget takes no new lease and is cleared when its leases
    /// end.
    pub(super) fn join_push(&mut self, now: Instant, sw: u32) {
        let gids: Vec<Gid> = self
            .groups
            .by_id
            .values()
            .filter(|g| g.state == GState::Installed && !g.tainted)
            .filter(|g| {
                g.presence(sw)
                    .is_some_and(|p| p.st == PState::Absent && p.item.is_none())
            })
            .map(|g| g.id)
            .collect();
        for gid in gids {
            if self.budgets.used(sw) >= self.budgets.limit(sw) {
                let name = self.switch_name(sw);
                if let Some(g) = self.groups.get_mut(gid) {
                    tracing::warn!(group = %g.addr, switch = %name, "no room for a group on a switch that joined its VLAN; it takes no new leases");
                    g.tainted = true;
                }
                self.unpin(gid);
                self.groups.forget_key(gid);
                self.end_if_unused(now, gid, "tainted");
                continue;
            }
            self.budgets.count(sw, true);
            let Some(g) = self.groups.get(gid) else {
                continue;
            };
            if g.pinned {
                self.budgets.pin(sw, true);
            }
            let body = set_item(g, Self::ms_until(now, g.held_until));
            let lease = g.first_lease;
            let it = self
                .fanout
                .queue(sw, gid, body, Purpose::Repush, None, lease);
            if let Some(p) = self.groups.get_mut(gid).and_then(|g| g.presence_mut(sw)) {
                p.st = PState::Setting;
                p.counted = true;
                p.item = Some(it);
            }
            self.write_switches(gid);
        }
    }

    /// The group's row lists the switches it is on now.
    fn write_switches(&mut self, gid: Gid) {
        let Some(g) = self.groups.get(gid) else {
            return;
        };
        let row = super::GroupRow {
            group: g.addr,
            vlan: g.vlan,
            parent: g.parent,
            targets: g.targets.clone(),
            switches: g.switches().collect(),
            hold_until_ms: g.hold.1,
            pinned: g.pinned,
            created_ms: g.created_ms,
        };
        self.write(StoreOp::PutGroup(row));
    }
}

/// The group key of `targets` under `cfg` (None: the parent group is
/// gone, moved to another VLAN, or a target is no longer a member).
fn key_for(
    cfg: &Config,
    vlan: u16,
    parent: std::net::Ipv6Addr,
    targets: &[crate::leases::Target],
) -> Option<GroupKey> {
    let g = cfg.group_by_parent(parent)?;
    if g.vlan != vlan {
        return None;
    }
    let mut idx = Vec::with_capacity(targets.len());
    for t in targets {
        idx.push(g.members.iter().position(|m| m.mac == t.mac)? as u16);
    }
    idx.sort_unstable();
    Some(GroupKey {
        vlan,
        parent,
        targets: idx,
    })
}

/// Keys that a running controller cannot change.
fn fixed(old: &Config, new: &Config) -> Vec<Refused> {
    let mut r = Vec::new();
    if old.controller_id != new.controller_id {
        r.push(Refused::new(
            "controller.id",
            "lease and transaction ids carry the controller id, and agents know this controller by it; restart to change it",
        ));
    }
    if old.udp_listen != new.udp_listen {
        r.push(Refused::new(
            "controller.udp_listen",
            "the UDP socket is bound when the controller starts; restart to move it (and point the agents and storage nodes at the new address)",
        ));
    }
    if old.database != new.database {
        r.push(Refused::new(
            "controller.database",
            "the database is opened when the controller starts; stop it, move the file, and start it again",
        ));
    }
    if old.audit_max_rows != new.audit_max_rows {
        r.push(Refused::new(
            "controller.audit_max_rows",
            "the audit log's limit is set when the controller opens its database; restart to change it",
        ));
    }
    if old.pool_slice != new.pool_slice {
        r.push(Refused::new(
            "controller.pool_slice",
            "the slice decides which addresses this controller may have pushed; change it with every controller stopped",
        ));
    }
    if old.api_listen != new.api_listen {
        r.push(Refused::new(
            "api.listen",
            "the HTTP listener is bound when the controller starts; restart to move it",
        ));
    }
    if old.max_body_bytes != new.max_body_bytes {
        r.push(Refused::new(
            "api.max_body_bytes",
            "the HTTP body limit is set when the API starts; restart to change it",
        ));
    }
    r
}

/// What differs between `old` and `new`, one line per change; secrets
/// are never shown (tokens by name, keys by id).
fn describe(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let ids = |c: &Config| c.keys.keys().copied().collect::<BTreeSet<u32>>();
    let (ko, kn) = (ids(old), ids(new));
    for k in kn.difference(&ko) {
        out.push(format!("key {k} added"));
    }
    for k in ko.difference(&kn) {
        out.push(format!("key {k} removed"));
    }
    for k in ko.intersection(&kn) {
        if old.keys[k].to_hex() != new.keys[k].to_hex() {
            out.push(format!("key {k} replaced"));
        }
    }
    for (vid, v) in &new.vlans {
        match old.vlans.get(vid) {
            None => out.push(format!("VLAN {vid} added")),
            Some(o) if o.pool != v.pool => {
                let added: Vec<String> = v
                    .pool
                    .iter()
                    .filter(|p| !o.pool.contains(p))
                    .map(ToString::to_string)
                    .collect();
                out.push(format!("VLAN {vid}: pool grows ({})", added.join(", ")));
            }
            _ => {}
        }
    }
    for vid in old.vlans.keys().filter(|v| !new.vlans.contains_key(v)) {
        out.push(format!("VLAN {vid} removed"));
    }
    for s in &new.switches {
        match old.switch(s.id) {
            None => out.push(format!(
                "switch {} (id {}) added, VLANs {:?}",
                s.name, s.id, s.vlans
            )),
            Some(o) => {
                if o.name != s.name {
                    out.push(format!(
                        "switch id {}: renamed {} -> {}",
                        s.id, o.name, s.name
                    ));
                }
                if o.agent != s.agent {
                    out.push(format!(
                        "switch {}: agent address {} -> {}",
                        s.name, o.agent, s.agent
                    ));
                }
                if o.key_id != s.key_id || o.agent_key_id != s.agent_key_id {
                    out.push(format!("switch {}: agent keys changed", s.name));
                }
                if o.vlans != s.vlans {
                    out.push(format!(
                        "switch {}: VLANs {:?} -> {:?}",
                        s.name, o.vlans, s.vlans
                    ));
                }
                if o.budget != s.budget {
                    out.push(format!(
                        "switch {}: budget {:?} -> {:?}",
                        s.name, o.budget, s.budget
                    ));
                }
            }
        }
    }
    for s in old.switches.iter().filter(|s| new.switch(s.id).is_none()) {
        out.push(format!("switch {} removed", s.name));
    }
    for g in &new.groups {
        match old.groups.iter().find(|o| o.name == g.name) {
            None => out.push(format!("parent group {} ({}) added", g.name, g.parent)),
            Some(o) => {
                if o.parent != g.parent || o.vlan != g.vlan {
                    out.push(format!("parent group {}: address or VLAN changed", g.name));
                }
                if o.members != g.members {
                    out.push(format!(
                        "parent group {}: members changed ({} -> {})",
                        g.name,
                        o.members.len(),
                        g.members.len()
                    ));
                }
                if o.preenumerate != g.preenumerate || o.replicas != g.replicas {
                    out.push(format!("parent group {}: pre-enumeration changed", g.name));
                }
            }
        }
    }
    for g in old
        .groups
        .iter()
        .filter(|o| !new.groups.iter().any(|g| g.name == o.name))
    {
        out.push(format!("parent group {} removed", g.name));
    }
    let names = |c: &Config| {
        c.tokens
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.role.name(),
                    t.secret.clone(),
                    t.max_leases,
                )
            })
            .collect::<Vec<_>>()
    };
    let (to, tn) = (names(old), names(new));
    for t in &tn {
        match to.iter().find(|o| o.0 == t.0) {
            None => out.push(format!("token {} ({}) added", t.0, t.1)),
            Some(o) if o != t => out.push(format!("token {} changed", t.0)),
            _ => {}
        }
    }
    for t in to.iter().filter(|o| !tn.iter().any(|t| t.0 == o.0)) {
        out.push(format!("token {} removed", t.0));
    }
    let scalars: [(&str, String, String); 12] = [
        (
            "controller.agent_timeout_ms",
            ms(old.agent_timeout),
            ms(new.agent_timeout),
        ),
        (
            "leases.default_ms",
            ms(old.lease_default),
            ms(new.lease_default),
        ),
        ("leases.max_ms", ms(old.lease_max), ms(new.lease_max)),
        ("leases.warm_ms", ms(old.warm), ms(new.warm)),
        ("leases.hold_ms", ms(old.hold), ms(new.hold)),
        (
            "leases.max_per_credential",
            old.max_leases_per_credential.to_string(),
            new.max_leases_per_credential.to_string(),
        ),
        (
            "budgets.default",
            old.default_budget.to_string(),
            new.default_budget.to_string(),
        ),
        (
            "budgets.miss_reserve_percent",
            old.miss_reserve_percent.to_string(),
            new.miss_reserve_percent.to_string(),
        ),
        (
            "fanout.retransmit_ms",
            ms(old.retransmit),
            ms(new.retransmit),
        ),
        (
            "fanout.attempts",
            old.attempts.to_string(),
            new.attempts.to_string(),
        ),
        (
            "rendezvous.key_ids",
            format!("{:?}", old.rendezvous_key_ids),
            format!("{:?}", new.rendezvous_key_ids),
        ),
        (
            "rendezvous.max_leases_per_sender",
            format!("{:?}", old.max_leases_per_sender),
            format!("{:?}", new.max_leases_per_sender),
        ),
    ];
    for (k, a, b) in scalars {
        if a != b {
            out.push(format!("{k}: {a} -> {b}"));
        }
    }
    if out.is_empty() {
        out.push("nothing changed".into());
    }
    out
}

fn ms(d: std::time::Duration) -> String {
    d.as_millis().to_string()
}
