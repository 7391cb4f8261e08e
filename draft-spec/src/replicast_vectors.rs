//! Replicast vectors: the storage messages in the same envelope, sealed
//! with pair keys, and the Replicast datagrams a receiver must refuse.

use super::*;

/// The client's node id in the Replicast vectors (it proposes, accepts,
/// sends DATA, requests and queries).
pub const CLIENT_ID: u32 = 100;
/// The node that answers in the Replicast vectors (one of the targets).
pub const NODE_ID: u32 = 4;
/// The targets and negotiating group members of the Replicast vectors.
pub const TARGETS: [u32; 3] = [1, 4, 8];

/// `sender`'s pair keys with every other id of the vectors.
pub fn vector_pair_keys(sender: u32) -> PairKeys {
    let peers = [1, 4, 8, CLIENT_ID].into_iter().filter(|p| *p != sender);
    PairKeys::provision(1, &vector_secret(), sender, peers).expect("ids from 1")
}

/// The cluster secret of the Replicast vectors: the same bytes as
/// [`vector_key`].
pub fn vector_secret() -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as u8;
    }
    b
}

pub(crate) fn replicast_with(
    name: &str,
    description: &str,
    keys: &PairKeys,
    receivers: &[u32],
    seq: u64,
    message: ReplicastMessage,
) -> Vector {
    let bytes =
        replicast::seal(keys, seq, NOW_US, receivers, &message).expect("vector receivers known");
    let pair_keys = if keys.is_shared() {
        BTreeMap::new()
    } else {
        let all = keys.pair_keys();
        receivers
            .iter()
            .map(|r| (r.to_string(), hex::encode(all[r])))
            .collect()
    };
    Vector::Replicast(ReplicastVector {
        name: name.into(),
        description: description.into(),
        key_id: keys.key_id(),
        secret: hex::encode(vector_secret()),
        shared: keys.is_shared(),
        receivers: receivers.to_vec(),
        pair_keys,
        origin: Origin {
            key_id: keys.key_id(),
            sender_id: keys.own_id(),
            sequence: seq,
            timestamp_us: NOW_US,
        },
        message,
        bytes: hex::encode(bytes),
        transfer_key: None,
    })
}

/// From the client to the three targets (or the group's members).
pub(crate) fn from_client(
    name: &str,
    description: &str,
    seq: u64,
    message: ReplicastMessage,
) -> Vector {
    replicast_with(
        name,
        description,
        &vector_pair_keys(CLIENT_ID),
        &TARGETS,
        seq,
        message,
    )
}

/// From node 4 to the client.
fn to_client(name: &str, description: &str, seq: u64, message: ReplicastMessage) -> Vector {
    replicast_with(
        name,
        description,
        &vector_pair_keys(NODE_ID),
        &[CLIENT_ID],
        seq,
        message,
    )
}

/// One vector per Replicast message: a put of the 12-octet chunk
/// "hello world\n" (its BLAKE3 is the chunk id) to three targets.
pub(crate) fn replicast_vectors() -> Vec<Vector> {
    use replicast::*;
    let payload = b"hello world\n".to_vec();
    let id: Hash32 = *blake3::hash(&payload).as_bytes();
    let name_hash: Hash32 = *blake3::hash(b"tenant/bucket/object").as_bytes();
    let txid = 0x00c0_ffee_0000_0001;
    vec![
        from_client(
            "put-proposal",
            "Who can store this 12-octet data chunk, 3 replicas?",
            30,
            ReplicastMessage::PutProposal(PutProposal {
                txid,
                chunk_id: id,
                size: 12,
                kind: ChunkKind::Data,
                replicas: 3,
            }),
        ),
        to_client(
            "put-bid",
            "A member bids: can start 1 ms from now, 2 transfers queued, 1 GiB free.",
            31,
            ReplicastMessage::PutBid(PutBid {
                txid,
                chunk_id: id,
                status: BidStatus::Bid,
                reason: NotNowReason::None,
                earliest_start_us: NOW_US + 1_000,
                queue_depth: 2,
                free_bytes: 1 << 30,
                retry_after_ms: 0,
            }),
        ),
        from_client(
            "put-accept",
            "The sender accepts nodes 1, 4 and 8 and names the rendezvous group.",
            32,
            ReplicastMessage::PutAccept(PutAccept {
                txid,
                chunk_id: id,
                size: 12,
                kind: ChunkKind::Data,
                datagram_payload: 1392,
                group: ip("ff15::5c:1:0"),
                targets: vec![1, 4, 8],
                keys: Vec::new(),
            }),
        ),
        from_client(
            "data",
            "The whole chunk in one datagram (index 0 of 1).",
            33,
            ReplicastMessage::Data(Data {
                txid,
                index: 0,
                total: 1,
                payload: payload.clone(),
            }),
        ),
        to_client(
            "put-ack",
            "A target verified BLAKE3(payload) and stored the chunk.",
            34,
            ReplicastMessage::PutAck(PutAck {
                txid,
                chunk_id: id,
                status: AckStatus::Stored,
            }),
        ),
        to_client(
            "nack",
            "A target misses datagrams 3-5 and 9 of a larger transfer.",
            35,
            ReplicastMessage::Nack(Nack {
                txid,
                ranges: vec![Range { start: 3, end: 6 }, Range { start: 9, end: 10 }],
            }),
        ),
        to_client(
            "put-ready",
            "A target has joined the rendezvous group.",
            36,
            ReplicastMessage::PutReady(PutReady { txid, chunk_id: id }),
        ),
        from_client(
            "get-request",
            "Who holds this chunk?",
            37,
            ReplicastMessage::GetRequest(GetRequest { txid, chunk_id: id }),
        ),
        to_client(
            "get-offer",
            "A holder offers the 12-octet chunk.",
            38,
            ReplicastMessage::GetOffer(GetOffer {
                txid,
                chunk_id: id,
                status: OfferStatus::Have,
                size: 12,
            }),
        ),
        from_client(
            "get-fetch",
            "Send everything, 1392 octets per datagram.",
            39,
            ReplicastMessage::GetFetch(GetFetch {
                txid,
                chunk_id: id,
                datagram_payload: 1392,
                ranges: vec![],
            }),
        ),
        from_client(
            "manifest-query",
            "Newest version of tenant/bucket/object.",
            40,
            ReplicastMessage::ManifestQuery(ManifestQuery {
                txid,
                name_hash,
                version: 0,
            }),
        ),
        to_client(
            "manifest-offer",
            "Versions 1 and 2 of the object, with their manifest chunk ids.",
            41,
            ReplicastMessage::ManifestOffer(ManifestOffer {
                txid,
                name_hash,
                versions: vec![
                    VersionEntry {
                        version: 1,
                        writer: CLIENT_ID,
                        manifest_id: *blake3::hash(b"v1").as_bytes(),
                        size: 140,
                    },
                    VersionEntry {
                        version: 2,
                        writer: CLIENT_ID,
                        manifest_id: *blake3::hash(b"v2").as_bytes(),
                        size: 172,
                    },
                ],
            }),
        ),
    ]
}

/// A refused Replicast datagram, opened by `receiver` with the key it
/// shares with `sender`.
pub(crate) fn replicast_refused(
    name: &str,
    description: &str,
    sender: u32,
    receiver: u32,
    bytes: Vec<u8>,
    error: &str,
) -> Vector {
    let key = derive_pair_key(&vector_secret(), sender, receiver);
    Vector::Invalid(InvalidVector {
        family: "replicast".into(),
        name: name.into(),
        description: description.into(),
        key_id: 1,
        key: hex::encode(key),
        now_us: NOW_US,
        receiver: Some(receiver),
        preceded_by: vec![],
        bytes: hex::encode(bytes),
        error: error.into(),
    })
}

/// Header and body of a sealed Replicast datagram (its tag list cut off).
pub(crate) fn signed_part(bytes: &[u8]) -> Vec<u8> {
    let body_len = usize::from(u16::from_be_bytes([bytes[6], bytes[7]]));
    bytes[..32 + body_len].to_vec()
}

/// Refused Replicast datagrams (re-tagged, so the field checks refuse them).
pub(crate) fn replicast_invalid() -> Vec<Vector> {
    use replicast::*;
    let client = vector_pair_keys(CLIENT_ID);
    let node = vector_pair_keys(NODE_ID);
    let nack = replicast::seal(
        &node,
        50,
        NOW_US,
        &[CLIENT_ID],
        &ReplicastMessage::Nack(Nack {
            txid: 1,
            ranges: vec![Range { start: 0, end: 1 }],
        }),
    )
    .expect("sealed");
    // Range count 1 -> 512 with one range present.
    let mut overrun = signed_part(&nack);
    let c = 32 + 8;
    overrun[c] = 0x02;
    overrun[c + 1] = 0x00;
    let data = replicast::seal(
        &client,
        51,
        NOW_US,
        &TARGETS,
        &ReplicastMessage::Data(Data {
            txid: 1,
            index: 0,
            total: 1,
            payload: vec![1, 2, 3],
        }),
    )
    .expect("sealed");
    // Index 0 -> 1 with total 1.
    let mut beyond = signed_part(&data);
    beyond[32 + 8 + 3] = 1;
    vec![
        replicast_refused(
            "replicast-nack-overrun",
            "NACK announcing 512 ranges with one present: refused before any allocation.",
            NODE_ID,
            CLIENT_ID,
            tag_encoded(&node, &overrun, &[CLIENT_ID]).expect("tagged"),
            "truncated",
        ),
        replicast_refused(
            "replicast-data-index",
            "DATA with index 1 of total 1.",
            CLIENT_ID,
            NODE_ID,
            tag_encoded(&client, &beyond, &TARGETS).expect("tagged"),
            "invalid-field",
        ),
    ]
}

/// Replicast identity: tag lists (appended after the first vector set, so
/// earlier file numbers stay).
pub(crate) fn replicast_identity() -> Vec<Vector> {
    use replicast::*;
    let txid = 0x00c0_ffee_0000_0002;
    let id: Hash32 = *blake3::hash(b"hello world\n").as_bytes();
    let ack = ReplicastMessage::PutAck(PutAck {
        txid,
        chunk_id: id,
        status: AckStatus::Stored,
    });
    let to_client_ack = replicast::seal(&vector_pair_keys(NODE_ID), 60, NOW_US, &[CLIENT_ID], &ack)
        .expect("sealed");
    // Node 8 claims to be node 4: it holds K(8, 100), not K(4, 100).
    let mut forged = signed_part(
        &replicast::seal(&vector_pair_keys(8), 61, NOW_US, &[CLIENT_ID], &ack).expect("sealed"),
    );
    forged[12..16].copy_from_slice(&NODE_ID.to_be_bytes());
    let forged = tag_encoded(&vector_pair_keys(8), &forged, &[CLIENT_ID]).expect("tagged");
    let mut no_flag = to_client_ack.clone();
    no_flag[5] = 0;
    let mut no_entry = signed_part(&to_client_ack);
    no_entry.push(0);
    let shared = PairKeys::shared(1, 0x8000_1234, &vector_secret());
    vec![
        replicast_refused(
            "replicast-not-for-me",
            "A PUT_ACK tagged for the client only, received by node 8: no entry for it.",
            NODE_ID,
            8,
            to_client_ack,
            "not-for-me",
        ),
        replicast_refused(
            "replicast-forged-sender",
            "Node 8 claims Sender ID 4 and tags with the key it shares with the client: the client verifies with K(4, 100) and refuses.",
            NODE_ID,
            CLIENT_ID,
            forged,
            "bad-mac",
        ),
        replicast_refused(
            "replicast-no-tag-list",
            "A Replicast datagram without the TAG_LIST flag.",
            NODE_ID,
            CLIENT_ID,
            no_flag,
            "invalid-field",
        ),
        replicast_refused(
            "replicast-empty-tag-list",
            "A tag list of zero entries.",
            NODE_ID,
            CLIENT_ID,
            no_entry,
            "invalid-field",
        ),
        replicast_with(
            "replicast-single-key",
            "Insecure single-key (lab) mode: one entry for the wildcard receiver 0 under the key every holder of the secret derives; any holder accepts it from any claimed sender.",
            &shared,
            &[subcast_proto::pairkeys::ANY_RECEIVER],
            62,
            ReplicastMessage::GetRequest(GetRequest { txid, chunk_id: id }),
        ),
    ]
}

/// Recomputes the tag of an altered datagram (so a vector tests the field
/// check, not the tag).
pub(crate) fn reseal(key: &Key, bytes: &[u8]) -> Vec<u8> {
    let body = &bytes[..bytes.len() - 32];
    let mut out = body.to_vec();
    out.extend_from_slice(&key.tag(body));
    out
}

/// Refusals of a target's limits (appended).
pub(crate) fn replicast_limits() -> Vec<Vector> {
    use replicast::*;
    let txid = 0x00c0_ffee_0000_0003;
    let id: Hash32 = *blake3::hash(b"hello world\n").as_bytes();
    vec![to_client(
        "put-ack-busy",
        "A target refuses a PUT_ACCEPT before buffering anything: it already receives as many transfers as its limits allow.",
        70,
        ReplicastMessage::PutAck(PutAck {
            txid,
            chunk_id: id,
            status: AckStatus::Busy,
        }),
    )]
}

/// The catalog form of MANIFEST_QUERY and MANIFEST_OFFER (listings of a
/// bucket, "Listings, Snapshots and Deletes"): name_hash =
/// BLAKE3("subcast catalog v1" || 0x00 || bucket), version = cursor.
pub(crate) fn replicast_catalog() -> Vec<Vector> {
    use replicast::*;
    let mut h = blake3::Hasher::new();
    h.update(b"subcast catalog v1\0");
    h.update(b"bucket");
    let catalog: Hash32 = *h.finalize().as_bytes();
    let txid = 0x00c0_ffee_0000_0002;
    let m1 = *blake3::hash(b"bucket/a v1").as_bytes();
    let m2 = *blake3::hash(b"bucket/b v3").as_bytes();
    let cursor = |id: &Hash32| u64::from_be_bytes(id[..8].try_into().expect("8 octets"));
    let mut entries = vec![
        VersionEntry {
            version: 1,
            writer: CLIENT_ID,
            manifest_id: m1,
            size: 140,
        },
        VersionEntry {
            version: 3,
            writer: CLIENT_ID,
            manifest_id: m2,
            size: 0x9c,
        },
    ];
    entries.sort_by_key(|e| cursor(&e.manifest_id));
    vec![
        from_client(
            "manifest-query-catalog",
            "Listing of bucket \"bucket\" from the start (cursor 0): name_hash is the catalog hash of the bucket.",
            60,
            ReplicastMessage::ManifestQuery(ManifestQuery {
                txid,
                name_hash: catalog,
                version: 0,
            }),
        ),
        to_client(
            "manifest-offer-catalog",
            "Two manifests of the bucket this member holds, in cursor order (fewer than 16: its last page).",
            61,
            ReplicastMessage::ManifestOffer(ManifestOffer {
                txid,
                name_hash: catalog,
                versions: entries,
            }),
        ),
    ]
}
