//! What the core asks of the backend: [`BackendAction`]s, each with an
//! [`ActionId`], answered by [`crate::core::Agent::on_action_done`].

use crate::backend::{BackendError, PortSet};
use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use subcast_proto::Member;

/// Identifies one action until its result comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionId(pub u64);

/// One change of one subset group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Make `group` forward to exactly `ports` on `vlan`. `previous` is what
    /// the switch holds for it now (`None`: not installed), so a backend can
    /// change it hitlessly (add the new ports before deleting the old ones)
    /// and restore it on a failure.
    Install {
        vlan: u16,
        group: Ipv6Addr,
        ports: PortSet,
        previous: Option<PortSet>,
    },
    /// Remove `group`, installed on `ports`. Removing an absent group is
    /// not an error.
    Remove {
        vlan: u16,
        group: Ipv6Addr,
        ports: PortSet,
    },
}

impl Change {
    pub fn group(&self) -> Ipv6Addr {
        match self {
            Change::Install { group, .. } | Change::Remove { group, .. } => *group,
        }
    }

    pub fn vlan(&self) -> u16 {
        match self {
            Change::Install { vlan, .. } | Change::Remove { vlan, .. } => *vlan,
        }
    }

    /// The change that undoes this one.
    pub fn undo(&self) -> Change {
        match self {
            Change::Install {
                vlan,
                group,
                ports,
                previous: Some(prev),
            } => Change::Install {
                vlan: *vlan,
                group: *group,
                ports: prev.clone(),
                previous: Some(ports.clone()),
            },
            Change::Install {
                vlan, group, ports, ..
            } => Change::Remove {
                vlan: *vlan,
                group: *group,
                ports: ports.clone(),
            },
            Change::Remove { vlan, group, ports } => Change::Install {
                vlan: *vlan,
                group: *group,
                ports: ports.clone(),
                previous: None,
            },
        }
    }
}

/// Lookups the view could not answer: read these from the switch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refresh {
    /// (VLAN, member) whose port is unknown.
    pub members: BTreeSet<(u16, Member)>,
    /// (VLAN, parent group) whose ports are unknown.
    pub parents: BTreeSet<(u16, Ipv6Addr)>,
}

impl Refresh {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.parents.is_empty()
    }
}

/// One request to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendAction {
    /// Apply every change or none (one netlink batch, one OpenFlow bundle,
    /// SNMP SETs with rollback).
    Apply { id: ActionId, changes: Vec<Change> },
    /// Read what the view could not answer.
    Refresh { id: ActionId, refresh: Refresh },
    /// Remove every subset group inside `range` the switch holds (left by an
    /// earlier run), before the first HELLO.
    CleanStart { id: ActionId, range: ipnet::Ipv6Net },
    /// Remove groups inside `range` the agent does not hold (`keep`): for
    /// switches whose table others can write (SNMP).
    Sweep {
        id: ActionId,
        range: ipnet::Ipv6Net,
        keep: BTreeSet<(u16, Ipv6Addr)>,
    },
}

impl BackendAction {
    pub fn id(&self) -> ActionId {
        match self {
            BackendAction::Apply { id, .. }
            | BackendAction::Refresh { id, .. }
            | BackendAction::CleanStart { id, .. }
            | BackendAction::Sweep { id, .. } => *id,
        }
    }
}

/// Why an action failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionError {
    pub error: BackendError,
    /// The change (index into `Apply::changes`) the switch refused, if known.
    pub change: Option<usize>,
    /// The backend could not restore the state before the action: the core
    /// must not trust what the switch holds for the groups of the action.
    pub uncertain: bool,
}

impl ActionError {
    /// A failure that left the switch as it was.
    pub fn clean(error: BackendError, change: Option<usize>) -> Self {
        ActionError {
            error,
            change,
            uncertain: false,
        }
    }
}

impl From<BackendError> for ActionError {
    fn from(e: BackendError) -> Self {
        ActionError::clean(e, None)
    }
}

/// The result of one action.
pub type ActionResult = Result<(), ActionError>;
