//! What makes a put fast, kept correct: DATA without a READY round trip
//! when nobody has a group to join, rendezvous groups still joined for the
//! next transfer, and a manifest negotiated early but stored only after
//! its data chunks.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn data_waits_for_ready_only_where_targets_join_a_group() {
    for (mode, waits) in [
        (Mode::Unicast, false),
        (Mode::NgMulticast, false),
        (Mode::Rendezvous, true),
    ] {
        let mut sim = Sim::new(5, 0.0, 31);
        let data = payload(20_000, 4);
        let id = crate::chunking::chunk_id(&data);
        let mut side = sim.put(&data, mode, 3, ChunkKind::Data);
        let ev = sim.run(&mut side, Duration::from_secs(5));
        put_done(&ev);
        let (accept, first) = (sim.first_accept_at.unwrap(), sim.first_data_at.unwrap());
        if waits {
            // One round trip (100 us each way in the simulation).
            assert!(first >= accept + Duration::from_micros(200), "{mode:?}");
        } else {
            assert_eq!(first, accept, "{mode:?}: DATA right behind the ACCEPT");
        }
        assert_eq!(sim.holders(&id).len(), 3, "{mode:?}");
    }
}

#[test]
fn rendezvous_groups_stay_joined_for_a_while_after_a_transfer() {
    // Three nodes, R = 3: every put goes to the same set, so to the same
    // group.
    let mut sim = Sim::new(3, 0.0, 5);
    let mut side = sim.put_tx(1, &payload(5000, 1), Mode::Rendezvous, 3, ChunkKind::Data);
    put_done(&sim.run(&mut side, Duration::from_secs(5)));
    let group = sim.accepts.last().unwrap().1;
    assert!(group.is_multicast() && group != GROUP);
    assert!(sim.nodes.iter().all(|n| n.joined.contains(&group)));
    // The next transfer on it: every target says READY without joining.
    let mut side = sim.put_tx(2, &payload(5000, 2), Mode::Rendezvous, 3, ChunkKind::Data);
    put_done(&sim.run(&mut side, Duration::from_secs(5)));
    assert_eq!(sim.accepts.last().unwrap().1, group);
    // Left once the linger is over.
    sim.run_for(crate::node::LINGER + Duration::from_millis(10));
    assert!(sim.nodes.iter().all(|n| !n.joined.contains(&group)));
}

#[test]
fn a_gated_manifest_negotiates_but_sends_no_data_until_the_gate_opens() {
    let mut sim = Sim::new(5, 0.0, 12);
    let m = payload(300, 8);
    let id = crate::chunking::chunk_id(&m);
    let gate = Arc::new(AtomicBool::new(false));
    let Side::Put(machine) = sim.put_tx(3, &m, Mode::Rendezvous, 3, ChunkKind::Data) else {
        unreachable!()
    };
    let mut side = Side::Put(machine.with_gate(gate.clone()));
    let ev = sim.run(&mut side, Duration::from_secs(1));
    assert!(
        !ev.iter()
            .any(|e| matches!(e, ReplicastEvent::Put(PutEvent::Done(_))))
    );
    assert_eq!(sim.accepts.len(), 1, "bids, group and ACCEPT are done");
    assert_eq!(sim.client_data, 0, "no DATA while the gate is shut");
    assert!(sim.holders(&id).is_empty());
    gate.store(true, Ordering::Release);
    let ev = sim.run(&mut side, Duration::from_secs(5));
    let out = put_done(&ev);
    assert_eq!(out.stored_on.len(), 3);
    assert_eq!(sim.holders(&id).len(), 3);
    assert!(out.phases.held >= 900.0, "{:?}", out.phases);
}
