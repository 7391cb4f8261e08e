//! The bridge's unicast forwarding table (FDB) and IPv6/IPv4 neighbour tables,
//! mirrored from rtnetlink: one dump at start, then RTM_NEWNEIGH /
//! RTM_DELNEIGH notifications. No dump per instruction.

use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
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
            .filter(|p| self.ports.contains_key(p))
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
    pub fn apply_neighbour(&mut self, msg: &NeighbourMessage, deleted: bool) {
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
                let Some(mac) = mac else { return };
                if master != Some(self.bridge_ifindex) || port == self.bridge_ifindex {
                    return;
                }
                if deleted {
                    if self.macs.get(&(vlan, mac)) == Some(&port) {
                        self.macs.remove(&(vlan, mac));
                    }
                } else {
                    self.macs.insert((vlan, mac), port);
                }
            }
            AddressFamily::Inet6 if port == self.bridge_ifindex => {
                let Some(dst) = dst else { return };
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
                let Some(dst) = dst4 else { return };
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
    }

    /// Applies a link message: tracks which interfaces are ports of our bridge.
    pub fn apply_link(&mut self, msg: &LinkMessage, deleted: bool) {
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
        } else if self.ports.remove(&idx).is_some() {
            self.macs.retain(|_, p| *p != idx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
