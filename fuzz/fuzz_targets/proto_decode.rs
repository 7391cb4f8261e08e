//! Any byte string decodes to a datagram or an error, never a panic; a
//! datagram that decodes re-encodes to a datagram that decodes the same,
//! and keeps the address family rules (one family per set, IPv4 groups
//! only from 224.0.0.0/4, IP members of the groups' family).
#![no_main]

use libfuzzer_sys::fuzz_target;
use subcast_proto::{
    BatchItem, GroupAddr, Key, Member, Members, Message, Origin, decode, seal,
};

fn check_set(parent: &std::net::Ipv6Addr, group: &std::net::Ipv6Addr, members: &Members) {
    assert!(parent.is_group() && group.is_group());
    assert_eq!(parent.family(), group.family());
    if let Members::List(l) = members {
        check_members(l, parent);
    }
}

fn check_members(list: &[Member], parent: &std::net::Ipv6Addr) {
    for m in list {
        if let Some(f) = m.family() {
            assert_eq!(f, parent.family());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(dg) = decode(data) {
        match &dg.message {
            Message::SetSubset(s) => check_set(&s.parent, &s.group, &s.members),
            Message::Batch(b) => {
                for i in &b.items {
                    match i {
                        BatchItem::Set { parent, group, members, .. } => {
                            check_set(parent, group, members)
                        }
                        BatchItem::Clear { group } => assert!(group.is_group()),
                    }
                }
            }
            Message::RendezvousRequest(r) => check_members(&r.targets, &r.parent),
            Message::Clear(c) => assert!(c.group.is_group()),
            _ => {}
        }
        let key = Key::new(dg.header.key_id, [0; 32]);
        let origin = Origin {
            key_id: dg.header.key_id,
            sender_id: dg.header.sender_id,
            sequence: dg.header.sequence,
            timestamp_us: dg.header.timestamp_us,
        };
        let again = decode(&seal(&key, origin, &dg.message)).expect("re-encoded datagram decodes");
        assert_eq!(again.message, dg.message);
    }
});
