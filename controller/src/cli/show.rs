//! The inspection commands' tables, from the API's JSON types.

use super::table::{Table, or_dash, short_ms, utc};
use crate::api::views::{AgentView, LeaseView, RefusalView, SubsetView};
use crate::store::AuditEntry;
use std::fmt::Write;

/// `agents`: switch, backend, address, last heard, occupancy / budget.
pub fn agents(v: &[AgentView]) -> String {
    let mut t = Table::new(&[
        "SWITCH",
        "ID",
        "STATE",
        "BACKEND",
        "ADDRESS",
        "HEARD",
        "TABLE",
        "CAPACITY",
        "INSTALLED",
        "VERSION",
    ]);
    for a in v {
        t.row(vec![
            a.name.clone(),
            a.switch_id.to_string(),
            a.state.clone(),
            or_dash(a.backend.clone()),
            a.address.clone(),
            a.last_heard_ms_ago
                .map_or_else(|| "never".into(), |ms| format!("{} ago", short_ms(ms))),
            format!("{}/{}", a.occupancy, a.budget),
            match a.table_capacity {
                None | Some(0) => "-".into(),
                Some(c) => c.to_string(),
            },
            or_dash(a.installed_groups),
            or_dash(a.software_version.clone()),
        ]);
    }
    t.render()
}

fn ports_per_switch(l: &LeaseView) -> String {
    if l.installed.is_empty() {
        return "-".into();
    }
    l.installed
        .iter()
        .map(|i| format!("{}:{}", i.name, or_dash(i.ports)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `leases`: group, parent, targets, per-switch ports as ACKed, age,
/// expiry.
pub fn leases(v: &[LeaseView], now_ms: u64) -> String {
    let mut t = Table::new(&[
        "LEASE", "GROUP", "PARENT", "TARGETS", "PORTS", "STATE", "AGE", "EXPIRES", "OWNER",
    ]);
    for l in v {
        t.row(vec![
            l.lease_id.clone(),
            l.group.clone(),
            l.parent.clone(),
            l.targets.join(","),
            ports_per_switch(l),
            format!("{}{}", l.state, if l.reused { " (reused)" } else { "" }),
            short_ms(now_ms.saturating_sub(l.created_at_ms)),
            if l.expires_at_ms > now_ms {
                format!("in {}", short_ms(l.expires_at_ms - now_ms))
            } else {
                "ended".into()
            },
            l.requester.clone(),
        ]);
    }
    if t.is_empty() {
        return "no leases\n".into();
    }
    t.render()
}

/// `groups`: every rendezvous group, the ports each switch ACKed, and
/// whether they agree; problems listed below the table.
pub fn groups(v: &[SubsetView]) -> String {
    let mut t = Table::new(&[
        "GROUP", "PARENT", "TARGETS", "STATE", "LEASES", "HITS", "ROUND", "AGREE", "PORTS",
    ]);
    let mut problems = String::new();
    for g in v {
        let ports = g
            .switches
            .iter()
            .map(|p| {
                let mark = if p.problem.is_some() { "!" } else { "" };
                format!("{}:{}{mark}", p.name, or_dash(p.ports))
            })
            .collect::<Vec<_>>()
            .join(" ");
        t.row(vec![
            g.group.clone(),
            g.parent.clone(),
            g.targets.join(","),
            format!("{}{}", g.state, if g.tainted { " (tainted)" } else { "" }),
            g.leases.to_string(),
            g.hits.to_string(),
            g.round.to_string(),
            if g.agree { "yes" } else { "NO" }.into(),
            ports,
        ]);
        for p in &g.switches {
            if let Some(why) = &p.problem {
                let _ = writeln!(problems, "{} on {}: {why}", g.group, p.name);
            }
        }
    }
    if t.is_empty() {
        return "no rendezvous groups\n".into();
    }
    let mut out = t.render();
    if !problems.is_empty() {
        out.push_str("\nswitches that do not agree:\n");
        out.push_str(&problems);
    }
    out
}

/// `groups --switch S`: the groups switch S holds, with the transaction
/// that owns each there.
pub fn groups_on(v: &[SubsetView], switch: &str, now_ms: u64) -> String {
    let mut t = Table::new(&[
        "GROUP",
        "TARGETS",
        "STATE",
        "ON-SWITCH",
        "TXID",
        "INSTRUCTION",
        "PORTS",
        "ACKED",
        "AGREES",
    ]);
    for g in v {
        let Some(p) = g
            .switches
            .iter()
            .find(|p| p.name == switch || p.switch_id.to_string() == switch)
        else {
            continue;
        };
        t.row(vec![
            g.group.clone(),
            g.targets.join(","),
            g.state.clone(),
            match &p.in_flight {
                Some(i) => format!("{} ({i} in flight)", p.state),
                None => p.state.clone(),
            },
            or_dash(p.txid.clone()),
            or_dash(p.instruction.clone()),
            or_dash(p.ports),
            p.acked_at_ms.map_or_else(
                || "-".into(),
                |ms| format!("{} ago", short_ms(now_ms.saturating_sub(ms))),
            ),
            match &p.problem {
                None => "yes".into(),
                Some(why) => format!("NO: {why}"),
            },
        ]);
    }
    if t.is_empty() {
        return format!("switch {switch} holds no rendezvous group\n");
    }
    t.render()
}

/// `audit`: every instruction to an agent and its outcome.
pub fn audit(v: &[AuditEntry], switch_name: impl Fn(u32) -> String) -> String {
    let mut t = Table::new(&[
        "TIME",
        "SWITCH",
        "GROUP",
        "TXID",
        "LEASE",
        "INSTRUCTION",
        "OUTCOME",
        "SENDS",
        "DETAIL",
    ]);
    for e in v {
        t.row(vec![
            utc(e.at_ms),
            switch_name(e.switch_id),
            if e.group.is_empty() {
                "-".into()
            } else {
                e.group.clone()
            },
            e.txid.to_string(),
            if e.lease_id == 0 {
                "-".into()
            } else {
                e.lease_id.to_string()
            },
            e.instruction.clone(),
            e.outcome.clone(),
            e.sends.to_string(),
            e.detail.clone(),
        ]);
    }
    if t.is_empty() {
        return "no audit rows\n".into();
    }
    t.render()
}

/// `refusals`: the most recent refused requests.
pub fn refusals(v: &[RefusalView]) -> String {
    let mut t = Table::new(&[
        "TIME",
        "REASON",
        "SWITCH",
        "REQUESTER",
        "PARENT",
        "TARGETS",
        "MESSAGE",
    ]);
    for r in v {
        t.row(vec![
            utc(r.at_ms),
            r.reason.clone(),
            or_dash(r.switch.as_ref().map(|s| {
                s.split_once(' ')
                    .map_or(s.as_str(), |(name, _)| name)
                    .to_owned()
            })),
            r.requester.clone(),
            r.parent.clone(),
            r.targets.join(","),
            r.message.clone(),
        ]);
    }
    if t.is_empty() {
        return "no refusals\n".into();
    }
    t.render()
}

/// `reload`: what changed.
pub fn reloaded(v: &crate::api::views::ReloadView) -> String {
    let mut out = format!("{}\n", v.message);
    for c in &v.changes {
        let _ = writeln!(out, "  {c}");
    }
    for w in &v.warnings {
        let _ = writeln!(out, "{w}");
    }
    out
}
