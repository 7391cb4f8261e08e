//! Objects inside their manifest: a put whose ACCEPT its owner holds
//! (released: stored as any chunk; abandoned: no target ever hears of it
//! past the proposal), and an inline manifest read back whole.

use super::*;
use crate::chunking::chunk_id;
use crate::manifest::Manifest;
use crate::put::{Hold, PutError};

fn inline_manifest(version: u64, data: &[u8]) -> Vec<u8> {
    Manifest {
        name: "b/small".into(),
        version,
        writer: CLIENT_ID,
        size: data.len() as u64,
        chunk_size: 1 << 20,
        object_hash: chunk_id(data),
        created_us: 0,
        chunks: Vec::new(),
        inline: Some(data.to_vec()),
    }
    .encode()
}

fn held(side: Side, h: &Hold) -> Side {
    match side {
        Side::Put(m) => Side::Put(m.with_hold(h.clone())),
        s => s,
    }
}

fn finished(ev: &[ReplicastEvent]) -> bool {
    ev.iter().any(|e| {
        matches!(
            e,
            ReplicastEvent::Put(PutEvent::Done(_) | PutEvent::Failed(_))
        )
    })
}

#[test]
fn held_accept_leaves_only_when_released() {
    for mode in [Mode::Rendezvous, Mode::NgMulticast, Mode::Unicast] {
        let mut sim = Sim::new(5, 0.0, 21);
        let data = payload(200_000, 4);
        let enc = inline_manifest(1, &data);
        let id = chunk_id(&enc);
        let h = Hold::new();
        let mut side = held(sim.put(&enc, mode, 3, ChunkKind::Manifest), &h);
        // Bids, targets and (rendezvous) the group: then it waits, for
        // as long as the owner holds it, without polling or replacing
        // the targets it has not told anything yet.
        let ev = sim.run(&mut side, Duration::from_secs(5));
        assert!(!finished(&ev), "{mode:?}: {ev:?}");
        assert!(sim.first_accept_at.is_none(), "{mode:?}: ACCEPT left");
        assert!(sim.first_data_at.is_none(), "{mode:?}: DATA left");
        assert!(sim.holders(&id).is_empty());
        if mode == Mode::Rendezvous {
            assert_eq!(sim.groups_asked, 1);
        }
        h.release();
        let ev = sim.run(&mut side, Duration::from_secs(10));
        let o = put_done(&ev);
        assert_eq!(o.stored_on.len(), 3, "{mode:?}");
        assert_eq!(o.replaced, 0, "{mode:?}: no target replaced while held");
        assert_eq!(sim.holders(&id).len(), 3, "{mode:?}");
        // Read back whole: the object is inside.
        let mut side = sim.get(id, enc.len());
        let ev = sim.run(&mut side, Duration::from_secs(10));
        let m = Manifest::decode(get_done(&ev)).unwrap();
        assert_eq!(m.inline.as_deref(), Some(&data[..]));
        assert_eq!(m.object_hash, chunk_id(&data));
    }
}

#[test]
fn abandoned_put_finishes_and_stores_nothing() {
    let mut sim = Sim::new(5, 0.0, 22);
    let data = payload(100_000, 5);
    let stale = inline_manifest(1, &data);
    let h = Hold::new();
    let mut side = held(
        sim.put(&stale, Mode::Rendezvous, 3, ChunkKind::Manifest),
        &h,
    );
    assert!(!finished(&sim.run(&mut side, Duration::from_secs(1))));
    assert!(h.abandon());
    let ev = sim.run(&mut side, Duration::from_secs(5));
    let failed = ev.iter().find_map(|e| match e {
        ReplicastEvent::Put(PutEvent::Failed(e)) => Some(e.clone()),
        _ => None,
    });
    assert!(matches!(failed, Some(PutError::Abandoned { .. })), "{ev:?}");
    let Side::Put(m) = &side else { panic!() };
    assert!(m.is_finished() && m.is_abandoned());
    assert!(sim.first_accept_at.is_none() && sim.first_data_at.is_none());
    assert!(sim.holders(&chunk_id(&stale)).is_empty());
    // Its replacement, under the number the lookup found, goes through
    // on the same nodes.
    let fresh = inline_manifest(4, &data);
    let mut side = sim.put_tx(8, &fresh, Mode::Rendezvous, 3, ChunkKind::Manifest);
    let o = put_done(&sim.run(&mut side, Duration::from_secs(10))).clone();
    assert_eq!(o.stored_on.len(), 3);
    assert!(sim.holders(&chunk_id(&stale)).is_empty());
    assert_eq!(sim.holders(&chunk_id(&fresh)).len(), 3);
}
