//! Group reuse and budgets end to end on real Linux bridges (needs root;
//! skips otherwise): the real `subcast-controller` and three real
//! `subcast-agent`s on the seed's three-switch lab. What the switches hold
//! is read from the bridges' MDBs; what they deliver is counted at the
//! hosts with captures.
//!
//! These work with agents that know BATCH (one datagram per eviction and
//! install) and with older ones (the controller falls back to single
//! instructions when an agent NAKs a BATCH as malformed).

mod lab;
use lab::*;
use labs::Lab;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::Ipv6Addr;

fn warm_setup(budget: Option<u32>) -> Setup {
    setup_with(&Tuning {
        leases: "default_ms: 10000, max_ms: 60000, warm_ms: 60000".into(),
        budget,
        ipv4: false,
    })
}

/// Rendezvous groups (addresses in the pool) in `switch`'s MDB.
fn held(lab: &Lab, switch: &str) -> BTreeSet<Ipv6Addr> {
    let pool: ipnet::Ipv6Net = POOL.parse().unwrap();
    lab.mdb_show(switch)
        .unwrap()
        .into_iter()
        .filter(|e| pool.contains(&e.group))
        .map(|e| e.group)
        .collect()
}

fn ask(lab: &Lab, targets: &[&str]) -> (u16, Value) {
    http(
        lab,
        "POST",
        "/v1/rendezvous",
        Some(json!({"parent": "NG0", "targets": targets, "lifetime_ms": 30000})),
    )
}

fn release(lab: &Lab, lease: &str) -> Value {
    let (s, v) = http(lab, "DELETE", &format!("/v1/rendezvous/{lease}"), None);
    assert_eq!(s, 200, "{v}");
    v
}

/// Budget 4 on every switch, twenty distinct target sets: the first four
/// are installed, each later one evicts the least recently used warm
/// group; with four leases held, a fifth set is refused with table-full
/// naming a switch, and a release makes exactly that group the next
/// victim. Checked on the bridges' MDBs after every step.
#[test]
fn budget_of_four_and_twenty_target_sets_on_real_bridges() {
    if !labs::lab_tests_enabled() {
        eprintln!(
            "skipping budget_of_four_and_twenty_target_sets_on_real_bridges: needs root and iproute2"
        );
        return;
    }
    let Setup {
        lab,
        _controller,
        agents: _agents,
    } = warm_setup(Some(4));
    let members = ["X1", "X3", "X4", "X7", "X8", "X9"];
    let mut sets: Vec<Vec<&str>> = Vec::new();
    for a in 0..6 {
        for b in a + 1..6 {
            for c in b + 1..6 {
                sets.push(vec![members[a], members[b], members[c]]);
            }
        }
    }
    assert_eq!(sets.len(), 20);
    let check = |want: &[Ipv6Addr], step: &str| {
        let want: BTreeSet<Ipv6Addr> = want.iter().copied().collect();
        for sw in ["A", "B", "C"] {
            let got = held(&lab, sw);
            assert!(
                got.len() <= 4,
                "{step}: switch {sw} holds {} groups",
                got.len()
            );
            assert_eq!(got, want, "{step}: switch {sw}");
        }
    };
    let mut order: Vec<(Vec<&str>, Ipv6Addr)> = Vec::new();
    for (n, set) in sets.iter().enumerate() {
        let (s, v) = ask(&lab, set);
        assert_eq!(s, 201, "set {n}: {v}");
        assert_eq!(v["reused"], false, "set {n}");
        let g: Ipv6Addr = v["group"].as_str().unwrap().parse().unwrap();
        let r = release(&lab, v["lease_id"].as_str().unwrap());
        assert_eq!(r["group_state"], "warm", "{r}");
        order.push((set.clone(), g));
        let want: Vec<Ipv6Addr> = order.iter().rev().take(4).map(|x| x.1).collect();
        check(&want, &format!("after set {n}"));
    }
    // Hold the four warm groups: all hits.
    let warm: Vec<(Vec<&str>, Ipv6Addr)> = order.iter().rev().take(4).rev().cloned().collect();
    let mut leases = Vec::new();
    for (set, g) in &warm {
        let (s, v) = ask(&lab, set);
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["reused"], true, "{v}");
        assert_eq!(v["group"], g.to_string());
        leases.push(v["lease_id"].as_str().unwrap().to_owned());
    }
    // Nothing is evictable: a new set is refused and nothing changes.
    let (s, v) = ask(&lab, &sets[0]);
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"], "table-full", "{v}");
    assert!(
        v["switch"]
            .as_str()
            .is_some_and(|s| ["A ", "B ", "C "].iter().any(|p| s.starts_with(p))),
        "{v}"
    );
    let all: Vec<Ipv6Addr> = warm.iter().map(|x| x.1).collect();
    check(&all, "after the refusal");
    // Release the second held group: it is the one evicted next.
    release(&lab, &leases[1]);
    let (s, v) = ask(&lab, &sets[0]);
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["reused"], false);
    let g: Ipv6Addr = v["group"].as_str().unwrap().parse().unwrap();
    let want = vec![warm[0].1, warm[2].1, warm[3].1, g];
    check(&want, "after the eviction of the released group");
    assert_reaches_exactly(&lab, g, &sets[0]);
    // The controller's own account agrees.
    let (_, b) = http(&lab, "GET", "/v1/budgets", None);
    for row in b.as_array().unwrap() {
        assert_eq!(row["budget"], 4, "{b}");
        assert!(row["peak"].as_u64().unwrap() <= 4, "{b}");
        assert_eq!(row["occupancy"], 4, "{b}");
    }
}

/// A group shared by two leases, released, then claimed again from its
/// warm state is the same group and still reaches exactly its targets.
#[test]
fn a_reused_group_reaches_exactly_its_targets() {
    if !labs::lab_tests_enabled() {
        eprintln!("skipping a_reused_group_reaches_exactly_its_targets: needs root and iproute2");
        return;
    }
    let Setup {
        lab,
        _controller,
        agents: _agents,
    } = warm_setup(None);
    let (s, a) = ask(&lab, &["X1", "X4", "X8"]);
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["reused"], false);
    let (s, b) = ask(&lab, &["X8", "X1", "X4"]);
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["reused"], true, "same targets in another order: {b}");
    assert_eq!(a["group"], b["group"]);
    assert_ne!(a["lease_id"], b["lease_id"]);
    let g: Ipv6Addr = a["group"].as_str().unwrap().parse().unwrap();
    assert_reaches_exactly(&lab, g, &["X1", "X4", "X8"]);
    assert_eq!(
        release(&lab, a["lease_id"].as_str().unwrap())["group_state"],
        "in-use"
    );
    assert_eq!(
        release(&lab, b["lease_id"].as_str().unwrap())["group_state"],
        "warm"
    );
    // Warm: still installed, still exact.
    assert_reaches_exactly(&lab, g, &["X1", "X4", "X8"]);
    let (s, c) = ask(&lab, &["X4", "X8", "X1"]);
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["reused"], true);
    assert_eq!(c["group"], a["group"]);
    // Another target set is another group; neither leaks into the other.
    let (s, d) = ask(&lab, &["X3", "X9"]);
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["reused"], false);
    let g2: Ipv6Addr = d["group"].as_str().unwrap().parse().unwrap();
    assert_ne!(g2, g);
    assert_reaches_exactly(&lab, g2, &["X3", "X9"]);
    assert_reaches_exactly(&lab, g, &["X1", "X4", "X8"]);
}
