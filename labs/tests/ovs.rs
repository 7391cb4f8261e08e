//! Labs with Open vSwitch switches (root and OVS only; skipped otherwise).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::Instant;

use labs::{Lab, LabOptions, Topology, netns, topology_path};

#[test]
fn mixed_seed_lab_with_ovs_in_the_middle() {
    if !labs::lab_tests_enabled() || !labs::ovs_available() {
        println!("SKIP mixed_seed_lab_with_ovs_in_the_middle: needs root and Open vSwitch");
        return;
    }
    let t0 = Instant::now();
    let topo = Topology::from_yaml_file(topology_path("seed-mixed.yaml")).unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    println!("mixed build: {:?}", t0.elapsed());
    let prefix = format!("{}-", lab.prefix());
    let b = lab.switch("B");
    assert!(b.ovs.is_some());
    assert!(b.ports.iter().all(|p| p.ofport.is_some_and(|n| n > 0)));
    assert!(lab.switch("A").ovs.is_none());
    assert!(lab.mdb_show("B").is_err());

    // Unicast through the OVS switch, to its management address, and UDP checksums
    // intact after the userspace datapath.
    let x9 = lab.host("X9").ipv6.to_string();
    let mgmt_b = b.mgmt_ipv6.to_string();
    for dst in [&x9, &mgmt_b] {
        lab.exec(
            &lab.host("X1").netns,
            &["ping", "-6", "-c", "1", "-W", "2", dst],
        )
        .unwrap();
    }
    let rx = lab.udp_socket("X9", 6000, &[]).unwrap();
    rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let tx = lab.udp_socket("X1", 0, &[]).unwrap();
    tx.send_to(b"through ovs", (lab.host("X9").ipv6, 6000))
        .unwrap();
    let mut buf = [0u8; 32];
    let (n, _) = rx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"through ovs");
    assert_eq!(lab.udp_counters("X9").unwrap().in_csum_errors, 0);

    // Static group X1, X4, X8: MDB on A and C, OpenFlow group on B.
    let group: Ipv6Addr = "ff05::5c:2:7".parse().unwrap();
    lab.static_group(group, &["X1", "X4", "X8"]).unwrap();
    let flows = lab.ovs_ofctl("B", "dump-groups", &[]).unwrap();
    assert!(String::from_utf8_lossy(&flows.stdout).contains("type=all"));
    let hosts: Vec<&str> = lab.hosts().keys().map(String::as_str).collect();
    let ((), counts) = lab
        .count_at(&hosts, &format!("dst {group}"), || {
            lab.send_multicast("X2", group, 5000, 100, 100).unwrap();
        })
        .unwrap();
    let got: BTreeMap<&str, u64> = counts
        .iter()
        .map(|(h, c)| (h.as_str(), c.datagrams))
        .collect();
    for (h, n) in &got {
        let want = if ["X1", "X4", "X8"].contains(h) {
            100
        } else {
            0
        };
        assert_eq!(*n, want, "at {h}: {got:?}");
    }
    drop((rx, tx));
    drop(lab);
    assert!(
        netns::list().iter().all(|n| !n.starts_with(&prefix)),
        "namespaces left after drop"
    );
    println!(
        "mixed_seed_lab_with_ovs_in_the_middle total: {:?}",
        t0.elapsed()
    );
}
