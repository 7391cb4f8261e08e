//! A writer's chunks take turns to transfer (`put_transfers`), and
//! negotiate while they wait.

use super::*;

/// When each put's first DATA left, its first pass ended and its targets
/// were ready, in ms after the puts began (all began at once).
fn times(ev: &[ReplicastEvent]) -> Vec<(f64, f64, f64)> {
    let mut t: Vec<(f64, f64, f64)> = ev
        .iter()
        .filter_map(|e| match e {
            ReplicastEvent::Put(PutEvent::Done(o)) => {
                let p = &o.phases;
                let ready = p.bids + p.grant + p.ready;
                let first = ready + p.held;
                Some((first, first + p.transfer, ready))
            }
            _ => None,
        })
        .collect();
    t.sort_by(|a, b| a.0.total_cmp(&b.0));
    t
}

fn three_puts(transfers: Option<usize>) -> (Sim, Vec<Vec<u8>>, Vec<ReplicastEvent>) {
    let mut sim = Sim::new(6, 0.0, 61);
    // ~440 datagrams a chunk, 10 us apart on the link: a pass takes ~4 ms.
    sim.client_gap = Duration::from_micros(10);
    sim.transfers = transfers;
    let data: Vec<Vec<u8>> = (0..3).map(|i| payload(600_000, 61 + i)).collect();
    let mut sides: Vec<Side> = data
        .iter()
        .enumerate()
        .map(|(i, d)| sim.put_tx(100 + i as u64, d, Mode::Rendezvous, 3, ChunkKind::Data))
        .collect();
    let ev = sim.run_many(&mut sides, Duration::from_secs(30));
    (sim, data, ev)
}

#[test]
fn one_transfer_at_a_time_while_the_others_negotiate() {
    let (mut sim, data, ev) = three_puts(Some(1));
    let t = times(&ev);
    assert_eq!(t.len(), 3, "{ev:?}");
    for d in &data {
        let id = crate::chunking::chunk_id(d);
        assert_eq!(sim.holders(&id).len(), 3);
        let holder = sim.holders(&id)[0] as usize;
        assert_eq!(&sim.nodes[holder - 1].store.get(&id).unwrap(), d);
    }
    for w in t.windows(2) {
        let ((_, prev_end, _), (next_first, _, next_ready)) = (w[0], w[1]);
        assert!(
            next_first >= prev_end,
            "a pass began at {next_first:.3} ms, before the one ahead of it ended at {prev_end:.3}: {t:?}"
        );
        assert!(
            next_ready < prev_end,
            "the next chunk's targets were ready only at {next_ready:.3} ms, after the pass ahead ended at {prev_end:.3}: {t:?}"
        );
        assert!(
            next_first - prev_end < 0.5,
            "the next pass waited {:.3} ms after the one ahead ended: {t:?}",
            next_first - prev_end
        );
    }
}

#[test]
fn without_turns_every_negotiated_chunk_transfers_at_once() {
    let (_, _, ev) = three_puts(None);
    let t = times(&ev);
    assert_eq!(t.len(), 3, "{ev:?}");
    assert!(
        t[1].0 < t[0].1 && t[2].0 < t[1].1,
        "passes overlap when nothing takes turns: {t:?}"
    );
}
