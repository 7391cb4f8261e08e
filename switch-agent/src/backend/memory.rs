//! An in-memory switch for unit tests of the core under simulated time
//! (feature `testing`, always on in this crate's own tests).
//!
//! It holds an FDB, a neighbour table, parent groups, the installed subset
//! groups and a capacity, executes actions synchronously
//! ([`MemSwitch::execute`]) with the same all-or-nothing contract as the real
//! backends, and can be told to fail: a change touching a chosen group fails
//! after the changes before it were applied (they are then undone, or left
//! in place when the undo is told to fail too), the whole switch can be
//! unreachable, and lookups can be stale until a refresh (as over SNMP).

use super::{Backend, BackendError, InstalledGroup, Lookup, PortId, PortSet, SwitchView};
use crate::core::action::{ActionError, ActionResult, BackendAction, Change, Refresh};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use subcast_proto::{BackendKind, MacAddr, Member};

/// Everything the in-memory switch holds; public so tests can set it up and
/// inspect it.
#[derive(Debug, Default, Clone)]
pub struct MemState {
    pub ports: BTreeSet<PortId>,
    /// MAC -> port (every VLAN).
    pub fdb: HashMap<MacAddr, PortId>,
    /// IPv6 -> MAC.
    pub neigh: HashMap<Ipv6Addr, MacAddr>,
    /// Parent groups the switch knows: (VLAN, group) -> ports.
    pub parents: HashMap<(u16, Ipv6Addr), PortSet>,
    /// Installed subset groups.
    pub groups: BTreeMap<(u16, Ipv6Addr), PortSet>,
    /// Reported table capacity.
    pub capacity: Option<u32>,
    /// A change touching one of these groups fails.
    pub fail_groups: HashSet<Ipv6Addr>,
    /// Undoing a failed apply fails too (the state stays partial).
    pub fail_undo: bool,
    /// Every action fails with `Unreachable`.
    pub unreachable: bool,
    /// Lookups answer `Unknown` until the next refresh (an SNMP-like cache).
    pub stale: bool,
    /// FDB entries that appear only when refreshed (learned by the switch
    /// but not yet in the view).
    pub fdb_on_refresh: HashMap<MacAddr, PortId>,
    /// Ports that do not forward (spanning tree blocked or disabled).
    pub blocked: BTreeSet<PortId>,
    /// Counters of what the switch was asked to do.
    pub applies: usize,
    pub changes: usize,
    pub refreshes: usize,
    pub sweeps: usize,
}

/// A shared handle onto one in-memory switch (view and backend at once).
#[derive(Debug, Clone, Default)]
pub struct MemSwitch {
    inner: Arc<Mutex<MemState>>,
}

impl MemSwitch {
    pub fn new(state: MemState) -> Self {
        MemSwitch {
            inner: Arc::new(Mutex::new(state)),
        }
    }

    /// The state, to set up or inspect.
    pub fn state(&self) -> MutexGuard<'_, MemState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one action at once.
    pub fn execute(&self, a: &BackendAction) -> ActionResult {
        let mut st = self.state();
        if st.unreachable {
            return Err(
                BackendError::Unreachable("in-memory switch set unreachable".into()).into(),
            );
        }
        match a {
            BackendAction::Apply { changes, .. } => {
                st.applies += 1;
                apply(&mut st, changes)
            }
            BackendAction::Refresh { refresh, .. } => {
                st.refreshes += 1;
                st.stale = false;
                let learned: Vec<_> = st.fdb_on_refresh.drain().collect();
                st.fdb.extend(learned);
                let _ = refresh;
                Ok(())
            }
            BackendAction::CleanStart { range, .. } => {
                st.groups.retain(|(_, g), _| !range.contains(g));
                Ok(())
            }
            BackendAction::Sweep { range, keep, .. } => {
                st.sweeps += 1;
                st.groups
                    .retain(|k, _| !range.contains(&k.1) || keep.contains(k));
                Ok(())
            }
        }
    }
}

fn apply_one(st: &mut MemState, c: &Change) -> Result<(), BackendError> {
    if st.fail_groups.contains(&c.group()) {
        return Err(BackendError::Refused(format!(
            "in-memory switch told to refuse {}",
            c.group()
        )));
    }
    match c {
        Change::Install {
            vlan, group, ports, ..
        } => {
            if let Some(p) = ports.iter().find(|p| !st.ports.contains(p)) {
                return Err(BackendError::Refused(format!("no port {p}")));
            }
            st.groups.insert((*vlan, *group), ports.clone());
        }
        Change::Remove { vlan, group, .. } => {
            st.groups.remove(&(*vlan, *group));
        }
    }
    st.changes += 1;
    Ok(())
}

fn apply(st: &mut MemState, changes: &[Change]) -> ActionResult {
    for (i, c) in changes.iter().enumerate() {
        if let Err(error) = apply_one(st, c) {
            if st.fail_undo {
                return Err(ActionError {
                    error,
                    change: Some(i),
                    uncertain: true,
                });
            }
            // Undo what was applied, newest first (the undo of a refused
            // group never fails).
            let blocked = std::mem::take(&mut st.fail_groups);
            for done in changes[..i].iter().rev() {
                let _ = apply_one(st, &done.undo());
            }
            st.fail_groups = blocked;
            return Err(ActionError::clean(error, Some(i)));
        }
    }
    Ok(())
}

impl SwitchView for MemSwitch {
    fn kind(&self) -> BackendKind {
        BackendKind::LinuxBridge
    }

    fn port_count(&self) -> u16 {
        self.state().ports.len() as u16
    }

    fn table_capacity(&self) -> Option<u32> {
        self.state().capacity
    }

    fn port_toward(&self, _vlan: u16, member: &Member) -> Lookup<PortId> {
        let st = self.state();
        let mac = match member {
            Member::Mac(m) => Some(*m),
            Member::Ipv6(a) => st.neigh.get(a).copied(),
            Member::Ipv4(_) => None,
        };
        match mac.and_then(|m| st.fdb.get(&m)) {
            Some(p) if st.blocked.contains(p) => Lookup::Absent,
            Some(p) => Lookup::Found(*p),
            None if st.stale => Lookup::Unknown,
            None => Lookup::Absent,
        }
    }

    fn port_forwards(&self, port: PortId) -> bool {
        !self.state().blocked.contains(&port)
    }

    fn parent_ports(&self, vlan: u16, parent: Ipv6Addr) -> Lookup<PortSet> {
        let st = self.state();
        match st.parents.get(&(vlan, parent)) {
            Some(p) => Lookup::Found(p.clone()),
            None if st.stale => Lookup::Unknown,
            None => Lookup::Absent,
        }
    }
}

impl Backend for MemSwitch {
    fn view(&self) -> Arc<dyn SwitchView> {
        Arc::new(self.clone())
    }

    async fn apply(&mut self, changes: &[Change]) -> ActionResult {
        self.execute(&BackendAction::Apply {
            id: crate::core::action::ActionId(0),
            changes: changes.to_vec(),
        })
    }

    async fn refresh(&mut self, r: &Refresh) -> Result<(), BackendError> {
        self.execute(&BackendAction::Refresh {
            id: crate::core::action::ActionId(0),
            refresh: r.clone(),
        })
        .map_err(|e| e.error)
    }

    async fn installed(
        &mut self,
        range: ipnet::Ipv6Net,
    ) -> Result<Vec<InstalledGroup>, BackendError> {
        Ok(self
            .state()
            .groups
            .iter()
            .filter(|((_, g), _)| range.contains(g))
            .map(|((vlan, group), ports)| InstalledGroup {
                vlan: *vlan,
                group: *group,
                ports: ports.clone(),
            })
            .collect())
    }
}
