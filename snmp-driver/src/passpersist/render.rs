//! The MIB view of a bridge: its ports, FDB and rows rendered as the sorted OID -> value
//! map that get/getnext answer from.

use super::bridge::{BridgePort, FdbEntry};
use super::protocol::Value;
use crate::mib::{
    self, DOT1D_BASE_PORT, DOT1D_BASE_PORT_IFINDEX, MacAddr, PortSet, StaticMcastIndex,
    encode_port_list, fdb_status, status,
};
use std::collections::BTreeMap;

/// Renders the bridge state as the sorted OID -> value map served by get/getnext.
pub fn render(
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
        let Some(p) = ports.iter().find(|p| p.ifindex == e.ifindex) else {
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
        set_row(&mut objects, *mac, Some(set), width);
    }
    objects
}

/// Updates the three objects of row `mac` (VLAN 1, receive port 0): `None` removes them.
pub fn set_row(
    objects: &mut BTreeMap<Vec<u32>, Value>,
    mac: MacAddr,
    ports: Option<&PortSet>,
    width: usize,
) {
    let idx = StaticMcastIndex {
        vlan: 1,
        mac,
        receive_port: 0,
    };
    let cols = [
        mib::SM_COL_EGRESS,
        mib::SM_COL_FORBIDDEN,
        mib::SM_COL_STATUS,
    ];
    let Some(set) = ports else {
        for c in cols {
            objects.remove(&idx.column_oid(c));
        }
        return;
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

/// PortList width served for this bridge: enough octets for the highest port, at least 1.
pub fn port_list_len(ports: &[BridgePort]) -> usize {
    let max = ports.iter().map(|p| p.port_no).max().unwrap_or(0);
    usize::from(max).div_ceil(8).max(1)
}
