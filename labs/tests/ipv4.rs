//! IPv4 labs (issue 21), run for real: the seed three-switch topology in IPv4
//! (`seed-three-switch-ipv4.yaml`) with the controller, agents and storage nodes
//! configured in IPv4 by `subcast-lab`, a rogue IGMP join, and the dual-stack
//! seed (`seed-three-switch-dual.yaml`) with an IPv6 and an IPv4 group installed
//! at once. Needs root (skips otherwise, fails under SUBCAST_LABS_REQUIRED=1) and,
//! for the first two, the daemons built first:
//! `cargo build -p subcast-agent -p subcast-controller -p subcast-node --bins`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use labs::{Lab, LabOptions, Topology, topology_path};
use serde_json::Value;

mod common;
use common::lab_json;

fn enabled(test: &str) -> bool {
    if labs::lab_tests_enabled() {
        true
    } else {
        println!("SKIP {test}: needs root and iproute2");
        false
    }
}

/// An IPv4 rendezvous group of the lab's pool (239.92.128.0/24).
fn ipv4_rendezvous_group(v: &Value) -> Ipv4Addr {
    let g: Ipv4Addr = v
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an IPv4 group: {v}"));
    assert_eq!(
        g.octets()[..3],
        [239, 92, 128],
        "outside the IPv4 pool: {g}"
    );
    g
}

/// `subcast-lab run` on a file not shipped: the shipped `file` with
/// `family: ipv4` and its negotiating group `from` replaced by `to`.
fn run_ipv4_variant(file: &str, from: &str, to: &str, args: &[&str]) -> Value {
    let shipped = std::fs::read_to_string(topology_path(file)).unwrap();
    assert!(shipped.contains(from), "{file} changed: {shipped}");
    let text = format!("family: ipv4\n{}", shipped.replace(from, to));
    let dir = std::env::temp_dir().join(format!("labs-ipv4-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file.replace(".yaml", "-ipv4.yaml"));
    std::fs::write(&path, text).unwrap();
    let mut all = vec!["run", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let v = lab_json(&all);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&dir);
    v
}

#[test]
fn ipv4_put_get_on_the_seed_three_switches() {
    if !enabled("ipv4_put_get_on_the_seed_three_switches") {
        return;
    }
    let v = lab_json(&[
        "run",
        "seed-three-switch-ipv4.yaml",
        "--scenario",
        "put-get",
        "--json",
    ]);
    check_put_get(&v);
}

/// The checks of an IPv4 put-get run: daemons and groups in IPv4, ports per
/// switch equal to the rule, datagrams only at the targets, the object read
/// back.
fn check_put_get(v: &Value) {
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["family"], "ipv4");
    let ctl: Ipv4Addr = v["controller"]["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        ctl.octets()[..2],
        [10, 93],
        "controller in band at A's bridge"
    );
    let parent = &v["rendezvous"]["parent"]["group"];
    assert_eq!(parent, "239.92.0.1");
    let groups = v["rendezvous_groups"].as_array().unwrap();
    assert!(!groups.is_empty(), "{v:#}");
    for g in groups {
        ipv4_rendezvous_group(&g["group"]);
        // Ports per switch equal the rule (host ports of targets, trunks toward them).
        for (sw, s) in g["switches"].as_object().unwrap() {
            assert_eq!(s["ports"], s["expected"], "switch {sw}: {g:#}");
        }
        assert_eq!(g["ports_match"], true, "{g:#}");
        // Every target got the chunk, every other host nothing (tcpdump on eth0).
        let targets: Vec<&str> = g["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(targets.len(), 3, "{g:#}");
        for (h, d) in g["deliveries"].as_object().unwrap() {
            let n = d["datagrams"].as_u64().unwrap();
            if targets.contains(&h.as_str()) {
                assert!(n > 0, "target {h} got nothing: {g:#}");
            } else {
                assert_eq!(n, 0, "non-target {h} got {n} datagrams of {}", g["group"]);
            }
        }
    }
    assert_eq!(v["placement_agrees"], true, "{v:#}");
    assert_eq!(v["get"]["ok"], true, "{:#}", v["get"]);
    assert_eq!(v["stored"]["ok"], true, "{:#}", v["stored"]);
    assert!(
        v["sender_egress"]["rendezvous"]["datagrams"]
            .as_u64()
            .unwrap()
            > 0,
        "{:#}",
        v["sender_egress"]
    );
}

/// A file not shipped: seed-snmp.yaml (three SNMP switches: snmpd with the
/// Q-BRIDGE-MIB handler on each) turned IPv4. The agents write the groups as
/// rows of their 01:00:5e MACs, which the handler keeps as IPv4 MDB entries.
#[test]
fn ipv4_put_get_over_snmp_switches() {
    if !enabled("ipv4_put_get_over_snmp_switches") {
        return;
    }
    let has = |b: &str| {
        ["/usr/sbin", "/usr/bin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(b).exists())
    };
    if !has("snmpd") {
        let required = std::env::var(labs::REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "{}=1 but snmpd is not installed (apt-get install snmpd)",
            labs::REQUIRE_ENV
        );
        println!("SKIP ipv4_put_get_over_snmp_switches: needs snmpd");
        return;
    }
    let v = run_ipv4_variant(
        "seed-snmp.yaml",
        "\"ff05::5c:1:1\"",
        "\"239.92.0.1\"",
        &["--scenario", "put-get", "--json"],
    );
    for sw in ["A", "B", "C"] {
        assert_eq!(v["backends"][sw], "snmp", "{v:#}");
    }
    check_put_get(&v);
}

#[test]
fn ipv4_rogue_igmp_join_receives_nothing() {
    if !enabled("ipv4_rogue_igmp_join_receives_nothing") {
        return;
    }
    // Targets X1, X4, X8; X3 sits on B, the transit switch, next to target X4.
    let v = lab_json(&[
        "run",
        "seed-three-switch-ipv4.yaml",
        "--scenario",
        "subset-only",
        "--rogue-join",
        "X3",
        "--json",
    ]);
    let r = &v["rogue_join"];
    assert_eq!(r["host"], "X3", "{v:#}");
    assert_eq!(r["protocol"], "igmp");
    assert_eq!(
        ipv4_rendezvous_group(&r["group"]),
        ipv4_rendezvous_group(&v["rendezvous"]["group"])
    );
    assert!(r["reports_dropped"].as_u64().unwrap() >= 1, "{r:#}");
    assert_eq!(r["mdb_unchanged"], true, "{r:#}");
    assert_eq!(r["datagrams"], 0, "the rogue received datagrams: {r:#}");
    for (h, d) in v["deliveries"].as_object().unwrap() {
        let want = if ["X1", "X4", "X8"].contains(&h.as_str()) {
            100
        } else {
            0
        };
        assert_eq!(d["datagrams"], want, "{h}: {d}");
    }
    assert_eq!(v["ok"], true, "{v:#}");
}

/// Datagrams of `n` sent from `from` to `group` arriving at every host.
fn counts(lab: &Lab, group: Ipv6Addr, from: &str, n: u64) -> BTreeMap<String, u64> {
    let hosts: Vec<&str> = lab.hosts().keys().map(String::as_str).collect();
    let filter = format!("dst {} and dst port 5000", labs::ip_group(group));
    let ((), c) = lab
        .count_at(&hosts, &filter, || {
            lab.send_multicast(from, group, 5000, n, 100).unwrap();
        })
        .unwrap();
    c.into_iter().map(|(h, c)| (h, c.datagrams)).collect()
}

#[test]
fn dual_stack_groups_of_both_families_side_by_side() {
    if !enabled("dual_stack_groups_of_both_families_side_by_side") {
        return;
    }
    let topo = Topology::from_yaml_file(topology_path("seed-three-switch-dual.yaml")).unwrap();
    let lab = Lab::build(
        &topo,
        LabOptions {
            close_mld: true,
            static_negotiating_groups: true,
            ..LabOptions::default()
        },
    )
    .unwrap();
    for h in lab.hosts().values() {
        assert_eq!(h.ipv4, Some(labs::host_ipv4(h.index)), "{}", h.name);
    }
    // ARP across two closed switches: forget X9's permanent entry on X1, ping it.
    let (x1, x9) = (lab.host("X1").netns.clone(), lab.host("X9").clone());
    let x9_v4 = x9.ipv4.unwrap().to_string();
    lab.exec(&x1, &["ip", "neigh", "del", &x9_v4, "dev", "eth0"])
        .unwrap();
    lab.exec(&x1, &["ping", "-4", "-c", "1", "-W", "2", &x9_v4])
        .unwrap();
    let neigh = lab.exec(&x1, &["ip", "neigh", "show", &x9_v4]).unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).to_string();
    assert!(neigh.contains(&x9.mac_string()), "ARP: {neigh}");

    // An IPv6 and an IPv4 rendezvous group at once, on the same bridges.
    let v6: Ipv6Addr = "ff05::5c:2:7".parse().unwrap();
    let v4: Ipv6Addr = Ipv4Addr::new(239, 92, 128, 7).to_ipv6_mapped();
    let (t6, t4) = (["X1", "X4", "X8"], ["X3", "X7", "X9"]);
    lab.static_group(v6, &t6).unwrap();
    let ports4 = lab.static_group(v4, &t4).unwrap();
    let on_b: Vec<_> = lab.mdb_show("B").unwrap();
    for (g, want) in [(v6, 3), (v4, ports4["B"].len())] {
        let n = on_b.iter().filter(|e| e.group == g).count();
        assert_eq!(n, want, "{g} on B: {on_b:?}");
    }
    // A rogue IGMP join on B (X5) is dropped, and so is a rogue MLD join (X6).
    let before = lab.igmp_dropped("B").unwrap();
    let _r4 = lab.udp_socket("X5", 5000, &[v4]).unwrap();
    let _r6 = lab.udp_socket("X6", 5000, &[v6]).unwrap();
    let t0 = std::time::Instant::now();
    while lab.igmp_dropped("B").unwrap() == before {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "B dropped no IGMP report"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(lab.mld_dropped("B").unwrap() > 0, "B dropped no MLD report");
    for (g, targets) in [(v6, &t6), (v4, &t4)] {
        let got = counts(&lab, g, "X2", 20);
        for (h, n) in &got {
            let want = if targets.contains(&h.as_str()) { 20 } else { 0 };
            assert_eq!(*n, want, "group {g}, host {h}: {got:?}");
        }
    }
}

/// A file not shipped: the seed with B an Open vSwitch (seed-mixed.yaml),
/// turned IPv4 with another negotiating group. The OpenFlow agent installs an
/// `nw_dst` flow, the Linux bridges IPv4 MDB entries; delivery stays exact.
#[test]
fn ipv4_subset_only_with_an_ovs_switch_in_the_middle() {
    if !enabled("ipv4_subset_only_with_an_ovs_switch_in_the_middle") || !labs::ovs_available() {
        return;
    }
    let v = run_ipv4_variant(
        "seed-mixed.yaml",
        "\"ff05::5c:1:1\"",
        "\"239.77.0.9\"",
        &["--scenario", "subset-only", "--pace-us", "200", "--json"],
    );
    let rv = &v["rendezvous"];
    ipv4_rendezvous_group(&rv["group"]);
    assert_eq!(rv["parent"]["group"], "239.77.0.9");
    assert_eq!(v["backends"]["B"], "openflow", "{v:#}");
    for (sw, s) in rv["switches"].as_object().unwrap() {
        assert_eq!(s["ports"], s["expected"], "switch {sw}: {rv:#}");
    }
    for (h, d) in v["deliveries"].as_object().unwrap() {
        let want = if ["X1", "X4", "X8"].contains(&h.as_str()) {
            100
        } else {
            0
        };
        assert_eq!(d["datagrams"], want, "{h}: {d}");
    }
    assert_eq!(v["ok"], true, "{v:#}");
}

/// put-bench in IPv4: every object put over IPv4 rendezvous groups is read
/// back identical.
#[test]
fn ipv4_put_bench_reads_every_object_back() {
    if !enabled("ipv4_put_bench_reads_every_object_back") {
        return;
    }
    let v = lab_json(&[
        "run",
        "seed-three-switch-ipv4.yaml",
        "--scenario",
        "put-bench",
        "--puts",
        "4",
        "--object-size",
        "65536",
        "--json",
    ]);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["transport"], "rendezvous");
    assert_eq!(v["verified"], 4, "{v:#}");
    assert_eq!(v["fallbacks"], 0, "{v:#}");
    // One copy leaves the writer (multicast), about R = 3 arrive.
    let egress = v["sender_egress_per_payload_byte"].as_f64().unwrap();
    assert!(
        egress < 1.5,
        "the writer sent {egress} bytes per payload byte"
    );
}

/// put-get on the dual-stack seed: an IPv6 stack and an IPv4 stack of daemons
/// on the same bridges; a put over each family, the IPv6 put's group still
/// installed (warm) through the IPv4 put.
#[test]
fn dual_stack_put_over_ipv6_and_ipv4_on_the_same_bridges() {
    if !enabled("dual_stack_put_over_ipv6_and_ipv4_on_the_same_bridges") {
        return;
    }
    let v = lab_json(&[
        "run",
        "seed-three-switch-dual.yaml",
        "--scenario",
        "put-get",
        "--json",
    ]);
    assert_eq!(v["family"], "dual");
    for (fam, v4) in [("ipv6", false), ("ipv4", true)] {
        let r = &v[fam];
        assert_eq!(r["family"], fam, "{r:#}");
        assert_eq!(r["ok"], true, "{fam}: {r:#}");
        assert_eq!(r["get"]["ok"], true, "{fam}: {:#}", r["get"]);
        for g in r["rendezvous_groups"].as_array().unwrap() {
            let a: std::net::IpAddr = g["group"].as_str().unwrap().parse().unwrap();
            assert_eq!(a.is_ipv4(), v4, "{fam}: {g:#}");
            for (sw, s) in g["switches"].as_object().unwrap() {
                assert_eq!(s["ports"], s["expected"], "{fam}, switch {sw}: {g:#}");
            }
            let targets = g["targets"].as_array().unwrap();
            for (h, d) in g["deliveries"].as_object().unwrap() {
                if !targets.iter().any(|t| t == h.as_str()) {
                    assert_eq!(d["datagrams"], 0, "{fam}: non-target {h}: {g:#}");
                }
            }
        }
    }
    let c = &v["coexist"];
    assert_eq!(c["ok"], true, "{c:#}");
    ipv4_rendezvous_group(&c["ipv4_group"]);
    assert!(
        c["ipv6_group"]
            .as_str()
            .unwrap()
            .parse::<Ipv6Addr>()
            .is_ok(),
        "{c:#}"
    );
    assert_eq!(
        c["ipv6_ports_before_ipv4_put"], c["ipv6_ports_after_ipv4_put"],
        "{c:#}"
    );
    assert_eq!(v["ok"], true, "{v:#}");
}
