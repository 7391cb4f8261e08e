//! Property tests: every message survives seal -> decode -> open, and no
//! byte string makes the decoder panic.

use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use subcast_proto::*;

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::Ipv4), Just(Family::Ipv6)]
}

/// A group of either family.
fn multicast() -> impl Strategy<Value = Ipv6Addr> {
    family().prop_flat_map(multicast_of)
}

/// An IPv6 multicast group, or an IPv4 one (224.0.0.0/4) in mapped form.
fn multicast_of(f: Family) -> BoxedStrategy<Ipv6Addr> {
    match f {
        Family::Ipv6 => any::<[u8; 16]>()
            .prop_map(|mut o| {
                o[0] = 0xff;
                Ipv6Addr::from(o)
            })
            .boxed(),
        Family::Ipv4 => any::<[u8; 4]>()
            .prop_map(|mut o| {
                o[0] = 0xe0 | (o[0] & 0x0f);
                group_field(Ipv4Addr::from(o).into())
            })
            .boxed(),
    }
}

fn unicast() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(|mut o| {
        o[0] = 0xfd;
        Ipv6Addr::from(o)
    })
}

fn unicast4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(|mut o| {
        o[0] = 10;
        Ipv4Addr::from(o)
    })
}

/// A member that may name a host in a group of family `f`: its MAC, or
/// its address of that family.
fn member_of(f: Family) -> BoxedStrategy<Member> {
    let mac = any::<[u8; 6]>().prop_map(|m| Member::Mac(MacAddr(m)));
    match f {
        Family::Ipv6 => prop_oneof![mac, unicast().prop_map(Member::Ipv6)].boxed(),
        Family::Ipv4 => prop_oneof![mac, unicast4().prop_map(Member::Ipv4)].boxed(),
    }
}

fn members_of(f: Family) -> impl Strategy<Value = Members> {
    prop_oneof![
        prop::collection::vec(member_of(f), 1..40).prop_map(Members::List),
        prop::collection::btree_set(0usize..4096, 1..20)
            .prop_map(|s| Members::Bitmap(Bitmap::from_indices(s).expect("in range"))),
    ]
}

fn batch_item() -> impl Strategy<Value = BatchItem> {
    prop_oneof![
        family()
            .prop_flat_map(|f| (
                0u16..=4094,
                multicast_of(f),
                multicast_of(f),
                1u32..,
                prop::collection::vec(member_of(f), 1..4).prop_map(Members::List)
            ))
            .prop_filter("X differs from Y", |t| t.1 != t.2)
            .prop_map(|(v, p, g, l, m)| BatchItem::Set {
                vlan: v,
                parent: p,
                group: g,
                lifetime_ms: l,
                members: m,
            }),
        multicast().prop_map(|g| BatchItem::Clear { group: g }),
    ]
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .:/_-]{0,60}"
}

fn message() -> impl Strategy<Value = Message> {
    let backend = prop_oneof![
        Just(BackendKind::LinuxBridge),
        Just(BackendKind::Openflow),
        Just(BackendKind::Snmp)
    ];
    prop_oneof![
        (
            any::<u32>(),
            backend,
            any::<u16>(),
            any::<u32>(),
            any::<u64>(),
            text()
        )
            .prop_map(|(s, b, p, c, i, v)| Message::Hello(Hello {
                switch_id: s,
                backend: b,
                port_count: p,
                table_capacity: c,
                instance: i,
                software_version: v,
            })),
        (any::<u32>(), any::<u64>()).prop_map(|(s, i)| Message::HelloAck(HelloAck {
            switch_id: s,
            instance: i
        })),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c, d)| {
            Message::Heartbeat(Heartbeat {
                switch_id: a,
                installed_groups: b,
                uptime_s: c,
                table_capacity: d,
            })
        }),
        (any::<u64>(), prop::collection::vec(batch_item(), 1..30)).prop_map(|(t, items)| {
            // Groups are unique within a batch.
            let mut seen = std::collections::HashSet::new();
            let items = items
                .into_iter()
                .filter(|i| seen.insert(i.group()))
                .collect();
            Message::Batch(Batch { txid: t, items })
        }),
        (
            any::<u64>(),
            any::<u32>(),
            prop::collection::vec(any::<u16>(), 1..=MAX_BATCH_ITEMS)
        )
            .prop_map(|(t, s, p)| Message::BatchAck(BatchAck {
                txid: t,
                switch_id: s,
                port_counts: p,
            })),
        family()
            .prop_flat_map(|f| (
                any::<u64>(),
                0u16..=4094,
                multicast_of(f),
                multicast_of(f),
                1u32..,
                members_of(f)
            ))
            .prop_filter("X differs from Y", |t| t.2 != t.3)
            .prop_map(|(t, v, p, g, l, m)| Message::SetSubset(SetSubset {
                txid: t,
                vlan: v,
                parent: p,
                group: g,
                lifetime_ms: l,
                members: m,
            })),
        (any::<u64>(), multicast()).prop_map(|(t, g)| Message::Clear(Clear { txid: t, group: g })),
        (any::<u64>(), any::<u32>(), any::<u16>()).prop_map(|(t, s, p)| Message::Ack(Ack {
            txid: t,
            switch_id: s,
            port_count: p,
        })),
        (
            any::<u64>(),
            any::<u32>(),
            prop::sample::select(NakReason::ALL.to_vec()),
            text()
        )
            .prop_map(|(t, s, r, d)| Message::Nak(Nak {
                txid: t,
                switch_id: s,
                reason: r,
                detail: d,
            })),
        family()
            .prop_flat_map(|f| (
                any::<u64>(),
                0u16..=4094,
                multicast_of(f),
                any::<u32>(),
                prop::collection::vec(member_of(f), 1..20)
            ))
            .prop_map(
                |(r, v, p, l, t)| Message::RendezvousRequest(RendezvousRequest {
                    request_id: r,
                    vlan: v,
                    parent: p,
                    lifetime_ms: l,
                    targets: t,
                })
            ),
        (
            any::<u64>(),
            multicast(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(|(r, g, l, e, h)| {
                Message::RendezvousGrant(RendezvousGrant {
                    request_id: r,
                    outcome: GrantOutcome::Granted {
                        group: g,
                        lease_id: l,
                        expires_at_ms: e,
                        reused: h,
                    },
                })
            }),
        (
            any::<u64>(),
            prop::sample::select(RefuseReason::ALL.to_vec()),
            text()
        )
            .prop_map(|(r, reason, d)| Message::RendezvousGrant(RendezvousGrant {
                request_id: r,
                outcome: GrantOutcome::Refused { reason, detail: d },
            })),
        any::<u64>().prop_map(|l| Message::RendezvousRelease(RendezvousRelease { lease_id: l })),
        (any::<u64>(), any::<bool>()).prop_map(|(l, r)| Message::ReleaseAck(ReleaseAck {
            lease_id: l,
            released: r,
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn seal_decode_open_roundtrip(msg in message(), key in any::<[u8; 32]>(), kid in any::<u32>(),
                                  sender in any::<u32>(), seq in 0u64..=1_790_000_000_000_000) {
        // Sequences follow the sender's clock; one ahead of the receiver's
        // clock plus the skew is refused (`sequence_poisoning_refused`).
        let key = Key::new(kid, key);
        let now = 1_790_000_000_000_000u64;
        let origin = Origin { key_id: kid, sender_id: sender, sequence: seq, timestamp_us: now };
        let bytes = seal(&key, origin, &msg);
        prop_assert!(bytes.len() <= MAX_DATAGRAM);
        let dg = decode(&bytes).expect("decodes");
        prop_assert_eq!(&dg.message, &msg);
        prop_assert_eq!(dg.header.sender_id, sender);
        prop_assert_eq!(dg.header.sequence, seq);
        let mut opener = Opener::new(Keyring::new([key.clone()]), ReplayGuard::default());
        let opened = opener.open(&bytes, now).expect("opens");
        prop_assert_eq!(opened.message, msg);
        // The same datagram twice is a replay.
        let replay = matches!(opener.open(&bytes, now), Err(OpenError::Replay { .. }));
        prop_assert!(replay);
    }

    #[test]
    fn any_bit_flip_is_refused(msg in message(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let key = Key::new(9, [3; 32]);
        let now = 1_790_000_000_000_000u64;
        let origin = Origin { key_id: 9, sender_id: 1, sequence: 1, timestamp_us: now };
        let mut bytes = seal(&key, origin, &msg);
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let mut opener = Opener::new(Keyring::new([key]), ReplayGuard::default());
        prop_assert!(opener.open(&bytes, now).is_err());
    }

    #[test]
    fn decode_is_total(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_is_total_with_valid_header(msg_type in any::<u8>(), body in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut b = vec![0x53, 0x43, 1, msg_type, 0, 0];
        b.extend_from_slice(&(body.len() as u16).to_be_bytes());
        b.extend_from_slice(&[0; 24]);
        b.extend_from_slice(&body);
        b.extend_from_slice(&[0; 32]);
        let _ = decode(&b);
    }

    /// Groups of two families in one set, an IP member of the other
    /// family, an IPv4 multicast member or an IPv4 "group" outside
    /// 224.0.0.0/4 never decode; what decodes keeps one family per set.
    #[test]
    fn family_rules(
        f in family(),
        p6 in multicast_of(Family::Ipv6),
        p4 in multicast_of(Family::Ipv4),
        m6 in unicast(),
        m4 in unicast4(),
        mc4 in any::<[u8; 4]>(),
        bad in any::<[u8; 4]>(),
    ) {
        let key = Key::new(9, [3; 32]);
        let origin = Origin { key_id: 9, sender_id: 1, sequence: 1, timestamp_us: 1 };
        let (parent, other, wrong) = match f {
            Family::Ipv6 => (p6, p4, Member::Ipv4(m4)),
            Family::Ipv4 => (p4, p6, Member::Ipv6(m6)),
        };
        let set = |group, members: Vec<Member>| Message::SetSubset(SetSubset {
            txid: 1, vlan: 0, parent, group, lifetime_ms: 1, members: Members::List(members),
        });
        let refused = |m: &Message| decode(&seal(&key, origin, m)).map_err(|e| e.kind());
        let same = group_field(std::net::IpAddr::V6("ff3e::1".parse().unwrap()));
        let group = if f == Family::Ipv6 { same } else { group_field(Ipv4Addr::new(239, 0, 0, 1).into()) };
        prop_assume!(group != parent);
        let mac = Member::Mac(MacAddr([2, 0, 0, 0, 0, 1]));
        prop_assert!(refused(&set(group, vec![mac])).is_ok());
        prop_assert_eq!(refused(&set(other, vec![mac])).err(), Some("invalid-field"));
        prop_assert_eq!(refused(&set(group, vec![mac, wrong])).err(), Some("invalid-field"));
        let request = Message::RendezvousRequest(RendezvousRequest {
            request_id: 1, vlan: 0, parent, lifetime_ms: 1, targets: vec![wrong],
        });
        prop_assert_eq!(refused(&request).err(), Some("invalid-field"));
        let mut mc = mc4;
        mc[0] = 0xe0 | (mc[0] & 0x0f);
        let mc_member = set(group, vec![Member::Ipv4(Ipv4Addr::from(mc))]);
        if f == Family::Ipv4 {
            prop_assert_eq!(refused(&mc_member).err(), Some("invalid-field"));
        }
        let outside = Ipv4Addr::from(bad);
        prop_assume!(!outside.is_multicast());
        let clear = Message::Clear(Clear { txid: 1, group: group_field(outside.into()) });
        prop_assert_eq!(refused(&clear).err(), Some("invalid-field"));
    }
}

#[test]
fn wrong_key_is_bad_auth() {
    let msg = Message::Clear(Clear {
        txid: 1,
        group: "ff3e::1".parse().unwrap(),
    });
    let now = 1_790_000_000_000_000u64;
    let bytes = seal(
        &Key::new(1, [1; 32]),
        Origin {
            key_id: 1,
            sender_id: 1,
            sequence: 1,
            timestamp_us: now,
        },
        &msg,
    );
    let mut o = Opener::new(Keyring::new([Key::new(1, [2; 32])]), ReplayGuard::default());
    let e = o.open(&bytes, now).unwrap_err();
    assert_eq!(e.nak_reason(), NakReason::BadAuth);
    let mut o = Opener::new(Keyring::new([Key::new(2, [1; 32])]), ReplayGuard::default());
    assert_eq!(o.open(&bytes, now).unwrap_err(), OpenError::UnknownKey(1));
}

#[test]
fn sealer_sequences_increase_across_restart() {
    let k = Key::new(1, [1; 32]);
    let mut s = Sealer::new(k.clone(), 5, 1000);
    let a = decode(&s.seal(
        &Message::Heartbeat(Heartbeat {
            switch_id: 5,
            installed_groups: 0,
            uptime_s: 0,
            table_capacity: 0,
        }),
        1000,
    ))
    .unwrap();
    let mut s2 = Sealer::new(k, 5, 2000);
    let b = decode(&s2.seal(
        &Message::Heartbeat(Heartbeat {
            switch_id: 5,
            installed_groups: 0,
            uptime_s: 0,
            table_capacity: 0,
        }),
        2000,
    ))
    .unwrap();
    assert!(b.header.sequence > a.header.sequence);
}

fn sealed(msg: &Message) -> Vec<u8> {
    seal(
        &Key::new(1, [1; 32]),
        Origin {
            key_id: 1,
            sender_id: 1,
            sequence: 1,
            timestamp_us: 1,
        },
        msg,
    )
}

fn set_item(group: &str, members: usize) -> BatchItem {
    BatchItem::Set {
        vlan: 0,
        parent: "ff3e::5c:1".parse().unwrap(),
        group: group.parse().unwrap(),
        lifetime_ms: 5000,
        members: Members::List(
            (0..members)
                .map(|i| Member::Mac(MacAddr([2, 0x5c, 0, 0, 0, i as u8])))
                .collect(),
        ),
    }
}

#[test]
fn batch_limits() {
    // The largest batch of typical items (three MAC members) fits a datagram.
    let items: Vec<BatchItem> = (0..MAX_BATCH_ITEMS)
        .map(|i| set_item(&format!("ff05::5c:2:{i:x}"), 3))
        .collect();
    let b = Batch { txid: 7, items };
    let bytes = sealed(&Message::Batch(b.clone()));
    assert!(bytes.len() <= MAX_DATAGRAM, "{} octets", bytes.len());
    assert_eq!(b.body_len() + 64, bytes.len());
    assert_eq!(decode(&bytes).unwrap().message, Message::Batch(b.clone()));

    // One more item than allowed is refused before anything is read.
    let mut over = b.clone();
    over.items.truncate(3);
    let mut bytes = sealed(&Message::Batch(over));
    let count_at = 32 + 8;
    bytes[count_at..count_at + 2].copy_from_slice(&((MAX_BATCH_ITEMS + 1) as u16).to_be_bytes());
    assert_eq!(decode(&bytes).unwrap_err().kind(), "invalid-field");

    // An empty batch and a group named twice are refused.
    let empty = sealed(&Message::Batch(Batch {
        txid: 1,
        items: vec![],
    }));
    assert_eq!(decode(&empty).unwrap_err().kind(), "invalid-field");
    let twice = sealed(&Message::Batch(Batch {
        txid: 1,
        items: vec![
            set_item("ff05::5c:2:1", 3),
            BatchItem::Clear {
                group: "ff05::5c:2:1".parse().unwrap(),
            },
        ],
    }));
    assert_eq!(decode(&twice).unwrap_err().kind(), "invalid-field");
}

#[test]
fn batch_item_is_the_single_message() {
    let item = set_item("ff05::5c:2:9", 2);
    let Message::SetSubset(s) = item.to_single(77) else {
        panic!("set item is a SET_SUBSET")
    };
    assert_eq!(s.txid, 77);
    assert_eq!(BatchItem::from_set(&s), item);
}
