//! Real netns labs (root only; skipped with a message otherwise).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::Instant;

use labs::{Lab, LabOptions, PortPeer, Topology, netns, topology_path};

fn enabled(test: &str) -> bool {
    if labs::lab_tests_enabled() {
        true
    } else {
        println!("SKIP {test}: needs root and iproute2");
        false
    }
}

fn own_namespaces(prefix: &str) -> Vec<String> {
    netns::list()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

fn counts_at_all(lab: &Lab, group: Ipv6Addr, from: &str, n: u64) -> BTreeMap<String, (u64, u64)> {
    let hosts: Vec<&str> = lab.hosts().keys().map(String::as_str).collect();
    let ((), counts) = lab
        .count_at(&hosts, &format!("dst {group}"), || {
            lab.send_multicast(from, group, 5000, n, 100).unwrap();
        })
        .unwrap();
    counts
        .into_iter()
        .map(|(h, c)| {
            assert_eq!(c.kernel_dropped, 0, "capture at {h} dropped packets");
            (h, (c.datagrams, c.bytes))
        })
        .collect()
}

#[test]
fn one_switch_static_group_and_unicast() {
    if !enabled("one_switch_static_group_and_unicast") {
        return;
    }
    let t0 = Instant::now();
    let topo = Topology::from_yaml_file(topology_path("one-switch.yaml")).unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    println!("one-switch build: {:?}", t0.elapsed());
    let prefix = format!("{}-", lab.prefix());
    assert_eq!(own_namespaces(&prefix).len(), 5);

    let s = lab.switch("S");
    assert_eq!(s.ports.len(), 4);
    assert!(s.ports.iter().all(|p| p.ifindex > 0));
    assert_eq!(s.port_to_host("H3").unwrap().name, "h-H3");
    let h1 = lab.host("H1");
    assert_eq!(h1.ipv6, "fd00:5c::1".parse::<Ipv6Addr>().unwrap());
    assert_eq!(h1.mac_string(), "02:5c:00:00:00:01");

    // Settled querier: an unregistered group reaches nobody.
    let unregistered: Ipv6Addr = "ff05::5c:2:99".parse().unwrap();
    let c = counts_at_all(&lab, unregistered, "H1", 20);
    assert!(
        c.values().all(|v| v.0 == 0),
        "unregistered group leaked: {c:?}"
    );

    // A static group reaches exactly its members.
    let group: Ipv6Addr = "ff05::5c:2:1".parse().unwrap();
    lab.static_group(group, &["H2", "H4"]).unwrap();
    let c = counts_at_all(&lab, group, "H1", 100);
    assert_eq!(c["H2"], (100, 100 * 100));
    assert_eq!(c["H4"], (100, 100 * 100));
    assert_eq!(c["H1"].0, 0);
    assert_eq!(c["H3"].0, 0);

    // Unicast between hosts works (permanent neighbours), seen by the UDP counters.
    let rx = lab.udp_socket("H3", 6000, &[]).unwrap();
    let before = lab.udp_counters("H3").unwrap().in_datagrams;
    let h3 = lab.host("H3").ipv6;
    lab.exec(
        &lab.host("H1").netns,
        &["ping", "-6", "-c", "1", "-W", "2", &h3.to_string()],
    )
    .unwrap();
    let tx = lab.udp_socket("H1", 0, &[]).unwrap();
    tx.send_to(b"hello", (h3, 6000)).unwrap();
    let mut buf = [0u8; 16];
    rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let (n, _) = rx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(lab.udp_counters("H3").unwrap().in_datagrams, before + 1);
    drop((rx, tx));

    // Control for the closed-MLD test: on an open switch an MLD join does register.
    // Receiver and sender are the subcast-lab-udp binary, run with `ip netns exec`.
    let joined: Ipv6Addr = "ff05::5c:2:5".parse().unwrap();
    let tool = env!("CARGO_BIN_EXE_subcast-lab-udp");
    let g = joined.to_string();
    let recv = lab
        .spawn_with(
            &lab.host("H3").netns,
            &[
                tool, "recv", "--port", "5001", "--join", &g, "--count", "50",
            ],
            |c| {
                c.stdout(std::process::Stdio::piped());
            },
        )
        .unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(3);
    while !lab.mdb_show("S").unwrap().iter().any(|e| e.group == joined) {
        assert!(
            Instant::now() < deadline,
            "MLD join of H3 never reached the MDB"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let send = [
        tool, "send", "--group", &g, "--port", "5001", "--count", "50", "--len", "200",
    ];
    lab.exec(&lab.host("H1").netns, &send).unwrap();
    let out = recv.into_child().wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"datagrams":50,"bytes":10000}"#
    );

    // The switch's management address answers from a host.
    let mgmt = lab.switch("S").mgmt_ipv6.to_string();
    lab.exec(
        &lab.host("H4").netns,
        &["ping", "-6", "-c", "1", "-W", "2", &mgmt],
    )
    .unwrap();

    drop(lab);
    assert!(
        own_namespaces(&prefix).is_empty(),
        "namespaces left after drop"
    );
    println!(
        "one_switch_static_group_and_unicast total: {:?}",
        t0.elapsed()
    );
}

#[test]
fn seed_three_switch_subset_x1_x4_x8() {
    if !enabled("seed_three_switch_subset_x1_x4_x8") {
        return;
    }
    let t0 = Instant::now();
    let topo = Topology::from_yaml_file(topology_path("seed-three-switch.yaml")).unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    println!("seed build: {:?}", t0.elapsed());
    let prefix = format!("{}-", lab.prefix());
    assert_eq!(own_namespaces(&prefix).len(), 12);
    let b = lab.switch("B");
    assert_eq!(b.ports.len(), 6);
    assert_eq!(
        b.port_to_switch("A").unwrap().toward,
        PortPeer::Switch("A".into())
    );

    let group: Ipv6Addr = "ff05::5c:2:2".parse().unwrap();
    let ports = lab.static_group(group, &["X1", "X4", "X8"]).unwrap();
    let want: BTreeMap<String, Vec<String>> = [
        ("A", vec!["h-X1", "t-B"]),
        ("B", vec!["h-X4", "t-A", "t-C"]),
        ("C", vec!["h-X8", "t-B"]),
    ]
    .into_iter()
    .map(|(s, v)| (s.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(ports, want);
    let mdb_b = lab.mdb_show("B").unwrap();
    assert_eq!(mdb_b.iter().filter(|e| e.group == group).count(), 3);

    for sender in ["X2", "X9"] {
        let t = Instant::now();
        let c = counts_at_all(&lab, group, sender, 100);
        println!("send from {sender} and count at 9 hosts: {:?}", t.elapsed());
        for (h, (n, bytes)) in &c {
            let member = ["X1", "X4", "X8"].contains(&h.as_str());
            let want = if member && h != sender { 100 } else { 0 };
            assert_eq!(*n, want, "datagrams at {h} (sender {sender}): {c:?}");
            assert_eq!(*bytes, want * 100);
        }
    }

    // Unicast across two trunks, and to a remote switch's management address.
    let x9 = lab.host("X9").ipv6.to_string();
    let mgmt_c = lab.switch("C").mgmt_ipv6.to_string();
    for dst in [&x9, &mgmt_c] {
        lab.exec(
            &lab.host("X1").netns,
            &["ping", "-6", "-c", "1", "-W", "2", dst],
        )
        .unwrap();
    }

    // Removing the trunk entry B->C cuts off X8 only.
    lab.mdb_del("B", "t-C", group).unwrap();
    let c = counts_at_all(&lab, group, "X2", 10);
    assert_eq!((c["X1"].0, c["X4"].0, c["X8"].0), (10, 10, 0), "{c:?}");

    drop(lab);
    assert!(
        own_namespaces(&prefix).is_empty(),
        "namespaces left after drop"
    );
    println!(
        "seed_three_switch_subset_x1_x4_x8 total: {:?}",
        t0.elapsed()
    );
}

#[test]
fn closed_mld_keeps_joins_local() {
    if !enabled("closed_mld_keeps_joins_local") {
        return;
    }
    let t0 = Instant::now();
    let topo = Topology::from_yaml_file(topology_path("seed-three-switch.yaml")).unwrap();
    let opts = LabOptions {
        close_mld: true,
        ..LabOptions::default()
    };
    let lab = Lab::build(&topo, opts).unwrap();
    println!("closed seed build: {:?}", t0.elapsed());
    let group: Ipv6Addr = "ff05::5c:2:3".parse().unwrap();
    // X4 joins: the report is dropped, so no bridge ever forwards the group to it.
    let rx = lab.udp_socket("X4", 5000, &[group]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        lab.mld_dropped("B").unwrap() > 0,
        "no MLD report was dropped"
    );
    for sw in ["A", "B", "C"] {
        assert!(
            lab.mdb_show(sw).unwrap().iter().all(|e| e.group != group),
            "joined group reached the MDB of {sw}"
        );
    }
    let c = counts_at_all(&lab, group, "X1", 20);
    assert!(c.values().all(|v| v.0 == 0), "{c:?}");

    // Solicited-node groups are pinned: on A the entry for X9 points at the trunk.
    let x9 = lab.host("X9");
    let sn = x9.solicited_node();
    let on_a: Vec<_> = lab
        .mdb_show("A")
        .unwrap()
        .into_iter()
        .filter(|e| e.group == sn)
        .collect();
    assert_eq!(on_a.len(), 1, "{on_a:?}");
    assert_eq!(
        (on_a[0].port.as_str(), on_a[0].state.as_str()),
        ("t-B", "permanent")
    );
    // Neighbour discovery across two closed switches: forget X9's permanent
    // neighbour entry on X1, then ping it (NS to its solicited-node group).
    let x1 = lab.host("X1").netns.clone();
    let x9_addr = x9.ipv6.to_string();
    lab.exec(&x1, &["ip", "neigh", "del", &x9_addr, "dev", "eth0"])
        .unwrap();
    lab.exec(&x1, &["ping", "-6", "-c", "1", "-W", "2", &x9_addr])
        .unwrap();
    let neigh = lab.exec(&x1, &["ip", "neigh", "show", &x9_addr]).unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).to_string();
    assert!(neigh.contains(&x9.mac_string()), "{neigh}");
    drop(rx);
    println!("closed_mld_keeps_joins_local total: {:?}", t0.elapsed());
}

#[test]
fn two_labs_at_once_and_cleanup_on_panic() {
    if !enabled("two_labs_at_once_and_cleanup_on_panic") {
        return;
    }
    let t0 = Instant::now();
    let topo = Topology::from_yaml_file(topology_path("one-switch.yaml")).unwrap();
    let a = std::thread::spawn({
        let topo = topo.clone();
        move || Lab::build(&topo, LabOptions::default()).unwrap()
    });
    let b = Lab::build(&topo, LabOptions::default()).unwrap();
    let a = a.join().unwrap();
    assert_ne!(a.prefix(), b.prefix());
    let group: Ipv6Addr = "ff05::5c:2:4".parse().unwrap();
    a.static_group(group, &["H2"]).unwrap();
    // Same addresses in both labs, but fully separate: b has no entry, so nothing.
    let ca = counts_at_all(&a, group, "H1", 10);
    let cb = counts_at_all(&b, group, "H1", 10);
    assert_eq!(ca["H2"].0, 10);
    assert_eq!(cb["H2"].0, 0);
    let (pa, pb) = (format!("{}-", a.prefix()), format!("{}-", b.prefix()));
    drop(a);
    drop(b);
    assert!(own_namespaces(&pa).is_empty() && own_namespaces(&pb).is_empty());

    // A panic while a lab is alive still removes it, and its spawned processes.
    let prefix = std::sync::Mutex::new(String::new());
    let pid = std::sync::Mutex::new(0u32);
    let r = std::panic::catch_unwind(|| {
        let lab = Lab::build(
            &topo,
            LabOptions {
                wait_settled: false,
                ..LabOptions::default()
            },
        )
        .unwrap();
        *prefix.lock().unwrap() = format!("{}-", lab.prefix());
        let child = lab.spawn(&lab.host("H1").netns, &["sleep", "600"]).unwrap();
        *pid.lock().unwrap() = child.pid();
        std::mem::forget(child); // only the lab's own teardown can end it now
        panic!("deliberate");
    });
    assert!(r.is_err());
    let prefix = prefix.into_inner().unwrap();
    assert!(!prefix.is_empty());
    assert!(
        own_namespaces(&prefix).is_empty(),
        "namespaces left after panic"
    );
    let pid = pid.into_inner().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Killed: gone, or a zombie waiting for a parent that forgot it.
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "sleep {pid} still runs: {stat}"
    );
    println!(
        "two_labs_at_once_and_cleanup_on_panic total: {:?}",
        t0.elapsed()
    );
}

#[test]
fn cleanup_stale_refuses_foreign_prefixes() {
    assert!(labs::cleanup_stale("slab1-").is_err() || std::process::id() == 1);
    assert!(labs::cleanup_stale("").is_err());
}
