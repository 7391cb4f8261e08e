//! Reuse by target set, reference counts, warm periods, LRU eviction and
//! budgets.

use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn same_target_set_reuses_the_group_without_a_switch_update() {
    let mut s = Sim::new(Opts::default());
    let a = s.grant(&["h1", "h2", "h3"], 5000).unwrap();
    assert!(!a.reused);
    let sets: Vec<usize> = (1..=3).map(|i| s.agent(i).items().len()).collect();
    // Same set in another order and by address: the same group, at once.
    let h = s.ask(&["h3", "fd00:5c::101", "02:5c:00:00:01:02"], 5000, "node");
    let b = match s.replies.remove(&h) {
        Some(Answer::Granted(l)) => l,
        other => panic!("a hit is answered in the same turn: {other:?}"),
    };
    assert!(b.reused);
    assert_eq!(b.group, a.group);
    assert_ne!(b.id, a.id, "every grant has its own lease");
    s.run(10 * MS);
    let after: Vec<usize> = (1..=3).map(|i| s.agent(i).items().len()).collect();
    assert_eq!(sets, after, "no instruction for a hit");
    assert_eq!(s.e.stats.hits, 1);
    assert_eq!(s.e.stats.misses, 1);
    // Another set is another group.
    let c = s.grant(&["h1", "h2"], 5000).unwrap();
    assert_ne!(c.group, a.group);
    assert_eq!(s.e.pool_in_use(10), 2);
}

#[test]
fn group_outlives_its_leases_by_the_warm_period_then_is_cleared() {
    let mut s = Sim::new(Opts {
        warm_ms: 300,
        ..Opts::default()
    });
    let a = s.grant(&["h1", "h4"], 5000).unwrap();
    let b = s.grant(&["h1", "h4"], 5000).unwrap();
    assert!(matches!(s.release(a.id, "node"), Answer::Released(r) if r.group_state == "in-use"));
    assert!(matches!(s.release(b.id, "node"), Answer::Released(r) if r.group_state == "warm"));
    s.run(250 * MS);
    assert_eq!(
        s.all_tables(),
        vec![vec![a.group]; 3],
        "warm: still installed"
    );
    // A hit during the warm period restarts it.
    let c = s.grant(&["h1", "h4"], 5000).unwrap();
    assert!(c.reused);
    s.release(c.id, "node");
    s.run(250 * MS);
    assert_eq!(s.all_tables(), vec![vec![a.group]; 3]);
    s.run(100 * MS);
    assert_eq!(
        s.all_tables(),
        vec![Vec::<Ipv6Addr>::new(); 3],
        "cleared after warm_ms"
    );
    assert_eq!(s.e.pool_in_use(10), 0, "address back in the pool");
    assert_eq!(
        s.agent(1)
            .items()
            .iter()
            .filter(|i| matches!(i, BatchItem::Clear { .. }))
            .count(),
        1
    );
}

#[test]
fn expired_leases_end_like_released_ones() {
    let mut s = Sim::new(Opts {
        warm_ms: 0,
        ..Opts::default()
    });
    let a = s.grant(&["h2"], 150).unwrap();
    s.run(140 * MS);
    assert_eq!(s.e.leases().len(), 1);
    s.run(20 * MS);
    assert!(s.e.leases().is_empty());
    s.run(5 * MS);
    assert_eq!(
        s.all_tables(),
        vec![Vec::<Ipv6Addr>::new(); 3],
        "{} cleared",
        a.group
    );
    assert_eq!(s.e.pool_in_use(10), 0);
}

/// Budget 4, twenty distinct target sets one after the other, each lease
/// released before the next: the first four install, every later one
/// evicts the least recently used warm group in the same BATCH as its
/// own SET, and no switch ever holds more than four.
#[test]
fn budget_of_four_and_twenty_target_sets() {
    let mut s = Sim::new(Opts {
        budget: Some(4),
        ..Opts::default()
    });
    let sets = super::super::preenum::combinations(6, 3);
    let names =
        |ix: &Vec<u16>| -> Vec<String> { ix.iter().map(|i| format!("h{}", i + 1)).collect() };
    let mut order: Vec<Ipv6Addr> = Vec::new();
    for (n, set) in sets.iter().enumerate() {
        let t = names(set);
        let tr: Vec<&str> = t.iter().map(String::as_str).collect();
        let l = s.grant(&tr, 5000).unwrap();
        assert!(!l.reused);
        s.release(l.id, "node");
        order.push(l.group);
        let want: Vec<Ipv6Addr> = {
            let mut w: Vec<Ipv6Addr> = order.iter().rev().take(4).copied().collect();
            w.sort();
            w
        };
        for i in 1..=3 {
            let mut got = s.table(i);
            got.sort();
            assert_eq!(got, want, "after set {n}, switch {i}");
        }
    }
    for i in 1..=3 {
        assert_eq!(
            s.agent(i).peak,
            4,
            "switch {i} never held more than its budget"
        );
        // Each eviction travelled with the SET that took its place.
        let batches: Vec<usize> = s
            .agent(i)
            .received
            .iter()
            .filter_map(|m| match m {
                Message::Batch(b) => Some(b.items.len()),
                _ => None,
            })
            .collect();
        assert_eq!(batches, vec![2; 16]);
    }
    assert!(s.e.budgets().iter().all(|b| b.peak <= 4 && b.limit == 4));
    assert_eq!(s.e.stats.evictions, 16);
    // The oldest still installed is a hit; an evicted one is a miss.
    let t = names(&sets[16]);
    let tr: Vec<&str> = t.iter().map(String::as_str).collect();
    assert!(s.grant(&tr, 100).unwrap().reused);
    let t = names(&sets[0]);
    let tr: Vec<&str> = t.iter().map(String::as_str).collect();
    assert!(!s.grant(&tr, 100).unwrap().reused);
}

#[test]
fn a_group_in_use_is_never_evicted_and_the_refusal_names_the_switch() {
    let mut s = Sim::new(Opts {
        budget: Some(2),
        ..Opts::default()
    });
    let a = s.grant(&["h1"], 5000).unwrap();
    let b = s.grant(&["h2"], 5000).unwrap();
    let e = s.grant(&["h3"], 5000).unwrap_err();
    assert_eq!(e.reason, subcast_proto::RefuseReason::TableFull);
    assert!(e.switch.as_deref().unwrap().starts_with("s1"), "{e:?}");
    assert!(e.detail.contains("budget of 2"), "{}", e.detail);
    assert_eq!(
        s.all_tables(),
        vec![
            {
                let mut v = vec![a.group, b.group];
                v.sort();
                v
            };
            3
        ]
    );
    assert!(
        !s.agent(1)
            .items()
            .iter()
            .any(|i| matches!(i, BatchItem::Clear { .. }))
    );
    // Released, it becomes evictable: the same request now succeeds.
    s.release(a.id, "node");
    let c = s.grant(&["h3"], 5000).unwrap();
    let mut want = vec![b.group, c.group];
    want.sort();
    assert_eq!(s.all_tables(), vec![want; 3]);
}

#[test]
fn capacity_reported_by_the_agent_lowers_the_budget() {
    let mut s = Sim::new(Opts {
        budget: Some(8),
        ..Opts::default()
    });
    s.hello(1, 1, 0);
    s.hello(2, 1, 1);
    s.hello(3, 1, 0);
    assert_eq!(s.e.budgets()[1].limit, 1);
    assert_eq!(s.e.budgets()[0].limit, 8);
    s.grant(&["h1"], 5000).unwrap();
    let e = s.grant(&["h2"], 5000).unwrap_err();
    assert!(e.switch.as_deref().unwrap().starts_with("s2"), "{e:?}");
}

#[test]
fn concurrent_misses_travel_as_one_batch_per_agent() {
    let mut s = Sim::new(Opts::default());
    let hs: Vec<Handle> = (1..=5)
        .map(|h| s.ask(&[&format!("h{h}")], 5000, "node"))
        .collect();
    // A join: same set as one in flight.
    let j = s.ask(&["h1"], 5000, "node");
    for h in hs {
        assert!(!s.answer(h).unwrap().reused);
    }
    let joined = s.answer(j).unwrap();
    assert!(!joined.reused, "a join waited for the switch");
    for i in 1..=3 {
        let kinds: Vec<String> = s
            .agent(i)
            .received
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        assert_eq!(kinds, vec!["BATCH"], "switch {i}");
    }
    assert_eq!(s.e.stats.joins, 1);
}

#[test]
fn an_agent_without_batch_gets_single_instructions() {
    let mut s = Sim::new(Opts::default());
    s.agent(2).batch = false;
    let hs: Vec<Handle> = (1..=3)
        .map(|h| s.ask(&[&format!("h{h}")], 5000, "node"))
        .collect();
    for h in hs {
        s.answer(h).unwrap();
    }
    assert_eq!(s.agent(2).count("BATCH"), 1, "tried once");
    assert_eq!(s.agent(2).count("SET_SUBSET"), 3);
    let h: Vec<Handle> = (4..=5)
        .map(|h| s.ask(&[&format!("h{h}")], 5000, "node"))
        .collect();
    for h in h {
        s.answer(h).unwrap();
    }
    assert_eq!(s.agent(2).count("BATCH"), 1, "then singles only");
    assert_eq!(s.agent(1).count("BATCH"), 2);
}

#[test]
fn long_leases_refresh_the_agents_without_reprogramming() {
    let mut s = Sim::new(Opts {
        warm_ms: 1000,
        hold_ms: 2000,
        ..Opts::default()
    });
    let a = s.grant(&["h5"], 1000).unwrap();
    let writes = s.agent(1).writes;
    // Keep hitting it for 20 s with short leases: it never drops.
    for _ in 0..40 {
        s.run(500 * MS);
        let l = s.grant(&["h5"], 1000).unwrap();
        assert!(l.reused);
        assert_eq!(l.group, a.group);
        assert_eq!(s.table(1), vec![a.group]);
    }
    let refreshes = s.e.stats.refreshes;
    assert!(
        (5..=40).contains(&refreshes),
        "{refreshes} refreshes for 40 hits"
    );
    assert_eq!(
        s.agent(1).writes,
        writes,
        "a refresh does not touch the switch"
    );
    // A lease longer than the agents' lifetime waits for a refresh.
    let l = s.grant(&["h5"], 30_000).unwrap();
    assert!(l.reused);
    s.run(Duration::from_secs(25));
    assert_eq!(s.table(1), vec![a.group], "held for the whole lease");
}

#[test]
fn quota_per_credential_and_release_only_by_owner() {
    let mut s = Sim::new(Opts::default());
    let c = Caller {
        name: "nodes".into(),
        admin: false,
        max_leases: Some(2),
    };
    let h1 = s.ask_as(&["h1"], 5000, c.clone());
    let h2 = s.ask_as(&["h1"], 5000, c.clone());
    let a = s.answer(h1).unwrap();
    s.answer(h2).unwrap();
    let h3 = s.ask_as(&["h2"], 5000, c.clone());
    let e = s.answer(h3).unwrap_err();
    assert_eq!(e.reason, subcast_proto::RefuseReason::QuotaExceeded);
    assert!(matches!(
        s.release(a.id, "someone-else"),
        Answer::NotReleased(ReleaseError::NotOwner { owner }) if owner == "nodes"
    ));
    assert!(matches!(s.release(a.id, "nodes"), Answer::Released(_)));
    let h4 = s.ask_as(&["h2"], 5000, c);
    s.answer(h4).unwrap();
    let l = s.grant(&["h3"], 5000).unwrap();
    assert!(
        matches!(s.release(l.id, "admin"), Answer::Released(_)),
        "an admin may"
    );
    assert!(matches!(
        s.release(l.id, "admin"),
        Answer::NotReleased(ReleaseError::Unknown)
    ));
}
