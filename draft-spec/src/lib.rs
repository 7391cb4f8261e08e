//! The wire test vectors of the Internet-Draft, generated from `subcast-proto`.
//!
//! `draft-spec/vectors/*.json` are written by `subcast-gen-vectors` and
//! committed. `subcast-proto`'s tests load every file and check encode and
//! decode both ways; this crate's tests check that the files, the
//! generator and the draft's Appendix A agree, so the draft and the code
//! cannot drift apart.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use subcast_proto::pairkeys::derive_pair_key;
use subcast_proto::replicast::{self, ReplicastMessage};
use subcast_proto::*;

mod batch_vectors;

/// The key every vector uses (bytes 0x00..0x1f), key id 1.
pub fn vector_key() -> Key {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as u8;
    }
    Key::new(1, b)
}

/// Receiver clock for every vector: 2026-11-26T00:00:00Z in microseconds.
pub const NOW_US: u64 = 1_795_651_200_000_000;

/// A valid datagram and the message it carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ValidVector {
    pub name: String,
    pub description: String,
    pub key_id: u32,
    pub key: String,
    pub origin: Origin,
    pub message: Message,
    pub bytes: String,
}

/// A datagram a receiver must refuse, with the error kind it must give
/// (`DecodeError::kind` / `OpenError::kind`). `preceded_by` datagrams are
/// opened first (for replays).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InvalidVector {
    /// Which decoder refuses it: "push" (push and rendezvous messages,
    /// the default) or "replicast".
    #[serde(default = "push_family", skip_serializing_if = "is_push")]
    pub family: String,
    pub name: String,
    pub description: String,
    pub key_id: u32,
    pub key: String,
    pub now_us: u64,
    /// Replicast only: the node that opens it (`key` is the key it shares
    /// with the datagram's sender).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<u32>,
    #[serde(default)]
    pub preceded_by: Vec<String>,
    pub bytes: String,
    pub error: String,
}

/// A valid Replicast datagram and the message it carries. The sender
/// (`origin.sender_id`) tags it for each of `receivers` with the key the
/// two share: `pair_keys` maps each receiver to that key, derived from the
/// cluster `secret` (`subcast_proto::pairkeys::derive_pair_key`). With
/// `shared`, the insecure single-key mode: one entry for receiver 0 under
/// the key derived from `secret` for that mode.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplicastVector {
    pub name: String,
    pub description: String,
    pub key_id: u32,
    pub secret: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    pub receivers: Vec<u32>,
    /// Receiver id (decimal, as JSON object keys are strings) -> key.
    pub pair_keys: BTreeMap<String, String>,
    pub origin: Origin,
    pub message: ReplicastMessage,
    pub bytes: String,
}

fn push_family() -> String {
    "push".into()
}

fn is_push(f: &String) -> bool {
    f == "push"
}

/// One vector file's content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Vector {
    Valid(ValidVector),
    Replicast(ReplicastVector),
    Invalid(InvalidVector),
}

impl Vector {
    pub fn name(&self) -> &str {
        match self {
            Vector::Valid(v) => &v.name,
            Vector::Replicast(v) => &v.name,
            Vector::Invalid(v) => &v.name,
        }
    }
    pub fn bytes_hex(&self) -> &str {
        match self {
            Vector::Valid(v) => &v.bytes,
            Vector::Replicast(v) => &v.bytes,
            Vector::Invalid(v) => &v.bytes,
        }
    }
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().expect("literal address")
}

fn mac(s: &str) -> MacAddr {
    s.parse().expect("literal MAC")
}

fn origin(seq: u64) -> Origin {
    Origin {
        key_id: 1,
        sender_id: 100,
        sequence: seq,
        timestamp_us: NOW_US,
    }
}

fn valid(name: &str, description: &str, seq: u64, message: Message) -> Vector {
    let key = vector_key();
    let o = origin(seq);
    let bytes = seal(&key, o, &message);
    Vector::Valid(ValidVector {
        name: name.into(),
        description: description.into(),
        key_id: key.id,
        key: key.to_hex(),
        origin: o,
        message,
        bytes: hex::encode(bytes),
    })
}

fn invalid(
    name: &str,
    description: &str,
    preceded_by: Vec<Vec<u8>>,
    bytes: Vec<u8>,
    error: &str,
) -> Vector {
    let key = vector_key();
    Vector::Invalid(InvalidVector {
        family: push_family(),
        name: name.into(),
        description: description.into(),
        key_id: key.id,
        key: key.to_hex(),
        now_us: NOW_US,
        receiver: None,
        preceded_by: preceded_by.into_iter().map(hex::encode).collect(),
        bytes: hex::encode(bytes),
        error: error.into(),
    })
}

/// The seed example's subset: X1, X4, X8 of the nine-member parent group.
pub fn seed_set_subset() -> SetSubset {
    SetSubset {
        txid: 0x0102_0304_0506_0708,
        vlan: 0,
        parent: ip("ff3e::5c:1"),
        group: ip("ff3e::5c:8000:1"),
        lifetime_ms: 5_000,
        members: Members::List(vec![
            Member::Ipv6(ip("fd00:5c::1")),
            Member::Mac(mac("02:5c:00:00:00:04")),
            Member::Ipv6(ip("fd00:5c::8")),
        ]),
    }
}

/// Every vector, in file order.
pub fn vectors() -> Vec<Vector> {
    let key = vector_key();
    let set = seed_set_subset();
    let set_bytes = seal(&key, origin(3), &Message::SetSubset(set.clone()));
    let bitmap = SetSubset {
        members: Members::Bitmap(Bitmap::from_indices([0, 3, 7]).expect("small")),
        txid: 0x0102_0304_0506_0709,
        ..set.clone()
    };
    let mut v = vec![
        valid(
            "hello",
            "Agent of switch 7 (Linux bridge, 12 ports, room for 4000 subset groups), started 5 s ago, announces itself.",
            1,
            Message::Hello(Hello {
                switch_id: 7,
                backend: BackendKind::LinuxBridge,
                port_count: 12,
                table_capacity: 4000,
                instance: NOW_US - 5_000_000,
                software_version: "subcast-agent 0.1.0".into(),
            }),
        ),
        valid(
            "heartbeat",
            "Switch 7 is alive with 2 subset groups installed, up 3600 s, room for 3998 more.",
            2,
            Message::Heartbeat(Heartbeat {
                switch_id: 7,
                installed_groups: 2,
                uptime_s: 3600,
                table_capacity: 3998,
            }),
        ),
        valid(
            "set-subset-list",
            "X = ff3e::5c:8000:1 restricted to X1 (IPv6), X4 (MAC), X8 (IPv6) of parent ff3e::5c:1, untagged, 5 s.",
            3,
            Message::SetSubset(set.clone()),
        ),
        valid(
            "set-subset-bitmap",
            "The same subset as a 64-bit BIER-style bitmap: members 0, 3 and 7 of the parent's ordered list.",
            4,
            Message::SetSubset(bitmap),
        ),
        valid(
            "clear",
            "Remove X now.",
            5,
            Message::Clear(Clear {
                txid: 0x0102_0304_0506_070a,
                group: set.group,
            }),
        ),
        valid(
            "ack",
            "Switch 7 applied the SET_SUBSET: 2 ports in X.",
            6,
            Message::Ack(Ack {
                txid: set.txid,
                switch_id: 7,
                port_count: 2,
            }),
        ),
        valid(
            "nak-not-a-subset",
            "Switch 7 refuses: a member is not in the parent group.",
            7,
            Message::Nak(Nak {
                txid: set.txid,
                switch_id: 7,
                reason: NakReason::NotASubset,
                detail: "fd00:5c::99 is not a member of ff3e::5c:1".into(),
            }),
        ),
        valid(
            "rendezvous-request",
            "A storage node asks for the subset of ff3e::5c:1 reaching three targets for 2 s.",
            8,
            Message::RendezvousRequest(RendezvousRequest {
                request_id: 42,
                vlan: 0,
                parent: set.parent,
                lifetime_ms: 2_000,
                targets: vec![
                    Member::Ipv6(ip("fd00:5c::1")),
                    Member::Ipv6(ip("fd00:5c::4")),
                    Member::Ipv6(ip("fd00:5c::8")),
                ],
            }),
        ),
        valid(
            "rendezvous-grant",
            "The controller grants X with lease 9001 until the given Unix millisecond.",
            9,
            Message::RendezvousGrant(RendezvousGrant {
                request_id: 42,
                outcome: GrantOutcome::Granted {
                    group: set.group,
                    lease_id: 9001,
                    expires_at_ms: NOW_US / 1000 + 2_000,
                    reused: false,
                },
            }),
        ),
        valid(
            "rendezvous-refused",
            "The controller refuses: the pool of the VLAN is exhausted.",
            10,
            Message::RendezvousGrant(RendezvousGrant {
                request_id: 43,
                outcome: GrantOutcome::Refused {
                    reason: RefuseReason::PoolExhausted,
                    detail: "all 256 addresses of ff3e::5c:8000:0/120 are leased".into(),
                },
            }),
        ),
        valid(
            "rendezvous-release",
            "The storage node gives lease 9001 back.",
            11,
            Message::RendezvousRelease(RendezvousRelease { lease_id: 9001 }),
        ),
        valid(
            "release-ack",
            "The controller confirms the release.",
            12,
            Message::ReleaseAck(ReleaseAck {
                lease_id: 9001,
                released: true,
            }),
        ),
    ];

    // Malformed and refused datagrams.
    let mut bad_tag = set_bytes.clone();
    let last = bad_tag.len() - 1;
    bad_tag[last] ^= 0x01;
    let mut bad_magic = set_bytes.clone();
    bad_magic[0] = 0x00;
    let mut bad_version = set_bytes.clone();
    bad_version[2] = 2;
    let mut unknown_type = set_bytes.clone();
    unknown_type[3] = 0x7f;
    let mut long_len = set_bytes.clone();
    long_len[7] = long_len[7].wrapping_add(1);
    let mut multicast_member = seal(
        &key,
        origin(20),
        &Message::SetSubset(SetSubset {
            members: Members::List(vec![Member::Ipv6(ip("fd00:5c::1"))]),
            ..set.clone()
        }),
    );
    // Turn the member's first octet (0xfd) into 0xff: a multicast "member".
    let pos = multicast_member.len() - 32 - 16;
    multicast_member[pos] = 0xff;
    let multicast_member = reseal(&key, &multicast_member);
    let mut huge_count = seal(
        &key,
        origin(21),
        &Message::SetSubset(SetSubset {
            members: Members::List(vec![Member::Mac(mac("02:5c:00:00:00:01"))]),
            ..set.clone()
        }),
    );
    // Member count 1 -> 500: more entries than bytes present.
    let cpos = huge_count.len() - 32 - 7 - 2;
    huge_count[cpos] = 0x01;
    huge_count[cpos + 1] = 0xf4;
    let huge_count = reseal(&key, &huge_count);
    let stale = seal(
        &key,
        Origin {
            timestamp_us: NOW_US - 60_000_000,
            ..origin(22)
        },
        &Message::SetSubset(set.clone()),
    );
    v.extend(replicast_vectors());
    v.extend([
        invalid(
            "truncated-header",
            "Only 10 octets.",
            vec![],
            set_bytes[..10].to_vec(),
            "truncated",
        ),
        invalid(
            "bad-magic",
            "First octet altered.",
            vec![],
            bad_magic,
            "bad-magic",
        ),
        invalid(
            "unsupported-version",
            "Version 2.",
            vec![],
            bad_version,
            "unsupported-version",
        ),
        invalid(
            "unknown-type",
            "Type 0x7f.",
            vec![],
            unknown_type,
            "unknown-type",
        ),
        invalid(
            "length-mismatch",
            "Body Length one more than the body.",
            vec![],
            long_len,
            "length-mismatch",
        ),
        invalid(
            "multicast-member",
            "A member that is a multicast address (re-tagged, so only the field check refuses it).",
            vec![],
            multicast_member,
            "invalid-field",
        ),
        invalid(
            "member-count-overrun",
            "Member count 500 with one entry present: refused before any allocation.",
            vec![],
            huge_count,
            "truncated",
        ),
        invalid(
            "bad-tag",
            "Last octet of the tag flipped.",
            vec![],
            bad_tag,
            "bad-mac",
        ),
        invalid(
            "replay",
            "The set-subset-list datagram received a second time.",
            vec![set_bytes.clone()],
            set_bytes,
            "replay",
        ),
        invalid(
            "stale",
            "Timestamp 60 s behind the receiver's clock.",
            vec![],
            stale,
            "stale",
        ),
    ]);
    v.extend(replicast_invalid());
    v.extend(batch_vectors::vectors());
    v.extend(replicast_identity());
    v.extend(replicast_limits());
    v
}

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

fn replicast_with(
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
    })
}

/// From the client to the three targets (or the group's members).
fn from_client(name: &str, description: &str, seq: u64, message: ReplicastMessage) -> Vector {
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
fn replicast_vectors() -> Vec<Vector> {
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
fn replicast_refused(
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
fn signed_part(bytes: &[u8]) -> Vec<u8> {
    let body_len = usize::from(u16::from_be_bytes([bytes[6], bytes[7]]));
    bytes[..32 + body_len].to_vec()
}

/// Refused Replicast datagrams (re-tagged, so the field checks refuse them).
fn replicast_invalid() -> Vec<Vector> {
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
fn replicast_identity() -> Vec<Vector> {
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
fn reseal(key: &Key, bytes: &[u8]) -> Vec<u8> {
    let body = &bytes[..bytes.len() - 32];
    let mut out = body.to_vec();
    out.extend_from_slice(&key.tag(body));
    out
}

/// Refusals of a target's limits (appended).
fn replicast_limits() -> Vec<Vector> {
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

/// Formats bytes as the draft's hex dump: 16 octets per line, in groups of 4.
pub fn hexdump(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.chunks(4)
                .map(hex::encode)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The draft's file name inside `draft-spec/`.
pub const DRAFT_FILE: &str = "draft-subcast-transactional-subset-multicast.md";
const BEGIN: &str = "<!-- BEGIN GENERATED VECTORS -->";
const END: &str = "<!-- END GENERATED VECTORS -->";

/// The generated part of the draft's appendix, as it stands in `draft`.
pub fn current_appendix(draft: &str) -> Option<&str> {
    let start = draft.find(BEGIN)? + BEGIN.len();
    let end = draft.find(END)?;
    draft.get(start..end)
}

/// Replaces the generated part of the draft's appendix.
pub fn splice_appendix(draft: &str, vectors: &[Vector]) -> Result<String, String> {
    let start = draft
        .find(BEGIN)
        .ok_or("draft has no BEGIN GENERATED VECTORS marker")?;
    let end = draft
        .find(END)
        .ok_or("draft has no END GENERATED VECTORS marker")?;
    Ok(format!(
        "{}{BEGIN}\n\n{}{}",
        &draft[..start],
        appendix(vectors),
        &draft[end..]
    ))
}

/// Appendix A of the draft, generated from the vectors.
pub fn appendix(vectors: &[Vector]) -> String {
    let mut s = String::new();
    for v in vectors {
        let bytes = hex::decode(v.bytes_hex()).expect("vector hex");
        let (desc, what) = match v {
            Vector::Valid(x) => (&x.description, "valid".to_string()),
            Vector::Replicast(x) => (&x.description, "valid Replicast".to_string()),
            Vector::Invalid(x) => (&x.description, format!("refused with `{}`", x.error)),
        };
        s.push_str(&format!(
            "## {} ({what})\n\n{desc}\n\n~~~\n{}\n~~~\n\n",
            v.name(),
            hexdump(&bytes)
        ));
    }
    s
}
