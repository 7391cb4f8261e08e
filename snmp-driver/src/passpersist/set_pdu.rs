//! Where a multi-varbind SET is made all-or-nothing: the rows one SET PDU has touched so far
//! and their state before it.
//!
//! # What snmpd does (net-snmp 5.9, measured in `tests/handler_atomicity.rs`)
//! pass_persist is an "old API" handler: for a SET PDU snmpd first sends `get` for every
//! varbind (RESERVE1), then `set` for every varbind, in PDU order (ACTION). Nothing is sent
//! in the COMMIT, UNDO or FREE phases. When one `set` is refused, snmpd still sends the
//! `set`s of the *later* varbinds of the PDU, then runs UNDO (which never reaches the
//! program) and answers the manager with the error status and index of the first refused
//! varbind. So without help from the program, a refused varbind in the middle leaves the
//! varbinds before *and after* it applied.
//!
//! # What the handler does about it
//! The `set`s of one PDU arrive back to back (only `PING`s between them; snmpd serves one
//! request at a time), and every SET PDU starts with its `get`s, so "the `set`s since the
//! last `get`/`getnext`" are exactly one PDU's varbinds. The handler records, for each row
//! the PDU touches, the row as it was before the PDU ([`SetPdu::touch`]). When a `set` fails,
//! it puts every recorded row back ([`SetPdu::take_rollback`]) and refuses the remaining
//! `set`s of the PDU without applying them. The manager sees the error of the first bad
//! varbind and the bridge holds what it held before the PDU.
//!
//! Limits (pass_persist cannot do better): the earlier rows were briefly applied (for the
//! time between their `set` and the failing one, microseconds per row); if putting a row
//! back fails too (the kernel refuses, a port vanished), that row stays as the PDU left it
//! and the handler logs it; a failure of *another* subtree's varbind in the same PDU (e.g.
//! sysContact) is invisible to the handler, so its rows stay applied.

use super::bridge::BridgePort;
use crate::mib::{MacAddr, PortSet};
use std::collections::BTreeMap;

/// The bridge as one SET PDU sees it: read at its first `set`, then kept in step with the
/// PDU's own writes (no other request is served in between), so a PDU of N rows costs one
/// MDB dump, not N.
#[derive(Debug, Clone)]
pub struct PduView {
    /// The bridge's ports.
    pub ports: Vec<BridgePort>,
    /// Every row (MAC -> egress ports), empty rows included.
    pub rows: BTreeMap<MacAddr, PortSet>,
}

/// The SET PDU being applied.
#[derive(Debug, Default)]
pub struct SetPdu {
    /// Each touched row as it was before the PDU (`None`: the row did not exist).
    before: BTreeMap<MacAddr, Option<PortSet>>,
    /// One of its `set`s failed: the rest are refused and nothing stays applied.
    failed: bool,
    /// The bridge, once the first `set` has read it.
    pub view: Option<PduView>,
}

impl SetPdu {
    /// Notes that the PDU is about to change row `mac`, which is `current` now. Only the
    /// first call per row counts: it keeps the state from before the PDU.
    pub fn touch(&mut self, mac: MacAddr, current: Option<PortSet>) {
        self.before.entry(mac).or_insert(current);
    }

    /// True once a `set` of this PDU failed.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Marks the PDU failed and hands out the rows to put back (each once).
    pub fn take_rollback(&mut self) -> BTreeMap<MacAddr, Option<PortSet>> {
        self.failed = true;
        self.view = None;
        std::mem::take(&mut self.before)
    }

    /// Rows touched so far.
    pub fn rows(&self) -> usize {
        self.before.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_state_before_the_first_change() {
        let m: MacAddr = "33:33:00:00:00:01".parse().unwrap();
        let n: MacAddr = "33:33:00:00:00:02".parse().unwrap();
        let mut pdu = SetPdu::default();
        pdu.touch(m, None);
        pdu.touch(m, Some([1].into()));
        pdu.touch(n, Some([2].into()));
        assert_eq!(pdu.rows(), 2);
        assert!(!pdu.failed());
        let back = pdu.take_rollback();
        assert_eq!(back.get(&m), Some(&None));
        assert_eq!(back.get(&n), Some(&Some([2].into())));
        assert!(pdu.failed());
        assert!(pdu.take_rollback().is_empty());
    }
}
