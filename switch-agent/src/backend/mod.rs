//! The one trait every switch backend implements.
//!
//! The agent core (`crate::core`) owns validation, the subset rule, leases
//! and counters; a backend only reads and writes the switch. Backends:
//! `linux_bridge` (rtnetlink FDB + our MDB codec), `openflow` (Open vSwitch
//! through `subcast-ofp13`), `snmp` (Q-BRIDGE-MIB through `subcast-snmp`).

use std::collections::BTreeSet;
use std::future::Future;
use std::net::Ipv6Addr;
use subcast_proto::{BackendKind, Member};

pub mod linux_bridge;
pub mod openflow;
pub mod snmp;

/// A switch port as the backend numbers it (bridge port ifindex, OpenFlow
/// port number, or Q-BRIDGE-MIB bridge port number).
pub type PortId = u32;

/// A set of ports, ordered for stable output.
pub type PortSet = BTreeSet<PortId>;

/// One subset group the backend holds on the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledGroup {
    pub vlan: u16,
    pub group: Ipv6Addr,
    pub ports: PortSet,
}

/// Failures of a backend, each mapped to a NAK reason by the core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The switch has no room for another entry (NAK table-full).
    #[error("switch table full: {0}")]
    TableFull(String),
    /// The switch did not answer (NAK backend-error).
    #[error("switch unreachable: {0}")]
    Unreachable(String),
    /// The switch refused the operation (NAK backend-error).
    #[error("switch refused: {0}")]
    Refused(String),
    /// Anything else (NAK backend-error).
    #[error("{0}")]
    Other(String),
}

/// What the agent core needs from a switch.
///
/// Methods take `&mut self`; the core calls them one instruction at a time.
pub trait Backend: Send + 'static {
    fn kind(&self) -> BackendKind;

    /// Number of ports the switch has (reported in HELLO).
    fn port_count(&self) -> u16;

    /// A readable name of a port for reports and logs (e.g. "veth-x1").
    fn port_name(&self, port: PortId) -> String;

    /// The port through which `member` is reached on `vlan`, from the
    /// switch's unicast forwarding table; `None` if the switch cannot place it.
    fn port_toward(
        &mut self,
        vlan: u16,
        member: &Member,
    ) -> impl Future<Output = Result<Option<PortId>, BackendError>> + Send;

    /// Ports the switch itself forwards `parent` to (MDB, static multicast
    /// table, group table); `None` if it has no such group. The core uses
    /// the controller's parent group definitions first when it has them.
    fn parent_ports(
        &mut self,
        vlan: u16,
        parent: Ipv6Addr,
    ) -> impl Future<Output = Result<Option<PortSet>, BackendError>> + Send;

    /// Makes `group` forward to exactly `ports` (replacing any previous
    /// port set), and returns when the switch has confirmed it.
    fn install(
        &mut self,
        vlan: u16,
        group: Ipv6Addr,
        ports: &PortSet,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Removes `group` entirely. Removing an absent group is not an error.
    fn remove(
        &mut self,
        vlan: u16,
        group: Ipv6Addr,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Subset groups currently on the switch whose address is inside `range`
    /// (used at start to remove what a crashed agent left behind).
    fn installed(
        &mut self,
        range: ipnet::Ipv6Net,
    ) -> impl Future<Output = Result<Vec<InstalledGroup>, BackendError>> + Send;
}
