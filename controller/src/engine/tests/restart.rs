//! Restart from the simulated store: kept groups, cleared groups, and the
//! sweep of addresses pushed but not yet recorded at the crash.

use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn restart_keeps_held_groups_and_clears_ended_ones() {
    let o = || Opts {
        warm_ms: 1000,
        hold_ms: 1000,
        ..Opts::default()
    };
    let mut s = Sim::new(o());
    let long = s.grant(&["h1", "h2"], 30_000).unwrap();
    let released = s.grant(&["h3"], 500).unwrap();
    s.release(released.id, "node");
    let short = s.grant(&["h4"], 200).unwrap();
    s.run(10 * MS);
    // Down for 3 s: past the short leases, their hold and warm time.
    let mut c = s.crash(Duration::from_secs(3));
    for a in c.agents.values_mut() {
        a.received.clear();
    }
    let mut s = Sim::with_db(o(), Some(c));
    s.run(50 * MS);
    let leases = s.e.leases();
    assert_eq!(
        leases.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![long.id]
    );
    assert_eq!(leases[0].expires_ms, long.expires_ms);
    for i in 1..=3 {
        assert_eq!(s.table(i), vec![long.group], "switch {i}");
        let items = s.agent(i).items();
        assert!(
            items
                .iter()
                .any(|it| matches!(it, BatchItem::Set { group, .. } if *group == long.group)),
            "re-pushed"
        );
        for g in [released.group, short.group] {
            assert!(
                items
                    .iter()
                    .any(|it| matches!(it, BatchItem::Clear { group } if *group == g)),
                "{g} cleared on {i}"
            );
        }
    }
    assert!(
        s.db.groups.keys().eq([long.group].iter()),
        "{:?}",
        s.db.groups.keys()
    );
    // The restored group is reused, and its address is not handed out again.
    assert!(s.grant(&["h1", "h2"], 1000).unwrap().reused);
    let n = s.grant(&["h5"], 1000).unwrap();
    assert_ne!(n.group, long.group);
}

#[test]
fn a_group_pushed_but_not_recorded_before_a_crash_is_swept() {
    let mut s = Sim::new(Opts::default());
    s.grant(&["h1"], 30_000).unwrap();
    // The store stalls: the next miss is pushed (pipelined with the
    // write) but its row never becomes durable.
    s.store_delay = Duration::from_secs(3600);
    let h = s.ask(&["h2"], 30_000, "node");
    s.run(5 * MS);
    assert!(
        !s.replies.contains_key(&h),
        "no grant before the store has it"
    );
    let ghost = *s.table(1).iter().max().unwrap();
    assert_eq!(s.table(1).len(), 2);
    let c = s.crash(10 * MS);
    let mut s = Sim::with_db(Opts::default(), Some(c));
    // A miss right away waits for the sweep, then gets a group.
    let h = s.ask(&["h3"], 1000, "node");
    s.run(50 * MS);
    let l = s.answer(h).unwrap();
    assert!(!l.reused);
    // Every switch holds exactly what the controller knows of: the
    // unrecorded group was cleared (its address may serve h3 now).
    let known: Vec<Ipv6Addr> = s.e.groups().iter().map(|g| g.group).collect();
    assert_eq!(known.len(), 2);
    for i in 1..=3 {
        assert_eq!(s.table(i), known, "switch {i}");
    }
    assert!(
        s.agent(1)
            .items()
            .iter()
            .any(|it| matches!(it, BatchItem::Clear { group } if *group == ghost))
    );
}

#[test]
fn a_restored_group_an_agent_cannot_take_is_dropped() {
    let mut s = Sim::new(Opts::default());
    let l = s.grant(&["h1"], 30_000).unwrap();
    let mut c = s.crash(MS);
    c.agents.get_mut(&agent_addr(3)).unwrap().behaviour = Behaviour::Silent;
    let mut s = Sim::with_db(Opts::default(), Some(c));
    s.run(500 * MS);
    assert!(s.e.leases().is_empty(), "kept only if every agent ACKs");
    assert!(s.table(1).is_empty() && s.table(2).is_empty());
    assert!(s.db.groups.is_empty() || s.db.groups.values().all(|g| g.hold_until_ms == 0));
    // Held until the silent agent surely dropped it (as is every address
    // the restart sweep could not confirm there).
    assert!(s.e.pool_in_use(10) >= 1, "{} held", l.group);
    assert!(s.grant(&["h2"], 1000).is_err(), "agent 3 is still silent");
}
