//! A registered group never floods, also when the bridges' startup queries
//! repeat (~31 s after the build): the harness keeps every bridge its own
//! querier by dropping MLD queries that arrive on trunks.

use labs::{Lab, LabOptions, Topology};
use std::time::{Duration, Instant};

#[test]
fn registered_group_never_floods_through_startup_queries() {
    if !labs::lab_tests_enabled() {
        println!("SKIP registered_group_never_floods_through_startup_queries: needs root");
        return;
    }
    let topo = Topology::from_yaml_file(labs::topology_path("seed-three-switch.yaml")).unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    let group = "ff05::5c:7:1".parse().unwrap();
    lab.static_group(group, &["X1", "X4", "X8"]).unwrap();
    let filter = format!("udp and ip6 dst {group}");
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
}
