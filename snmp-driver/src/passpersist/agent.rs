//! The Q-BRIDGE-MIB view of one Linux bridge: answers pass_persist get/getnext/set.
//!
//! # Group MAC <-> IPv6 group convention
//! Linux bridges ignore L2 MDB entries (`grp 33:33:...`) for IPv6 traffic, so a row for MAC
//! `33:33:aa:bb:cc:dd` is stored as static IPv6 MDB entries for group `PREFIX::aabb:ccdd`,
//! where PREFIX is the `/96` given with `--ipv6-group-prefix` (e.g. `ff3e::/96`). Only rows
//! whose group lies in that prefix are shown; other MDB entries are left alone.
//!
//! # Rows and atomicity
//! The bridge MDB *is* the table (the program keeps no state except rows that exist with an
//! empty port list, which the MDB cannot hold), so the program can be restarted at any time.
//! - `get` of any column of a row that does not exist (VLAN 1, a 33:33 MAC, receive port 0)
//!   answers a default (empty PortList, status invalid(2)) instead of NONE, because snmpd
//!   asks `get` before every `set` and would refuse to create the row otherwise.
//! - Setting StaticEgressPorts creates the row (status permanent(3)) and programs exactly
//!   those ports: new ports are added first, then removed ports are deleted. If an add fails,
//!   the adds already done for this varbind are undone and the set fails.
//! - Setting Status permanent(3) creates an empty row if needed (no-op otherwise); invalid(2)
//!   deletes the row and all its MDB entries.
//! - snmpd applies the varbinds of one SET PDU one after the other (pass_persist has no
//!   commit/undo). A manager that sends {egress, status=permanent} in either order gets the
//!   same final row, and no other request is served in between (snmpd is single-threaded).
//!   If the *second* varbind fails, the first one stays applied: a manager seeing an error
//!   must re-read or delete the row. [`crate::SnmpSwitch`] creates with {egress,
//!   status=permanent(3)} (the status varbind cannot fail here once the egress one passed)
//!   and deletes with status alone, so each of its SETs is all-or-nothing.
//! - Only VLAN 1 (untagged bridge) and receive port 0 exist; ForbiddenEgressPorts accepts
//!   only the empty set.

use super::bridge::{Bridge, BridgeError, BridgePort, FdbEntry};
use super::protocol::{Request, Response, SetValue, Value};
use crate::mib::{
    self, DOT1D_BASE_PORT, DOT1D_BASE_PORT_IFINDEX, DOT1Q_STATIC_MCAST_ENTRY, MacAddr, PortSet,
    StaticMcastIndex, decode_port_list, encode_port_list, fdb_status, status,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// An IPv6 `/96` prefix for rendezvous groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupPrefix {
    base: [u8; 12],
}

/// A `--ipv6-group-prefix` that is not an IPv6 multicast /96.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IPv6 multicast /96 prefix (expected e.g. ff3e::/96)")]
pub struct GroupPrefixError(pub String);

impl FromStr for GroupPrefix {
    type Err = GroupPrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || GroupPrefixError(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        if len != "96" {
            return Err(err());
        }
        let addr: Ipv6Addr = addr.parse().map_err(|_| err())?;
        if !addr.is_multicast() {
            return Err(err());
        }
        let o = addr.octets();
        let mut base = [0u8; 12];
        base.copy_from_slice(&o[..12]);
        Ok(GroupPrefix { base })
    }
}

impl GroupPrefix {
    /// The IPv6 group that carries rows for `mac` (which must be 33:33:..).
    pub fn group_of(&self, mac: MacAddr) -> Option<Ipv6Addr> {
        if !mac.is_ipv6_multicast() {
            return None;
        }
        let mut o = [0u8; 16];
        o[..12].copy_from_slice(&self.base);
        o[12..].copy_from_slice(&mac.0[2..]);
        Some(Ipv6Addr::from(o))
    }

    /// True if `group` lies inside the prefix.
    pub fn contains(&self, group: Ipv6Addr) -> bool {
        group.octets()[..12] == self.base
    }
}

/// One snapshot of the bridge, rendered as a sorted OID -> value map.
#[derive(Debug)]
struct Snapshot {
    taken: Instant,
    ports: Vec<BridgePort>,
    fdb: Vec<FdbEntry>,
    objects: BTreeMap<Vec<u32>, Value>,
}

/// How long a snapshot serves getnext walks before the bridge is read again.
const SNAPSHOT_TTL: Duration = Duration::from_millis(300);

/// The MIB agent for one bridge.
#[derive(Debug)]
pub struct Agent {
    bridge: Bridge,
    prefix: GroupPrefix,
    empty_rows: BTreeSet<MacAddr>,
    snapshot: Option<Snapshot>,
}

impl Agent {
    /// An agent for `bridge` whose rows map to groups in `prefix`.
    pub fn new(bridge: Bridge, prefix: GroupPrefix) -> Self {
        Agent {
            bridge,
            prefix,
            empty_rows: BTreeSet::new(),
            snapshot: None,
        }
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> Response {
        let r = match req {
            Request::Ping => return Response::Pong,
            Request::Invalid(text) => {
                tracing::warn!(%text, "request not understood");
                return Response::None;
            }
            Request::Get(oid) => self.get(&oid),
            Request::GetNext(oid) => self.get_next(&oid),
            Request::Set(oid, v) => self.set(&oid, v),
        };
        r.unwrap_or_else(|e| {
            tracing::error!(error = %e, "bridge access failed");
            Response::None
        })
    }

    fn snapshot(&mut self) -> Result<&Snapshot, BridgeError> {
        let fresh = self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.taken.elapsed() < SNAPSHOT_TTL);
        if !fresh {
            self.snapshot = Some(self.read_snapshot()?);
        }
        Ok(self.snapshot.as_ref().expect("snapshot was just set"))
    }

    fn read_rows(&self, ports: &[BridgePort]) -> Result<BTreeMap<MacAddr, PortSet>, BridgeError> {
        let mut rows: BTreeMap<MacAddr, PortSet> = self
            .empty_rows
            .iter()
            .map(|m| (*m, PortSet::new()))
            .collect();
        for (grp, ifname) in self.bridge.static_mdb()? {
            if !self.prefix.contains(grp) {
                continue;
            }
            let Some(p) = ports.iter().find(|p| p.ifname == ifname) else {
                continue;
            };
            rows.entry(MacAddr::ipv6_multicast(grp))
                .or_default()
                .insert(p.port_no);
        }
        Ok(rows)
    }

    fn read_snapshot(&self) -> Result<Snapshot, BridgeError> {
        let ports = self.bridge.ports()?;
        let rows = self.read_rows(&ports)?;
        let fdb = self.bridge.fdb()?;
        let objects = render(&ports, &fdb, &rows);
        Ok(Snapshot {
            taken: Instant::now(),
            ports,
            fdb,
            objects,
        })
    }

    /// A static multicast row index this agent can hold: VLAN 1, 33:33 MAC, receive port 0.
    fn row_index(&self, oid: &[u32]) -> Option<(u32, StaticMcastIndex)> {
        let (col, idx) = mib::split_column(oid, DOT1Q_STATIC_MCAST_ENTRY)?;
        let idx = StaticMcastIndex::from_sub_ids(idx)?;
        let ok = (mib::SM_COL_EGRESS..=mib::SM_COL_STATUS).contains(&col)
            && idx.vlan == 1
            && idx.receive_port == 0
            && self.prefix.group_of(idx.mac).is_some();
        ok.then_some((col, idx))
    }

    fn get(&mut self, oid: &[u32]) -> Result<Response, BridgeError> {
        let row = self.row_index(oid);
        let snap = self.snapshot()?;
        if let Some(v) = snap.objects.get(oid) {
            return Ok(Response::Value(oid.to_vec(), v.clone()));
        }
        // A row that does not exist yet: answer defaults so that snmpd lets a set create it.
        Ok(match row {
            Some((col, _)) => {
                let width = port_list_len(&snap.ports);
                let v = if col == mib::SM_COL_STATUS {
                    Value::Integer(status::INVALID)
                } else {
                    Value::Octets(vec![0; width])
                };
                Response::Value(oid.to_vec(), v)
            }
            None => Response::None,
        })
    }

    fn get_next(&mut self, oid: &[u32]) -> Result<Response, BridgeError> {
        let snap = self.snapshot()?;
        let next = snap
            .objects
            .range::<[u32], _>((std::ops::Bound::Excluded(oid), std::ops::Bound::Unbounded))
            .next();
        Ok(match next {
            Some((o, v)) => Response::Value(o.clone(), v.clone()),
            None => Response::None,
        })
    }

    fn set(&mut self, oid: &[u32], value: SetValue) -> Result<Response, BridgeError> {
        let Some((col, idx)) = self.row_index(oid) else {
            return Ok(Response::SetError("not-writable"));
        };
        let group = self
            .prefix
            .group_of(idx.mac)
            .expect("row_index checked the MAC");
        // Writes work on a fresh view of the MDB; the port list may come from a recent
        // snapshot (ports change rarely, and a vanished port only makes an add fail).
        let ports = match &self.snapshot {
            Some(s) if s.taken.elapsed() < SNAPSHOT_TTL => s.ports.clone(),
            _ => self.bridge.ports()?,
        };
        let rows = self.read_rows(&ports)?;
        let current = rows.get(&idx.mac).cloned();
        // `after`: the row's port set once the set succeeded (None = row deleted).
        let (resp, after) = match (col, value) {
            (mib::SM_COL_EGRESS, SetValue::Octets(bytes)) => {
                let Ok(wanted) = decode_port_list(&bytes) else {
                    return Ok(Response::SetError("wrong-value"));
                };
                let cur = current.clone().unwrap_or_default();
                let r = self.program(idx.mac, group, &ports, &cur, &wanted);
                (r, Some(wanted))
            }
            (mib::SM_COL_FORBIDDEN, SetValue::Octets(bytes)) => match decode_port_list(&bytes) {
                Ok(s) if s.is_empty() => (Response::Done, current.clone()),
                _ => (Response::SetError("wrong-value"), None),
            },
            (mib::SM_COL_STATUS, SetValue::Integer(status::PERMANENT)) => {
                if current.is_none() {
                    self.empty_rows.insert(idx.mac);
                }
                (Response::Done, Some(current.clone().unwrap_or_default()))
            }
            (mib::SM_COL_STATUS, SetValue::Integer(status::INVALID)) => {
                let cur = current.clone().unwrap_or_default();
                let r = self.program(idx.mac, group, &ports, &cur, &PortSet::new());
                self.empty_rows.remove(&idx.mac);
                (r, None)
            }
            (mib::SM_COL_STATUS, SetValue::Integer(_)) => (Response::SetError("wrong-value"), None),
            _ => (Response::SetError("wrong-type"), None),
        };
        // Keep the snapshot in step with our own write (managers read their writes back at
        // once) without reading the bridge again; after a failure, re-read it next time.
        match (&resp, self.snapshot.as_mut()) {
            (Response::Done, Some(snap)) => {
                let mut rows = rows;
                match after {
                    Some(set) => rows.insert(idx.mac, set),
                    None => rows.remove(&idx.mac),
                };
                snap.objects = render(&snap.ports, &snap.fdb, &rows);
            }
            _ => self.snapshot = None,
        }
        Ok(resp)
    }

    /// Makes the MDB hold exactly `wanted` for `group`; all-or-nothing on add failures.
    fn program(
        &mut self,
        mac: MacAddr,
        group: Ipv6Addr,
        ports: &[BridgePort],
        current: &PortSet,
        wanted: &PortSet,
    ) -> Response {
        let name_of = |p: u16| ports.iter().find(|bp| bp.port_no == p).map(|bp| &bp.ifname);
        if wanted.iter().any(|p| name_of(*p).is_none()) {
            tracing::warn!(?wanted, "egress names a port the bridge does not have");
            return Response::SetError("wrong-value");
        }
        let mut added: Vec<String> = Vec::new();
        for p in wanted.difference(current) {
            let name = name_of(*p).expect("checked above");
            if let Err(e) = self.bridge.mdb_add(name, group) {
                tracing::error!(error = %e, "mdb add failed; undoing this set");
                for n in &added {
                    if let Err(e) = self.bridge.mdb_del(n, group) {
                        tracing::error!(error = %e, "undo failed");
                    }
                }
                return Response::SetError("inconsistent-value");
            }
            added.push(name.clone());
        }
        for p in current.difference(wanted) {
            // A port that left the bridge has no name; its MDB entries went with it.
            if let Some(name) = name_of(*p)
                && let Err(e) = self.bridge.mdb_del(name, group)
            {
                tracing::error!(error = %e, "mdb del failed");
            }
        }
        if wanted.is_empty() {
            self.empty_rows.insert(mac);
        } else {
            self.empty_rows.remove(&mac);
        }
        tracing::info!(%mac, %group, ?wanted, "row programmed");
        Response::Done
    }
}

/// Renders the bridge state as the sorted OID -> value map served by get/getnext.
fn render(
    ports: &[BridgePort],
    fdb: &[FdbEntry],
    rows: &BTreeMap<MacAddr, PortSet>,
) -> BTreeMap<Vec<u32>, Value> {
    let mut objects = BTreeMap::new();
    for p in ports {
        let mut o = DOT1D_BASE_PORT.to_vec();
        o.push(u32::from(p.port_no));
        objects.insert(o, Value::Integer(i64::from(p.port_no)));
        let mut o = DOT1D_BASE_PORT_IFINDEX.to_vec();
        o.push(u32::from(p.port_no));
        objects.insert(o, Value::Integer(i64::from(p.ifindex)));
    }
    for e in fdb {
        let Some(p) = ports.iter().find(|p| p.ifname == e.ifname) else {
            continue;
        };
        let st = if e.local {
            fdb_status::SELF
        } else if e.is_static {
            fdb_status::MGMT
        } else {
            fdb_status::LEARNED
        };
        objects.insert(
            mib::fdb_oid(mib::FDB_COL_PORT, 1, e.mac),
            Value::Integer(i64::from(p.port_no)),
        );
        objects.insert(
            mib::fdb_oid(mib::FDB_COL_STATUS, 1, e.mac),
            Value::Integer(st),
        );
    }
    let width = port_list_len(ports);
    for (mac, set) in rows {
        let idx = StaticMcastIndex {
            vlan: 1,
            mac: *mac,
            receive_port: 0,
        };
        objects.insert(
            idx.column_oid(mib::SM_COL_EGRESS),
            Value::Octets(encode_port_list(set, width)),
        );
        objects.insert(
            idx.column_oid(mib::SM_COL_FORBIDDEN),
            Value::Octets(vec![0; width]),
        );
        objects.insert(
            idx.column_oid(mib::SM_COL_STATUS),
            Value::Integer(status::PERMANENT),
        );
    }
    objects
}

/// PortList width served for this bridge: enough octets for the highest port, at least 1.
fn port_list_len(ports: &[BridgePort]) -> usize {
    let max = ports.iter().map(|p| p.port_no).max().unwrap_or(0);
    usize::from(max).div_ceil(8).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_maps_macs() {
        let p: GroupPrefix = "ff3e::/96".parse().unwrap();
        let mac: MacAddr = "33:33:aa:bb:cc:dd".parse().unwrap();
        let g = p.group_of(mac).unwrap();
        assert_eq!(g, "ff3e::aabb:ccdd".parse::<Ipv6Addr>().unwrap());
        assert!(p.contains(g));
        assert!(!p.contains("ff3e:1::1".parse().unwrap()));
        assert!(p.group_of("01:00:5e:00:00:01".parse().unwrap()).is_none());
        assert!("ff3e::/64".parse::<GroupPrefix>().is_err());
        assert!("fd00::/96".parse::<GroupPrefix>().is_err());
    }
}
