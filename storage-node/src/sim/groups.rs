//! Rendezvous groups per target set: transfers to the same set share one
//! group and are told apart by their transaction ids; a refusal for a full
//! table falls back to the configured transport.

use super::*;

#[test]
fn interleaved_transfers_on_one_group() {
    // Three nodes: every put of R=3 goes to the same target set.
    let mut sim = Sim::new(3, 0.02, 51);
    sim.client_gap = Duration::from_micros(2);
    let a = payload(600_000, 51);
    let b = payload(700_000, 52);
    let mut sides = vec![
        sim.put_tx(100, &a, Mode::Rendezvous, 3, ChunkKind::Data),
        sim.put_tx(200, &b, Mode::Rendezvous, 3, ChunkKind::Data),
    ];
    let ev = sim.run_many(&mut sides, Duration::from_secs(30));
    let done: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            ReplicastEvent::Put(PutEvent::Done(o)) => Some(o.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(done.len(), 2, "{ev:?}");
    for d in [&a, &b] {
        let id = crate::chunking::chunk_id(d);
        assert_eq!(sim.holders(&id), vec![1, 2, 3]);
        for n in &mut sim.nodes {
            assert_eq!(&n.store.get(&id).unwrap(), d);
        }
    }
    // One group for both transfers (same target set).
    let g100: Vec<_> = sim
        .accepts
        .iter()
        .filter(|a| a.0 == 100)
        .map(|a| a.1)
        .collect();
    let g200: Vec<_> = sim
        .accepts
        .iter()
        .filter(|a| a.0 == 200)
        .map(|a| a.1)
        .collect();
    assert!(g100[0].is_multicast() && g100[0] != GROUP);
    assert_eq!(g100[0], g200[0]);
    assert_eq!(sim.groups_asked, 2);
    // The DATA of both really interleaved on the group.
    assert!(sim.data_txids.len() > 100, "{:?}", sim.data_txids);
}

#[test]
fn table_full_falls_back_to_the_configured_transport() {
    let mut sim = Sim::new(6, 0.0, 53);
    sim.table_full = true;
    let data = payload(300_000, 53);
    let id = crate::chunking::chunk_id(&data);
    let mut side = sim.put(&data, Mode::Rendezvous, 3, ChunkKind::Data);
    let ev = sim.run(&mut side, Duration::from_secs(10));
    let o = put_done(&ev);
    assert_eq!(o.fallback.as_deref(), Some("table-full: switch S"));
    assert_eq!(sim.holders(&id).len(), 3);
    // ng-multicast (the sim's fallback): one copy to the negotiating group.
    assert_eq!(sim.accepts[0].1, GROUP);
    assert_eq!(o.datagrams_sent, data.len().div_ceil(1372) as u64);
    assert_eq!(sim.not_for_us(), 3 * data.len() as u64);
}

/// Puts a rendezvous chunk of `size` octets and returns its outcome and id.
fn rendezvous_put(
    sim: &mut Sim,
    size: usize,
    seed: u8,
) -> (crate::put::PutOutcome, subcast_proto::replicast::Hash32) {
    let data = payload(size, seed);
    let id = crate::chunking::chunk_id(&data);
    let mut side = sim.put(&data, Mode::Rendezvous, 3, ChunkKind::Data);
    let ev = sim.run(&mut side, Duration::from_secs(10));
    (put_done(&ev).clone(), id)
}

#[test]
fn a_put_to_a_group_its_targets_just_used_skips_ready() {
    let mut sim = Sim::new(3, 0.0, 61);
    let (first, a) = rendezvous_put(&mut sim, 200_000, 61);
    assert!(!first.ready_skipped, "nobody is known to be a member yet");
    let group = sim.accepts[0].1;
    assert!(
        sim.nodes.iter().all(|n| n.joined.contains(&group)),
        "the targets linger"
    );
    let (second, b) = rendezvous_put(&mut sim, 200_000, 62);
    assert!(second.ready_skipped, "{second:?}");
    assert_eq!(sim.accepts[1].1, group, "the same set, the same group");
    for id in [a, b] {
        assert_eq!(sim.holders(&id), vec![1, 2, 3]);
    }
    assert_eq!(
        second.datagrams_sent,
        200_000usize.div_ceil(1372) as u64,
        "no repeats"
    );
    // Past `warm_for` the next put waits for PUT_READY again.
    sim.now += Duration::from_millis(1500);
    let (third, _) = rendezvous_put(&mut sim, 200_000, 63);
    assert!(!third.ready_skipped, "{third:?}");
}

#[test]
fn a_target_no_longer_on_the_group_still_stores_when_ready_is_skipped() {
    let mut sim = Sim::new(3, 0.0, 64);
    rendezvous_put(&mut sim, 200_000, 64);
    let group = sim.accepts[0].1;
    // Node 2 is off the group although its core thinks it lingers (as if
    // its membership were lost): the first pass does not reach it.
    sim.nodes[1].joined.remove(&group);
    let (o, id) = rendezvous_put(&mut sim, 200_000, 65);
    assert!(o.ready_skipped);
    assert_eq!(sim.holders(&id), vec![1, 2, 3], "repaired: {o:?}");
    assert!(
        o.datagrams_sent > 200_000usize.div_ceil(1372) as u64,
        "node 2's share came again: {o:?}"
    );
}
