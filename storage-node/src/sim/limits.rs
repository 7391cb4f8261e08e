//! Resources: a node takes on only what its limits allow, refuses the rest
//! before allocating anything (with a PUT_ACK saying why, or silently for
//! gets), and answers only peers at their known addresses.

use super::*;
use crate::index::StoreIndex;
use crate::node::limits::Limits;
use crate::outgoing::Outbound;
use subcast_proto::replicast::{AckStatus, GetFetch, GetRequest, PutAccept};

fn core_with(limits: Limits, free: u64) -> NodeCore {
    let mut p = sim_params(1);
    p.limits = limits;
    let mut index = StoreIndex::default();
    index.free_bytes = free;
    NodeCore::new(p, index)
}

fn accept(txid: u64, size: u32) -> ReplicastMessage {
    ReplicastMessage::PutAccept(PutAccept {
        txid,
        chunk_id: [txid as u8; 32],
        size,
        kind: ChunkKind::Data,
        datagram_payload: 1372,
        group: GROUP,
        targets: vec![1],
        keys: Vec::new(),
    })
}

fn acks(core: &mut NodeCore) -> Vec<AckStatus> {
    std::iter::from_fn(|| core.poll_transmit())
        .filter_map(|o| match o {
            Outbound::Control(t) => match t.msg {
                ReplicastMessage::PutAck(a) => Some(a.status),
                _ => None,
            },
            Outbound::Data(_) => None,
        })
        .collect()
}

#[test]
fn accepts_beyond_the_limits_are_refused_before_any_buffer() {
    let limits = Limits {
        max_concurrent: 2,
        reserve_bytes: 0,
        ..Limits::default()
    };
    let mut core = core_with(limits, 1 << 40);
    let now = Instant::now();
    for txid in 1..=5 {
        core.handle(client_addr(), CLIENT_ID, accept(txid, 1 << 20), now, 0);
    }
    assert_eq!(core.receives_in_progress(), 2);
    assert_eq!(core.gauges().receive_buffer_bytes, 2 << 20);
    assert_eq!(acks(&mut core), vec![AckStatus::Busy; 3]);
    assert_eq!(core.counters.refused_by_reason["busy"], 3);

    // Per sender: another client still gets its transfer.
    let limits = Limits {
        max_receives_per_peer: 1,
        reserve_bytes: 0,
        ..Limits::default()
    };
    let mut core = core_with(limits, 1 << 40);
    core.handle(client_addr(), CLIENT_ID, accept(1, 1000), now, 0);
    core.handle(client_addr(), CLIENT_ID, accept(2, 1000), now, 0);
    core.handle(node_addr(5), 6, accept(3, 1000), now, 0);
    assert_eq!(core.receives_in_progress(), 2);
    assert_eq!(acks(&mut core), vec![AckStatus::Busy]);

    // Octets buffered.
    let limits = Limits {
        max_receive_bytes: 3 << 20,
        reserve_bytes: 0,
        ..Limits::default()
    };
    let mut core = core_with(limits, 1 << 40);
    for txid in 1..=4 {
        core.handle(client_addr(), CLIENT_ID, accept(txid, 1 << 20), now, 0);
    }
    assert_eq!(core.receives_in_progress(), 3);
}

#[test]
fn accept_without_free_space_is_refused_full_and_too_large_said() {
    let limits = Limits {
        reserve_bytes: 1 << 20,
        max_chunk_size: 8 << 20,
        ..Limits::default()
    };
    let mut core = core_with(limits, 3 << 20);
    let now = Instant::now();
    core.handle(client_addr(), CLIENT_ID, accept(1, 2 << 20), now, 0);
    // 2 MiB buffered + 1 MiB reserve: nothing more fits in 3 MiB.
    core.handle(client_addr(), CLIENT_ID, accept(2, 100), now, 0);
    core.handle(client_addr(), CLIENT_ID, accept(3, 9 << 20), now, 0);
    assert_eq!(core.receives_in_progress(), 1);
    assert_eq!(acks(&mut core), vec![AckStatus::Full, AckStatus::TooLarge]);
}

#[test]
fn fetches_and_reads_are_bounded() {
    let limits = Limits {
        max_serves_per_peer: 2,
        max_reads: 3,
        ..Limits::default()
    };
    let mut core = core_with(limits, 1 << 40);
    let id = [7u8; 32];
    core.index.insert(id, 1 << 20, None);
    let now = Instant::now();
    // One-octet datagrams for a 1 MiB chunk: a million datagrams for one
    // request. Refused, nothing read or queued.
    let tiny = GetFetch {
        txid: 1,
        chunk_id: id,
        datagram_payload: 1,
        ranges: vec![],
    };
    core.handle(
        client_addr(),
        CLIENT_ID,
        ReplicastMessage::GetFetch(tiny),
        now,
        0,
    );
    assert!(core.poll_action().is_none());
    assert_eq!(
        core.counters.refused_by_reason["fetch-datagrams-too-small"],
        1
    );
    // Ten fetches from one requester: two at a time.
    for txid in 10..20 {
        let f = GetFetch {
            txid,
            chunk_id: id,
            datagram_payload: 1372,
            ranges: vec![],
        };
        core.handle(
            client_addr(),
            CLIENT_ID,
            ReplicastMessage::GetFetch(f),
            now,
            0,
        );
    }
    assert_eq!(core.gauges().reads_in_flight, 2);
    // Requests from many peers: at most three reads in flight.
    for n in 2..=30 {
        let g = GetRequest {
            txid: u64::from(n),
            chunk_id: id,
        };
        core.handle(
            node_addr(n as usize),
            n,
            ReplicastMessage::GetRequest(g),
            now,
            0,
        );
    }
    assert_eq!(core.gauges().reads_in_flight, 3);
    assert!(core.counters.refused_by_reason["busy-reading"] >= 27);
}

#[test]
fn peers_are_answered_only_at_their_known_address() {
    let mut p = sim_params(1);
    p.addresses = crate::keys::Addresses::new([(CLIENT_ID, "fd00::100".parse().unwrap())]);
    let mut core = NodeCore::new(p, StoreIndex::default());
    let now = Instant::now();
    let query = ReplicastMessage::ManifestQuery(subcast_proto::replicast::ManifestQuery {
        txid: 1,
        name_hash: [0; 32],
        version: 0,
    });
    let victim: SocketAddr = "[fd00::99]:7412".parse().unwrap();
    core.handle(victim, CLIENT_ID, query.clone(), now, 0);
    assert!(core.poll_transmit().is_none(), "nothing sent to the victim");
    assert_eq!(core.counters.refused_by_reason["wrong-source"], 1);
    core.handle(client_addr(), CLIENT_ID, query, now, 0);
    assert_eq!(core.poll_transmit().map(|o| o.dest()), Some(client_addr()));
}

#[test]
fn answers_queue_is_bounded() {
    let limits = Limits {
        max_queue: 16,
        ..Limits::default()
    };
    let mut core = core_with(limits, 1 << 40);
    let now = Instant::now();
    for txid in 0..100 {
        let q = ReplicastMessage::ManifestQuery(subcast_proto::replicast::ManifestQuery {
            txid,
            name_hash: [0; 32],
            version: 0,
        });
        core.handle(client_addr(), CLIENT_ID, q, now, 0);
    }
    assert_eq!(core.gauges().control_queue, 16);
    assert_eq!(core.counters.queue_drops, 84);
}

/// Targets that bid and then cannot take the transfer answer "full"; the
/// client replaces them with spare bidders.
#[test]
fn targets_that_refuse_are_replaced() {
    let mut sim = Sim::new(5, 0.0, 41);
    let data = payload(30_000, 41);
    let id = crate::chunking::chunk_id(&data);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    // Bids are in after ~200 us; then the disks of nodes 1 and 2 fill,
    // before the ACCEPT (3 of 5 targets: at least one of them is chosen).
    let _ = sim.run(&mut side, Duration::from_micros(250));
    for n in &mut sim.nodes[..2] {
        n.core.index.free_bytes = 0;
    }
    let ev = sim.run(&mut side, Duration::from_secs(10));
    let o = put_done(&ev);
    let mut on = o.stored_on.clone();
    on.sort();
    assert_eq!(on, vec![3, 4, 5]);
    assert!(o.replaced >= 1);
    let refused: u64 = sim.nodes[..2]
        .iter()
        .map(|n| {
            n.core
                .counters
                .refused_by_reason
                .get("full")
                .copied()
                .unwrap_or(0)
        })
        .sum();
    // (A refusing target may see the ACCEPT again before it is replaced.)
    assert!(refused >= u64::from(o.replaced), "{refused}");
    assert_eq!(sim.holders(&id), vec![3, 4, 5]);
}
