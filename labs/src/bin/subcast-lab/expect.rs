//! The subset rule, computed here from the topology alone (independently of the
//! agent's code): on each switch, a rendezvous group's ports are
//! (ports toward the targets) ∩ (ports toward the parent group's members).
//!
//! A host port leads toward its host; a trunk toward neighbour N leads toward every
//! host on N's side of the tree (trunks form a tree, see `Topology::validate`). With
//! `stp: true` the trunks may form loops: callers pass the tree the bridges elected,
//! [`labs::Lab::active_topology`] (the trunks that forward, read from the kernel's
//! port states when the oracle is computed), never the file's topology.

use std::collections::{BTreeMap, BTreeSet};

use labs::{Lab, Topology};
use serde_json::{Value, json};

/// With `stp: true`, record in the report the trunks the spanning tree blocked
/// (`spanning_tree.blocked_trunks`, pairs of switch names) and the port states.
pub fn annotate_tree(v: &mut Value, lab: &Lab) -> labs::Result<()> {
    if !lab.topology().stp {
        return Ok(());
    }
    let blocked: Vec<[String; 2]> = lab
        .blocked_trunks()?
        .into_iter()
        .map(|(a, b)| [a, b])
        .collect();
    v["spanning_tree"] = json!({
        "blocked_trunks": blocked,
        "port_states": lab.port_states()?,
    });
    Ok(())
}

/// The tree a report was made on: `topo` without the trunks the report says the
/// spanning tree blocked (see [`annotate_tree`]).
pub fn tree_of_report(topo: &Topology, v: &Value) -> Topology {
    let blocked: BTreeSet<(String, String)> = v["spanning_tree"]["blocked_trunks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string())))
        .collect();
    topo.active_tree(&blocked)
}

/// The hosts reachable through each port of `switch`, by port name (`h-X1`, `t-B`).
pub fn hosts_behind_ports(topo: &Topology, switch: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for h in topo.hosts_on(switch) {
        out.insert(format!("h-{h}"), BTreeSet::from([h.to_string()]));
    }
    for n in topo.neighbours(switch) {
        // Every host whose switch is on n's side: the trunks_toward(host) pair
        // (switch, n) exists exactly when the host is behind n as seen from switch.
        let behind: BTreeSet<String> = topo
            .hosts
            .keys()
            .filter(|h| {
                topo.trunks_toward(&[h.as_str()])
                    .iter()
                    .any(|(from, to)| from == switch && to == n)
            })
            .cloned()
            .collect();
        out.insert(format!("t-{n}"), behind);
    }
    out
}

/// Expected ports of a rendezvous group for `targets` inside a parent group with
/// `members`, per switch (every switch of the topology is listed, possibly empty).
pub fn expected_ports(
    topo: &Topology,
    targets: &[String],
    members: &[String],
) -> BTreeMap<String, Vec<String>> {
    let targets: BTreeSet<&str> = targets.iter().map(String::as_str).collect();
    let members: BTreeSet<&str> = members.iter().map(String::as_str).collect();
    let mut out = BTreeMap::new();
    for sw in topo.switches.keys() {
        let mut ports = Vec::new();
        for (port, behind) in hosts_behind_ports(topo, sw) {
            let toward_target = behind.iter().any(|h| targets.contains(h.as_str()));
            let toward_member = behind.iter().any(|h| members.contains(h.as_str()));
            if toward_target && toward_member {
                ports.push(port);
            }
        }
        out.insert(sw.clone(), ports);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> Topology {
        Topology::from_yaml_file(labs::topology_path("seed-three-switch.yaml")).unwrap()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn seed_table_for_x1_x4_x8() {
        let t = seed();
        let all = s(&["X1", "X2", "X3", "X4", "X5", "X6", "X7", "X8", "X9"]);
        let e = expected_ports(&t, &s(&["X1", "X4", "X8"]), &all);
        assert_eq!(e["A"], s(&["h-X1", "t-B"]));
        assert_eq!(e["B"], s(&["h-X4", "t-A", "t-C"]));
        assert_eq!(e["C"], s(&["h-X8", "t-B"]));
    }

    #[test]
    fn targets_on_one_switch_need_no_far_trunks() {
        let t = seed();
        let all = s(&["X1", "X2", "X3", "X4", "X5", "X6", "X7", "X8", "X9"]);
        let e = expected_ports(&t, &s(&["X3", "X4"]), &all);
        assert_eq!(e["A"], s(&["t-B"]));
        assert_eq!(e["B"], s(&["h-X3", "h-X4"]));
        assert_eq!(e["C"], s(&["t-B"]));
    }

    #[test]
    fn non_members_are_never_reached() {
        let t = seed();
        // X8 is a target but not a member: no port toward it.
        let e = expected_ports(&t, &s(&["X1", "X8"]), &s(&["X1", "X2"]));
        assert_eq!(e["A"], s(&["h-X1"]));
        assert_eq!(e["B"], s(&["t-A"]));
        // Toward X1 (a target and a member) from C: the trunk to B.
        assert_eq!(e["C"], s(&["t-B"]));
    }
}
