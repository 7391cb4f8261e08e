//! Wire tests of the Replicast messages (proto/src/replicast.rs): every
//! message round-trips and opens, truncations and bad fields are refused.

use subcast_proto::replicast::*;
use subcast_proto::{PairKeys, ReplayGuard};

const SECRET: [u8; 32] = [9; 32];

/// Node 77 sends to node 1.
fn sender() -> PairKeys {
    PairKeys::provision(3, &SECRET, 77, [1, 2]).unwrap()
}

fn receiver() -> PairKeys {
    PairKeys::provision(3, &SECRET, 1, [77]).unwrap()
}

fn encode(seq: u64, m: &ReplicastMessage) -> Vec<u8> {
    seal(&sender(), seq, 1_000, &[1], m).unwrap()
}

fn samples() -> Vec<ReplicastMessage> {
    let id = [0xab; 32];
    vec![
        ReplicastMessage::PutProposal(PutProposal {
            txid: 1,
            chunk_id: id,
            size: 1 << 20,
            kind: ChunkKind::Data,
            replicas: 3,
        }),
        ReplicastMessage::PutBid(PutBid {
            txid: 1,
            chunk_id: id,
            status: BidStatus::NotNow,
            reason: NotNowReason::Full,
            earliest_start_us: 9,
            queue_depth: 2,
            free_bytes: 1 << 40,
            retry_after_ms: 250,
        }),
        ReplicastMessage::PutAccept(PutAccept {
            txid: 1,
            chunk_id: id,
            size: 10,
            kind: ChunkKind::Manifest,
            datagram_payload: 1372,
            group: "ff15::1".parse().unwrap(),
            targets: vec![1, 2, 3],
            keys: Vec::new(),
        }),
        ReplicastMessage::Data(Data {
            txid: 1,
            index: 0,
            total: 2,
            payload: vec![1, 2, 3],
        }),
        ReplicastMessage::PutAck(PutAck {
            txid: 1,
            chunk_id: id,
            status: AckStatus::HashMismatch,
        }),
        ReplicastMessage::Nack(Nack {
            txid: 1,
            ranges: vec![Range { start: 0, end: 4 }, Range { start: 7, end: 8 }],
        }),
        ReplicastMessage::GetRequest(GetRequest {
            txid: 2,
            chunk_id: id,
        }),
        ReplicastMessage::PutReady(PutReady {
            txid: 1,
            chunk_id: id,
        }),
        ReplicastMessage::GetOffer(GetOffer {
            txid: 2,
            chunk_id: id,
            status: OfferStatus::Corrupt,
            size: 5,
        }),
        ReplicastMessage::GetFetch(GetFetch {
            txid: 2,
            chunk_id: id,
            datagram_payload: 1000,
            ranges: vec![],
        }),
        ReplicastMessage::ManifestQuery(ManifestQuery {
            txid: 3,
            name_hash: id,
            version: 0,
        }),
        ReplicastMessage::ManifestOffer(ManifestOffer {
            txid: 3,
            name_hash: id,
            versions: vec![VersionEntry {
                version: 2,
                writer: 100,
                manifest_id: [1; 32],
                size: 300,
            }],
        }),
    ]
}

#[test]
fn every_message_round_trips_and_opens() {
    let ring = receiver();
    let mut guard = ReplayGuard::new(u64::MAX / 4);
    for (i, m) in samples().into_iter().enumerate() {
        let bytes = encode(5 + i as u64, &m);
        let dg = open(&ring, &mut guard, &bytes, 1_000).unwrap();
        assert_eq!(dg.message, m);
        assert_eq!(dg.header.msg_type, m.msg_type());
        assert!((0x40..=0x5f).contains(&m.msg_type()));
        // Replayed: refused.
        assert_eq!(
            open(&ring, &mut guard, &bytes, 1_000).unwrap_err().kind(),
            "replay"
        );
        // Every truncation is an error, never a panic.
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err());
        }
    }
}

#[test]
fn altered_or_foreign_key_refused() {
    let ring = receiver();
    let mut guard = ReplayGuard::new(u64::MAX / 4);
    let mut bytes = encode(5, &samples()[0]);
    bytes[40] ^= 1;
    assert_eq!(
        open(&ring, &mut guard, &bytes, 1_000).unwrap_err().kind(),
        "bad-mac"
    );
    let other = seal(
        &PairKeys::provision(4, &SECRET, 77, [1]).unwrap(),
        5,
        1_000,
        &[1],
        &samples()[0],
    )
    .unwrap();
    assert_eq!(
        open(&ring, &mut guard, &other, 1_000).unwrap_err().kind(),
        "unknown-key"
    );
}

#[test]
fn bad_fields_refused() {
    let bad_range = ReplicastMessage::Nack(Nack {
        txid: 1,
        ranges: vec![Range { start: 4, end: 4 }],
    });
    assert!(decode(&encode(5, &bad_range)).is_err());
    let empty_nack = ReplicastMessage::Nack(Nack {
        txid: 1,
        ranges: vec![],
    });
    assert!(decode(&encode(5, &empty_nack)).is_err());
    let bad_index = ReplicastMessage::Data(Data {
        txid: 1,
        index: 2,
        total: 2,
        payload: vec![0],
    });
    assert!(decode(&encode(5, &bad_index)).is_err());
    let unicast_group = ReplicastMessage::PutAccept(PutAccept {
        txid: 1,
        chunk_id: [0; 32],
        size: 1,
        kind: ChunkKind::Data,
        datagram_payload: 100,
        group: "fd00::1".parse().unwrap(),
        targets: vec![1],
        keys: Vec::new(),
    });
    assert!(decode(&encode(5, &unicast_group)).is_err());
    // A message of the push protocol is an unknown type here.
    let mut push = encode(5, &samples()[6]);
    push[3] = 0x10;
    assert_eq!(decode(&push).unwrap_err().kind(), "unknown-type");
}
