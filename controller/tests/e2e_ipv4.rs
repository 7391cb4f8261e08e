//! An IPv4 rendezvous group end to end (issue 21): the real controller with
//! an IPv4 pool (239.92.128.0/24) and an IPv4 parent (239.92.0.1, members
//! by `ipv4:`), three real agents on IPv4 ranges, the seed's three Linux
//! bridges. A grant over HTTP names IPv4 targets; every switch holds IPv4
//! MDB entries on exactly the ports the rule gives (read with `bridge mdb`),
//! datagrams reach exactly the targets (tcpdump at every host), and the
//! release clears every switch.

mod lab;

use lab::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Ports of IPv4 group `g` in `switch`'s MDB, as `bridge -j mdb show` lists them.
fn ports4(lab: &labs::Lab, switch: &str, g: Ipv4Addr) -> BTreeSet<String> {
    let out = lab
        .exec(&lab.switch(switch).netns, &["bridge", "-j", "mdb", "show"])
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|x| x["mdb"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["grp"].as_str() == Some(g.to_string().as_str()))
        .filter_map(|e| e["port"].as_str().map(str::to_owned))
        .collect()
}

/// 50 datagrams from `from` to `g`, counted at every host.
fn deliver4(lab: &labs::Lab, from: &str, g: Ipv4Addr) -> BTreeMap<String, u64> {
    let hosts: Vec<String> = lab.hosts().keys().cloned().collect();
    let hs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let (ns, src) = (lab.host(from).netns.clone(), host_ipv4(lab, from));
    let (sent, counts) = lab
        .count_at(&hs, &format!("dst {g} and dst port 5000"), move || {
            labs::netns::in_netns(&ns, move || -> std::io::Result<()> {
                let s = std::net::UdpSocket::bind(SocketAddrV4::new(src, 0))?;
                s.set_multicast_ttl_v4(1)?;
                for i in 0u64..50 {
                    s.send_to(&i.to_be_bytes(), SocketAddrV4::new(g, 5000))?;
                }
                Ok(())
            })
        })
        .unwrap();
    sent.unwrap().unwrap();
    counts.into_iter().map(|(h, c)| (h, c.datagrams)).collect()
}

#[test]
fn ipv4_rendezvous_on_three_real_bridges() {
    if !labs::lab_tests_enabled() {
        eprintln!("skipping ipv4_rendezvous_on_three_real_bridges: needs root and iproute2");
        return;
    }
    let Setup {
        lab,
        _controller,
        agents: _agents,
    } = setup_with(&Tuning {
        ipv4: true,
        ..Tuning::default()
    });
    let log = || std::fs::read_to_string(lab.workdir().join("controller.log")).unwrap_or_default();
    let targets = ["X1", "X4", "X8"];
    let names: Vec<String> = targets
        .iter()
        .map(|t| host_ipv4(&lab, t).to_string())
        .collect();
    let (s, v) = http(
        &lab,
        "POST",
        "/v1/rendezvous",
        Some(json!({"parent": PARENT4, "targets": names})),
    );
    assert_eq!(s, 201, "{v}\ncontroller log:\n{}", log());
    let g: Ipv4Addr = v["group"].as_str().unwrap().parse().unwrap_or_else(|_| {
        panic!("the API shows an IPv4 group in dotted form: {v}");
    });
    assert!(POOL4.parse::<ipnet::Ipv4Net>().unwrap().contains(&g), "{g}");
    // The rule: each switch holds the ports toward the targets.
    let want: BTreeMap<&str, BTreeSet<String>> = [
        ("A", ["h-X1", "t-B"]),
        ("B", ["h-X4", "t-A"]),
        ("C", ["h-X8", "t-B"]),
    ]
    .into_iter()
    .map(|(s, p)| (s, p.iter().map(|x| x.to_string()).collect()))
    .collect();
    let mut want = want;
    want.get_mut("B").unwrap().insert("t-C".into());
    for (sw, ports) in &want {
        assert_eq!(&ports4(&lab, sw, g), ports, "switch {sw}");
    }
    let got = deliver4(&lab, "X2", g);
    for (h, n) in &got {
        let want = if targets.contains(&h.as_str()) { 50 } else { 0 };
        assert_eq!(*n, want, "host {h}: {got:?}");
    }
    let lease = v["lease_id"].as_str().unwrap().to_owned();
    release_all_acked(&lab, &lease);
    for sw in ["A", "B", "C"] {
        assert!(
            ports4(&lab, sw, g).is_empty(),
            "switch {sw} still holds {g}"
        );
    }
}
