//! What the core reads from the switch without waiting: the backend keeps a
//! synchronously readable view (FDB, parent groups, ports, capacity) that the
//! daemon's I/O keeps fresh (netlink notifications, OpenFlow PACKET_INs,
//! SNMP walks). A lookup the view cannot answer from fresh data says
//! [`Lookup::Unknown`]; the core then asks the backend for a
//! [`crate::core::action::Refresh`] once and plans again, treating what is
//! still unknown as absent.

use crate::backend::{PortId, PortSet};
use std::net::Ipv6Addr;
use subcast_proto::{BackendKind, Member};

/// The answer of one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// The switch has it.
    Found(T),
    /// The switch does not have it (fresh knowledge).
    Absent,
    /// The view has no fresh answer: read the switch first.
    Unknown,
}

impl<T> Lookup<T> {
    /// The value, treating `Unknown` as absent (after a refresh).
    pub fn found(self) -> Option<T> {
        match self {
            Lookup::Found(t) => Some(t),
            Lookup::Absent | Lookup::Unknown => None,
        }
    }
}

/// The switch as the core sees it. Implementations are cheap handles onto
/// state the backend keeps up to date; every method answers at once.
pub trait SwitchView: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> BackendKind;

    /// Ports the switch has (HELLO).
    fn port_count(&self) -> u16;

    /// Subset groups the switch can hold for subcast (its table size minus
    /// the entries subcast does not own); `None` when the backend cannot
    /// tell (e.g. SNMP: configured instead).
    fn table_capacity(&self) -> Option<u32>;

    /// The port through which `member` is reached on `vlan`.
    fn port_toward(&self, vlan: u16, member: &Member) -> Lookup<PortId>;

    /// The ports the switch itself forwards `parent` to (MDB, static
    /// multicast table, flows); used when the configuration does not define
    /// the parent group.
    fn parent_ports(&self, vlan: u16, parent: Ipv6Addr) -> Lookup<PortSet>;

    /// Whether `port` forwards now (spanning tree: only ports in forwarding
    /// state may be in a group). Backends without port states: always.
    fn port_forwards(&self, _port: PortId) -> bool {
        true
    }
}
