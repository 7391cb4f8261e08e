//! Property tests: every message kind survives encode -> decode unchanged, and
//! arbitrary bytes never make the decoder or the codec panic.

use std::net::Ipv6Addr;

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use subcast_ofp13::*;
use tokio_util::codec::Decoder;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn oxm() -> impl Strategy<Value = Oxm> {
    let mac = any::<[u8; 6]>();
    let ip = any::<[u8; 16]>().prop_map(Ipv6Addr::from);
    let ip4 = any::<[u8; 4]>().prop_map(std::net::Ipv4Addr::from);
    prop_oneof![
        any::<u32>().prop_map(Oxm::InPort),
        any::<u16>().prop_map(Oxm::EthType),
        (mac, proptest::option::of(mac)).prop_map(|(addr, mask)| Oxm::EthDst { addr, mask }),
        (mac, proptest::option::of(mac)).prop_map(|(addr, mask)| Oxm::EthSrc { addr, mask }),
        (any::<u16>(), proptest::option::of(any::<u16>()))
            .prop_map(|(vid, mask)| Oxm::VlanVid { vid, mask }),
        (ip.clone(), proptest::option::of(ip)).prop_map(|(addr, mask)| Oxm::Ipv6Dst { addr, mask }),
        (ip4.clone(), proptest::option::of(ip4))
            .prop_map(|(addr, mask)| Oxm::Ipv4Dst { addr, mask }),
        (
            any::<u16>().prop_filter("not basic", |c| *c != 0x8000),
            0u8..128,
            any::<bool>(),
            bytes(40)
        )
            .prop_map(|(class, field, has_mask, value)| Oxm::Other {
                class,
                field,
                has_mask,
                value
            }),
    ]
}

fn r#match() -> impl Strategy<Value = Match> {
    vec(oxm(), 0..5).prop_map(Match::new)
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (any::<u32>(), any::<u16>()).prop_map(|(port, max_len)| Action::Output { port, max_len }),
        any::<u32>().prop_map(Action::Group),
        (
            any::<u16>().prop_filter("unknown", |t| *t != 0 && *t != 22),
            0usize..4,
            bytes(4)
        )
            .prop_map(|(typ, n, mut data)| {
                data.resize(4 + 8 * n, 0xab);
                Action::Other { typ, data }
            }),
    ]
}

fn instruction() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        any::<u8>().prop_map(Instruction::GotoTable),
        vec(action(), 0..4).prop_map(Instruction::ApplyActions),
        vec(action(), 0..4).prop_map(Instruction::WriteActions),
        Just(Instruction::ClearActions),
        (
            prop_oneof![Just(2u16), Just(6u16), Just(0xffffu16)],
            bytes(20)
        )
            .prop_map(|(typ, data)| Instruction::Other { typ, data }),
    ]
}

fn bucket() -> impl Strategy<Value = Bucket> {
    (
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        vec(action(), 0..4),
    )
        .prop_map(|(weight, watch_port, watch_group, actions)| Bucket {
            weight,
            watch_port,
            watch_group,
            actions,
        })
}

fn port() -> impl Strategy<Value = Port> {
    (
        any::<u32>(),
        any::<[u8; 6]>(),
        any::<[u8; 16]>(),
        any::<[u32; 8]>(),
    )
        .prop_map(|(port_no, hw_addr, name, v)| Port {
            port_no,
            hw_addr,
            name,
            config: v[0],
            state: v[1],
            curr: v[2],
            advertised: v[3],
            supported: v[4],
            peer: v[5],
            curr_speed: v[6],
            max_speed: v[7],
        })
}

fn flow_mod() -> impl Strategy<Value = FlowMod> {
    (
        (
            any::<u64>(),
            any::<u64>(),
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
        ),
        (
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
        ),
        r#match(),
        vec(instruction(), 0..4),
    )
        .prop_map(
            |(
                (cookie, cookie_mask, table_id, command, idle_timeout, hard_timeout),
                (priority, buffer_id, out_port, out_group, flags),
                r#match,
                instructions,
            )| FlowMod {
                cookie,
                cookie_mask,
                table_id,
                command,
                idle_timeout,
                hard_timeout,
                priority,
                buffer_id,
                out_port,
                out_group,
                flags,
                r#match,
                instructions,
            },
        )
}

fn flow_stats() -> impl Strategy<Value = FlowStats> {
    (
        (
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
        ),
        (any::<u64>(), any::<u64>(), any::<u64>()),
        r#match(),
        vec(instruction(), 0..3),
    )
        .prop_map(
            |(
                (
                    table_id,
                    duration_sec,
                    duration_nsec,
                    priority,
                    idle_timeout,
                    hard_timeout,
                    flags,
                ),
                (cookie, packet_count, byte_count),
                r#match,
                instructions,
            )| FlowStats {
                table_id,
                duration_sec,
                duration_nsec,
                priority,
                idle_timeout,
                hard_timeout,
                flags,
                cookie,
                packet_count,
                byte_count,
                r#match,
                instructions,
            },
        )
}

fn hello() -> impl Strategy<Value = Hello> {
    let el = prop_oneof![
        vec(any::<u32>(), 0..3).prop_map(HelloElement::VersionBitmap),
        (2u16..100, bytes(12)).prop_map(|(typ, data)| HelloElement::Other { typ, data }),
    ];
    vec(el, 0..3).prop_map(|elements| Hello { elements })
}

fn message() -> impl Strategy<Value = Message> {
    let mp_req = prop_oneof![
        Just(MultipartRequestBody::PortDesc),
        Just(MultipartRequestBody::GroupDesc),
        Just(MultipartRequestBody::GroupFeatures),
        (
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            r#match()
        )
            .prop_map(
                |(table_id, out_port, out_group, cookie, cookie_mask, r#match)| {
                    MultipartRequestBody::Flow(FlowStatsRequest {
                        table_id,
                        out_port,
                        out_group,
                        cookie,
                        cookie_mask,
                        r#match,
                    })
                }
            ),
        (
            prop_oneof![Just(0u16), Just(12u16), Just(0xffffu16)],
            bytes(24)
        )
            .prop_map(|(typ, body)| MultipartRequestBody::Other { typ, body }),
    ];
    let group_desc = (any::<u8>(), any::<u32>(), vec(bucket(), 0..3)).prop_map(
        |(group_type, group_id, buckets)| GroupDesc {
            group_type,
            group_id,
            buckets,
        },
    );
    let mp_rep = prop_oneof![
        vec(port(), 0..3).prop_map(MultipartReplyBody::PortDesc),
        vec(group_desc, 0..3).prop_map(MultipartReplyBody::GroupDesc),
        vec(flow_stats(), 0..3).prop_map(MultipartReplyBody::Flow),
        (
            any::<u32>(),
            any::<u32>(),
            any::<[u32; 4]>(),
            any::<[u32; 4]>()
        )
            .prop_map(|(types, capabilities, max_groups, actions)| {
                MultipartReplyBody::GroupFeatures(GroupFeatures {
                    types,
                    capabilities,
                    max_groups,
                    actions,
                })
            }),
        (prop_oneof![Just(0u16), Just(12u16)], bytes(24))
            .prop_map(|(typ, body)| MultipartReplyBody::Other { typ, body }),
    ];
    // Messages a bundle carries (never a bundle message itself).
    let bundled = prop_oneof![
        flow_mod().prop_map(Message::FlowMod),
        (any::<u16>(), any::<u8>(), any::<u32>(), vec(bucket(), 0..3)).prop_map(
            |(command, group_type, group_id, buckets)| Message::GroupMod(GroupMod {
                command,
                group_type,
                group_id,
                buckets,
            })
        ),
        Just(Message::BarrierRequest),
    ];
    let bundle = prop_oneof![
        (any::<u32>(), any::<u16>(), any::<u16>(), bytes(16)).prop_map(
            |(bundle_id, typ, flags, properties)| Message::BundleControl(BundleControl {
                bundle_id,
                typ,
                flags,
                properties,
            })
        ),
        (any::<u32>(), any::<u16>(), any::<u32>(), bundled, bytes(16)).prop_map(
            |(bundle_id, flags, xid, m, trailing)| {
                let mut a = BundleAdd::new(bundle_id, flags, xid, m);
                a.trailing = trailing;
                Message::BundleAdd(a)
            }
        ),
    ];
    prop_oneof![
        bundle,
        hello().prop_map(Message::Hello),
        (any::<u16>(), any::<u16>(), bytes(64))
            .prop_map(|(typ, code, data)| Message::Error(ErrorMsg { typ, code, data })),
        bytes(32).prop_map(Message::EchoRequest),
        bytes(32).prop_map(Message::EchoReply),
        Just(Message::FeaturesRequest),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(
                |(datapath_id, n_buffers, n_tables, auxiliary_id, capabilities, reserved)| {
                    Message::FeaturesReply(FeaturesReply {
                        datapath_id,
                        n_buffers,
                        n_tables,
                        auxiliary_id,
                        capabilities,
                        reserved,
                    })
                }
            ),
        Just(Message::GetConfigRequest),
        (any::<u16>(), any::<u16>()).prop_map(|(flags, miss_send_len)| Message::GetConfigReply(
            SwitchConfig {
                flags,
                miss_send_len
            }
        )),
        (any::<u16>(), any::<u16>()).prop_map(|(flags, miss_send_len)| Message::SetConfig(
            SwitchConfig {
                flags,
                miss_send_len
            }
        )),
        (
            any::<u32>(),
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u64>(),
            r#match(),
            bytes(80)
        )
            .prop_map(
                |(buffer_id, total_len, reason, table_id, cookie, r#match, data)| {
                    Message::PacketIn(PacketIn {
                        buffer_id,
                        total_len,
                        reason,
                        table_id,
                        cookie,
                        r#match,
                        data,
                    })
                }
            ),
        (any::<u8>(), port())
            .prop_map(|(reason, port)| Message::PortStatus(PortStatus { reason, port })),
        (any::<u32>(), any::<u32>(), vec(action(), 0..4), bytes(80)).prop_map(
            |(buffer_id, in_port, actions, data)| Message::PacketOut(PacketOut {
                buffer_id,
                in_port,
                actions,
                data
            })
        ),
        flow_mod().prop_map(Message::FlowMod),
        (any::<u16>(), any::<u8>(), any::<u32>(), vec(bucket(), 0..4)).prop_map(
            |(command, group_type, group_id, buckets)| Message::GroupMod(GroupMod {
                command,
                group_type,
                group_id,
                buckets
            })
        ),
        (any::<u16>(), mp_req)
            .prop_map(|(flags, body)| Message::MultipartRequest(MultipartRequest { flags, body })),
        (any::<u16>(), mp_rep)
            .prop_map(|(flags, body)| Message::MultipartReply(MultipartReply { flags, body })),
        Just(Message::BarrierRequest),
        Just(Message::BarrierReply),
        (prop_oneof![Just(4u8), 22u8..=255], bytes(40))
            .prop_map(|(msg_type, body)| Message::Other { msg_type, body }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_decode_round_trip(xid in any::<u32>(), message in message()) {
        let frame = Frame::new(xid, message);
        let bytes = frame.to_bytes().expect("encode");
        prop_assert_eq!(usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), bytes.len());
        let back = Frame::decode(&bytes);
        prop_assert_eq!(back.as_ref(), Ok(&frame));
        // And through the stream codec, split at an arbitrary point.
        let mut codec = OfpCodec;
        let mut buf = BytesMut::from(&bytes[..bytes.len() / 2]);
        prop_assert!(codec.decode(&mut buf).expect("partial").is_none());
        buf.extend_from_slice(&bytes[bytes.len() / 2..]);
        prop_assert_eq!(codec.decode(&mut buf).expect("whole"), Some(frame));
    }

    #[test]
    fn arbitrary_bytes_never_panic(version in prop_oneof![Just(4u8), any::<u8>()], typ in 0u8..25, body in bytes(300)) {
        let mut b = vec![version, typ, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&body);
        let len = b.len() as u16;
        b[2..4].copy_from_slice(&len.to_be_bytes());
        if let Ok(f) = Frame::decode(&b) {
            prop_assert!(f.to_bytes().is_ok());
        }
        let mut codec = OfpCodec;
        let mut buf = BytesMut::from(&body[..]);
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
    }
}

/// A bundle message inside a bundle message stays raw: decoding never
/// recurses more than one level, whatever the input.
#[test]
fn nested_bundles_stay_raw() {
    let inner = Frame::new(
        5,
        Message::BundleAdd(BundleAdd::new(1, 3, 5, Message::BarrierRequest)),
    );
    let outer = Frame::new(
        6,
        Message::BundleAdd(BundleAdd::new(1, 3, 6, inner.message.clone())),
    );
    let bytes = outer.to_bytes().unwrap();
    let back = Frame::decode(&bytes).unwrap();
    let Message::BundleAdd(a) = &back.message else {
        panic!("{back:?}")
    };
    assert!(matches!(
        a.message.message,
        Message::Other { msg_type: 4, .. }
    ));
    assert_eq!(back.to_bytes().unwrap(), bytes);
    // 2,000 levels of nesting (built as bytes) decode in one step too.
    let mut b: Vec<u8> = vec![4, 20, 0, 8, 0, 0, 0, 1];
    for _ in 0..2000 {
        let len = (b.len() + 24) as u16;
        let mut outer = vec![4, 4];
        outer.extend_from_slice(&len.to_be_bytes());
        outer.extend_from_slice(&[0, 0, 0, 1, 0x4f, 0x4e, 0x46, 0, 0, 0, 0x08, 0xfd]);
        outer.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 3]);
        outer.extend_from_slice(&b);
        b = outer;
    }
    let f = Frame::decode(&b).unwrap();
    assert!(matches!(f.message, Message::BundleAdd(_)));
}

#[test]
fn codec_rejects_lengths_below_header() {
    for len in 0u16..8 {
        let mut buf = BytesMut::from(&[4u8, 0, (len >> 8) as u8, len as u8, 0, 0, 0, 1][..]);
        assert!(OfpCodec.decode(&mut buf).is_err(), "length {len}");
    }
    assert_eq!(
        Frame::decode(&[4, 0, 0, 9, 0, 0, 0, 1]),
        Err(Error::BadLength {
            declared: 9,
            actual: 8
        })
    );
    assert_eq!(Frame::decode(&[4, 0, 0]), Err(Error::ShortHeader(3)));
}

#[test]
fn oversized_messages_fail_to_encode_and_leave_buffer_intact() {
    let frame = Frame::new(1, Message::EchoRequest(vec![0; 65_528]));
    let mut buf = BytesMut::from(&b"xy"[..]);
    assert_eq!(frame.encode(&mut buf), Err(Error::TooLong(65_536)));
    assert_eq!(&buf[..], b"xy");
    assert!(
        Frame::new(1, Message::EchoRequest(vec![0; 65_527]))
            .to_bytes()
            .is_ok()
    );
    let big_oxm = Oxm::Other {
        class: 1,
        field: 1,
        has_mask: false,
        value: vec![0; 256],
    };
    let f = Frame::new(
        1,
        Message::FlowMod(FlowMod::add(1, Match::new(vec![big_oxm]), vec![])),
    );
    assert!(matches!(f.to_bytes(), Err(Error::FieldTooLong { .. })));
}
