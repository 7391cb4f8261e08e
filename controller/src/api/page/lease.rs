//! `GET /status/lease/{id}`: one lease and its group's per-switch
//! forwarding table, laid out like `subcast-lab run` prints the seed's
//! table (one column per switch, one row per fact). The controller knows
//! what each agent ACKed (transaction, port count, round), not port
//! names, so that is what the table shows.

use super::layout::{ago, badge, page, until};
use super::overview::parent_name;
use crate::api::views::{LeaseView, PresenceView, SubsetView};
use crate::cli::table::{or_dash, utc};
use crate::config::Config;
use maud::{Markup, html};

fn row(label: &str, switches: &[PresenceView], cell: impl Fn(&PresenceView) -> Markup) -> Markup {
    html! {
        tr {
            th { (label) }
            @for p in switches { td { (cell(p)) } }
        }
    }
}

/// The per-switch table of `g` for a lease on it.
fn table(g: &SubsetView, now_ms: u64) -> Markup {
    let sw = &g.switches;
    let targets = g.targets.join(",");
    html! {
        table #forwarding {
            tr {
                th { "Rule" }
                @for p in sw { th data-switch=(p.name) { (p.name) " (id " (p.switch_id) ")" } }
            }
            (row(&format!("Rendezvous to {targets}: ports (ACKed)"), sw, |p| html! {
                @match p.ports {
                    Some(n) if p.state == "installed" => { b { (n) } " port" @if n != 1 { "s" } }
                    Some(n) => { (p.state) " (last ACK: " (n) ")" }
                    None => { span.muted { "-" } }
                }
            }))
            (row("State", sw, |p| html! { (p.state) }))
            (row("ACKed transaction", sw, |p| html! { span.mono { (or_dash(p.txid.as_deref())) } }))
            (row("Instruction", sw, |p| html! { (or_dash(p.instruction.as_deref())) }))
            (row("Round", sw, |p| html! { (or_dash(p.round)) " of " (g.round) }))
            (row("Ports at first SET", sw, |p| html! { (or_dash(p.first_ports)) }))
            (row("ACKed", sw, |p| html! {
                @match p.acked_at_ms {
                    Some(t) => { span title=(utc(t)) { (ago(now_ms, t)) } }
                    None => { "-" }
                }
            }))
            (row("In flight", sw, |p| html! { (or_dash(p.in_flight.as_deref())) }))
            (row("Agrees", sw, |p| html! {
                @match &p.problem {
                    None => { (badge("ok", "yes")) }
                    Some(why) => { (badge("bad", "NO")) ": " (why) }
                }
            }))
        }
    }
}

pub fn render(l: &LeaseView, g: Option<&SubsetView>, cfg: &Config, now_ms: u64) -> Markup {
    let members = cfg
        .groups
        .iter()
        .find(|c| c.parent.to_string() == l.parent)
        .map(|c| {
            c.members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    page(
        &format!("Lease {}", l.lease_id),
        now_ms,
        html! {
            table #lease {
                tr { th { "Rendezvous group" } td.mono { (l.group) } }
                tr { th { "Parent group" } td { (parent_name(cfg, &l.parent)) } }
                tr { th { "Parent members" } td { (members.join(", ")) } }
                tr { th { "Target set" } td #targets { (l.targets.join(", ")) } }
                tr { th { "VLAN" } td { (l.vlan) } }
                tr { th { "State" } td { (l.state) @if l.reused { " (reused an installed group)" } } }
                tr { th { "Owner" } td { (l.requester) } }
                tr { th { "Created" } td { (utc(l.created_at_ms)) " (" (ago(now_ms, l.created_at_ms)) ")" } }
                tr { th { "Expires" } td { (utc(l.expires_at_ms)) " (" (until(now_ms, l.expires_at_ms)) ")" } }
                @if let Some(g) = g {
                    tr { th { "Group state" } td { (g.state) ", " (g.leases) " lease(s), round " (g.round) } }
                    tr { th { "Switches agree" } td { @if g.agree { (badge("ok", "yes")) } @else { (badge("bad", "NO")) } } }
                }
            }
            h2 { "Per-switch forwarding table" }
            @match g {
                Some(g) if !g.switches.is_empty() => {
                    (table(g, now_ms))
                    p.muted {
                        "Port counts and transactions as each switch's agent acknowledged them. "
                        "Port names are read on the switch itself (subcast-lab run prints them for a lab)."
                    }
                }
                _ => p.muted #forwarding { "the controller holds no per-switch state for this group yet" },
            }
        },
    )
}
