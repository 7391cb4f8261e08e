//! The learning-switch pipeline the backend installs on the bridge.
//!
//! Table 0 (sources): `in_port=P, eth_src=M -> goto 1` per learned host
//! (priority 10); ND (ICMPv6 135/136) -> CONTROLLER + goto 1 (priority 20, so IPv6
//! addresses are learned even from known hosts); miss -> CONTROLLER.
//! Table 1 (forwarding): subset groups `ipv6_dst=X -> group` (priority 100);
//! `eth_dst=M -> output:P` per learned host (priority 10); optionally wide-scope
//! IPv6 multicast -> drop (priority 1, link-local scopes still flood at 2); miss ->
//! FLOOD. The controller answers a table-0 miss by learning and resubmitting the
//! packet to table 0 (PACKET_OUT to `OFPP_TABLE`).

use super::{COOKIE_KIND_MASK, LEARN_COOKIE};
use ipnet::Ipv6Net;
use std::net::Ipv6Addr;
use subcast_ofp13::action::Instruction;
use subcast_ofp13::flow_mod::{OFPFC_DELETE, OFPTT_ALL};
use subcast_ofp13::oxm::OFPXMC_OPENFLOW_BASIC;
use subcast_ofp13::port::{OFPP_ANY, OFPP_CONTROLLER, OFPP_FLOOD};
use subcast_ofp13::{Action, FlowMod, Match, Message, Oxm};

/// Table of known sources.
pub const SRC_TABLE: u8 = 0;
/// Forwarding table (learned destinations, subset groups).
pub const FWD_TABLE: u8 = 1;
/// Cookie of the ND-to-controller flow (PACKET_INs with it are only learned from).
pub const NDP_COOKIE: u64 = LEARN_COOKIE | 1;
/// Cookie of the flow dropping traffic to uninstalled rendezvous groups.
pub const GUARD_COOKIE: u64 = LEARN_COOKIE | 2;
/// Priority of the guard flow (below subset groups at 100).
const PRIO_GUARD: u16 = 50;

const PRIO_LEARNED: u16 = 10;

fn flow(table_id: u8, priority: u16, m: Vec<Oxm>, ins: Vec<Instruction>) -> Message {
    Message::FlowMod(FlowMod {
        table_id,
        cookie: LEARN_COOKIE,
        ..FlowMod::add(priority, Match::new(m), ins)
    })
}

fn basic(field: u8, value: u8) -> Oxm {
    Oxm::Other {
        class: OFPXMC_OPENFLOW_BASIC,
        field,
        has_mask: false,
        value: vec![value],
    }
}

fn mcast_scope(scope: u8) -> Oxm {
    let mut a = [0u8; 16];
    a[0] = 0xff;
    a[1] = scope;
    let mut m = [0u8; 16];
    m[0] = 0xff;
    m[1] = if scope == 0 { 0 } else { 0x0f };
    Oxm::Ipv6Dst {
        addr: Ipv6Addr::from(a),
        mask: Some(Ipv6Addr::from(m)),
    }
}

/// Drops traffic to `range` that no subset-group flow matches, so a
/// rendezvous group reaches no one before `install` and after `remove`
/// (an IPv4 range, IPv4-mapped, matches `ipv4_dst`).
pub fn guard_flow(range: Ipv6Net) -> Message {
    let m = match range.network().to_ipv4_mapped() {
        Some(v4) => {
            let len = u32::from(range.prefix_len().saturating_sub(96));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            vec![
                Oxm::EthType(0x0800),
                Oxm::Ipv4Dst {
                    addr: v4,
                    mask: Some(mask.into()),
                },
            ]
        }
        None => vec![
            Oxm::EthType(0x86dd),
            Oxm::Ipv6Dst {
                addr: range.network(),
                mask: Some(range.netmask()),
            },
        ],
    };
    Message::FlowMod(FlowMod {
        table_id: FWD_TABLE,
        cookie: GUARD_COOKIE,
        ..FlowMod::add(PRIO_GUARD, Match::new(m), vec![])
    })
}

/// Removes an earlier session's pipeline and installs a fresh one.
pub fn base_flows(flood_unknown_multicast: bool, guard: Option<Ipv6Net>) -> Vec<Message> {
    let to_controller = || Instruction::ApplyActions(vec![Action::output(OFPP_CONTROLLER)]);
    let flood = || Instruction::ApplyActions(vec![Action::output(OFPP_FLOOD)]);
    let mut v = vec![
        Message::FlowMod(FlowMod {
            command: OFPFC_DELETE,
            table_id: OFPTT_ALL,
            cookie: LEARN_COOKIE,
            cookie_mask: COOKIE_KIND_MASK,
            ..FlowMod::add(0, Match::default(), vec![])
        }),
        flow(SRC_TABLE, 0, vec![], vec![to_controller()]),
        flow(FWD_TABLE, 0, vec![], vec![flood()]),
    ];
    for icmp_type in [135, 136] {
        v.push(Message::FlowMod(FlowMod {
            table_id: SRC_TABLE,
            cookie: NDP_COOKIE,
            ..FlowMod::add(
                20,
                Match::new(vec![
                    Oxm::EthType(0x86dd),
                    basic(10, 58),
                    basic(29, icmp_type),
                ]),
                vec![to_controller(), Instruction::GotoTable(FWD_TABLE)],
            )
        }));
    }
    v.extend(guard.map(guard_flow));
    if !flood_unknown_multicast {
        v.push(flow(
            FWD_TABLE,
            1,
            vec![Oxm::EthType(0x86dd), mcast_scope(0)],
            vec![],
        ));
        for scope in [1, 2] {
            v.push(flow(
                FWD_TABLE,
                2,
                vec![Oxm::EthType(0x86dd), mcast_scope(scope)],
                vec![flood()],
            ));
        }
    }
    v
}

/// Flows for a host with MAC `mac` learned on `port`.
pub fn learned_flows(mac: [u8; 6], port: u32, idle_timeout: u16) -> Vec<Message> {
    let with_idle = |m: Message| match m {
        Message::FlowMod(f) => Message::FlowMod(FlowMod { idle_timeout, ..f }),
        other => other,
    };
    vec![
        with_idle(flow(
            SRC_TABLE,
            PRIO_LEARNED,
            vec![
                Oxm::InPort(port),
                Oxm::EthSrc {
                    addr: mac,
                    mask: None,
                },
            ],
            vec![Instruction::GotoTable(FWD_TABLE)],
        )),
        with_idle(flow(
            FWD_TABLE,
            PRIO_LEARNED,
            vec![Oxm::EthDst {
                addr: mac,
                mask: None,
            }],
            vec![Instruction::ApplyActions(vec![Action::output(port)])],
        )),
    ]
}

/// Deletes the learned flows of a removed port: forwarding flows that output to it
/// and source flows matching `in_port` = it.
pub fn forget_port(port: u32) -> Vec<Message> {
    let del = |table_id, m: Vec<Oxm>, out_port| {
        Message::FlowMod(FlowMod {
            command: OFPFC_DELETE,
            table_id,
            cookie: LEARN_COOKIE,
            cookie_mask: u64::MAX,
            out_port,
            ..FlowMod::add(0, Match::new(m), vec![])
        })
    };
    vec![
        del(FWD_TABLE, vec![], port),
        del(SRC_TABLE, vec![Oxm::InPort(port)], OFPP_ANY),
    ]
}
