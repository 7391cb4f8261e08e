//! `GET /status`: switches (health, last heard, occupancy against
//! budget), live leases (linking to their per-switch table), rendezvous
//! groups and whether the switches agree, recent refusals.

use super::layout::{ago, badge, bar, page, until};
use crate::api::status::Snapshot;
use crate::api::views::{AgentView, BudgetView, LeaseView, RefusalView, SubsetView};
use crate::cli::table::{or_dash, short_ms, utc};
use crate::config::Config;
use maud::{Markup, html};

/// Refusals shown (the newest); the API keeps up to 100.
pub const REFUSALS_SHOWN: usize = 25;

/// The parent group's configured name for its address, or the address.
pub fn parent_name(cfg: &Config, parent: &str) -> String {
    cfg.groups
        .iter()
        .find(|g| g.parent.to_string() == parent)
        .map_or_else(|| parent.to_owned(), |g| format!("{} ({parent})", g.name))
}

pub fn render(s: &Snapshot, cfg: &Config) -> Markup {
    let up = s.agents.iter().filter(|a| a.state == "up").count();
    page(
        "subcast controller status",
        s.now_ms,
        html! {
            p #summary {
                (up) " of " (s.agents.len()) " switches up · "
                (s.leases.len()) " leases · "
                (s.subsets.len()) " rendezvous groups · "
                (s.refusals.len()) " recent refusals"
            }
            h2 { "Switches" }
            (switches(&s.agents, &s.budgets))
            h2 { "Leases" }
            (leases(&s.leases, cfg, s.now_ms))
            h2 { "Rendezvous groups" }
            (groups(&s.subsets))
            h2 { "Recent refusals" }
            (refusals(&s.refusals, s.now_ms))
        },
    )
}

fn switches(agents: &[AgentView], budgets: &[BudgetView]) -> Markup {
    if agents.is_empty() {
        return html! { p.muted #switches { "no switches configured" } };
    }
    html! {
        table #switches {
            tr {
                th { "Switch" } th { "ID" } th { "Health" } th { "Last heard" }
                th { "Occupancy / budget" } th { "Peak" } th { "Capacity" }
                th { "Installed" } th { "Backend" } th { "Agent" } th { "Version" }
            }
            @for a in agents {
                @let b = budgets.iter().find(|b| b.switch_id == a.switch_id);
                tr data-switch=(a.name) {
                    td { b { (a.name) } }
                    td.num { (a.switch_id) }
                    td { (badge(&a.state, &a.state)) }
                    td { (a.last_heard_ms_ago.map_or_else(|| "never".into(), |ms| format!("{} ago", short_ms(ms)))) }
                    td { (bar(a.occupancy, a.budget)) }
                    td.num { (or_dash(b.map(|b| b.peak))) }
                    td.num {
                        @match a.table_capacity { None | Some(0) => "-", Some(c) => (c) }
                    }
                    td.num { (or_dash(a.installed_groups)) }
                    td { (or_dash(a.backend.as_deref())) }
                    td.mono { (a.address) }
                    td { (or_dash(a.software_version.as_deref())) }
                }
            }
        }
    }
}

fn ports(l: &LeaseView) -> String {
    if l.installed.is_empty() {
        return "-".into();
    }
    l.installed
        .iter()
        .map(|i| format!("{}:{}", i.name, or_dash(i.ports)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn leases(v: &[LeaseView], cfg: &Config, now_ms: u64) -> Markup {
    if v.is_empty() {
        return html! { p.muted #leases { "no leases" } };
    }
    html! {
        table #leases {
            tr {
                th { "Lease" } th { "Group" } th { "Parent" } th { "Targets" }
                th { "Ports per switch (ACKed)" } th { "State" } th { "Age" }
                th { "Expires" } th { "Owner" }
            }
            @for l in v {
                tr data-lease=(l.lease_id) {
                    td { a href={ "/status/lease/" (l.lease_id) } { (l.lease_id) } }
                    td.mono { (l.group) }
                    td { (parent_name(cfg, &l.parent)) }
                    td { (l.targets.join(", ")) }
                    td.mono { (ports(l)) }
                    td { (l.state) @if l.reused { " (reused)" } }
                    td { (short_ms(now_ms.saturating_sub(l.created_at_ms))) }
                    td { (until(now_ms, l.expires_at_ms)) }
                    td { (l.requester) }
                }
            }
        }
    }
}

fn groups(v: &[SubsetView]) -> Markup {
    if v.is_empty() {
        return html! { p.muted #groups { "no rendezvous groups" } };
    }
    html! {
        table #groups {
            tr {
                th { "Group" } th { "Targets" } th { "State" } th { "Leases" }
                th { "Hits" } th { "Round" } th { "Switches agree" }
            }
            @for g in v {
                tr data-group=(g.group) {
                    td.mono { (g.group) }
                    td { (g.targets.join(", ")) }
                    td { (g.state) @if g.tainted { " (tainted)" } }
                    td.num { (g.leases) }
                    td.num { (g.hits) }
                    td.num { (g.round) }
                    td {
                        @if g.agree { (badge("ok", "yes")) } @else { (badge("bad", "NO")) }
                    }
                }
            }
        }
    }
}

fn refusals(v: &[RefusalView], now_ms: u64) -> Markup {
    if v.is_empty() {
        return html! { p.muted #refusals { "no refusals" } };
    }
    html! {
        table #refusals {
            tr {
                th { "When" } th { "Reason" } th { "Switch" } th { "Requester" }
                th { "Parent" } th { "Targets" } th { "Message" }
            }
            // The API lists oldest first; the page shows the newest first.
            @for r in v.iter().rev().take(REFUSALS_SHOWN) {
                tr data-reason=(r.reason) {
                    td title=(utc(r.at_ms)) { (ago(now_ms, r.at_ms)) }
                    td { b { (r.reason) } }
                    td { (or_dash(r.switch.as_deref())) }
                    td { (r.requester) }
                    td.mono { (r.parent) }
                    td { (r.targets.join(", ")) }
                    td { (r.message) }
                }
            }
        }
        @if v.len() > REFUSALS_SHOWN {
            p.muted { "the " (REFUSALS_SHOWN) " newest of " (v.len()) "; GET /v1/refusals lists all" }
        }
    }
}
