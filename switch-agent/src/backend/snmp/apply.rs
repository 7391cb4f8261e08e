//! An action's changes as rows of dot1qStaticMulticastTable, all or nothing.
//!
//! Each change becomes one [`RowWrite`] (write StaticEgressPorts + Status
//! permanent, or Status invalid to delete). [`write_rows`] is the one place
//! that talks to the switch: today one SET per row, in order (the driver
//! has a one-row API, and net-snmp's `pass_persist` applies varbinds one by
//! one anyway); if a row is refused, the rows already written are written
//! back to what they were, newest first. With a multi-row SET in the driver
//! (several rows in one PDU, atomic where the agent implements the MIB's
//! test/commit phases), only [`write_rows`] changes: one call for the
//! forward rows, the same undo on failure.

use super::{map_err, port_ids};
use crate::backend::BackendError;
use crate::core::action::{ActionError, ActionResult, Change};
use subcast_snmp::{MacAddr, SnmpSwitch};

/// One row to write: `egress` None deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowWrite {
    pub vlan: u16,
    pub mac: MacAddr,
    pub egress: Option<subcast_snmp::PortSet>,
}

/// The row writes for `changes` and the writes that undo each of them.
pub fn rows_for(
    changes: &[Change],
    default_vlan: u16,
) -> Result<(Vec<RowWrite>, Vec<RowWrite>), ActionError> {
    let vlan = |v: u16| if v == 0 { default_vlan } else { v };
    let mut fwd = Vec::with_capacity(changes.len());
    let mut undo = Vec::with_capacity(changes.len());
    for (i, c) in changes.iter().enumerate() {
        let mac = MacAddr::of_group(c.group());
        let ids = |p| port_ids(p).map_err(|e| ActionError::clean(e, Some(i)));
        let (now, before) = match c {
            Change::Install {
                ports, previous, ..
            } => (Some(ids(ports)?), previous.as_ref().map(ids).transpose()?),
            Change::Remove { ports, .. } => (None, Some(ids(ports)?)),
        };
        fwd.push(RowWrite {
            vlan: vlan(c.vlan()),
            mac,
            egress: now,
        });
        undo.push(RowWrite {
            vlan: vlan(c.vlan()),
            mac,
            // An empty port set is not a row: nothing to restore.
            egress: before.filter(|p| !p.is_empty()),
        });
    }
    Ok((fwd, undo))
}

async fn write_row(switch: &SnmpSwitch, r: &RowWrite) -> Result<(), BackendError> {
    match &r.egress {
        Some(p) => switch.install_mac(r.vlan, r.mac, p).await,
        None => switch.remove_mac(r.vlan, r.mac).await,
    }
    .map_err(map_err)
}

/// Writes `rows` in order; on a refusal, returns its index and error after
/// the rows before it were written.
pub async fn write_rows(
    switch: &SnmpSwitch,
    rows: &[RowWrite],
) -> Result<(), (usize, BackendError)> {
    for (i, r) in rows.iter().enumerate() {
        write_row(switch, r).await.map_err(|e| (i, e))?;
    }
    Ok(())
}

/// Applies `changes` all or nothing.
pub async fn apply(switch: &SnmpSwitch, changes: &[Change], default_vlan: u16) -> ActionResult {
    let (fwd, undo) = rows_for(changes, default_vlan)?;
    let Err((failed, error)) = write_rows(switch, &fwd).await else {
        return Ok(());
    };
    // A timeout may or may not have written the failed row: undo it too.
    let unsure = matches!(error, BackendError::Unreachable(_));
    let last = if unsure { failed + 1 } else { failed };
    let back: Vec<RowWrite> = undo[..last].iter().rev().cloned().collect();
    tracing::info!(%error, undo = back.len(), "SNMP SET refused part way: writing the rows back");
    let uncertain = match write_rows(switch, &back).await {
        Ok(()) => false,
        Err((_, e)) => {
            tracing::error!(error = %e, "writing the rows back failed");
            true
        }
    };
    Err(ActionError {
        error,
        change: Some(failed),
        uncertain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_their_undo() {
        let g1 = "ff15::5c00:1".parse().unwrap();
        let g2 = "ff15::5c00:2".parse().unwrap();
        let changes = vec![
            Change::Install {
                vlan: 0,
                group: g1,
                ports: [1, 2].into(),
                previous: Some([3].into()),
            },
            Change::Install {
                vlan: 7,
                group: g2,
                ports: [4].into(),
                previous: None,
            },
            Change::Remove {
                vlan: 0,
                group: g2,
                ports: [5].into(),
            },
        ];
        let (fwd, undo) = rows_for(&changes, 1).unwrap();
        assert_eq!(fwd[0].vlan, 1);
        assert_eq!(fwd[0].egress, Some([1, 2].into()));
        assert_eq!(undo[0].egress, Some([3].into()));
        assert_eq!(fwd[1].vlan, 7);
        assert_eq!(undo[1].egress, None, "a new row is deleted again");
        assert_eq!(fwd[2].egress, None);
        assert_eq!(
            undo[2].egress,
            Some([5].into()),
            "a deleted row is written back"
        );
        let bad = vec![Change::Install {
            vlan: 0,
            group: g1,
            ports: [0].into(),
            previous: None,
        }];
        assert_eq!(rows_for(&bad, 1).unwrap_err().change, Some(0));
    }
}
