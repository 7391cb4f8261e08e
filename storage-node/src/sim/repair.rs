//! Repair costs about what was lost: only missing datagrams are repeated
//! (once to the group when several targets miss one, else to the one
//! target), asked for when a pass ends rather than after a timer: a
//! target NACKs its gaps when the pass's last datagram arrives, and the
//! client polls only the targets that lost that one too.

use super::*;

/// One 4 MiB put over a rendezvous group to 3 of 6 nodes, the client's
/// link sending a datagram every 2 us, `loss` on every path. Returns
/// (DATA sent / first pass, put duration, first-pass duration).
fn lossy_put(loss: f64, seed: u64) -> (f64, Duration, Duration, u64) {
    let mut sim = Sim::new(6, loss, seed);
    sim.client_gap = Duration::from_micros(2);
    let data = payload(4 << 20, seed as u8);
    let id = crate::chunking::chunk_id(&data);
    let t0 = sim.now;
    let mut side = sim.put(&data, Mode::Rendezvous, 3, ChunkKind::Data);
    let ev = sim.run(&mut side, Duration::from_secs(60));
    let o = put_done(&ev).clone();
    assert_eq!(sim.holders(&id).len(), 3);
    let first = data.len().div_ceil(1372) as u64;
    let ratio = sim.client_data as f64 / first as f64;
    (
        ratio,
        sim.now - t0,
        sim.client_gap * first as u32,
        o.datagrams_sent - first,
    )
}

#[test]
fn repair_at_one_percent_loss_costs_about_the_loss() {
    for seed in [31, 32, 33] {
        let (ratio, took, pass, _) = lossy_put(0.01, seed);
        // Three targets each missing ~1%: ~3% repeated.
        assert!(ratio <= 1.06, "seed {seed}: {ratio:.3}x the payload sent");
        eprintln!("seed {seed}: {ratio:.3}x, {took:?} (first pass {pass:?})");
        // Repairs follow each pass at once; at most one lost NACK or poll
        // costs a poll interval (the old NACK timer alone was 40 ms).
        assert!(
            took < pass + PutTimers::default().poll_interval + Duration::from_millis(5),
            "seed {seed}: put took {took:?}, first pass {pass:?}"
        );
    }
}

#[test]
fn repair_at_five_percent_loss_costs_about_the_loss() {
    for seed in [41, 42, 43] {
        let (ratio, took, _, _) = lossy_put(0.05, seed);
        eprintln!("seed {seed}: {ratio:.3}x, {took:?}");
        assert!(ratio <= 1.25, "seed {seed}: {ratio:.3}x the payload sent");
    }
}

/// One 256 KiB put over a rendezvous group to 3 of 6 nodes whose first
/// pass loses `drop` (every target misses those indexes). Returns (put
/// duration, PUT_ACCEPTs the client sent, DATA it sent, datagrams in a
/// pass).
fn put_losing(drop: &[u32]) -> (Duration, usize, u64, u64) {
    let mut sim = Sim::new(6, 0.0, 7);
    sim.client_gap = Duration::from_micros(2);
    sim.drop_data = drop.to_vec();
    let data = payload(256 << 10, 9);
    let id = crate::chunking::chunk_id(&data);
    let t0 = sim.now;
    let mut side = sim.put(&data, Mode::Rendezvous, 3, ChunkKind::Data);
    let ev = sim.run(&mut side, Duration::from_secs(10));
    put_done(&ev);
    assert_eq!(sim.holders(&id).len(), 3);
    let pass = data.len().div_ceil(1372) as u64;
    (sim.now - t0, sim.accepts.len(), sim.client_data, pass)
}

#[test]
fn a_clean_pass_is_not_polled() {
    let (took, accepts, sent, pass) = put_losing(&[]);
    // One PUT_ACCEPT (to the negotiating group): the targets ACK after
    // the pass without being asked.
    assert_eq!(accepts, 1, "{took:?}");
    assert_eq!(sent, pass);
    assert!(took < PutTimers::default().tail_poll, "{took:?}");
}

#[test]
fn a_gap_is_asked_for_when_the_pass_ends() {
    let (took, accepts, sent, pass) = put_losing(&[40, 41, 90]);
    // Each target NACKs when the last datagram arrives: one repeat of
    // each to the group, before any poll was due.
    assert_eq!(sent, pass + 3);
    assert_eq!(accepts, 1);
    assert!(took < PutTimers::default().tail_poll, "{took:?}");
}

#[test]
fn a_lost_tail_is_found_by_the_poll() {
    let last = (256u32 << 10).div_ceil(1372) - 1;
    let (took, accepts, sent, pass) = put_losing(&[last]);
    // No target knows the pass is over: the client polls each after
    // `tail_poll`, each NACKs the last index, which goes again to each
    // (or once to the group for NACKs that arrive together).
    let tail = PutTimers::default().tail_poll;
    assert!(
        took >= tail && took < tail + Duration::from_millis(5),
        "{took:?}"
    );
    assert_eq!(accepts, 1 + 3);
    assert!((pass + 1..=pass + 3).contains(&sent), "{sent} for {pass}");
}
