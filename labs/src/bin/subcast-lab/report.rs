//! The readable report of `subcast-lab run` (the JSON report, rendered).

use std::fmt::Write;

use labs::Topology;
use serde_json::Value;

use crate::expect;

fn list(v: &Value) -> String {
    let items: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

fn yes(v: &Value) -> &'static str {
    if v.as_bool().unwrap_or(false) {
        "yes"
    } else {
        "NO"
    }
}

fn cell(s: &str, w: usize) -> String {
    format!("{s:<w$}")
}

/// The seed write-up's forwarding table for this run: one column per switch, rows
/// for unicast to each host, the parent group, and the rendezvous group (expected
/// by the rule, then installed as read from the bridge MDB).
fn table(out: &mut String, topo: &Topology, rv: &Value) {
    let switches: Vec<&String> = topo.switches.keys().collect();
    let parent = &rv["parent"];
    let members: Vec<String> = parent["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let targets: Vec<String> = rv["targets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    // Which backend drove each switch (its agent's HELLO).
    let sw = &rv["switches"];
    if switches
        .iter()
        .any(|s| sw[s.as_str()]["backend"].is_string())
    {
        let cells = switches
            .iter()
            .map(|s| {
                let v = &sw[s.as_str()];
                let b = v["backend"].as_str().unwrap_or("?");
                match v["snmp"]["version"].as_str() {
                    Some(ver) => format!("{b} {ver}"),
                    None => b.to_string(),
                }
            })
            .collect();
        rows.push(("Driven by (agent backend)".to_string(), cells));
    }
    for h in topo.hosts_in_order() {
        let cells = switches
            .iter()
            .map(|sw| {
                expect::hosts_behind_ports(topo, sw)
                    .into_iter()
                    .find(|(_, behind)| behind.contains(h))
                    .map(|(p, _)| p)
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        rows.push((format!("Unicast to {h}"), cells));
    }
    let parent_ports = expect::expected_ports(topo, &members, &members);
    rows.push((
        format!(
            "Multicast to {} (parent)",
            parent["name"].as_str().unwrap_or("?")
        ),
        switches
            .iter()
            .map(|s| parent_ports[*s].join(","))
            .collect(),
    ));
    let t = targets.join(",");
    rows.push((
        format!("Rendezvous to {t}: expected"),
        switches
            .iter()
            .map(|s| list(&sw[s.as_str()]["expected"]))
            .collect(),
    ));
    rows.push((
        format!("Rendezvous to {t}: installed"),
        switches
            .iter()
            .map(|s| {
                let v = &sw[s.as_str()];
                if v["ports"].is_null() {
                    return "(not observed)".to_string();
                }
                let ok = v["match"].as_bool().unwrap_or(false);
                format!("{}{}", list(&v["ports"]), if ok { "" } else { " !!" })
            })
            .collect(),
    ));
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(4) + 2;
    let mut widths: Vec<usize> = switches.iter().map(|s| s.len() + 2).collect();
    for (_, cells) in &rows {
        for (i, c) in cells.iter().enumerate() {
            widths[i] = widths[i].max(c.len() + 2);
        }
    }
    let _ = write!(out, "  {}", cell("Rule", w0));
    for (i, s) in switches.iter().enumerate() {
        let _ = write!(
            out,
            "{}",
            cell(&format!("{s} ports"), widths[i].max(s.len() + 8))
        );
        widths[i] = widths[i].max(s.len() + 8);
    }
    out.push('\n');
    for (name, cells) in &rows {
        let _ = write!(out, "  {}", cell(name, w0));
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(out, "{}", cell(c, widths[i]));
        }
        out.push('\n');
    }
}

/// Render a run report.
pub fn render(topo: &Topology, r: &Value) -> String {
    if r["scenario"] == "rate" {
        return crate::rate::render(r);
    }
    if r["scenario"] == "floor" {
        return crate::floor::render(r);
    }
    if r["scenario"] == "put-bench" && r["peer"].is_string() {
        return crate::putbench_peer::render_run(r);
    }
    let mut out = String::new();
    let rv = &r["rendezvous"];
    if let Some(f) = r["fallback"].as_str() {
        let _ = writeln!(out, "NOTE: {f}\n");
    }
    for n in r["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "NOTE: {}\n", n.as_str().unwrap_or_default());
    }
    let _ = writeln!(
        out,
        "scenario {} on {} (controller in switch {}'s namespace at {}; sender {})",
        r["scenario"].as_str().unwrap_or("?"),
        r["topology"].as_str().unwrap_or("?"),
        r["controller"]["switch"].as_str().unwrap_or("?"),
        r["controller"]["address"].as_str().unwrap_or("?"),
        r["sender"].as_str().unwrap_or("?"),
    );
    let put_get = r["scenario"] == "put-get";
    if put_get {
        let p = &r["put"]["report"];
        let _ = writeln!(
            out,
            "put of {} random bytes as {} (version {}) from {} with --transport rendezvous: \
             {:.1} ms, {} chunk(s) + manifest, R={}",
            r["payload_bytes"],
            p["name"].as_str().unwrap_or("?"),
            p["version"],
            r["sender"].as_str().unwrap_or("?"),
            r["put"]["ms"].as_f64().unwrap_or(f64::NAN),
            p["chunks"],
            p["replicas"],
        );
        for g in r["rendezvous_groups"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  rendezvous group {} for {} -> {}: ports match the rule: {}, datagrams only at targets: {}",
                g["group"].as_str().unwrap_or("?"),
                g["chunk"].as_str().unwrap_or("?"),
                list(&g["targets"]),
                yes(&g["ports_match"]),
                yes(&g["deliveries_ok"]),
            );
        }
        let _ = writeln!(
            out,
            "\nfirst data chunk: rendezvous group {} of parent {} {} for targets {} (chosen by the nodes' bids), \
             granted {:.2} ms after the request (on the sender's wire)\n",
            rv["group"].as_str().unwrap_or("?"),
            rv["parent"]["name"].as_str().unwrap_or("?"),
            rv["parent"]["group"].as_str().unwrap_or("?"),
            list(&rv["targets"]),
            rv["ready_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        );
    } else {
        let _ = writeln!(
            out,
            "rendezvous group {} (lease {}) of parent {} {} for targets {}: granted {:.2} ms after the request\n",
            rv["group"].as_str().unwrap_or("?"),
            rv["lease_id"].as_str().unwrap_or("?"),
            rv["parent"]["name"].as_str().unwrap_or("?"),
            rv["parent"]["group"].as_str().unwrap_or("?"),
            list(&rv["targets"]),
            rv["ready_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        );
    }
    table(&mut out, topo, rv);
    let _ = writeln!(
        out,
        "  (installed = read from each bridge's MDB with {}; expected = ports toward targets \
         n ports toward parent members, from the topology (with `stp: true`, on the tree \
         the bridges elected); !! = differs)\n",
        if put_get {
            "`bridge monitor mdb` during the put (OVS switches: not observed)"
        } else {
            "`bridge mdb show`, on OVS from its group and flow (`ovs-ofctl`)"
        }
    );
    let _ = writeln!(out, "  host   target  datagrams  bytes");
    if let Some(d) = r["deliveries"].as_object() {
        let topo_order = topo.hosts_in_order();
        let mut hosts: Vec<&String> = d.keys().collect();
        hosts.sort_by_key(|h| topo_order.iter().position(|x| x == h));
        for h in hosts {
            let v = &d[h.as_str()];
            let _ = writeln!(
                out,
                "  {:<6} {:<7} {:>9}  {:>9}",
                h,
                if v["target"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                },
                v["datagrams"].as_u64().unwrap_or(0),
                v["bytes"].as_u64().unwrap_or(0)
            );
        }
    }
    let payload = r["payload_bytes"].as_u64().unwrap_or(0);
    let egress = r["sender_egress_bytes"].as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "\n  sender {} egress: {} bytes in {} datagrams for {} payload bytes ({:.2}x)",
        r["sender"].as_str().unwrap_or("?"),
        egress,
        r["sender_egress_datagrams"],
        payload,
        if payload > 0 {
            egress as f64 / payload as f64
        } else {
            f64::NAN
        }
    );
    let _ = writeln!(
        out,
        "  (bytes = UDP payload bytes counted by tcpdump on each host's eth0, outside the daemons)"
    );
    match r["get"]["ok"].as_bool() {
        Some(ok) => {
            let _ = writeln!(
                out,
                "  get: {} ({})",
                if ok { "OK" } else { "FAILED" },
                r["get"]["detail"].as_str().unwrap_or("")
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  get: not run ({})",
                r["get"]["note"].as_str().unwrap_or("")
            );
        }
    }
    if put_get {
        let st = &r["stored"];
        let _ = writeln!(
            out,
            "  stored: {} data chunk(s) and {} manifest(s), each on exactly {} nodes: {}{}",
            st["data_chunks"],
            st["manifests"],
            st["replicas"],
            yes(&st["ok"]),
            match st["not_exactly_r"].as_array() {
                Some(b) if !b.is_empty() => format!(
                    " ({})",
                    b.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => String::new(),
            }
        );
    }
    if let Some(total) = r["loss"]["total"].as_u64()
        && r["loss"]["hops"]
            .as_object()
            .is_some_and(|h| h.values().any(|d| d["loss_pct"].as_f64() > Some(0.0)))
    {
        let busy: Vec<String> = r["loss"]["hops"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, d)| d["dropped"].as_u64() > Some(0))
            .map(|(h, d)| format!("{h} {}", d["dropped"]))
            .collect();
        let _ = writeln!(
            out,
            "  loss: {total} UDP datagrams dropped by the links' loss rules ({})",
            busy.join(", ")
        );
    }
    if put_get {
        let e = &r["sender_egress"];
        let _ = writeln!(
            out,
            "  sender egress by destination: rendezvous groups {} B, negotiating group {} B, unicast {} B",
            e["rendezvous"]["bytes"], e["negotiating_group"]["bytes"], e["unicast"]["bytes"]
        );
        let _ = writeln!(
            out,
            "  rendezvous entries of the first group removed after the put: {} (left: {})",
            rv["entries_deleted"], rv["entries_left_after_release"]
        );
    } else {
        let _ = writeln!(
            out,
            "  release: {} (entries left after release: {})",
            if rv["released"].as_bool().unwrap_or(false) {
                "acked by every agent"
            } else {
                "NOT acked"
            },
            rv["entries_left_after_release"]
        );
    }
    let _ = writeln!(
        out,
        "\nRESULT: {}",
        if r["ok"].as_bool().unwrap_or(false) {
            "OK"
        } else {
            "FAILED"
        }
    );
    out
}
