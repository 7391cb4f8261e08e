//! The Q-BRIDGE-MIB view of one Linux bridge: answers pass_persist get/getnext/set.
//!
//! Rows map to IPv6 groups of the `--ipv6-group-prefix`, and with `--ipv4-group-prefix` to
//! IPv4 groups of that prefix ([`super::group_prefix`]); only rows whose group lies in a
//! prefix are shown, other MDB entries are left alone.
//!
//! # Rows
//! The bridge MDB *is* the table (the program keeps no state except rows that exist with an
//! empty port list, which the MDB cannot hold), so the program can be restarted at any time.
//! - `get` of any column of a row that does not exist (VLAN 1, a 33:33 or 01:00:5e MAC, receive port 0)
//!   answers a default (empty PortList, status invalid(2)) instead of NONE, because snmpd
//!   asks `get` before every `set` and would refuse to create the row otherwise.
//! - Setting StaticEgressPorts creates the row (status permanent(3)) and programs exactly
//!   those ports: new ports are added first (replacing entries the bridge learned from MLD),
//!   then removed ports are deleted. If an add fails, the adds already done for this
//!   varbind are undone and the set fails.
//! - Setting Status permanent(3) creates an empty row if needed (no-op otherwise); invalid(2)
//!   deletes the row and all its MDB entries.
//! - Only VLAN 1 (untagged bridge) and receive port 0 exist; ForbiddenEgressPorts accepts
//!   only the empty set.
//!
//! # SET PDUs with several varbinds
//! All-or-nothing as far as pass_persist allows: if one `set` of a PDU fails, the rows the
//! PDU already changed are put back and its remaining `set`s are refused. How snmpd drives
//! the program and what is left when even that fails: [`super::set_pdu`].

use super::bridge::{Bridge, BridgeError, BridgePort};
use super::group_prefix::GroupPrefix;
use super::protocol::{Request, Response, SetValue, Value};
use super::render::{port_list_len, render, set_row};
use super::set_pdu::{PduView, SetPdu};
use crate::mib::{
    self, DOT1Q_STATIC_MCAST_ENTRY, MacAddr, PortSet, StaticMcastIndex, decode_port_list, status,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// One snapshot of the bridge, rendered as a sorted OID -> value map.
#[derive(Debug)]
struct Snapshot {
    taken: Instant,
    ports: Vec<BridgePort>,
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
    /// The SET PDU whose `set`s are arriving (from its first `set` to the next `get`).
    pdu: Option<SetPdu>,
}

impl Agent {
    /// An agent for `bridge` whose rows map to groups in `prefix`.
    pub fn new(bridge: Bridge, prefix: GroupPrefix) -> Self {
        Agent {
            bridge,
            prefix,
            empty_rows: BTreeSet::new(),
            snapshot: None,
            pdu: None,
        }
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> Response {
        let r = match req {
            Request::Ping => return Response::Pong,
            Request::Set(oid, v) => return self.set_in_pdu(&oid, v),
            // Anything but a set ends the SET PDU whose sets came before.
            Request::Invalid(text) => {
                self.pdu = None;
                tracing::warn!(%text, "request not understood");
                return Response::None;
            }
            Request::Get(oid) => {
                self.pdu = None;
                self.get(&oid)
            }
            Request::GetNext(oid) => {
                self.pdu = None;
                self.get_next(&oid)
            }
        };
        r.unwrap_or_else(|e| {
            tracing::error!(error = %e, "bridge access failed");
            Response::None
        })
    }

    /// One `set` of the current SET PDU: refused at once if an earlier one of the PDU
    /// failed; on failure, every row the PDU changed is put back.
    fn set_in_pdu(&mut self, oid: &[u32], value: SetValue) -> Response {
        if self.pdu.as_ref().is_some_and(SetPdu::failed) {
            tracing::warn!(
                oid = %mib::format_oid(oid),
                "not applied: an earlier varbind of this SET failed"
            );
            return Response::SetError("inconsistent-value");
        }
        let resp = self.set(oid, value).unwrap_or_else(|e| {
            tracing::error!(error = %e, "bridge access failed during a set");
            Response::SetError("gen-error")
        });
        if resp != Response::Done {
            self.roll_back_pdu();
        }
        resp
    }

    /// Puts back every row the current SET PDU changed (see [`super::set_pdu`]).
    fn roll_back_pdu(&mut self) {
        let rows = self.pdu.get_or_insert_default().take_rollback();
        self.snapshot = None;
        if rows.is_empty() {
            return;
        }
        let (ports, now) = match self.bridge.ports().and_then(|p| {
            let r = self.read_rows(&p)?;
            Ok((p, r))
        }) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, rows = rows.len(), "cannot read the bridge to undo this SET; its earlier rows stay applied");
                return;
            }
        };
        for (mac, before) in rows {
            let Some(group) = self.prefix.group_of(mac) else {
                continue;
            };
            let cur = now.get(&mac).cloned().unwrap_or_default();
            let target = before.clone().unwrap_or_default();
            let r = self.program(mac, group, &ports, &cur, &target);
            if before.is_none() {
                self.empty_rows.remove(&mac);
            }
            if r == Response::Done {
                tracing::info!(%mac, ?before, "row put back: a later varbind of its SET failed");
            } else {
                tracing::error!(%mac, ?before, "cannot put the row back; it stays as the failed SET left it");
            }
        }
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

    fn read_rows(
        &mut self,
        ports: &[BridgePort],
    ) -> Result<BTreeMap<MacAddr, PortSet>, BridgeError> {
        let mut rows: BTreeMap<MacAddr, PortSet> = self
            .empty_rows
            .iter()
            .map(|m| (*m, PortSet::new()))
            .collect();
        for (grp, ifindex) in self.bridge.static_mdb()? {
            if !self.prefix.contains(grp) {
                continue;
            }
            let Some(p) = ports.iter().find(|p| p.ifindex == ifindex) else {
                continue;
            };
            rows.entry(MacAddr::of_group(grp))
                .or_default()
                .insert(p.port_no);
        }
        Ok(rows)
    }

    fn read_snapshot(&mut self) -> Result<Snapshot, BridgeError> {
        let ports = self.bridge.ports()?;
        let rows = self.read_rows(&ports)?;
        let fdb = self.bridge.fdb()?;
        let objects = render(&ports, &fdb, &rows);
        Ok(Snapshot {
            taken: Instant::now(),
            ports,
            objects,
        })
    }

    /// A static multicast row index this agent can hold: VLAN 1, a MAC of its prefixes (33:33, or 01:00:5e with an IPv4 prefix), receive port 0.
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
        // Each SET PDU works on a fresh view of the bridge, read at its first `set` and kept
        // in step with its own writes.
        let mut pdu = self.pdu.take().unwrap_or_default();
        let mut view = match pdu.view.take() {
            Some(v) => v,
            None => {
                let ports = self.bridge.ports()?;
                let rows = self.read_rows(&ports)?;
                PduView { ports, rows }
            }
        };
        let current = view.rows.get(&idx.mac).cloned();
        pdu.touch(idx.mac, current.clone());
        self.pdu = Some(pdu);
        let ports = &view.ports;
        // `after`: the row's port set once the set succeeded (None = row deleted).
        let (resp, after) = match (col, value) {
            (mib::SM_COL_EGRESS, SetValue::Octets(bytes)) => match decode_port_list(&bytes) {
                Ok(wanted) => {
                    let cur = current.clone().unwrap_or_default();
                    let r = self.program(idx.mac, group, ports, &cur, &wanted);
                    (r, Some(wanted))
                }
                Err(_) => (Response::SetError("wrong-value"), None),
            },
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
                let r = self.program(idx.mac, group, ports, &cur, &PortSet::new());
                self.empty_rows.remove(&idx.mac);
                (r, None)
            }
            (mib::SM_COL_STATUS, SetValue::Integer(_)) => (Response::SetError("wrong-value"), None),
            _ => (Response::SetError("wrong-type"), None),
        };
        if resp != Response::Done {
            // The caller rolls the PDU back; the snapshot is re-read next time.
            self.snapshot = None;
            return Ok(resp);
        }
        // Keep the PDU's view and the snapshot in step with our own write (managers read
        // their writes back at once) without reading the bridge again.
        match &after {
            Some(set) => view.rows.insert(idx.mac, set.clone()),
            None => view.rows.remove(&idx.mac),
        };
        if let Some(snap) = self.snapshot.as_mut() {
            let width = port_list_len(&snap.ports);
            set_row(&mut snap.objects, idx.mac, after.as_ref(), width);
        }
        if let Some(pdu) = self.pdu.as_mut() {
            pdu.view = Some(view);
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
        let ifindex_of = |p: u16| ports.iter().find(|bp| bp.port_no == p).map(|bp| bp.ifindex);
        if wanted.iter().any(|p| ifindex_of(*p).is_none()) {
            tracing::warn!(?wanted, "egress names a port the bridge does not have");
            return Response::SetError("wrong-value");
        }
        let mut added: Vec<u32> = Vec::new();
        for p in wanted.difference(current) {
            let ifindex = ifindex_of(*p).expect("checked above");
            if let Err(e) = self.bridge.mdb_add(ifindex, group) {
                tracing::error!(error = %e, "mdb add failed; undoing this set");
                for n in &added {
                    if let Err(e) = self.bridge.mdb_del(*n, group) {
                        tracing::error!(error = %e, "undo failed");
                    }
                }
                return Response::SetError("inconsistent-value");
            }
            added.push(ifindex);
        }
        for p in current.difference(wanted) {
            // A port that left the bridge is not listed; its MDB entries went with it.
            if let Some(ifindex) = ifindex_of(*p)
                && let Err(e) = self.bridge.mdb_del(ifindex, group)
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
