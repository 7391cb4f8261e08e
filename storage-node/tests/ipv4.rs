//! The storage node over IPv4 only (issue 21, stage 4): real `subcast-node
//! serve` processes in network namespaces on one Linux bridge (snooping
//! off: multicast floods), 10.92.0.0/24 addresses, no global IPv6
//! address, negotiating groups 239.92.0.10-11, pair keys bound to the
//! nodes' IPv4 addresses. Needs root; skipped (with a message) otherwise.

mod common;

use common::{Lab, json, ok, random_file, run, skip};

#[test]
fn ipv4_put_get_ng_multicast_and_unicast() {
    if skip() {
        return;
    }
    let lab = Lab::ipv4(4, "chunk_size: 262144\nrate_mbps: 300");
    // Every node joined both IPv4 negotiating groups on eth0 (IGMP, as the
    // kernel reports it), and nobody has a global IPv6 address.
    for i in &lab.nodes {
        let o = run(&["ip", "-n", &lab.ns(*i), "maddr", "show", "dev", "eth0"]);
        let text = String::from_utf8_lossy(&o.stdout);
        for g in ["239.92.0.10", "239.92.0.11"] {
            assert!(text.contains(&format!("inet  {g}")), "node {i}: {text}");
        }
        let o = run(&[
            "ip",
            "-n",
            &lab.ns(*i),
            "-6",
            "addr",
            "show",
            "scope",
            "global",
        ]);
        assert!(
            o.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    let f1 = random_file(lab.dir.path(), "one.bin", 3 * 262144 + 12345, 11);
    let f2 = random_file(lab.dir.path(), "two.bin", 2 * 262144 + 7, 12);
    let out = lab.dir.path().join("out.bin");
    let out_s = out.to_str().unwrap();

    // ng-multicast: sent once to 239.92.0.x.
    let r = json(&ok(&lab.client(&[
        "put",
        f1.to_str().unwrap(),
        "--name",
        "v4/o",
        "--transport",
        "ng-multicast",
        "--quiet",
        "--json",
    ])));
    assert_eq!(r["version"], 1);
    lab.assert_placement("v4/o", 3);
    ok(&lab.client(&["get", "v4/o", "-o", out_s, "--quiet"]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f1).unwrap());

    // unicast to the targets' IPv4 addresses, as version 2.
    let r = json(&ok(&lab.client(&[
        "put",
        f2.to_str().unwrap(),
        "--name",
        "v4/o",
        "--transport",
        "unicast",
        "--quiet",
        "--json",
    ])));
    assert_eq!(r["version"], 2);
    lab.assert_placement("v4/o", 3);
    ok(&lab.client(&["get", "v4/o", "-o", out_s, "--quiet"]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f2).unwrap());
    ok(&lab.client(&["get", "v4/o", "--version", "1", "-o", out_s, "--quiet"]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f1).unwrap());

    // Every datagram came from the IPv4 address its sender's pair key is
    // bound to: none refused (read from each node's stats file once it was
    // written again after the last get).
    let after = std::time::SystemTime::now();
    let t0 = std::time::Instant::now();
    for i in &lab.nodes {
        let path = lab.store(*i).join("stats.json");
        loop {
            let m = std::fs::metadata(&path).and_then(|m| m.modified());
            if m.is_ok_and(|m| m > after) && lab.stats(*i)["node"].is_object() {
                break;
            }
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "node {i} wrote no stats"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let refused = lab.stats(*i)["node"]["refused_datagrams"].as_u64();
        assert_eq!(refused, Some(0), "node {i}: {}", lab.log(*i));
    }
}
