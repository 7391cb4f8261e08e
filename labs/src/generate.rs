//! Random topologies for stress runs: seeded, reproducible with the same seed and
//! this crate's version, and always valid under the documented topology format.
//!
//! [`random_topology`] makes a tree of 2-6 switches (each new switch is linked to
//! a random earlier one, so depths from one to five occur) with 1-4 hosts per
//! switch, Linux bridges and Open vSwitch switches mixed (at least one of each;
//! now and then a `backend: snmp` switch, v2c or v3: a Linux bridge behind snmpd)
//! and one or two negotiating groups. [`to_yaml`] writes a topology in the same
//! shape as the shipped files, so a failing one can be saved and replayed with
//! `subcast-lab run FILE` or `subcast-lab stress --topology FILE`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::topology::{
    Backend, GroupSpec, HostSpec, LinkSpec, SnmpSpec, SnmpVersion, SwitchSpec, Topology,
};

/// What [`random_topology`] may produce.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Inclusive range of switches.
    pub switches: (usize, usize),
    /// Inclusive range of hosts per switch.
    pub hosts_per_switch: (usize, usize),
    /// Allow Open vSwitch switches (and require a mix of OVS and Linux bridges when
    /// there are at least two switches).
    pub ovs: bool,
    /// Probability that the topology carries `loss_pct` / `rate_mbit` settings
    /// (top level, per link or per host).
    pub shaping: f64,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            switches: (2, 6),
            hosts_per_switch: (1, 4),
            ovs: true,
            shaping: 0.25,
        }
    }
}

/// A random topology for `seed` with the default [`GenOptions`].
pub fn random_topology(seed: u64) -> Topology {
    random_topology_with(seed, &GenOptions::default())
}

/// A random topology for `seed`: see the module documentation.
pub fn random_topology_with(seed: u64, o: &GenOptions) -> Topology {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = rng.random_range(o.switches.0.max(1)..=o.switches.1.max(o.switches.0.max(1)));
    let names: Vec<String> = (1..=n).map(|i| format!("S{i}")).collect();
    let mut backends: Vec<Backend> = (0..n)
        .map(|_| {
            let x: f64 = rng.random();
            if o.ovs && x < 0.35 {
                Backend::Openflow
            } else if x > 0.9 {
                Backend::Snmp
            } else {
                Backend::LinuxBridge
            }
        })
        .collect();
    if o.ovs && n >= 2 {
        // Mixed: at least one OVS switch and one Linux bridge.
        if !backends.contains(&Backend::Openflow) {
            let i = rng.random_range(0..n);
            backends[i] = Backend::Openflow;
        }
        if backends.iter().all(|b| *b == Backend::Openflow) {
            let i = rng.random_range(0..n);
            backends[i] = Backend::LinuxBridge;
        }
    }
    let mut t = Topology::default();
    for (name, backend) in names.iter().zip(&backends) {
        t.switches.insert(name.clone(), SwitchSpec::of(*backend));
    }
    for i in 1..n {
        let j = rng.random_range(0..i);
        t.links.push(LinkSpec::new(&names[j], &names[i]));
    }
    let mut h = 0;
    for s in &names {
        let k = rng.random_range(o.hosts_per_switch.0.max(1)..=o.hosts_per_switch.1.max(1));
        for _ in 0..k {
            h += 1;
            t.hosts.insert(format!("H{h}"), HostSpec::on(s.as_str()));
        }
    }
    let mut hosts: Vec<String> = t.hosts_in_order().iter().map(|s| s.to_string()).collect();
    // NG0: every host, or a random subset of at least min(4, hosts).
    let all = rng.random_bool(0.5);
    if !all {
        hosts.shuffle(&mut rng);
        let k = rng.random_range(hosts.len().min(4)..=hosts.len());
        hosts.truncate(k);
        let order = t.hosts_in_order();
        hosts.sort_by_key(|x| order.iter().position(|o| o == x));
    }
    t.negotiating_groups.insert(
        "NG0".into(),
        GroupSpec {
            group: None,
            members: hosts,
        },
    );
    if rng.random_bool(0.3) {
        let mut m: Vec<String> = t.hosts.keys().cloned().collect();
        m.shuffle(&mut rng);
        m.truncate(rng.random_range(1..=m.len()));
        let order = t.hosts_in_order();
        m.sort_by_key(|x| order.iter().position(|o| o == x));
        t.negotiating_groups.insert(
            "NG1".into(),
            GroupSpec {
                group: None,
                members: m,
            },
        );
    }
    if rng.random_bool(o.shaping.clamp(0.0, 1.0)) {
        add_shaping(&mut t, &mut rng);
    }
    // SNMP versions from their own stream, so the rest of a seed's tree stays
    // what it was before versions existed.
    let mut vrng = StdRng::seed_from_u64(seed ^ 0x5c5c_0003);
    for s in t.switches.values_mut() {
        if s.backend == Backend::Snmp && vrng.random_bool(0.5) {
            s.snmp = Some(SnmpSpec {
                version: SnmpVersion::V3,
            });
        }
    }
    t
}

/// Loss and rate settings at random places (small values: the lab must still build).
fn add_shaping(t: &mut Topology, rng: &mut StdRng) {
    if rng.random_bool(0.5) {
        t.loss_pct = Some(f64::from(rng.random_range(0..=20u32)) / 10.0);
    }
    if rng.random_bool(0.5) {
        t.rate_mbit = Some([50.0, 100.0, 1000.0][rng.random_range(0..3)]);
    }
    for l in &mut t.links {
        if rng.random_bool(0.3) {
            l.loss_pct = Some(f64::from(rng.random_range(0..=50u32)) / 10.0);
        }
        if rng.random_bool(0.2) {
            l.rate_mbit = Some(f64::from(rng.random_range(10..=500u32)));
        }
    }
    for h in t.hosts.values_mut() {
        if rng.random_bool(0.2) {
            h.loss_pct = Some(f64::from(rng.random_range(0..=50u32)) / 10.0);
        }
        if rng.random_bool(0.2) {
            h.rate_mbit = Some(f64::from(rng.random_range(10..=500u32)));
        }
    }
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::LinuxBridge => "linux-bridge",
        Backend::Openflow => "openflow",
        Backend::Snmp => "snmp",
    }
}

fn shaping_fields(loss: Option<f64>, rate: Option<f64>) -> String {
    let mut s = String::new();
    if let Some(l) = loss {
        let _ = write!(s, ", loss_pct: {l}");
    }
    if let Some(r) = rate {
        let _ = write!(s, ", rate_mbit: {r}");
    }
    s
}

/// The topology as YAML in the documented format (the shipped files' layout).
/// `comment` becomes the first line(s), each prefixed with `# `.
pub fn to_yaml(t: &Topology, comment: &str) -> String {
    let mut y = String::new();
    for line in comment.lines() {
        let _ = writeln!(y, "# {line}");
    }
    if let Some(l) = t.loss_pct {
        let _ = writeln!(y, "loss_pct: {l}");
    }
    if let Some(r) = t.rate_mbit {
        let _ = writeln!(y, "rate_mbit: {r}");
    }
    if t.stp {
        y.push_str("stp: true\n");
    }
    y.push_str("switches:\n");
    for (name, s) in &t.switches {
        let snmp = match &s.snmp {
            Some(o) => format!(", snmp: {{version: {}}}", o.version.name()),
            None => String::new(),
        };
        let _ = writeln!(
            y,
            "  {name}: {{backend: {}{snmp}}}",
            backend_name(s.backend)
        );
    }
    if !t.links.is_empty() {
        y.push_str("links:\n");
        for l in &t.links {
            let [a, b] = &l.between;
            if l.loss_pct.is_none() && l.rate_mbit.is_none() {
                let _ = writeln!(y, "  - [{a}, {b}]");
            } else {
                let _ = writeln!(
                    y,
                    "  - {{between: [{a}, {b}]{}}}",
                    shaping_fields(l.loss_pct, l.rate_mbit)
                );
            }
        }
    }
    if !t.hosts.is_empty() {
        y.push_str("hosts:\n");
        for name in t.hosts_in_order() {
            let h = &t.hosts[name];
            let _ = writeln!(
                y,
                "  {name}: {{switch: {}{}}}",
                h.switch,
                shaping_fields(h.loss_pct, h.rate_mbit)
            );
        }
    }
    if !t.negotiating_groups.is_empty() {
        y.push_str("negotiating_groups:\n");
        for (name, g) in &t.negotiating_groups {
            let _ = writeln!(y, "  {name}:");
            if let Some(a) = g.group {
                let _ = writeln!(y, "    group: \"{a}\"");
            }
            let _ = writeln!(y, "    members: [{}]", g.members.join(", "));
        }
    }
    y
}

/// Switch name -> backend, for summaries.
pub fn backends(t: &Topology) -> BTreeMap<String, &'static str> {
    t.switches
        .iter()
        .map(|(n, s)| (n.clone(), backend_name(s.backend)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_topologies_are_valid_and_round_trip_through_yaml() {
        for seed in 0..500 {
            let t = random_topology(seed);
            t.validate().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let n = t.switches.len();
            assert!((2..=6).contains(&n), "seed {seed}: {n} switches");
            for s in t.switches.keys() {
                let k = t.hosts_on(s).len();
                assert!((1..=4).contains(&k), "seed {seed}: {k} hosts on {s}");
            }
            let kinds: Vec<Backend> = t.switches.values().map(|s| s.backend).collect();
            assert!(kinds.contains(&Backend::Openflow), "seed {seed}: no OVS");
            assert!(
                kinds.iter().any(|b| *b != Backend::Openflow),
                "seed {seed}: no Linux bridge"
            );
            assert!(!t.negotiating_groups.is_empty());
            let y = to_yaml(&t, &format!("seed {seed}"));
            let back = Topology::from_yaml_str(&y).unwrap_or_else(|e| panic!("{e}\n{y}"));
            assert_eq!(back, t, "seed {seed}:\n{y}");
        }
    }

    #[test]
    fn same_seed_same_topology() {
        assert_eq!(random_topology(42), random_topology(42));
        let differ = (0..20).any(|s| random_topology(s) != random_topology(s + 1));
        assert!(differ);
    }

    #[test]
    fn shipped_topologies_round_trip() {
        for f in [
            "seed-three-switch.yaml",
            "one-switch.yaml",
            "seed-mixed.yaml",
            "seed-openflow.yaml",
            "seed-snmp.yaml",
            "seed-three-switch-lossy.yaml",
            "three-backends.yaml",
            "seed-triangle.yaml",
        ] {
            let t = Topology::from_yaml_file(crate::topology_path(f)).unwrap();
            let back = Topology::from_yaml_str(&to_yaml(&t, f)).unwrap();
            assert_eq!(back, t, "{f}");
        }
    }
}
