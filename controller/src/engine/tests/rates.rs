//! Pre-enumeration and the store off the hit path.

use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn preenumerate_all_installs_every_set_in_batches_within_the_budget_share() {
    let mut s = Sim::new(Opts {
        group_extra: "    replicas: 3\n    preenumerate: all\n".into(),
        budget: Some(100),
        ..Opts::default()
    });
    s.run(1500 * MS);
    assert!(
        s.table(1).is_empty(),
        "nothing before every agent said HELLO"
    );
    for i in 1..=3 {
        s.hello(i, 1, 0);
    }
    s.run(20 * MS);
    for i in 1..=3 {
        assert_eq!(s.table(i).len(), 20, "C(6,3) on switch {i}");
        let batches: Vec<usize> = s
            .agent(i)
            .received
            .iter()
            .filter_map(|m| match m {
                Message::Batch(b) => Some(b.items.len()),
                _ => None,
            })
            .collect();
        assert_eq!(batches, vec![20]);
    }
    assert!(s.e.budgets().iter().all(|b| b.pinned == 20));
    // A claim is a hit: no switch update.
    let before = s.agent(1).items().len();
    let l = s.grant(&["h2", "h4", "h6"], 1000).unwrap();
    assert!(l.reused);
    assert_eq!(s.agent(1).items().len(), before);
    // Pinned groups stay past warm and hold times (refreshed, not rewritten).
    let writes = s.agent(1).writes;
    s.run(Duration::from_secs(60));
    assert_eq!(s.table(1).len(), 20);
    assert_eq!(s.agent(1).writes, writes);
}

#[test]
fn preenumeration_leaves_the_miss_reserve_free() {
    let mut s = Sim::new(Opts {
        group_extra: "    replicas: 3\n    preenumerate: all\n".into(),
        budget: Some(8),
        ..Opts::default()
    });
    for i in 1..=3 {
        s.hello(i, 1, 0);
    }
    s.run(20 * MS);
    // 8 minus 25 % (2) for misses.
    assert_eq!(s.table(1).len(), 6);
    let a = s.grant(&["h1"], 1000).unwrap();
    let b = s.grant(&["h2"], 1000).unwrap();
    assert!(!a.reused && !b.reused);
    assert_eq!(s.table(1).len(), 8);
    assert_eq!(
        s.grant(&["h3"], 1000).unwrap_err().reason,
        subcast_proto::RefuseReason::TableFull
    );
}

#[test]
fn preenumerate_top_pins_the_most_requested_sets() {
    let mut s = Sim::new(Opts {
        group_extra: "    preenumerate: { top: 1 }\n".into(),
        warm_ms: 100,
        ..Opts::default()
    });
    for i in 1..=3 {
        s.hello(i, 1, 0);
    }
    for _ in 0..3 {
        let l = s.grant(&["h1", "h2"], 10).unwrap();
        s.release(l.id, "node");
    }
    let l = s.grant(&["h3"], 10).unwrap();
    s.release(l.id, "node");
    s.run(Duration::from_secs(3));
    let hot = s.grant(&["h1", "h2"], 10).unwrap();
    assert!(hot.reused, "the hot set stayed past its warm time");
    assert!(
        !s.grant(&["h3"], 10).unwrap().reused,
        "the cold one warmed out"
    );
}

#[test]
fn a_hit_waits_for_no_store_write_and_a_miss_for_one() {
    let mut s = Sim::new(Opts::default());
    s.store_delay = 5 * MS;
    let t = s.now;
    s.grant(&["h1"], 1000).unwrap();
    assert!(s.now - t >= 5 * MS, "the miss waited for its row");
    let h = s.ask(&["h1"], 1000, "node");
    assert!(
        matches!(s.replies.get(&h), Some(Answer::Granted(_))),
        "the hit did not"
    );
}

/// The value of a series line `name{labels} value` in the metrics text.
fn series(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_udp_miss_records_its_one_way_delays_by_the_seal_time() {
    let mut s = Sim::new(Opts::default());
    let rq = Message::RendezvousRequest(subcast_proto::RendezvousRequest {
        request_id: 7,
        vlan: 10,
        parent: "ff15::5c:0:1".parse().unwrap(),
        lifetime_ms: 1000,
        targets: vec![subcast_proto::Member::Ipv6("fd00:5c::102".parse().unwrap())],
    });
    // Sealed 300 µs before the engine sees it.
    let sealed = s.unix_us(s.now) - 300;
    let b = s.node.0.seal(&rq, sealed);
    let from = s.node_addr;
    s.inject(from, b);
    s.run(5 * MS);
    assert!(matches!(
        s.udp_answers.last(),
        Some(Message::RendezvousGrant(g)) if matches!(g.outcome, subcast_proto::GrantOutcome::Granted { reused: false, .. })
    ));
    let text = s.e.metrics.encode();
    let p = "subcast_controller_miss_phase_seconds";
    assert_eq!(
        series(&text, &format!("{p}_count{{phase=\"request_transit\"}} ")),
        Some(1.0)
    );
    let sum = series(&text, &format!("{p}_sum{{phase=\"request_transit\"}} ")).unwrap();
    assert!((sum - 0.0003).abs() < 1e-9, "{sum}");
    // One ACK per agent, each measured.
    let acks = series(&text, &format!("{p}_count{{phase=\"ack_transit\"}} ")).unwrap();
    assert_eq!(acks, 3.0);
    // A hit is no miss: the count stays.
    s.node_say(&Message::RendezvousRequest(
        subcast_proto::RendezvousRequest {
            request_id: 8,
            vlan: 10,
            parent: "ff15::5c:0:1".parse().unwrap(),
            lifetime_ms: 1000,
            targets: vec![subcast_proto::Member::Ipv6("fd00:5c::102".parse().unwrap())],
        },
    ));
    let text = s.e.metrics.encode();
    assert_eq!(
        series(&text, &format!("{p}_count{{phase=\"request_transit\"}} ")),
        Some(1.0)
    );
}
