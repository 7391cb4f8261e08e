//! Several static multicast rows at once: [`SnmpSwitch::set_rows`] writes many rows in one
//! SET PDU, and [`SnmpSwitch::static_multicast_rows_in`] lists the rows of a VLAN whose MAC
//! starts with a prefix (for garbage-collecting rows the caller does not own).
//!
//! # Atomicity of one SET PDU
//! RFC 3416 makes a SET PDU all-or-nothing ("as if simultaneously"); real agents differ:
//! - agents with a test/commit/undo implementation (AgentX subagents, most switch
//!   firmware) refuse the whole PDU when one varbind is bad;
//! - net-snmp's `pass_persist` applies each varbind separately and never runs the undo
//!   phase in the program; the subcast test switch (`subcast-qbridge-passpersist`) puts the
//!   PDU's earlier rows back itself when a varbind fails, so a refused PDU leaves the bridge
//!   as it was (`src/passpersist/set_pdu.rs` says exactly what snmpd does and what is left
//!   when even that fails).
//!
//! A change that does not fit one PDU (the switch answers tooBig, or the encoded request
//! would exceed [`MAX_SET_BYTES`]) is split into several SETs, each all-or-nothing on its
//! own but not together; [`SetRowsOutcome::pdus`] and a `warn` log say so.

use crate::error::SnmpError;
use crate::mib::{
    self, DOT1Q_STATIC_MCAST_ENTRY, MacAddr, PortSet, StaticMcastIndex, decode_port_list,
    encode_port_list, format_oid, status,
};
use crate::session::{Req, Val};
use crate::switch::{SnmpSwitch, StaticMulticastRow, check_ports};
use std::collections::{BTreeSet, HashMap};

/// One change of a static multicast row (receive port 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange {
    /// Create or overwrite the row: StaticEgressPorts = `ports`, Status = permanent(3).
    Set {
        /// dot1qVlanIndex.
        vlan: u16,
        /// The group MAC (33:33:.. for IPv6 groups).
        mac: MacAddr,
        /// The egress ports (bridge port numbers).
        ports: PortSet,
    },
    /// Delete the row: Status = invalid(2) (deleting an absent row succeeds on agents that
    /// allow it, as the subcast test switch does).
    Delete {
        /// dot1qVlanIndex.
        vlan: u16,
        /// The group MAC.
        mac: MacAddr,
    },
}

impl RowChange {
    /// The row's (VLAN, MAC).
    pub fn key(&self) -> (u16, MacAddr) {
        match self {
            RowChange::Set { vlan, mac, .. } | RowChange::Delete { vlan, mac } => (*vlan, *mac),
        }
    }

    /// The varbinds of this change: {StaticEgressPorts, Status = permanent(3)} or
    /// {Status = invalid(2)}.
    fn varbinds(&self, width: usize) -> Vec<(Vec<u32>, Val)> {
        let (vlan, mac) = self.key();
        let idx = SnmpSwitch::index(vlan, mac);
        match self {
            RowChange::Set { ports, .. } => vec![
                (
                    idx.column_oid(mib::SM_COL_EGRESS),
                    Val::Octets(encode_port_list(ports, width)),
                ),
                (
                    idx.column_oid(mib::SM_COL_STATUS),
                    Val::Integer(status::PERMANENT),
                ),
            ],
            RowChange::Delete { .. } => vec![(
                idx.column_oid(mib::SM_COL_STATUS),
                Val::Integer(status::INVALID),
            )],
        }
    }
}

/// How a [`SnmpSwitch::set_rows`] call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetRowsOutcome {
    /// Rows written.
    pub rows: usize,
    /// SET PDUs used: 1 unless the change had to be split (not atomic across PDUs).
    pub pdus: usize,
}

/// A [`SnmpSwitch::set_rows`] call failed.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SetRowsError {
    /// Index (in the `rows` given) of the row the switch or this library refused, when the
    /// error names one.
    pub row: Option<usize>,
    /// Leading rows already applied by earlier SET PDUs of this call (0 unless the change
    /// was split); the PDU that failed and the ones after it were not applied (on agents
    /// that honour SET atomicity, which the subcast test switch does as far as it can).
    pub rows_applied: usize,
    /// The error.
    #[source]
    pub source: SnmpError,
}

impl SetRowsError {
    fn describe(&self) -> String {
        let mut s = match self.row {
            Some(r) => format!("row {r} of the SET refused: {}", self.source),
            None => format!("multi-row SET failed: {}", self.source),
        };
        if self.rows_applied > 0 {
            s.push_str(&format!(
                "; the first {} rows were applied by earlier SETs of the same change (it was split)",
                self.rows_applied
            ));
        }
        s
    }

    /// Short reason tag (see [`SnmpError::nak_reason`]).
    pub fn nak_reason(&self) -> &'static str {
        self.source.nak_reason()
    }
}

/// Largest encoded size of one SET request this library builds (bytes, estimated from the
/// varbinds); larger changes are split before sending. The SNMP library's buffer is 65,507
/// bytes and a PDU this size still fits a UDP datagram on loopback; most agents accept far
/// less and answer tooBig, which splits further.
pub const MAX_SET_BYTES: usize = 48 * 1024;

/// Upper bound of the BER size of one varbind.
fn varbind_bytes(oid: &[u32], v: &Val) -> usize {
    let oid_len: usize = oid
        .iter()
        .map(|x| match *x {
            0..=0x7f => 1,
            0x80..=0x3fff => 2,
            0x4000..=0x1f_ffff => 3,
            0x20_0000..=0xfff_ffff => 4,
            _ => 5,
        })
        .sum();
    let val_len = match v {
        Val::Octets(b) => b.len(),
        _ => 8,
    };
    // SEQUENCE + OID + value, each with a tag and up to 3 length octets.
    4 + (4 + oid_len) + (4 + val_len)
}

impl SnmpSwitch {
    /// Writes several static multicast rows (sets and deletes) in one SET PDU.
    ///
    /// Each row is {StaticEgressPorts, Status = permanent(3)} or {Status = invalid(2)}, in
    /// the order given. A change too large for one PDU is split (see the module docs);
    /// the outcome says how many PDUs were used. Idempotent, so the per-request retries
    /// after a timeout are safe; after a final timeout the rows may or may not be written.
    ///
    /// Refused before sending: a port outside 1..=4096, or the same (VLAN, MAC) twice.
    /// When the switch refuses a varbind, the error names the row ([`SetRowsError::row`]).
    pub async fn set_rows(&self, rows: &[RowChange]) -> Result<SetRowsOutcome, SetRowsError> {
        let refuse = |row, source| SetRowsError {
            row: Some(row),
            rows_applied: 0,
            source,
        };
        let mut seen = BTreeSet::new();
        for (i, r) in rows.iter().enumerate() {
            if let RowChange::Set { ports, .. } = r {
                check_ports(ports).map_err(|e| refuse(i, e))?;
            }
            if !seen.insert(r.key()) {
                let (vlan, mac) = r.key();
                return Err(refuse(
                    i,
                    SnmpError::InvalidRequest(format!(
                        "row (VLAN {vlan}, {mac}) appears twice in one SET"
                    )),
                ));
            }
        }
        if rows.is_empty() {
            return Ok(SetRowsOutcome { rows: 0, pdus: 0 });
        }
        let width = self.port_list_width();
        let per_row: Vec<Vec<(Vec<u32>, Val)>> = rows.iter().map(|r| r.varbinds(width)).collect();
        let sizes: Vec<usize> = per_row
            .iter()
            .map(|vbs| vbs.iter().map(|(o, v)| varbind_bytes(o, v)).sum())
            .collect();

        let mut plan = SplitPlan::new(&sizes, MAX_SET_BYTES);
        if plan.remaining() > 1 {
            tracing::warn!(
                rows = rows.len(),
                pdus = plan.remaining(),
                "change larger than {MAX_SET_BYTES} bytes: split into several SETs (not atomic together)"
            );
        }
        while let Some((start, end)) = plan.next() {
            let vbs: Vec<(Vec<u32>, Val)> = per_row[start..end].iter().flatten().cloned().collect();
            match self.request(&Req::Set(vbs)).await {
                Ok(_) => plan.sent(),
                Err(SnmpError::TooBig { .. }) if plan.too_big() => {
                    tracing::warn!(
                        address = %self.address,
                        rows = end - start,
                        "switch answered tooBig: splitting this SET in two (not atomic together)"
                    );
                }
                Err(source) => {
                    let row = source
                        .oid()
                        .and_then(|o| row_of_oid(&per_row[start..end], o))
                        .map(|i| start + i);
                    return Err(SetRowsError {
                        row,
                        rows_applied: start,
                        source,
                    });
                }
            }
        }
        Ok(SetRowsOutcome {
            rows: rows.len(),
            pdus: plan.pdus(),
        })
    }

    /// Every static multicast row of every VLAN (for cleanup at start).
    pub async fn static_multicast_rows(&self) -> Result<Vec<StaticMulticastRow>, SnmpError> {
        self.rows_under(&[]).await
    }

    /// The static multicast rows of `vlan` whose MAC starts with `mac_prefix` (0 to 6
    /// octets), in index order, with their egress ports and status: e.g. `&[0x33, 0x33]`
    /// for every IPv6 group row, `&[0x33, 0x33, 0xab]` for the rows of groups whose low 32
    /// bits start with 0xab. One GETBULK walk of each of the two columns below that index
    /// prefix, so the switch reads only those rows.
    ///
    /// Meant for garbage collection: list the rows in the range the caller allocates from,
    /// and delete (e.g. with [`SnmpSwitch::set_rows`]) those it does not own.
    pub async fn static_multicast_rows_in(
        &self,
        vlan: u16,
        mac_prefix: &[u8],
    ) -> Result<Vec<StaticMulticastRow>, SnmpError> {
        if mac_prefix.len() > 6 {
            return Err(SnmpError::InvalidRequest(format!(
                "a MAC prefix has at most 6 octets, not {}",
                mac_prefix.len()
            )));
        }
        let mut suffix = vec![u32::from(vlan)];
        suffix.extend(mac_prefix.iter().map(|b| u32::from(*b)));
        self.rows_under(&suffix).await
    }

    /// The rows whose index starts with `index_prefix` (VLAN, then MAC octets).
    async fn rows_under(&self, index_prefix: &[u32]) -> Result<Vec<StaticMulticastRow>, SnmpError> {
        let root = |col: u32| {
            let mut r = DOT1Q_STATIC_MCAST_ENTRY.to_vec();
            r.push(col);
            r.extend_from_slice(index_prefix);
            r
        };
        let col_len = DOT1Q_STATIC_MCAST_ENTRY.len() + 1;
        let statuses: HashMap<Vec<u32>, i64> = self
            .walk(&root(mib::SM_COL_STATUS))
            .await?
            .into_iter()
            .filter_map(|(o, v)| match v {
                Val::Integer(n) => Some((o.get(col_len..)?.to_vec(), n)),
                _ => None,
            })
            .collect();
        let mut rows = Vec::new();
        for (oid, v) in self.walk(&root(mib::SM_COL_EGRESS)).await? {
            let Some(idx) = oid.get(col_len..) else {
                continue;
            };
            let (Some(index), Val::Octets(bytes)) = (StaticMcastIndex::from_sub_ids(idx), &v)
            else {
                continue;
            };
            self.note_width(bytes);
            let egress = decode_port_list(bytes).map_err(|e| SnmpError::Protocol {
                address: self.address.clone(),
                detail: e.to_string(),
            })?;
            rows.push(StaticMulticastRow {
                index,
                egress,
                status: statuses.get(idx).copied(),
            });
        }
        Ok(rows)
    }
}

/// Which rows go into the next SET PDU: consecutive ranges that fit the size budget, each
/// split in two when the switch answers tooBig. Pure: [`SnmpSwitch::set_rows`] does the I/O.
#[derive(Debug)]
struct SplitPlan {
    /// Ranges still to send, the next one last.
    todo: Vec<(usize, usize)>,
    pdus: usize,
}

impl SplitPlan {
    /// Ranges of rows whose summed size stays within `budget` (a row larger than the
    /// budget gets a range of its own).
    fn new(sizes: &[usize], budget: usize) -> Self {
        let mut ranges = Vec::new();
        let mut start = 0;
        let mut acc = 0;
        for (i, s) in sizes.iter().enumerate() {
            if i > start && acc + s > budget {
                ranges.push((start, i));
                start = i;
                acc = 0;
            }
            acc += s;
        }
        if start < sizes.len() {
            ranges.push((start, sizes.len()));
        }
        ranges.reverse();
        SplitPlan {
            todo: ranges,
            pdus: 0,
        }
    }

    /// The rows of the next PDU.
    fn next(&self) -> Option<(usize, usize)> {
        self.todo.last().copied()
    }

    /// PDUs still planned.
    fn remaining(&self) -> usize {
        self.todo.len()
    }

    /// PDUs sent successfully.
    fn pdus(&self) -> usize {
        self.pdus
    }

    /// The next PDU was applied.
    fn sent(&mut self) {
        self.todo.pop();
        self.pdus += 1;
    }

    /// The switch answered tooBig to the next PDU: split it in two. False if it holds a
    /// single row (nothing left to split).
    fn too_big(&mut self) -> bool {
        match self.todo.last().copied() {
            Some((a, b)) if b - a > 1 => {
                let mid = a + (b - a) / 2;
                self.todo.pop();
                self.todo.push((mid, b));
                self.todo.push((a, mid));
                true
            }
            _ => false,
        }
    }
}

/// The row (index into `rows`) one of whose varbinds has OID text `oid`.
fn row_of_oid(rows: &[Vec<(Vec<u32>, Val)>], oid: &str) -> Option<usize> {
    rows.iter()
        .position(|vbs| vbs.iter().any(|(o, _)| format_oid(o) == oid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn row_varbinds() {
        let mac: MacAddr = "33:33:00:00:00:07".parse().unwrap();
        let set = RowChange::Set {
            vlan: 1,
            mac,
            ports: [1, 9].into(),
        };
        let vbs = set.varbinds(2);
        assert_eq!(vbs.len(), 2);
        assert_eq!(vbs[0].1, Val::Octets(vec![0x80, 0x80]));
        assert_eq!(vbs[1].1, Val::Integer(status::PERMANENT));
        assert_eq!(
            format_oid(&vbs[1].0),
            ".1.3.6.1.2.1.17.7.1.3.2.1.5.1.51.51.0.0.0.7.0"
        );
        let del = RowChange::Delete { vlan: 1, mac };
        assert_eq!(del.varbinds(2), vec![(vbs[1].0.clone(), Val::Integer(2))]);
        let rows = vec![del.varbinds(1), set.varbinds(1)];
        assert_eq!(row_of_oid(&rows, &format_oid(&vbs[0].0)), Some(1));
        assert_eq!(row_of_oid(&rows, ".1.3"), None);
    }

    /// Drives a plan against an agent that answers tooBig above `max_rows` rows per PDU.
    fn run(sizes: &[usize], budget: usize, max_rows: usize) -> Option<Vec<(usize, usize)>> {
        let mut plan = SplitPlan::new(sizes, budget);
        let mut sent = Vec::new();
        while let Some((a, b)) = plan.next() {
            if b - a > max_rows {
                if !plan.too_big() {
                    return None;
                }
            } else {
                sent.push((a, b));
                plan.sent();
            }
        }
        assert_eq!(plan.pdus(), sent.len());
        Some(sent)
    }

    #[test]
    fn too_big_splits_in_halves_in_order() {
        assert_eq!(run(&[10; 4], 1000, 4), Some(vec![(0, 4)]));
        assert_eq!(run(&[10; 4], 1000, 2), Some(vec![(0, 2), (2, 4)]));
        assert_eq!(
            run(&[10; 5], 1000, 1),
            Some((0..5).map(|i| (i, i + 1)).collect())
        );
        // The size budget splits first; tooBig then splits what is left.
        assert_eq!(
            run(&[10; 6], 30, 2),
            Some(vec![(0, 1), (1, 3), (3, 4), (4, 6)])
        );
        assert_eq!(run(&[], 30, 2), Some(vec![]));
    }

    proptest! {
        #[test]
        fn every_row_is_sent_once_in_order(
            sizes in proptest::collection::vec(1usize..300, 0..200),
            budget in 1usize..2000,
            max_rows in 1usize..50,
        ) {
            let sent = run(&sizes, budget, max_rows).expect("one row always fits");
            let mut next = 0;
            for (a, b) in &sent {
                prop_assert_eq!(*a, next);
                prop_assert!(b > a && b - a <= max_rows);
                let total: usize = sizes[*a..*b].iter().sum();
                prop_assert!(total <= budget || b - a == 1);
                next = *b;
            }
            prop_assert_eq!(next, sizes.len());
        }
    }
}
