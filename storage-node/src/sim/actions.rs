//! The core decides without the disk: a complete chunk becomes a store
//! action, and its ACK waits for the owner's report.

use super::*;
use crate::index::StoreIndex;
use subcast_proto::replicast::{Data, PutAccept};

#[test]
fn ack_follows_the_disk_not_the_last_datagram() {
    let mut index = StoreIndex::default();
    index.free_bytes = 1 << 40;
    let mut core = NodeCore::new(sim_params(1), index);
    let now = Instant::now();
    let data = payload(3000, 61);
    let id = crate::chunking::chunk_id(&data);
    let accept = PutAccept {
        txid: 5,
        chunk_id: id,
        size: 3000,
        kind: ChunkKind::Data,
        datagram_payload: 1372,
        group: GROUP,
        targets: vec![1],
        keys: Vec::new(),
    };
    core.handle(
        client_addr(),
        CLIENT_ID,
        ReplicastMessage::PutAccept(accept),
        now,
        0,
    );
    for (i, c) in data.chunks(1372).enumerate() {
        let d = Data {
            txid: 5,
            index: i as u32,
            total: 3,
            payload: c.to_vec(),
        };
        core.handle(client_addr(), CLIENT_ID, ReplicastMessage::Data(d), now, 0);
    }
    let mut job = None;
    while let Some(a) = core.poll_action() {
        if let NodeAction::Store {
            job: j, payload, ..
        } = a
        {
            assert_eq!(payload, data);
            job = Some(j);
        }
    }
    let job = job.expect("the chunk goes to the disk");
    let acks = |core: &mut NodeCore| {
        std::iter::from_fn(|| core.poll_transmit())
            .filter(|o| matches!(o, crate::outgoing::Outbound::Control(t) if matches!(t.msg, ReplicastMessage::PutAck(_))))
            .count()
    };
    assert_eq!(acks(&mut core), 0, "no ACK before the fsync");
    assert!(!core.index.contains(&id));
    core.on_stored(job, Ok(()));
    assert_eq!(acks(&mut core), 1);
    assert!(core.index.contains(&id));
}

#[test]
fn a_slow_disk_is_not_mistaken_for_a_dead_target() {
    // Writes take 3 s (far past the 40 polls x 25 ms of silence after
    // which a target is replaced): targets answer polls with PUT_READY
    // while they write, so the put keeps its targets and leaves exactly
    // R copies, not R plus the replacements'.
    let mut sim = Sim::new(6, 0.0, 77);
    sim.disk_delay = Duration::from_secs(3);
    let data = payload(200_000, 9);
    let id = crate::chunking::chunk_id(&data);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    let events = sim.run(&mut side, Duration::from_secs(30));
    let outcome = events
        .iter()
        .find_map(|e| match e {
            ReplicastEvent::Put(PutEvent::Done(o)) => Some(o.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the put did not finish: {events:?}"));
    assert_eq!(outcome.replaced, 0, "{outcome:?}");
    // Nothing else is being written any more.
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.holders(&id).len(), 3, "exactly R copies");
}

#[test]
fn received_chunks_are_written_from_their_pooled_buffers() {
    // 1 MiB chunks go direct: from the receive's own aligned buffer, and
    // the second put's receives take the buffers the first one's writes
    // gave back.
    let mut sim = Sim::new(3, 0.0, 5);
    for (txid, seed) in [(7, 1), (8, 2)] {
        let data = payload(1 << 20, seed);
        let mut side = sim.put_tx(txid, &data, Mode::NgMulticast, 3, ChunkKind::Data);
        let events = sim.run(&mut side, Duration::from_secs(30));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ReplicastEvent::Put(PutEvent::Done(_)))),
            "{events:?}"
        );
    }
    for n in &sim.nodes {
        let pool = n.core.gauges().chunk_pool;
        assert_eq!(
            (pool.allocated, pool.reused, pool.idle),
            (1, 1, 1),
            "{pool:?}"
        );
        let c = &n.store.counters;
        assert_eq!(c.chunks_written, 2);
        assert_eq!(c.direct_writes_in_place, c.direct_writes, "{c:?}");
    }
    if sim.nodes[0].store.counters.direct_writes == 0 {
        eprintln!("this file system refuses O_DIRECT: only the fallback ran");
    }
}
