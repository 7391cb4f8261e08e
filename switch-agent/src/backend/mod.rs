//! The one trait every switch backend implements.
//!
//! The agent core (`crate::core`) owns validation, the subset rule, leases
//! and counters, and returns actions; a backend executes them and keeps the
//! view the core reads. Backends: `linux_bridge` (rtnetlink FDB + our MDB
//! codec), `openflow` (Open vSwitch through `subcast-ofp13`), `snmp`
//! (Q-BRIDGE-MIB through `subcast-snmp`), and `memory` (an in-memory switch
//! for unit tests under simulated time, feature `testing`).

use crate::core::action::{ActionResult, BackendAction, Change, Refresh};
pub use crate::core::view::{Lookup, SwitchView};
use std::collections::BTreeSet;
use std::future::Future;
use std::net::Ipv6Addr;
use std::sync::Arc;

pub mod linux_bridge;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
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

/// The I/O side of one switch: executes the core's actions.
///
/// The core ([`crate::core::Agent`]) decides; a backend reads and writes the
/// switch. Reads the core needs without waiting go through the
/// [`SwitchView`] handle from [`Backend::view`], which the backend keeps
/// fresh. The daemon runs one action at a time.
pub trait Backend: Send + 'static {
    /// A handle onto the backend's synchronously readable state.
    fn view(&self) -> Arc<dyn SwitchView>;

    /// Applies every change or none. On an error the switch is as before
    /// unless [`ActionError::uncertain`] says the undo failed too.
    fn apply(&mut self, changes: &[Change]) -> impl Future<Output = ActionResult> + Send;

    /// Reads what the view could not answer (FDB entries, parent groups).
    fn refresh(&mut self, r: &Refresh) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Subset groups on the switch inside `range`.
    fn installed(
        &mut self,
        range: ipnet::Ipv6Net,
    ) -> impl Future<Output = Result<Vec<InstalledGroup>, BackendError>> + Send;

    /// The VLAN the switch's table files an instruction's `vlan` under (e.g.
    /// untagged = the switch's default VLAN over SNMP, VLAN 0 on a bridge
    /// without VLAN filtering), as [`Backend::installed`] reports it.
    fn table_vlan(&self, vlan: u16) -> u16 {
        vlan
    }

    /// Notified when the switch's forwarding ports change (a port changed
    /// spanning-tree state, or a member was learned behind another port on a
    /// bridge running STP): the daemon then calls
    /// [`crate::core::Agent::on_topology_change`], which re-pushes the live
    /// groups. `None`: the backend never says so.
    fn topology_events(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

    /// Removes every group inside `range` except `keep` (instruction VLANs);
    /// returns how many. The default reads [`Backend::installed`] and applies
    /// removals.
    fn sweep(
        &mut self,
        range: ipnet::Ipv6Net,
        keep: &BTreeSet<(u16, Ipv6Addr)>,
    ) -> impl Future<Output = Result<usize, BackendError>> + Send {
        async move {
            let keep: BTreeSet<(u16, Ipv6Addr)> = keep
                .iter()
                .map(|(v, g)| (self.table_vlan(*v), *g))
                .collect();
            let stale: Vec<Change> = self
                .installed(range)
                .await?
                .into_iter()
                .filter(|g| !keep.contains(&(g.vlan, g.group)))
                .map(|g| {
                    tracing::info!(group = %g.group, vlan = g.vlan, ports = g.ports.len(), "removing a group the agent does not hold");
                    Change::Remove {
                        vlan: g.vlan,
                        group: g.group,
                        ports: g.ports,
                    }
                })
                .collect();
            if !stale.is_empty() {
                self.apply(&stale).await.map_err(|e| e.error)?;
            }
            Ok(stale.len())
        }
    }
}

/// Runs one action on `backend`.
pub async fn execute<B: Backend>(backend: &mut B, action: &BackendAction) -> ActionResult {
    match action {
        BackendAction::Apply { changes, .. } => backend.apply(changes).await,
        BackendAction::Refresh { refresh, .. } => Ok(backend.refresh(refresh).await?),
        BackendAction::CleanStart { range, .. } => {
            let n = backend.sweep(*range, &BTreeSet::new()).await?;
            tracing::info!(removed = n, %range, "start: stale groups removed");
            Ok(())
        }
        BackendAction::Sweep { range, keep, .. } => {
            let n = backend.sweep(*range, keep).await?;
            if n > 0 {
                tracing::warn!(removed = n, %range, "guard: removed groups the agent does not hold");
            }
            Ok(())
        }
    }
}
