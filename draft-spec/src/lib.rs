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
mod ipv4_vectors;
mod keyed_vectors;
mod replicast_vectors;
pub use keyed_vectors::{KEYED_TXID, vector_transfer_key};
pub use replicast_vectors::{CLIENT_ID, NODE_ID, TARGETS, vector_pair_keys, vector_secret};
use replicast_vectors::{
    replicast_identity, replicast_invalid, replicast_limits, replicast_vectors, reseal,
};

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
    /// PUT_ACCEPT with wrapped keys only: the transfer key (hex) each
    /// target unwraps from its entry of `message.keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_key: Option<String>,
}

/// A keyed DATA datagram (type 0x47) of the transfer that the PUT_ACCEPT
/// vector `transfer` announced: its fields, and the transfer key that
/// computes its tag. With `error` ("bad-mac"), the tag does not verify
/// under that key and a target drops it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyedVector {
    pub name: String,
    pub description: String,
    /// Name of the PUT_ACCEPT vector that announced the transfer.
    pub transfer: String,
    pub transfer_key: String,
    pub txid: u64,
    pub index: u32,
    /// Datagrams of the transfer (from the ACCEPT's size and datagram
    /// payload; not on the wire).
    pub total: u32,
    pub payload: String,
    pub tag: String,
    pub bytes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    Keyed(KeyedVector),
}

impl Vector {
    pub fn name(&self) -> &str {
        match self {
            Vector::Valid(v) => &v.name,
            Vector::Replicast(v) => &v.name,
            Vector::Invalid(v) => &v.name,
            Vector::Keyed(v) => &v.name,
        }
    }
    pub fn bytes_hex(&self) -> &str {
        match self {
            Vector::Valid(v) => &v.bytes,
            Vector::Replicast(v) => &v.bytes,
            Vector::Invalid(v) => &v.bytes,
            Vector::Keyed(v) => &v.bytes,
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
    v.extend(ipv4_vectors::vectors());
    v.extend(replicast_vectors::replicast_catalog());
    v.extend(keyed_vectors::vectors());
    v
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
            Vector::Keyed(x) => match &x.error {
                None => (&x.description, "valid keyed DATA".to_string()),
                Some(e) => (&x.description, format!("keyed DATA refused with `{e}`")),
            },
        };
        s.push_str(&format!(
            "## {} ({what})\n\n{desc}\n\n~~~\n{}\n~~~\n\n",
            v.name(),
            hexdump(&bytes)
        ));
    }
    s
}
