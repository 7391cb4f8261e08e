//! A registered group never floods, also when the bridges' startup queries
//! repeat (~31 s after the build): the harness keeps every bridge its own
//! querier by dropping MLD queries (and in IPv4 labs IGMP queries) that
//! arrive on trunks. The IPv6 and the IPv4 test run side by side.

use labs::{Lab, LabOptions, Topology};
use std::time::{Duration, Instant};

#[test]
fn registered_group_never_floods_through_startup_queries() {
    if !labs::lab_tests_enabled() {
        println!("SKIP registered_group_never_floods_through_startup_queries: needs root");
        return;
    }
    never_floods("seed-three-switch.yaml", "ff05::5c:7:1".parse().unwrap());
}

#[test]
fn registered_ipv4_group_never_floods_through_startup_queries() {
    if !labs::lab_tests_enabled() {
        println!("SKIP registered_ipv4_group_never_floods_through_startup_queries: needs root");
        return;
    }
    let g = std::net::Ipv4Addr::new(239, 92, 128, 71);
    never_floods("seed-three-switch-ipv4.yaml", g.to_ipv6_mapped());
}

/// `group` (IPv4 ones IPv4-mapped) registered for X1, X4, X8; X2 sends to it
/// every 100 ms for 36 s; only X1 of X1, X3, X7 may see it.
fn never_floods(file: &str, group: std::net::Ipv6Addr) {
    let topo = Topology::from_yaml_file(labs::topology_path(file)).unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    lab.static_group(group, &["X1", "X4", "X8"]).unwrap();
    let filter = match group.to_ipv4_mapped() {
        Some(v4) => format!("udp and ip dst {v4}"),
        None => format!("udp and ip6 dst {group}"),
    };
    let caps: Vec<_> = ["X1", "X3", "X7"]
        .iter()
        .map(|h| (h.to_string(), lab.capture(h, &filter).unwrap()))
        .collect();
    // One datagram every 100 ms for 36 s: through the second startup query.
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(36) {
        lab.send_multicast("X2", group, 5000, 1, 32).unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    for (h, cap) in caps {
        let n = cap.stop().unwrap().datagrams;
        if h == "X1" {
            assert_eq!(n, sent, "member X1 must get every datagram");
        } else {
            assert_eq!(
                n, 0,
                "non-member {h} got {n} of {sent}: the bridges flooded"
            );
        }
    }
    // The second startup query (~31 s) reached the trunks and was dropped there:
    // each bridge stays its own querier.
    let igmp = group.to_ipv4_mapped().is_some();
    for sw in ["A", "B", "C"] {
        let n = lab.queries_dropped(sw, igmp).unwrap();
        assert!(
            n > 0,
            "no query was dropped on the trunks of {sw} (igmp: {igmp})"
        );
    }
}
