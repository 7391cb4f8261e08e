//! Property tests of the Replicast decoder and the manifest decoder:
//! total on any input, exact round trips, refusal of altered datagrams.

use proptest::prelude::*;
use subcast_node::manifest::Manifest;
use subcast_proto::replicast::*;
use subcast_proto::{PairKeys, ReplayGuard};

const SECRET: [u8; 32] = [3; 32];

/// Node 2, the sender, and node 1, the receiver, with their pair key.
fn sender() -> PairKeys {
    PairKeys::provision(1, &SECRET, 2, [1]).unwrap()
}

fn receiver() -> PairKeys {
    PairKeys::provision(1, &SECRET, 1, [2]).unwrap()
}

fn encode(seq: u64, m: &ReplicastMessage) -> Vec<u8> {
    seal(&sender(), seq, 1000, &[1], m).unwrap()
}

fn hash() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>()
}

fn ranges() -> impl Strategy<Value = Vec<Range>> {
    prop::collection::vec((0u32..1000, 1u32..50), 1..20).prop_map(|v| {
        v.into_iter()
            .map(|(s, l)| Range {
                start: s,
                end: s + l,
            })
            .collect()
    })
}

fn message() -> impl Strategy<Value = ReplicastMessage> {
    let kind = prop_oneof![Just(ChunkKind::Data), Just(ChunkKind::Manifest)];
    prop_oneof![
        (any::<u64>(), hash(), any::<u32>(), kind.clone(), 1u8..=255).prop_map(
            |(txid, chunk_id, size, kind, replicas)| ReplicastMessage::PutProposal(PutProposal {
                txid,
                chunk_id,
                size,
                kind,
                replicas
            })
        ),
        (
            any::<u64>(),
            hash(),
            0u8..3,
            0u8..4,
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<u32>()
        )
            .prop_map(|(txid, chunk_id, s, r, e, q, f, ra)| {
                ReplicastMessage::PutBid(PutBid {
                    txid,
                    chunk_id,
                    status: [BidStatus::Bid, BidStatus::AlreadyStored, BidStatus::NotNow]
                        [s as usize],
                    reason: [
                        NotNowReason::None,
                        NotNowReason::Busy,
                        NotNowReason::Full,
                        NotNowReason::TooLarge,
                    ][r as usize],
                    earliest_start_us: e,
                    queue_depth: q,
                    free_bytes: f,
                    retry_after_ms: ra,
                })
            }),
        (
            any::<u64>(),
            hash(),
            any::<u32>(),
            kind,
            1u16..=9136,
            any::<u16>(),
            prop::collection::vec(any::<u32>(), 1..=32),
            any::<bool>(),
            any::<u8>()
        )
            .prop_map(|(txid, chunk_id, size, kind, dp, g, targets, keyed, k)| {
                // With keys: one wrapped transfer key per target.
                let keys = if keyed {
                    (0..targets.len()).map(|i| [k ^ i as u8; 32]).collect()
                } else {
                    Vec::new()
                };
                ReplicastMessage::PutAccept(PutAccept {
                    txid,
                    chunk_id,
                    size,
                    kind,
                    datagram_payload: dp,
                    group: std::net::Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0, g),
                    targets,
                    keys,
                })
            }),
        (
            any::<u64>(),
            1u32..100,
            prop::collection::vec(any::<u8>(), 1..2000)
        )
            .prop_map(|(txid, total, payload)| ReplicastMessage::Data(Data {
                txid,
                index: total - 1,
                total,
                payload
            })),
        (any::<u64>(), ranges())
            .prop_map(|(txid, ranges)| ReplicastMessage::Nack(Nack { txid, ranges })),
        (
            any::<u64>(),
            hash(),
            1u16..9000,
            prop::collection::vec((0u32..10, 1u32..10), 0..5)
        )
            .prop_map(
                |(txid, chunk_id, dp, r)| ReplicastMessage::GetFetch(GetFetch {
                    txid,
                    chunk_id,
                    datagram_payload: dp,
                    ranges: r
                        .into_iter()
                        .map(|(s, l)| Range {
                            start: s,
                            end: s + l
                        })
                        .collect(),
                })
            ),
        (
            any::<u64>(),
            hash(),
            prop::collection::vec((any::<u64>(), hash(), any::<u32>()), 0..=16)
        )
            .prop_map(|(txid, name_hash, v)| ReplicastMessage::ManifestOffer(
                ManifestOffer {
                    txid,
                    name_hash,
                    versions: v
                        .into_iter()
                        .map(|(version, manifest_id, size)| VersionEntry {
                            version,
                            writer: size ^ 0x5c,
                            manifest_id,
                            size
                        })
                        .collect(),
                }
            )),
    ]
}

proptest! {
    #[test]
    fn decode_is_total(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let _ = decode(&bytes);
        let _ = Manifest::decode(&bytes);
    }

    #[test]
    fn round_trip(m in message(), seq in 1u64..1_000_000) {
        let bytes = encode(seq, &m);
        prop_assert!(bytes.len() <= subcast_proto::MAX_DATAGRAM);
        let mut guard = ReplayGuard::new(u64::MAX / 4);
        let dg = open(&receiver(), &mut guard, &bytes, 1000).unwrap();
        prop_assert_eq!(dg.message, m);
    }

    #[test]
    fn altered_datagrams_never_open(m in message(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = encode(1, &m);
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let mut guard = ReplayGuard::new(u64::MAX / 4);
        prop_assert!(open(&receiver(), &mut guard, &bytes, 1000).is_err());
    }

    /// The in-place DATA path agrees with the whole decoder: DATA opens to
    /// the same fields, anything else is `None`, altered bytes never open.
    #[test]
    fn open_data_agrees_with_open(m in message(), seq in 1u64..1_000_000, pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let ring = receiver();
        let bytes = encode(seq, &m);
        let view = open_data(&ring, &mut ReplayGuard::new(u64::MAX / 4), &bytes, 1000).unwrap();
        match (&m, view) {
            (ReplicastMessage::Data(d), Some(v)) => {
                prop_assert_eq!((v.txid, v.index, v.total, v.payload), (d.txid, d.index, d.total, &d.payload[..]));
            }
            (ReplicastMessage::Data(_), None) => prop_assert!(false, "DATA not seen as DATA"),
            (_, v) => prop_assert!(v.is_none()),
        }
        let mut bad = bytes.clone();
        let i = pos.index(bad.len());
        bad[i] ^= 1 << bit;
        let r = open_data(&ring, &mut ReplayGuard::new(u64::MAX / 4), &bad, 1000);
        prop_assert!(!matches!(r, Ok(Some(_))), "altered DATA opened");
    }

    #[test]
    fn open_data_is_total(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let ring = receiver();
        let _ = open_data(&ring, &mut ReplayGuard::new(u64::MAX / 4), &bytes, 1000);
    }

    #[test]
    fn manifest_round_trip(name in "[a-z/]{1,40}", version in any::<u64>(), n in 1usize..50, cs in 1u32..1_000_000) {
        let size = (n as u64 - 1) * u64::from(cs) + 1;
        let m = Manifest {
            name, version, writer: 7, size, chunk_size: cs, object_hash: [1; 32], created_us: 5,
            chunks: (0..n).map(|i| [i as u8; 32]).collect(), inline: None,
        };
        prop_assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    }

    /// An object inside its manifest round-trips, and a manifest whose
    /// inline length is changed by any amount does not decode.
    #[test]
    fn inline_manifest_round_trip(data in prop::collection::vec(any::<u8>(), 1..4000), delta in 1u32..5000) {
        let m = Manifest {
            name: "bucket/small".into(), version: 2, writer: 7, size: data.len() as u64,
            chunk_size: 1 << 20, object_hash: *blake3::hash(&data).as_bytes(), created_us: 5,
            chunks: Vec::new(), inline: Some(data.clone()),
        };
        let b = m.encode();
        prop_assert_eq!(Manifest::decode(&b).unwrap(), m);
        let at = b.len() - data.len() - 4;
        let mut bad = b.clone();
        let len = (data.len() as u32).wrapping_add(delta);
        bad[at..at + 4].copy_from_slice(&len.to_be_bytes());
        prop_assert!(Manifest::decode(&bad).is_err());
    }
}

#[test]
fn oversized_lengths_refused() {
    // Header claiming a body longer than the datagram.
    let mut b = encode(
        1,
        &ReplicastMessage::GetRequest(GetRequest {
            txid: 1,
            chunk_id: [0; 32],
        }),
    );
    b[6] = 0xff;
    b[7] = 0xff;
    assert_eq!(decode(&b).unwrap_err().kind(), "truncated");
    // Larger than any datagram.
    assert_eq!(decode(&vec![0; 70_000]).unwrap_err().kind(), "too-long");
    // A manifest claiming 2^32-1 chunks in a few bytes.
    let mut m = Manifest {
        name: "a".into(),
        version: 1,
        writer: 7,
        size: 1,
        chunk_size: 1,
        object_hash: [0; 32],
        created_us: 0,
        chunks: vec![[0; 32]],
        inline: None,
    }
    .encode();
    let at = m.len() - 32 - 4;
    m[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(Manifest::decode(&m).is_err());
}
