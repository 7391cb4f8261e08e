//! Identity: a key holder cannot speak for another node. Node 4 is
//! compromised and tells the client, in the names of nodes 1, 2 and 3,
//! that they already store the chunk.

use super::*;
use subcast_proto::replicast::{BidStatus, NotNowReason, PutBid, tag_encoded};

/// A PUT_BID "already stored" sealed with `liar`'s keys, claiming `as_node`.
fn forged_bid(liar: &PairKeys, as_node: u32, txid: u64, id: [u8; 32], seq: u64) -> Vec<u8> {
    let bid = ReplicastMessage::PutBid(PutBid {
        txid,
        chunk_id: id,
        status: BidStatus::AlreadyStored,
        reason: NotNowReason::None,
        earliest_start_us: 0,
        queue_depth: 0,
        free_bytes: 1 << 40,
        retry_after_ms: 0,
    });
    let honest = replicast::seal(liar, seq, 0, &[CLIENT_ID], &bid).unwrap();
    let body_end = honest.len() - 21;
    let mut claimed = honest[..body_end].to_vec();
    claimed[12..16].copy_from_slice(&as_node.to_be_bytes());
    tag_encoded(liar, &claimed, &[CLIENT_ID]).unwrap()
}

fn put_with_forged_bids(single_key: bool) -> (Sim, crate::put::PutOutcome, [u8; 32]) {
    let mut sim = Sim::with_keys(4, 0.0, 31, single_key);
    let data = payload(20_000, 31);
    let id = crate::chunking::chunk_id(&data);
    let mut side = sim.put(&data, Mode::NgMulticast, 3, ChunkKind::Data);
    let liar = sim.nodes[3].keys.clone();
    for victim in 1..=3 {
        let b = forged_bid(&liar, victim, 7, id, 1_000 + u64::from(victim));
        // After the real bids (100 us), inside the 3 ms grace: the last
        // answer of a node counts.
        sim.inject(node_addr(3), client_addr(), b, Duration::from_millis(1));
    }
    let ev = sim.run(&mut side, Duration::from_secs(10));
    let o = put_done(&ev).clone();
    (sim, o, id)
}

#[test]
fn forged_already_stored_bids_are_refused() {
    let (sim, o, id) = put_with_forged_bids(false);
    // The forgeries never reached the put: three real copies exist.
    assert!(o.already.is_empty(), "{o:?}");
    assert_eq!(o.stored_on.len(), 3);
    assert_eq!(sim.holders(&id).len(), 3);

    // The same attack in the insecure single-key mode succeeds: the put
    // reports three replicas and none exists. This is why that mode is for
    // labs only.
    let (sim, o, id) = put_with_forged_bids(true);
    assert_eq!(o.already, vec![1, 2, 3]);
    assert!(sim.holders(&id).is_empty());
}

/// A forged PUT_ACCEPT naming other targets, in the client's name, does
/// not move any node: it fails the tag at every member.
#[test]
fn forged_accept_moves_nobody() {
    let mut sim = Sim::new(4, 0.0, 32);
    let liar = sim.nodes[3].keys.clone();
    let accept = ReplicastMessage::PutAccept(subcast_proto::replicast::PutAccept {
        txid: 99,
        chunk_id: [9; 32],
        size: 100,
        kind: ChunkKind::Data,
        datagram_payload: 1372,
        group: GROUP,
        targets: vec![1, 2],
        keys: Vec::new(),
    });
    let honest = replicast::seal(&liar, 5, 0, &[1, 2], &accept).unwrap();
    let mut claimed = honest[..honest.len() - 41].to_vec();
    claimed[12..16].copy_from_slice(&CLIENT_ID.to_be_bytes());
    let forged = tag_encoded(&liar, &claimed, &[1, 2]).unwrap();
    for n in 0..2 {
        sim.inject(client_addr(), node_addr(n), forged.clone(), Duration::ZERO);
    }
    let mut side = sim.get([1; 32], 1);
    sim.run(&mut side, Duration::from_millis(5));
    for n in &sim.nodes[..2] {
        assert_eq!(n.core.receives_in_progress(), 0);
        assert_eq!(n.core.counters.refused_by_reason.get("bad-mac"), Some(&1));
    }
}
