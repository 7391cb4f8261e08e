//! The bridge's unicast forwarding table (FDB) and IPv6/IPv4 neighbour tables,
//! mirrored from rtnetlink: one dump at start, then RTM_NEWNEIGH /
//! RTM_DELNEIGH notifications. No dump per instruction.
//!
//! It also follows each port's spanning-tree state (IFLA_BRPORT_STATE, from
//! the link dump and RTM_NEWLINK notifications): a port that does not
//! forward leads to no member.

use netlink_packet_core::Nla;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{
    InfoPortData, LinkAttribute, LinkInfo, LinkMessage, LinkProtoInfoBridge,
};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use subcast_proto::MacAddr;

/// What the bridge knows about unicast addresses and its ports.
#[derive(Debug, Clone, Default)]
pub struct FdbCache {
    pub bridge_ifindex: u32,
    /// (VLAN id, MAC) -> bridge port ifindex. VLAN 0 when the bridge does
    /// not filter VLANs.
    macs: HashMap<(u16, MacAddr), u32>,
    /// IPv6 -> MAC from the bridge device's own neighbour table.
    neigh6: HashMap<Ipv6Addr, MacAddr>,
    /// IPv4 -> MAC from the bridge device's own ARP table.
    neigh4: HashMap<Ipv4Addr, MacAddr>,
    /// Bridge ports: ifindex -> name.
    pub ports: BTreeMap<u32, String>,
    /// Spanning-tree state (BR_STATE_*) of the ports whose state the kernel
    /// reported; a port missing here counts as forwarding.
    states: BTreeMap<u32, u8>,
}

/// BR_STATE_FORWARDING.
pub const BR_STATE_FORWARDING: u8 = 3;
/// IFLA_BRPORT_STATE inside IFLA_PROTINFO (AF_BRIDGE link messages).
const IFLA_BRPORT_STATE: u16 = 1;

/// A readable name of a BR_STATE_* value.
pub fn state_name(s: u8) -> &'static str {
    match s {
        0 => "disabled",
        1 => "listening",
        2 => "learning",
        3 => "forwarding",
        4 => "blocking",
        _ => "unknown",
    }
}

/// The bridge port state a link message carries, if any: IFLA_BRPORT_STATE
/// in the port's link info (AF_UNSPEC) or in IFLA_PROTINFO (the AF_BRIDGE
/// notification the bridge sends when the spanning tree moves a port).
pub fn port_state(msg: &LinkMessage) -> Option<u8> {
    use netlink_packet_route::link::InfoBridgePort;
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::PortData(InfoPortData::BridgePort(v)) => v.iter().find_map(|x| match x {
                InfoBridgePort::State(s) => Some(u8::from(*s)),
                _ => None,
            }),
            _ => None,
        }),
        LinkAttribute::ProtoInfoBridge(v) => v.iter().find_map(|x| match x {
            LinkProtoInfoBridge::Other(nla) if nla.kind() == IFLA_BRPORT_STATE => {
                let mut b = vec![0u8; nla.value_len()];
                nla.emit_value(&mut b);
                b.first().copied()
            }
            _ => None,
        }),
        _ => None,
    })
}

impl FdbCache {
    pub fn new(bridge_ifindex: u32) -> Self {
        FdbCache {
            bridge_ifindex,
            ..FdbCache::default()
        }
    }

    /// The port toward `mac` on `vlan`; falls back to VLAN 0 entries (a
    /// bridge without VLAN filtering learns everything on VLAN 0).
    pub fn port_of_mac(&self, vlan: u16, mac: &MacAddr) -> Option<u32> {
        self.macs
            .get(&(vlan, *mac))
            .or_else(|| self.macs.get(&(0, *mac)))
            .copied()
            .filter(|p| self.ports.contains_key(p) && self.forwards(*p))
    }

    /// Whether `port` forwards (its spanning-tree state is forwarding, or
    /// the kernel never reported one).
    pub fn forwards(&self, port: u32) -> bool {
        self.states
            .get(&port)
            .is_none_or(|s| *s == BR_STATE_FORWARDING)
    }

    /// The reported spanning-tree state of `port`.
    pub fn state(&self, port: u32) -> Option<u8> {
        self.states.get(&port).copied()
    }

    pub fn mac_of_ipv6(&self, a: &Ipv6Addr) -> Option<MacAddr> {
        self.neigh6.get(a).copied()
    }

    pub fn mac_of_ipv4(&self, a: &Ipv4Addr) -> Option<MacAddr> {
        self.neigh4.get(a).copied()
    }

    pub fn fdb_len(&self) -> usize {
        self.macs.len()
    }

    /// Applies a neighbour message (from the dump or a notification).
    /// Returns whether a MAC was placed behind a port it was not behind.
    pub fn apply_neighbour(&mut self, msg: &NeighbourMessage, deleted: bool) -> bool {
        let mut mac = None;
        let mut vlan = 0u16;
        let mut master = None;
        let mut dst = None;
        let mut dst4 = None;
        for a in &msg.attributes {
            match a {
                NeighbourAttribute::LinkLayerAddress(l) => {
                    if let Ok(m) = <[u8; 6]>::try_from(l.as_slice()) {
                        mac = Some(MacAddr(m));
                    }
                }
                NeighbourAttribute::Vlan(v) => vlan = *v,
                NeighbourAttribute::Controller(m) => master = Some(*m),
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => dst = Some(*a),
                NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => dst4 = Some(*a),
                _ => {}
            }
        }
        let port = msg.header.ifindex;
        match msg.header.family {
            AddressFamily::Bridge => {
                let Some(mac) = mac else { return false };
                if master != Some(self.bridge_ifindex) || port == self.bridge_ifindex {
                    return false;
                }
                if deleted {
                    if self.macs.get(&(vlan, mac)) == Some(&port) {
                        self.macs.remove(&(vlan, mac));
                    }
                } else {
                    return self.macs.insert((vlan, mac), port) != Some(port);
                }
            }
            AddressFamily::Inet6 if port == self.bridge_ifindex => {
                let Some(dst) = dst else { return false };
                match (deleted, mac) {
                    (false, Some(m)) => {
                        self.neigh6.insert(dst, m);
                    }
                    (true, _) => {
                        self.neigh6.remove(&dst);
                    }
                    _ => {}
                }
            }
            AddressFamily::Inet if port == self.bridge_ifindex => {
                let Some(dst) = dst4 else { return false };
                match (deleted, mac) {
                    (false, Some(m)) => {
                        self.neigh4.insert(dst, m);
                    }
                    (true, _) => {
                        self.neigh4.remove(&dst);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        false
    }

    /// Applies a link message: tracks which interfaces are ports of our
    /// bridge and their spanning-tree state. Returns the port's new state
    /// when it changed.
    pub fn apply_link(&mut self, msg: &LinkMessage, deleted: bool) -> Option<u8> {
        let idx = msg.header.index;
        let mut name = None;
        let mut master = None;
        for a in &msg.attributes {
            match a {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::Controller(m) => master = Some(*m),
                _ => {}
            }
        }
        if !deleted && master == Some(self.bridge_ifindex) {
            self.ports
                .insert(idx, name.unwrap_or_else(|| format!("if{idx}")));
            let state = port_state(msg)?;
            let old = self.states.insert(idx, state);
            (old != Some(state)).then_some(state)
        } else {
            self.states.remove(&idx);
            if self.ports.remove(&idx).is_some() {
                self.macs.retain(|_, p| *p != idx);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::{BridgePortState, InfoBridgePort};
    use netlink_packet_route::neighbour::NeighbourHeader;

    fn fdb_msg(port: u32, master: u32, mac: [u8; 6]) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header = NeighbourHeader {
            family: AddressFamily::Bridge,
            ifindex: port,
            ..NeighbourHeader::default()
        };
        m.attributes = vec![
            NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
            NeighbourAttribute::Controller(master),
        ];
        m
    }

    fn link_msg(idx: u32, master: Option<u32>) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = idx;
        l.attributes.push(LinkAttribute::IfName(format!("p{idx}")));
        if let Some(m) = master {
            l.attributes.push(LinkAttribute::Controller(m));
        }
        l
    }

    #[test]
    fn learns_moves_and_forgets() {
        let mut c = FdbCache::new(10);
        c.apply_link(&link_msg(3, Some(10)), false);
        c.apply_link(&link_msg(4, Some(10)), false);
        c.apply_link(&link_msg(5, Some(99)), false);
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        c.apply_neighbour(&fdb_msg(3, 10, mac.0), false);
        assert_eq!(c.port_of_mac(0, &mac), Some(3));
        // Another bridge's entry is ignored.
        c.apply_neighbour(&fdb_msg(5, 99, [2, 0, 0, 0, 0, 9]), false);
        assert_eq!(c.port_of_mac(0, &MacAddr([2, 0, 0, 0, 0, 9])), None);
        // Moves.
        c.apply_neighbour(&fdb_msg(4, 10, mac.0), false);
        assert_eq!(c.port_of_mac(7, &mac), Some(4));
        // A stale delete for the old port does not remove the new one.
        c.apply_neighbour(&fdb_msg(3, 10, mac.0), true);
        assert_eq!(c.port_of_mac(0, &mac), Some(4));
        // The port leaves the bridge.
        c.apply_link(&link_msg(4, None), false);
        assert_eq!(c.port_of_mac(0, &mac), None);
        assert_eq!(c.ports.keys().copied().collect::<Vec<_>>(), vec![3]);
    }

    fn with_state_info(idx: u32, master: u32, s: BridgePortState) -> LinkMessage {
        let mut l = link_msg(idx, Some(master));
        l.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::PortData(
                InfoPortData::BridgePort(vec![InfoBridgePort::State(s)]),
            )]));
        l
    }

    /// What the bridge sends when the spanning tree moves a port: an
    /// AF_BRIDGE RTM_NEWLINK with IFLA_PROTINFO { IFLA_BRPORT_STATE }.
    fn with_state_protinfo(idx: u32, master: u32, s: u8) -> LinkMessage {
        let mut l = link_msg(idx, Some(master));
        l.header.interface_family = AddressFamily::Bridge;
        l.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(netlink_packet_core::DefaultNla::new(
                IFLA_BRPORT_STATE,
                vec![s],
            )),
        ]));
        l
    }

    #[test]
    fn only_forwarding_ports_lead_to_members() {
        let mut c = FdbCache::new(10);
        // From the dump: both forwarding (link info of the port).
        assert_eq!(
            c.apply_link(&with_state_info(3, 10, BridgePortState::Forwarding), false),
            Some(BR_STATE_FORWARDING)
        );
        c.apply_link(&with_state_info(4, 10, BridgePortState::Forwarding), false);
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        assert!(c.apply_neighbour(&fdb_msg(3, 10, mac.0), false));
        assert!(
            !c.apply_neighbour(&fdb_msg(3, 10, mac.0), false),
            "not moved"
        );
        assert_eq!(c.port_of_mac(0, &mac), Some(3));
        // The spanning tree blocks port 3 (AF_BRIDGE notification).
        assert_eq!(c.apply_link(&with_state_protinfo(3, 10, 4), false), Some(4));
        assert!(!c.forwards(3) && c.forwards(4));
        assert_eq!(c.port_of_mac(0, &mac), None);
        // The same state again is no change; a message without a state keeps it.
        assert_eq!(c.apply_link(&with_state_protinfo(3, 10, 4), false), None);
        assert_eq!(c.apply_link(&link_msg(3, Some(10)), false), None);
        assert_eq!(c.state(3), Some(4));
        // Learned behind port 4: a move.
        assert!(c.apply_neighbour(&fdb_msg(4, 10, mac.0), false));
        assert_eq!(c.port_of_mac(0, &mac), Some(4));
        // Port 3 forwards again.
        assert_eq!(
            c.apply_link(&with_state_protinfo(3, 10, BR_STATE_FORWARDING), false),
            Some(BR_STATE_FORWARDING)
        );
        assert_eq!(state_name(4), "blocking");
    }
}
