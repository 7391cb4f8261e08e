//! Puts and gets end to end: R copies in every mode, loss, dead and
//! wrong targets, deduplication, corrupt copies, manifests by name.

use super::*;

#[test]
fn put_lands_on_exactly_r_nodes_in_every_mode() {
    let modes = [Mode::NgMulticast, Mode::Unicast, Mode::Rendezvous];
    for (mode, keyed) in modes.into_iter().flat_map(|m| [(m, false), (m, true)]) {
        let mut sim = Sim::new(6, 0.0, 1);
        sim.keyed = keyed;
        let data = payload(300_000, 1);
        let id = crate::chunking::chunk_id(&data);
        let mut side = sim.put(&data, mode, 3, ChunkKind::Data);
        let ev = sim.run(&mut side, Duration::from_secs(10));
        let o = put_done(&ev);
        assert_eq!(o.stored_on.len(), 3, "{mode:?}");
        let keyed_sent = if keyed { o.datagrams_sent } else { 0 };
        assert_eq!(sim.client_keyed, keyed_sent, "{mode:?} keyed {keyed}");
        // No loss, one pass: each destination got every 32nd index tagged
        // (0 included), the rest untagged.
        let dests = if mode == Mode::Unicast { 3 } else { 1 };
        let tagged = dests * (data.len().div_ceil(1372) as u64).div_ceil(32);
        let untagged = if keyed { keyed_sent - tagged } else { 0 };
        assert_eq!(sim.client_untagged, untagged, "{mode:?} keyed {keyed}");
        let mut h = sim.holders(&id);
        h.sort();
        let mut s = o.stored_on.clone();
        s.sort();
        assert_eq!(h, s, "{mode:?}: chunk on exactly the targets");
        let chunk_dgrams = data.len().div_ceil(1372) as u64;
        match mode {
            // One copy, seen by the 3 non-targets too.
            Mode::NgMulticast => {
                assert_eq!(o.datagrams_sent, chunk_dgrams);
                assert_eq!(sim.not_for_us(), 3 * data.len() as u64);
            }
            Mode::Unicast => {
                assert_eq!(o.datagrams_sent, 3 * chunk_dgrams);
                assert_eq!(sim.not_for_us(), 0);
            }
            Mode::Rendezvous => {
                assert_eq!(o.datagrams_sent, chunk_dgrams);
                assert_eq!(
                    sim.not_for_us(),
                    0,
                    "the rendezvous group reaches only targets"
                );
            }
        }
    }
}

#[test]
fn put_and_get_complete_under_loss() {
    for (mode, seed, keyed) in [
        (Mode::NgMulticast, 11),
        (Mode::Unicast, 12),
        (Mode::Rendezvous, 13),
    ]
    .into_iter()
    .flat_map(|(m, seed)| [(m, seed, false), (m, seed + 10, true)])
    {
        let mut sim = Sim::new(5, 0.05, seed);
        sim.keyed = keyed;
        let data = payload(1 << 20, 2);
        let id = crate::chunking::chunk_id(&data);
        let mut side = sim.put(&data, mode, 3, ChunkKind::Data);
        let ev = sim.run(&mut side, Duration::from_secs(30));
        let o = put_done(&ev).clone();
        assert!(
            o.datagrams_sent > data.len().div_ceil(1372) as u64,
            "losses were repaired"
        );
        assert!(sim.lost > 0);
        assert_eq!(sim.holders(&id).len(), 3);
        let mut side = sim.get(id, data.len());
        let ev = sim.run(&mut side, Duration::from_secs(30));
        assert_eq!(get_done(&ev), &data);
    }
}

#[test]
fn dead_target_is_replaced() {
    let mut sim = Sim::new(5, 0.0, 3);
    let data = payload(50_000, 3);
    let id = crate::chunking::chunk_id(&data);
    // Every node bids; then the best-ranked ones die before the payload.
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    // Node 1 and 2 die right away (after proposals are queued).
    sim.nodes[0].alive = false;
    sim.nodes[1].alive = false;
    let ev = sim.run(&mut side, Duration::from_secs(30));
    let o = put_done(&ev);
    assert!(!o.stored_on.contains(&1) && !o.stored_on.contains(&2));
    assert_eq!(sim.holders(&id), vec![3, 4, 5]);

    // A target that bids, then dies mid-transfer.
    let mut sim = Sim::new(4, 0.0, 4);
    let data = payload(200_000, 4);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    // Run only the bidding phase, then kill node 1, which the seeded
    // tie-break of txid 7 chooses (`replaced == 1` below checks it).
    let _ = sim.run(&mut side, Duration::from_millis(1));
    let victim = 0;
    sim.nodes[victim].alive = false;
    let ev = sim.run(&mut side, Duration::from_secs(30));
    let o = put_done(&ev);
    assert_eq!(o.replaced, 1);
    assert_eq!(o.stored_on.len(), 3);
    assert!(!o.stored_on.contains(&(victim as u32 + 1)));
}

#[test]
fn not_enough_targets_is_a_clear_error() {
    let mut sim = Sim::new(2, 0.0, 5);
    let data = payload(1000, 5);
    let mut side = sim.put(&data, Mode::Unicast, 3, ChunkKind::Data);
    let ev = sim.run(&mut side, Duration::from_secs(30));
    let err = ev
        .iter()
        .find_map(|e| match e {
            ReplicastEvent::Put(PutEvent::Failed(e)) => Some(e.clone()),
            _ => None,
        })
        .expect("failure");
    assert!(matches!(
        err,
        PutError::NotEnoughTargets {
            want: 3,
            have: 2,
            ..
        }
    ));
    assert!(err.to_string().contains("only 2 of 3"), "{err}");
}

#[test]
fn second_put_is_deduplicated() {
    let mut sim = Sim::new(5, 0.0, 6);
    let data = payload(10_000, 6);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    put_done(&sim.run(&mut side, Duration::from_secs(10)));
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    let ev = sim.run(&mut side, Duration::from_secs(10));
    let o = put_done(&ev);
    assert!(o.stored_on.is_empty());
    assert_eq!(o.already.len(), 3);
    assert_eq!(o.datagrams_sent, 0);
}

#[test]
fn wrong_hash_payload_is_refused_then_repaired() {
    let mut sim = Sim::new(4, 0.0, 7);
    sim.tamper = 1;
    let data = payload(5_000, 7);
    let id = crate::chunking::chunk_id(&data);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    let ev = sim.run(&mut side, Duration::from_secs(30));
    put_done(&ev);
    let mismatches: u64 = sim
        .nodes
        .iter()
        .map(|n| n.core.counters.hash_mismatches)
        .sum();
    assert_eq!(
        mismatches, 3,
        "every target refused the altered payload once"
    );
    assert_eq!(sim.holders(&id).len(), 3);
    for n in &mut sim.nodes {
        if n.store.contains(&id) {
            assert_eq!(n.store.get(&id).unwrap(), data);
        }
    }
}

#[test]
fn corrupt_copy_is_reported_and_never_served() {
    let mut sim = Sim::new(4, 0.0, 8);
    let data = payload(100_000, 8);
    let id = crate::chunking::chunk_id(&data);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    put_done(&sim.run(&mut side, Duration::from_secs(10)));
    // Corrupt every holder's file but one.
    let holders = sim.holders(&id);
    for n in sim
        .nodes
        .iter()
        .filter(|n| holders[..2].contains(&n.core.node_id()))
    {
        let p = n.store.path_of(ChunkKind::Data, &id);
        let mut b = std::fs::read(&p).unwrap();
        b[7] ^= 0x40;
        std::fs::write(&p, b).unwrap();
    }
    let mut side = sim.get(id, data.len());
    let ev = sim.run(&mut side, Duration::from_secs(10));
    assert_eq!(get_done(&ev), &data);
    let reported: Vec<u32> = ev
        .iter()
        .filter_map(|e| match e {
            ReplicastEvent::Get(GetEvent::Corrupt { node, .. }) => Some(*node),
            _ => None,
        })
        .collect();
    assert_eq!(reported.len(), 2, "{reported:?}");
    let detected: u64 = sim
        .nodes
        .iter()
        .map(|n| n.store.counters.corrupt_detected)
        .sum();
    assert_eq!(detected, 2);
}

#[test]
fn manifests_are_found_by_name_with_versions() {
    let mut sim = Sim::new(4, 0.02, 9);
    for version in 1..=3u64 {
        let m = crate::manifest::Manifest {
            name: "b/o".into(),
            version,
            writer: CLIENT_ID,
            size: 3,
            chunk_size: 1024,
            object_hash: [0; 32],
            created_us: 0,
            chunks: vec![[version as u8; 32]],
            inline: None,
        };
        let mut side = sim.put(&m.encode(), Mode::Unicast, 3, ChunkKind::Manifest);
        put_done(&sim.run(&mut side, Duration::from_secs(10)));
    }
    let mut side = Side::Lookup(ManifestLookup::new(
        3,
        crate::chunking::name_hash("b/o"),
        0,
        GROUP,
        PORT,
        3,
        GetTimers::default(),
        sim.now,
    ));
    sim.run(&mut side, Duration::from_secs(10));
    let Side::Lookup(l) = side else { panic!() };
    assert_eq!(
        l.versions.keys().map(|k| k.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let newest = crate::versions::newest(&l.versions, None).unwrap();
    assert_eq!(newest.0.version, 3);
    assert!(newest.1.holders.len() >= 2, "{:?}", l.versions);
}
