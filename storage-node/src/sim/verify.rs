//! Nothing lost, nothing leaked: "already stored" and "stored" rest on
//! verified content; the scrubber finds corrupt and missing copies and the
//! node fetches them back, so R copies exist again.

use super::*;
use crate::node::scrub::ScrubParams;

fn corrupt(store: &Store, id: &[u8; 32]) {
    let p = store.path_of(ChunkKind::Data, id);
    let mut b = std::fs::read(&p).unwrap();
    b[3] ^= 0x10;
    std::fs::write(&p, b).unwrap();
}

/// Holders whose copy reads back right (the store verifies on read).
fn good_copies(sim: &mut Sim, id: &[u8; 32], data: &[u8]) -> Vec<u32> {
    let mut v = Vec::new();
    for n in &mut sim.nodes {
        if n.store.contains(id) && n.store.get(id).ok().as_deref() == Some(data) {
            v.push(n.core.node_id());
        }
    }
    v
}

#[test]
fn already_stored_rests_on_verified_content() {
    let mut sim = Sim::new(4, 0.0, 51);
    let data = payload(40_000, 51);
    let id = crate::chunking::chunk_id(&data);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    let first = put_done(&sim.run(&mut side, Duration::from_secs(10))).clone();
    // Every holder's file goes bad on disk; they restart (their index is
    // read from the disk again: files present, content not checked).
    for n in 0..4 {
        if first.stored_on.contains(&(n as u32 + 1)) {
            corrupt(&sim.nodes[n].store, &id);
            sim.restart(n, sim_params(n as u32 + 1));
        }
    }
    // The same chunk again: a holder answers "already stored" only after a
    // read verified its copy, which fails, so the put really stores it.
    let mut side = sim.put_tx(8, &data, Mode::NgMulticast, 3, ChunkKind::Data);
    let o = put_done(&sim.run(&mut side, Duration::from_secs(10))).clone();
    assert!(o.already.is_empty(), "a corrupt copy counted: {o:?}");
    assert_eq!(o.stored_on.len(), 3);
    assert!(good_copies(&mut sim, &id, &data).len() >= 3);
    let quarantined: u64 = sim
        .nodes
        .iter()
        .map(|n| n.store.counters.corrupt_detected)
        .sum();
    assert!(quarantined >= 2, "{quarantined}");

    // And a verified copy still deduplicates.
    let mut side = sim.put_tx(9, &data, Mode::NgMulticast, 3, ChunkKind::Data);
    let o = put_done(&sim.run(&mut side, Duration::from_secs(10))).clone();
    assert_eq!(o.already.len(), 3, "{o:?}");
}

#[test]
fn scrub_finds_corrupt_and_missing_copies_and_restores_them() {
    let mut sim = Sim::new(5, 0.0, 52);
    let data = payload(300_000, 52);
    let id = crate::chunking::chunk_id(&data);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    let o = put_done(&sim.run(&mut side, Duration::from_secs(10))).clone();
    let holders: Vec<usize> = o.stored_on.iter().map(|n| *n as usize - 1).collect();
    // One holder's copy rots, another's vanishes.
    corrupt(&sim.nodes[holders[0]].store, &id);
    let gone = sim.nodes[holders[1]].store.path_of(ChunkKind::Data, &id);
    std::fs::remove_file(gone).unwrap();
    // Scrubbing at 64 MiB/s on every node, running from now on.
    for n in 0..5 {
        let mut p = sim_params(n as u32 + 1);
        p.scrub = ScrubParams {
            rate_bytes_per_s: 64 << 20,
            pass_interval: Duration::from_secs(3600),
        };
        let index = std::mem::take(&mut sim.nodes[n].core.index);
        sim.nodes[n].core = NodeCore::new(p, index);
    }
    sim.run_for(Duration::from_secs(5));
    let c = |i: usize| sim.nodes[i].core.counters.clone();
    assert_eq!(c(holders[0]).scrub_corrupt, 1);
    assert_eq!(c(holders[1]).scrub_missing, 1);
    assert_eq!(c(holders[0]).repairs_done + c(holders[1]).repairs_done, 2);
    let mut good = good_copies(&mut sim, &id, &data);
    good.sort();
    let mut want = o.stored_on.clone();
    want.sort();
    assert_eq!(good, want, "R verified copies again, on the same nodes");
    assert!(sim.nodes[holders[2]].core.counters.scrub_verified >= 1);
}

#[test]
fn a_lost_copy_nobody_else_holds_is_reported_not_invented() {
    let mut sim = Sim::new(3, 0.0, 53);
    let data = payload(5_000, 53);
    let id = crate::chunking::chunk_id(&data);
    let mut side = sim.put(&data, Mode::Unicast, 1, ChunkKind::Data);
    let o = put_done(&sim.run(&mut side, Duration::from_secs(10))).clone();
    let h = o.stored_on[0] as usize - 1;
    corrupt(&sim.nodes[h].store, &id);
    let mut p = sim_params(h as u32 + 1);
    p.scrub.rate_bytes_per_s = 64 << 20;
    let index = std::mem::take(&mut sim.nodes[h].core.index);
    sim.nodes[h].core = NodeCore::new(p, index);
    sim.run_for(Duration::from_secs(10));
    let c = &sim.nodes[h].core.counters;
    assert_eq!(
        (c.scrub_corrupt, c.repairs_done, c.repairs_failed),
        (1, 0, 1)
    );
    assert!(!sim.nodes[h].core.index.has_file(&id));
}
