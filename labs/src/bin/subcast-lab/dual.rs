//! put-get on a `family: dual` lab: two stacks of daemons on the same bridges,
//! one per family (an agent serves one `rendezvous_range`, so each switch runs
//! an IPv6 agent and an IPv4 agent; two controllers; a storage node of each
//! family on every member of that family's negotiating group). A put over IPv6,
//! then a put over IPv4 while the IPv6 put's rendezvous group is still
//! installed (both controllers keep released groups warm for 30 s): IPv4 and
//! IPv6 rendezvous groups coexist on the same bridges, and each put must pass
//! every put-get check (ports per switch, 0 datagrams at non-targets, the object
//! read back identical).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use anyhow::{Result, bail};
use labs::{Backend, Topology};
use serde_json::{Value, json};

use crate::scenario::{RunOptions, bring_up_with, mdb_ports};
use crate::stack::{CtlTweaks, Flavor, Stack};

/// How long released groups stay installed in a dual run.
const WARM_MS: u64 = 30_000;

/// The first rendezvous group of a put-get report, in group form.
fn main_group(v: &Value) -> Option<Ipv6Addr> {
    let g: std::net::IpAddr = v["rendezvous"]["group"].as_str()?.parse().ok()?;
    Some(labs::group_ip(g))
}

fn entries(ports: &BTreeMap<String, Vec<String>>) -> usize {
    ports.values().map(Vec::len).sum()
}

/// Both puts, both reports, and whether the groups coexisted.
pub fn put_get(topo: &Topology, opts: &RunOptions, sender: &str) -> Result<Value> {
    if let Some((s, _)) = topo
        .switches
        .iter()
        .find(|(_, s)| s.backend != Backend::LinuxBridge)
    {
        bail!(
            "switch {s}: a `family: dual` put-get runs on Linux bridges only (an OVS or SNMP \
             switch takes one agent)"
        );
    }
    let tweaks = CtlTweaks {
        warm_ms: Some(WARM_MS),
        ..CtlTweaks::default()
    };
    let mut r = bring_up_with(topo, &opts.locate, &tweaks)?;
    let v4 = Stack::start_flavor(&r.lab, &r.bins, &tweaks, Flavor::DUAL_V4)?;
    let out = (|| -> Result<Value> {
        let v6_report = crate::putget::put_get(&mut r, opts, sender)?;
        let g6 = main_group(&v6_report);
        let before = match g6 {
            Some(g) => mdb_ports(&r.lab, g)?,
            None => BTreeMap::new(),
        };
        let v6 = std::mem::replace(&mut r.stack, v4);
        let res = crate::putget::put_get(&mut r, opts, sender);
        let v4 = std::mem::replace(&mut r.stack, v6);
        let v4_report =
            res.map_err(|e| anyhow::anyhow!("{e:#}\nIPv4 daemon logs:\n{}", v4.logs()))?;
        let g4 = main_group(&v4_report);
        let after = match g6 {
            Some(g) => mdb_ports(&r.lab, g)?,
            None => BTreeMap::new(),
        };
        let v4_now = match g4 {
            Some(g) => mdb_ports(&r.lab, g)?,
            None => BTreeMap::new(),
        };
        v4.stop();
        let is_v4 = |g: Option<Ipv6Addr>| g.is_some_and(|g| g.to_ipv4_mapped().is_some());
        let is_v6 = |g: Option<Ipv6Addr>| g.is_some_and(|g| g.to_ipv4_mapped().is_none());
        let coexist_ok = is_v6(g6)
            && is_v4(g4)
            && entries(&before) > 0
            && after == before
            && entries(&v4_now) > 0;
        let ok = v6_report["ok"] == true && v4_report["ok"] == true && coexist_ok;
        Ok(json!({
            "ok": ok,
            "scenario": "put-get",
            "family": "dual",
            "topology": opts.topology.display().to_string(),
            "sender": sender,
            "ipv6": v6_report,
            "ipv4": v4_report,
            "coexist": {
                "ok": coexist_ok,
                "ipv6_group": g6.map(|g| g.to_canonical().to_string()),
                "ipv4_group": g4.map(|g| g.to_canonical().to_string()),
                "ipv6_ports_before_ipv4_put": before,
                "ipv6_ports_after_ipv4_put": after,
                "ipv4_ports_after_ipv4_put": v4_now,
                "means": "the IPv6 put's first rendezvous group (kept warm) stays installed, port for port, through the IPv4 put on the same bridges, and the IPv4 put's group is installed next to it",
            },
        }))
    })();
    let out = out.map_err(|e| anyhow::anyhow!("{e:#}\ndaemon logs:\n{}", r.stack.logs()));
    let crate::scenario::Running { lab, stack, .. } = r;
    stack.stop();
    drop(lab);
    out
}
