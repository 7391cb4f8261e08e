//! Vectors of the messages added for transaction rates: HELLO_ACK, BATCH,
//! BATCH_ACK, a reused grant and the table-full refusal, and the batches a
//! receiver must refuse. They follow the first 36 vectors so that the
//! earlier files keep their numbers.

use super::{Vector, invalid, ip, mac, origin, reseal, seed_set_subset, valid, vector_key};
use subcast_proto::*;

pub(crate) fn vectors() -> Vec<Vector> {
    let set = seed_set_subset();
    let x2 = ip("ff3e::5c:8000:2");
    let batch = Batch {
        txid: 0x0102_0304_0506_0800,
        items: vec![
            BatchItem::from_set(&set),
            BatchItem::Set {
                vlan: 0,
                parent: set.parent,
                group: x2,
                lifetime_ms: 5_000,
                members: Members::List(vec![
                    Member::Mac(mac("02:5c:00:00:00:02")),
                    Member::Mac(mac("02:5c:00:00:00:05")),
                    Member::Mac(mac("02:5c:00:00:00:09")),
                ]),
            },
            BatchItem::Clear {
                group: ip("ff3e::5c:8000:3"),
            },
        ],
    };
    let key = vector_key();
    let one = seal(
        &key,
        origin(60),
        &Message::Batch(Batch {
            txid: 1,
            items: vec![BatchItem::Clear {
                group: ip("ff3e::5c:8000:3"),
            }],
        }),
    );
    // Item count 1 -> 0.
    let mut empty = one.clone();
    empty[32 + 9] = 0;
    let twice = seal(
        &key,
        origin(61),
        &Message::Batch(Batch {
            txid: 1,
            items: vec![
                BatchItem::Clear {
                    group: ip("ff3e::5c:8000:3"),
                },
                BatchItem::Clear {
                    group: ip("ff3e::5c:8000:4"),
                },
            ],
        }),
    );
    // The second item's group -> the first item's group.
    let mut dup = twice.clone();
    let second = 32 + 10 + 17 + 1;
    dup[second + 15] = 0x03;
    vec![
        valid(
            "hello-ack",
            "The controller received the HELLO of switch 7's current instance.",
            37,
            Message::HelloAck(HelloAck {
                switch_id: 7,
                instance: super::NOW_US - 5_000_000,
            }),
        ),
        valid(
            "batch",
            "One instruction: set X (the seed subset), set X2 to X2, X5, X9 by MAC, clear X3; all or nothing.",
            38,
            Message::Batch(batch.clone()),
        ),
        valid(
            "batch-ack",
            "Switch 7 applied the batch: 2 ports in X, 3 in X2, X3 removed.",
            39,
            Message::BatchAck(BatchAck {
                txid: batch.txid,
                switch_id: 7,
                port_counts: vec![2, 3, 0],
            }),
        ),
        valid(
            "rendezvous-grant-reused",
            "A grant of a group already installed for the same target set: no switch was updated.",
            40,
            Message::RendezvousGrant(RendezvousGrant {
                request_id: 44,
                outcome: GrantOutcome::Granted {
                    group: set.group,
                    lease_id: 9002,
                    expires_at_ms: super::NOW_US / 1000 + 2_000,
                    reused: true,
                },
            }),
        ),
        valid(
            "rendezvous-refused-table-full",
            "The controller refuses: a switch in scope has no room and holds nothing evictable.",
            41,
            Message::RendezvousGrant(RendezvousGrant {
                request_id: 45,
                outcome: GrantOutcome::Refused {
                    reason: RefuseReason::TableFull,
                    detail: "switch B (id 2) holds 64 of 64 groups, all in use".into(),
                },
            }),
        ),
        invalid(
            "batch-empty",
            "A BATCH with Item Count 0.",
            vec![],
            reseal(&key, &empty),
            "invalid-field",
        ),
        invalid(
            "batch-duplicate-group",
            "A BATCH naming the same subset group in two items.",
            vec![],
            reseal(&key, &dup),
            "invalid-field",
        ),
    ]
}
