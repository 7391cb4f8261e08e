//! `loss_pct` and `rate_mbit` in topology files, measured from outside: captures,
//! the loss rules' counters, iperf3.

use std::net::Ipv6Addr;
use std::time::Duration;

use labs::{Lab, LabOptions, Topology};

fn enabled(test: &str, ovs: bool) -> bool {
    if labs::lab_tests_enabled() && (!ovs || labs::ovs_available()) {
        true
    } else {
        println!("SKIP {test}: needs root and iproute2 (and Open vSwitch)");
        false
    }
}

/// Send `n` unicast datagrams from `from` to `to` (UDP port 6000), one every
/// `pace_us`, and count what arrives at `to`'s eth0. (Open vSwitch's userspace
/// datapath itself drops from back-to-back bursts: ~20 % of 2000 datagrams sent in
/// bursts of 64 here; paced at 200 us, none.)
fn unicast(lab: &Lab, from: &str, to: &str, n: u64, pace_us: u64) -> u64 {
    let dst = lab.host(to).ipv6;
    let tx = lab.udp_socket(from, 0, &[]).unwrap();
    let (_, counts) = lab
        .count_at(&[to], "dst port 6000", || {
            let t0 = std::time::Instant::now();
            for i in 0..n {
                tx.send_to(&i.to_be_bytes(), (dst, 6000)).unwrap();
                let next = Duration::from_micros(pace_us * (i + 1));
                if let Some(w) = next.checked_sub(t0.elapsed()) {
                    std::thread::sleep(w);
                }
            }
        })
        .unwrap();
    counts[to].datagrams
}

fn dropped(lab: &Lab, hop: &str) -> u64 {
    lab.loss_drops().unwrap().hops[hop].dropped
}

/// `received + dropped == sent` exactly on every path, the share lost is near the
/// configured one, and ICMPv6 (ping, neighbour discovery, MLD) is never dropped.
#[test]
fn loss_drops_udp_only_and_counts_every_drop() {
    if !enabled("loss_drops_udp_only_and_counts_every_drop", false) {
        return;
    }
    let topo = Topology::from_yaml_str(
        "switches: {S: {}}\nhosts:\n  H1: {switch: S}\n  H2: {switch: S, loss_pct: 20}\n  \
         H3: {switch: S}\n",
    )
    .unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    let hops = lab.hops();
    assert_eq!(hops.len(), 6);
    let n = 2000;
    // Multicast to H2 and H3: only H2's link loses.
    let group: Ipv6Addr = "ff05::5c:2:20".parse().unwrap();
    lab.static_group(group, &["H2", "H3"]).unwrap();
    let (_, c) = lab
        .count_at(&["H2", "H3"], &format!("dst {group}"), || {
            for _ in 0..n / 100 {
                lab.send_multicast("H1", group, 5000, 100, 100).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    assert_eq!(c["H3"].datagrams, n, "H3's link is lossless");
    let got = c["H2"].datagrams;
    assert_eq!(
        got + dropped(&lab, "S>H2"),
        n,
        "every datagram is delivered or counted"
    );
    // 20 % of 2000: mean 400, sd 18.
    assert!((1500..=1700).contains(&got), "H2 got {got} of {n}");
    // H2 -> H1 loses on hop H2>S.
    let got = unicast(&lab, "H2", "H1", n, 20);
    assert_eq!(got + dropped(&lab, "H2>S"), n);
    assert!((1500..=1700).contains(&got), "H1 got {got} of {n}");
    // ICMPv6 passes untouched.
    let h2 = lab.host("H2").ipv6.to_string();
    let out = lab
        .exec(
            &lab.host("H1").netns,
            &["ping", "-6", "-c", "50", "-i", "0.01", "-q", &h2],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("50 received"), "{text}");
    let d = lab.loss_drops().unwrap();
    assert_eq!(d.hosts["H1"], 0);
    assert_eq!(d.hosts["H3"], 0);
    assert_eq!(d.total, d.hosts["H2"]);
    assert_eq!(d.hops["S>H2"].loss_pct, 20.0);
    // Loss can be changed on the fly (the bench does): everything off.
    lab.set_loss(Some(0.0)).unwrap();
    assert_eq!(unicast(&lab, "H2", "H1", 500, 20), 500);
    assert_eq!(lab.loss_drops().unwrap().total, 0);
}

/// Loss next to Open vSwitch: on hops into an OVS port the rule sits on the
/// sender's egress (OVS reads frames before any ingress hook), out of OVS on its
/// port's egress; every drop is still counted.
#[test]
fn loss_on_links_of_an_ovs_switch() {
    if !enabled("loss_on_links_of_an_ovs_switch", true) {
        return;
    }
    let topo = Topology::from_yaml_str(
        "switches: {A: {}, B: {backend: openflow}}\nlinks:\n  - {between: [A, B], loss_pct: 10}\n\
         hosts:\n  X1: {switch: A}\n  X3: {switch: B, loss_pct: 10}\n",
    )
    .unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    let places: Vec<(String, &str)> = lab
        .hops()
        .into_iter()
        .map(|h| (h.name, h.place.hook))
        .collect();
    assert!(places.contains(&("X3>B".into(), "egress")), "{places:?}");
    assert!(places.contains(&("A>B".into(), "egress")), "{places:?}");
    assert!(places.contains(&("B>A".into(), "ingress")), "{places:?}");
    let n = 1000;
    let got = unicast(&lab, "X1", "X3", n, 200);
    let d = lab.loss_drops().unwrap();
    assert_eq!(
        got + d.hops["A>B"].dropped + d.hops["B>X3"].dropped,
        n,
        "{d:?}"
    );
    assert!(
        d.hops["A>B"].dropped > 0 && d.hops["B>X3"].dropped > 0,
        "{d:?}"
    );
    // Two hops of 10 %: 81 % arrive (sd ~12 of 1000).
    assert!((740..=880).contains(&got), "X3 got {got} of {n}");
    let got = unicast(&lab, "X3", "X1", n, 200);
    let d2 = lab.loss_drops().unwrap();
    assert_eq!(
        got + d2.hops["X3>B"].dropped + d2.hops["B>A"].dropped,
        n,
        "{d2:?}"
    );
    assert!((740..=880).contains(&got), "X1 got {got} of {n}");
}

fn iperf3_mbit(lab: &Lab, server: &str, client: &str, reverse: bool) -> f64 {
    let srv = lab
        .spawn_with(
            &lab.host(server).netns,
            &["iperf3", "-s", "-1", "-p", "5201"],
            |c| {
                c.stdout(std::process::Stdio::null());
            },
        )
        .unwrap();
    let addr = lab.host(server).ipv6.to_string();
    let mut args = vec!["iperf3", "-c", &addr, "-p", "5201", "-t", "2", "-J"];
    if reverse {
        args.push("-R");
    }
    // The server binds right after exec: retry the connection briefly.
    let mut last = String::new();
    for _ in 0..50 {
        match lab.exec(&lab.host(client).netns, &args) {
            Ok(out)
                if serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .is_ok_and(|v| v.get("error").is_none()) =>
            {
                drop(srv);
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let bps = v["end"]["sum_received"]["bits_per_second"].as_f64();
                return bps.unwrap_or_else(|| panic!("iperf3 {args:?} reported no rate: {v:#}"))
                    / 1e6;
            }
            other => {
                last = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
                    Err(e) => e.to_string(),
                };
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    panic!("iperf3 never connected: {last}");
}

/// `rate_mbit` on a host's link limits both directions (tbf on both veth ends);
/// other links stay fast. Measured with iperf3 (TCP).
#[test]
fn rate_limits_both_directions_of_a_link() {
    if !enabled("rate_limits_both_directions_of_a_link", false) {
        return;
    }
    if !std::path::Path::new("/usr/bin/iperf3").exists() {
        let required = std::env::var(labs::REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "iperf3 is missing: apt-get install iperf3 (scripts/test.sh does)"
        );
        println!("SKIP rate_limits_both_directions_of_a_link: iperf3 is missing");
        return;
    }
    let topo = Topology::from_yaml_str(
        "switches: {S: {}}\nhosts:\n  H1: {switch: S, rate_mbit: 50}\n  H2: {switch: S}\n  \
         H3: {switch: S}\n",
    )
    .unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    let down = iperf3_mbit(&lab, "H1", "H2", false);
    let up = iperf3_mbit(&lab, "H1", "H2", true);
    let free = iperf3_mbit(&lab, "H3", "H2", false);
    println!("H2->H1 {down:.1} Mbit/s, H1->H2 {up:.1} Mbit/s, H2->H3 (unshaped) {free:.1} Mbit/s");
    for (what, r) in [("toward H1", down), ("from H1", up)] {
        assert!(
            r <= 52.5,
            "{what}: {r:.1} Mbit/s exceeds the 50 Mbit/s limit"
        );
        assert!(
            r >= 35.0,
            "{what}: {r:.1} Mbit/s, far below the 50 Mbit/s limit"
        );
    }
    assert!(
        free > 4.0 * down,
        "the unshaped link is not faster: {free:.1}"
    );
}
