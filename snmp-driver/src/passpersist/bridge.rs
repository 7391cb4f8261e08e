//! Reads and writes one Linux bridge over rtnetlink ([`super::netlink`]): its ports and
//! their bridge port numbers, its FDB, and its permanent IPv6 MDB entries. No process is
//! started, so a SET costs what the kernel and SNMP cost.
//!
//! The bridge is looked up by name in the namespace of the thread that opens it (the
//! handler enters `--netns` first, see [`super::netns`]).

use super::netlink::{NetlinkError, RouteSocket};
use crate::mib::MacAddr;
use netlink_packet_route::link::{InfoBridgePort, InfoPortData, LinkAttribute, LinkInfo};
use netlink_packet_route::neighbour::NeighbourAttribute;
use std::net::Ipv6Addr;
use subcast_mdb::MDB_PERMANENT;

/// Error reading or writing the bridge.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// No interface of that name in this namespace.
    #[error(
        "no bridge `{0}` in this network namespace (check --bridge and --netns, and that the bridge exists)"
    )]
    NoSuchBridge(String),
    /// A netlink request failed.
    #[error("bridge {bridge}: {source}")]
    Netlink {
        /// The bridge name.
        bridge: String,
        /// What failed.
        source: NetlinkError,
    },
}

/// One port of the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePort {
    /// The bridge's own port number (IFLA_BRPORT_NO, as `/sys/class/net/BR/brif/IF/port_no`).
    pub port_no: u16,
    /// The interface index.
    pub ifindex: u32,
    /// The interface name.
    pub ifname: String,
}

/// One FDB entry on a bridge port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// The MAC address.
    pub mac: MacAddr,
    /// The ifindex of the port (or of the bridge itself for its own address).
    pub ifindex: u32,
    /// True for the port's own (local, permanent) address.
    pub local: bool,
    /// True for a static entry added by an operator.
    pub is_static: bool,
}

/// NUD_NOARP: a static FDB entry (`bridge fdb add ... static`).
const NUD_NOARP: u16 = 0x40;
/// NUD_PERMANENT: a local FDB entry (a port's own address).
const NUD_PERMANENT: u16 = 0x80;

/// A bridge in the current network namespace.
#[derive(Debug)]
pub struct Bridge {
    name: String,
    ifindex: u32,
    sock: RouteSocket,
}

impl Bridge {
    /// Opens a netlink socket and finds bridge `name` in the current namespace.
    pub fn open(name: impl Into<String>) -> Result<Self, BridgeError> {
        let name = name.into();
        let err = |source| BridgeError::Netlink {
            bridge: name.clone(),
            source,
        };
        let mut sock = RouteSocket::open().map_err(err)?;
        let ifindex = sock
            .link_index(&name)
            .map_err(err)?
            .ok_or_else(|| BridgeError::NoSuchBridge(name.clone()))?;
        Ok(Bridge {
            name,
            ifindex,
            sock,
        })
    }

    /// The bridge's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bridge's ifindex.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    fn err(&self, source: NetlinkError) -> BridgeError {
        BridgeError::Netlink {
            bridge: self.name.clone(),
            source,
        }
    }

    /// The bridge's ports with their port numbers, sorted by port number.
    pub fn ports(&mut self) -> Result<Vec<BridgePort>, BridgeError> {
        let links = self
            .sock
            .links_of_master(self.ifindex)
            .map_err(|e| self.err(e))?;
        let mut ports: Vec<BridgePort> = links
            .into_iter()
            .filter_map(|l| {
                let mut name = None;
                let mut port_no = None;
                for a in &l.attributes {
                    match a {
                        LinkAttribute::IfName(n) => name = Some(n.clone()),
                        LinkAttribute::LinkInfo(infos) => port_no = bridge_port_no(infos),
                        _ => {}
                    }
                }
                Some(BridgePort {
                    port_no: port_no?,
                    ifindex: l.header.index,
                    ifname: name.unwrap_or_else(|| format!("if{}", l.header.index)),
                })
            })
            .collect();
        ports.sort_by_key(|p| p.port_no);
        Ok(ports)
    }

    /// The bridge's FDB (entries whose master is this bridge).
    pub fn fdb(&mut self) -> Result<Vec<FdbEntry>, BridgeError> {
        let msgs = self
            .sock
            .fdb_of_master(self.ifindex)
            .map_err(|e| self.err(e))?;
        Ok(msgs
            .into_iter()
            .filter_map(|n| {
                let mac = n.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::LinkLayerAddress(l) => {
                        <[u8; 6]>::try_from(l.as_slice()).ok().map(MacAddr)
                    }
                    _ => None,
                })?;
                let state = u16::from(n.header.state);
                Some(FdbEntry {
                    mac,
                    ifindex: n.header.ifindex,
                    local: state & NUD_PERMANENT != 0,
                    is_static: state & NUD_NOARP != 0,
                })
            })
            .collect())
    }

    /// Permanent IPv6 and IPv4 MDB entries of this bridge: (group, port ifindex), IPv4
    /// groups as IPv4-mapped IPv6 addresses.
    pub fn static_mdb(&mut self) -> Result<Vec<(Ipv6Addr, u32)>, BridgeError> {
        let entries = self.sock.mdb().map_err(|e| self.err(e))?;
        Ok(entries
            .into_iter()
            .filter(|e| e.bridge == self.ifindex && e.state == MDB_PERMANENT)
            .filter_map(|e| e.addr.group().map(|g| (g, e.port)))
            .collect())
    }

    /// Makes `group` a permanent entry on port `port` (an ifindex); an entry the bridge
    /// learned from MLD on that port becomes permanent.
    pub fn mdb_add(&mut self, port: u32, group: Ipv6Addr) -> Result<(), BridgeError> {
        self.sock
            .mdb_replace(self.ifindex, port, group)
            .map_err(|e| self.err(e))
    }

    /// Deletes the entry for `group` on port `port` (an ifindex).
    pub fn mdb_del(&mut self, port: u32, group: Ipv6Addr) -> Result<(), BridgeError> {
        self.sock
            .mdb_del(self.ifindex, port, group)
            .map_err(|e| self.err(e))
    }
}

/// IFLA_BRPORT_NO inside IFLA_LINKINFO > IFLA_INFO_SLAVE_DATA, if this is a bridge port.
fn bridge_port_no(infos: &[LinkInfo]) -> Option<u16> {
    infos.iter().find_map(|i| match i {
        LinkInfo::PortData(InfoPortData::BridgePort(attrs)) => attrs.iter().find_map(|a| match a {
            InfoBridgePort::PortNumber(n) => Some(*n),
            _ => None,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_number_is_read_from_slave_data() {
        let infos = vec![LinkInfo::PortData(InfoPortData::BridgePort(vec![
            InfoBridgePort::Priority(32),
            InfoBridgePort::PortNumber(7),
        ]))];
        assert_eq!(bridge_port_no(&infos), Some(7));
        assert_eq!(bridge_port_no(&[]), None);
    }
}
