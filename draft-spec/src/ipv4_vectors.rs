//! Vectors of IPv4 groups and members (issue 21): the seed example over
//! IPv4 in every message that names a group or a member, a BATCH mixing
//! the two families, and the refusals (an IPv4 multicast member, an IPv4
//! group outside 224.0.0.0/4, families mixed inside one group). IPv4
//! groups travel in IPv4-mapped form (`::ffff:239.92.0.1`); IPv4 members
//! have member type 3. Appended so that earlier files keep their numbers.

use super::replicast_vectors::{TARGETS, from_client, replicast_refused, vector_pair_keys};
use super::{
    CLIENT_ID, NODE_ID, NOW_US, Vector, invalid, ip, mac, origin, seed_set_subset, valid,
    vector_key,
};
use std::net::Ipv4Addr;
use subcast_proto::replicast::{self, ChunkKind, Hash32, PutAccept, ReplicastMessage};
use subcast_proto::*;

fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("literal IPv4 address")
}

fn g4(s: &str) -> std::net::Ipv6Addr {
    group_field(v4(s).into())
}

/// The seed subset over IPv4: parent 239.92.0.1, X = 239.92.128.1,
/// members X1 (IPv4), X4 (MAC), X8 (IPv4).
pub fn seed_set_subset_ipv4() -> SetSubset {
    SetSubset {
        txid: 0x0102_0304_0506_0900,
        vlan: 0,
        parent: g4("239.92.0.1"),
        group: g4("239.92.128.1"),
        lifetime_ms: 5_000,
        members: Members::List(vec![
            Member::Ipv4(v4("10.92.0.1")),
            Member::Mac(mac("02:5c:00:00:00:04")),
            Member::Ipv4(v4("10.92.0.8")),
        ]),
    }
}

pub(crate) fn vectors() -> Vec<Vector> {
    let key = vector_key();
    let set = seed_set_subset_ipv4();
    let set6 = seed_set_subset();
    let chunk: Hash32 = *blake3::hash(b"hello world\n").as_bytes();
    let accept = |group| PutAccept {
        txid: 0x00c0_ffee_0000_0004,
        chunk_id: chunk,
        size: 12,
        kind: ChunkKind::Data,
        datagram_payload: 1392,
        group,
        targets: TARGETS.to_vec(),
        keys: Vec::new(),
    };
    let bad_accept = replicast::seal(
        &vector_pair_keys(CLIENT_ID),
        81,
        NOW_US,
        &TARGETS,
        &ReplicastMessage::PutAccept(accept(g4("10.92.0.1"))),
    )
    .expect("vector receivers known");
    let one_member = |m: Member| SetSubset {
        members: Members::List(vec![m]),
        ..set.clone()
    };
    vec![
        valid(
            "set-subset-ipv4",
            "X = 239.92.128.1 restricted to X1 (IPv4), X4 (MAC), X8 (IPv4) of parent 239.92.0.1, untagged, 5 s: both groups IPv4-mapped, IPv4 members of type 3.",
            71,
            Message::SetSubset(set.clone()),
        ),
        valid(
            "set-subset-ipv4-bitmap",
            "The same IPv4 subset as a BIER-style bitmap: members 0, 3 and 7 of the parent's ordered list (the bitmap form is the same for both families).",
            72,
            Message::SetSubset(SetSubset {
                txid: set.txid + 1,
                members: Members::Bitmap(Bitmap::from_indices([0, 3, 7]).expect("small")),
                ..set.clone()
            }),
        ),
        valid(
            "clear-ipv4",
            "Remove the IPv4 group X now.",
            73,
            Message::Clear(Clear {
                txid: set.txid + 2,
                group: set.group,
            }),
        ),
        valid(
            "rendezvous-request-ipv4",
            "A storage node asks for the subset of 239.92.0.1 reaching three IPv4 targets for 2 s.",
            74,
            Message::RendezvousRequest(RendezvousRequest {
                request_id: 46,
                vlan: 0,
                parent: set.parent,
                lifetime_ms: 2_000,
                targets: vec![
                    Member::Ipv4(v4("10.92.0.1")),
                    Member::Ipv4(v4("10.92.0.4")),
                    Member::Ipv4(v4("10.92.0.8")),
                ],
            }),
        ),
        valid(
            "rendezvous-grant-ipv4",
            "The controller grants the IPv4 group 239.92.128.1 with lease 9003.",
            75,
            Message::RendezvousGrant(RendezvousGrant {
                request_id: 46,
                outcome: GrantOutcome::Granted {
                    group: set.group,
                    lease_id: 9003,
                    expires_at_ms: NOW_US / 1000 + 2_000,
                    reused: false,
                },
            }),
        ),
        valid(
            "batch-dual-stack",
            "One BATCH for a dual-stack forwarder: set the IPv6 seed subset and the IPv4 one, clear an IPv4 group; each item is of one family.",
            76,
            Message::Batch(Batch {
                txid: 0x0102_0304_0506_0a00,
                items: vec![
                    BatchItem::from_set(&set6),
                    BatchItem::from_set(&set),
                    BatchItem::Clear {
                        group: g4("239.92.128.3"),
                    },
                ],
            }),
        ),
        from_client(
            "put-accept-ipv4",
            "The sender accepts nodes 1, 4 and 8 and names the IPv4 rendezvous group 239.92.128.1.",
            77,
            ReplicastMessage::PutAccept(accept(set.group)),
        ),
        invalid(
            "ipv4-multicast-member",
            "An IPv4 member that is a multicast address (239.92.0.9).",
            vec![],
            seal(
                &key,
                origin(78),
                &Message::SetSubset(one_member(Member::Ipv4(v4("239.92.0.9")))),
            ),
            "invalid-field",
        ),
        invalid(
            "ipv4-group-not-multicast",
            "A subset group 10.92.128.1 (IPv4-mapped): outside 224.0.0.0/4.",
            vec![],
            seal(
                &key,
                origin(79),
                &Message::SetSubset(SetSubset {
                    group: g4("10.92.128.1"),
                    ..set.clone()
                }),
            ),
            "invalid-field",
        ),
        invalid(
            "mixed-family-groups",
            "An IPv4 subset group under an IPv6 parent group.",
            vec![],
            seal(
                &key,
                origin(80),
                &Message::SetSubset(SetSubset {
                    parent: set6.parent,
                    ..set.clone()
                }),
            ),
            "invalid-field",
        ),
        invalid(
            "mixed-family-member",
            "An IPv6 member in an IPv4 group (a MAC member would fit either).",
            vec![],
            seal(
                &key,
                origin(82),
                &Message::SetSubset(one_member(Member::Ipv6(ip("fd00:5c::1")))),
            ),
            "invalid-field",
        ),
        invalid(
            "rendezvous-request-mixed-family",
            "A RENDEZVOUS_REQUEST for an IPv6 parent naming an IPv4 target.",
            vec![],
            seal(
                &key,
                origin(83),
                &Message::RendezvousRequest(RendezvousRequest {
                    request_id: 47,
                    vlan: 0,
                    parent: set6.parent,
                    lifetime_ms: 2_000,
                    targets: vec![Member::Ipv4(v4("10.92.0.1"))],
                }),
            ),
            "invalid-field",
        ),
        invalid(
            "ipv4-mapped-member",
            "An IPv6 member (type 2) holding an IPv4-mapped address: IPv4 members have type 3.",
            vec![],
            seal(
                &key,
                origin(84),
                &Message::SetSubset(SetSubset {
                    members: Members::List(vec![Member::Ipv6(ip("::ffff:10.92.0.1"))]),
                    ..set6.clone()
                }),
            ),
            "invalid-field",
        ),
        replicast_refused(
            "put-accept-ipv4-not-multicast",
            "PUT_ACCEPT naming 10.92.0.1 (IPv4-mapped) as its group: neither multicast nor ::.",
            CLIENT_ID,
            NODE_ID,
            bad_accept,
            "invalid-field",
        ),
    ]
}
