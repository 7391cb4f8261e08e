//! A writer's chunks take turns to transfer (`put_transfers`), and take
//! their bids and group while they wait.

use super::*;

/// When each put's first DATA left, its first pass ended and its targets
/// were chosen, in ms after the puts began (all began at once).
fn times(ev: &[ReplicastEvent]) -> Vec<(f64, f64, f64)> {
    let mut t: Vec<(f64, f64, f64)> = ev
        .iter()
        .filter_map(|e| match e {
            ReplicastEvent::Put(PutEvent::Done(o)) => {
                let p = &o.phases;
                let first = p.bids + p.grant + p.turn + p.ready + p.held;
                Some((first, first + p.transfer, p.bids))
            }
            _ => None,
        })
        .collect();
    t.sort_by(|a, b| a.0.total_cmp(&b.0));
    t
}

/// Three puts at once; `gap` between datagrams on the client's link.
fn three_puts(
    transfers: Option<usize>,
    size: usize,
    gap: Duration,
) -> (Sim, Vec<Vec<u8>>, Vec<ReplicastEvent>) {
    let mut sim = Sim::new(6, 0.0, 61);
    sim.client_gap = gap;
    sim.transfers = transfers;
    let data: Vec<Vec<u8>> = (0..3).map(|i| payload(size, 61 + i)).collect();
    let mut sides: Vec<Side> = data
        .iter()
        .enumerate()
        .map(|(i, d)| sim.put_tx(100 + i as u64, d, Mode::Rendezvous, 3, ChunkKind::Data))
        .collect();
    let ev = sim.run_many(&mut sides, Duration::from_secs(120));
    (sim, data, ev)
}

#[test]
fn one_transfer_at_a_time_while_the_others_negotiate() {
    // ~440 datagrams a chunk, 10 us apart on the link: a pass takes ~4 ms.
    let (mut sim, data, ev) = three_puts(Some(1), 600_000, Duration::from_micros(10));
    let t = times(&ev);
    assert_eq!(t.len(), 3, "{ev:?}");
    for d in &data {
        let id = crate::chunking::chunk_id(d);
        assert_eq!(sim.holders(&id).len(), 3);
        let holder = sim.holders(&id)[0] as usize;
        assert_eq!(&sim.nodes[holder - 1].store.get(&id).unwrap(), d);
    }
    for w in t.windows(2) {
        let ((_, prev_end, _), (next_first, _, next_chosen)) = (w[0], w[1]);
        assert!(
            next_first >= prev_end,
            "a pass began at {next_first:.3} ms, before the one ahead of it ended at {prev_end:.3}: {t:?}"
        );
        assert!(
            next_chosen < prev_end,
            "the next chunk's targets were chosen only at {next_chosen:.3} ms, after the pass ahead ended at {prev_end:.3}: {t:?}"
        );
        // ACCEPT out, READYs back (100 us each way here), DATA.
        assert!(
            next_first - prev_end < 0.5,
            "the next pass waited {:.3} ms after the one ahead ended: {t:?}",
            next_first - prev_end
        );
    }
}

#[test]
fn without_turns_every_negotiated_chunk_transfers_at_once() {
    let (_, _, ev) = three_puts(None, 600_000, Duration::from_micros(10));
    let t = times(&ev);
    assert_eq!(t.len(), 3, "{ev:?}");
    assert!(
        t[1].0 < t[0].1 && t[2].0 < t[1].1,
        "passes overlap when nothing takes turns: {t:?}"
    );
}

#[test]
fn a_chunk_that_waits_longer_than_a_targets_patience_is_sent_once() {
    // ~730 datagrams a chunk, 3 ms apart: a pass takes ~2.2 s, and the
    // third chunk waits ~4.4 s for its turn, longer than a target waits
    // for DATA after an ACCEPT (12 NACKs, ~3.4 s). Its ACCEPT waits too,
    // so no target gives up on it and nothing is sent twice.
    let (_, data, ev) = three_puts(Some(1), 1_000_000, Duration::from_millis(3));
    let t = times(&ev);
    assert_eq!(t.len(), 3, "{ev:?}");
    assert!(t[2].0 > 4000.0, "the third chunk did not wait: {t:?}");
    let per_chunk = data[0].len().div_ceil(1372) as u64;
    for e in &ev {
        if let ReplicastEvent::Put(PutEvent::Done(o)) = e {
            assert_eq!(o.datagrams_sent, per_chunk, "{t:?}");
        }
    }
}
