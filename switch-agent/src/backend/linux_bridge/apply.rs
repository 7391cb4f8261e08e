//! One action's changes as one netlink batch: first the deletes of groups
//! removed (CLEAR, eviction) that no earlier change of the batch touches, so
//! the bridge never holds more groups than the controller counted; then every
//! add (so a replaced group gains its new ports before it loses the old ones),
//! then the other deletes, in one sendmsg; the kernel reports only failures,
//! then acknowledges the barrier. A failure undoes what the batch applied, in
//! a second batch.

use super::mdb::SetOp;
use super::socket::{BatchError, MdbSocket, Op};
use crate::backend::{BackendError, PortId};
use crate::core::action::{ActionError, ActionResult, Change};

pub const ENOENT: i32 = 2;
const EINVAL: i32 = 22;
const E2BIG: i32 = 7;
const ENOSPC: i32 = 28;

/// The requests for `changes`, each with the change it belongs to. `vid`
/// maps an instruction's VLAN to the MDB's (0 without VLAN filtering).
pub fn ops_for(changes: &[Change], vid: impl Fn(u16) -> u16) -> Vec<(Op, usize)> {
    let mut first = Vec::new();
    let mut adds = Vec::new();
    let mut dels = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        let touched_before = changes[..i]
            .iter()
            .any(|e| e.group() == c.group() && e.vlan() == c.vlan());
        let v = vid(c.vlan());
        let g = c.group();
        let op = |op, port| {
            (
                Op {
                    op,
                    port,
                    vid: v,
                    group: g,
                },
                i,
            )
        };
        match c {
            Change::Install {
                ports, previous, ..
            } => {
                let empty = Default::default();
                let prev = previous.as_ref().unwrap_or(&empty);
                adds.extend(ports.difference(prev).map(|p| op(SetOp::AddOrReplace, *p)));
                dels.extend(prev.difference(ports).map(|p| op(SetOp::Delete, *p)));
            }
            Change::Remove { ports, .. } => {
                let to = if touched_before {
                    &mut dels
                } else {
                    &mut first
                };
                to.extend(ports.iter().map(|p| op(SetOp::Delete, *p)));
            }
        }
    }
    first.extend(adds);
    first.extend(dels);
    first
}

pub fn errno_error(op: &str, port: PortId, errno: i32) -> BackendError {
    let msg = format!(
        "{op} on port ifindex {port}: {}",
        std::io::Error::from_raw_os_error(errno)
    );
    match errno {
        E2BIG | ENOSPC => {
            BackendError::TableFull(format!("{msg} (raise the bridge's mcast_hash_max)"))
        }
        _ => BackendError::Refused(msg),
    }
}

/// An op that failed without changing anything we must undo: a delete of
/// an entry already gone (ENOENT: the group has other ports; EINVAL: the
/// kernel has no such group at all).
fn harmless(o: &Op, errno: i32) -> bool {
    o.op == SetOp::Delete && (errno == ENOENT || errno == EINVAL)
}

/// Applies `changes` all or nothing.
pub async fn apply(
    sock: &mut MdbSocket,
    bridge: u32,
    changes: &[Change],
    vid: impl Fn(u16) -> u16,
) -> ActionResult {
    let planned = ops_for(changes, vid);
    let ops: Vec<Op> = planned.iter().map(|(o, _)| *o).collect();
    let failed = match sock.batch(bridge, &ops).await {
        Ok(f) => f,
        Err(BatchError::NotSent(e)) => return Err(ActionError::clean(e, None)),
        Err(BatchError::NoAnswer(e)) => {
            return Err(ActionError {
                error: e,
                change: None,
                uncertain: true,
            });
        }
    };
    let Some(&(first, errno)) = failed.iter().find(|(i, e)| !harmless(&ops[*i], *e)) else {
        return Ok(());
    };
    let what = match ops[first].op {
        SetOp::Delete => "delete MDB entry",
        _ => "add MDB entry",
    };
    let error = errno_error(what, ops[first].port, errno);
    let change = Some(planned[first].1);
    // Undo every op that took effect, newest first.
    let undo: Vec<Op> = ops
        .iter()
        .enumerate()
        .rev()
        .filter(|(i, _)| !failed.iter().any(|(f, _)| f == i))
        .map(|(_, o)| Op {
            op: match o.op {
                SetOp::Delete => SetOp::AddOrReplace,
                _ => SetOp::Delete,
            },
            ..*o
        })
        .collect();
    tracing::info!(%error, undo = undo.len(), "MDB batch refused part way: undoing");
    let uncertain = match sock.batch(bridge, &undo).await {
        Ok(f) => {
            let bad: Vec<_> = f.iter().filter(|(i, e)| !harmless(&undo[*i], *e)).collect();
            if !bad.is_empty() {
                tracing::error!(failures = bad.len(), "undoing a refused MDB batch failed");
            }
            !bad.is_empty()
        }
        Err(e) => {
            tracing::error!(error = ?e, "undoing a refused MDB batch failed");
            true
        }
    };
    Err(ActionError {
        error,
        change,
        uncertain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_groups_go_first_then_adds_then_replaced_ports() {
        let g1 = "ff15::5c00:1".parse().unwrap();
        let g2 = "ff15::5c00:2".parse().unwrap();
        let changes = vec![
            Change::Install {
                vlan: 5,
                group: g1,
                ports: [2, 3].into(),
                previous: Some([1, 2].into()),
            },
            Change::Remove {
                vlan: 0,
                group: g2,
                ports: [4].into(),
            },
            Change::Install {
                vlan: 0,
                group: g2,
                ports: [7].into(),
                previous: None,
            },
        ];
        let ops = ops_for(&changes, |_| 0);
        let shape: Vec<(SetOp, u32, usize)> = ops.iter().map(|(o, i)| (o.op, o.port, *i)).collect();
        assert_eq!(
            shape,
            vec![
                (SetOp::Delete, 4, 1),
                (SetOp::AddOrReplace, 3, 0),
                (SetOp::AddOrReplace, 7, 2),
                (SetOp::Delete, 1, 0),
            ]
        );
        assert!(ops.iter().all(|(o, _)| o.vid == 0));
    }

    /// An eviction and the install it makes room for, in one BATCH: the
    /// evicted group leaves the bridge before the new one arrives, so the
    /// bridge never holds more groups than its budget (the `rate` lab
    /// scenario saw 8 groups on bridges with a budget of 4 before).
    #[test]
    fn an_evicted_group_leaves_before_the_new_one_arrives() {
        let old = "ff05::5c:2:1".parse().unwrap();
        let new = "ff05::5c:2:2".parse().unwrap();
        let changes = vec![
            Change::Install {
                vlan: 0,
                group: new,
                ports: [1, 2].into(),
                previous: None,
            },
            Change::Remove {
                vlan: 0,
                group: old,
                ports: [1, 3].into(),
            },
        ];
        let ops = ops_for(&changes, |_| 0);
        let shape: Vec<(SetOp, u32)> = ops.iter().map(|(o, _)| (o.op, o.port)).collect();
        assert_eq!(
            shape,
            vec![
                (SetOp::Delete, 1),
                (SetOp::Delete, 3),
                (SetOp::AddOrReplace, 1),
                (SetOp::AddOrReplace, 2),
            ]
        );
        assert_eq!(ops[0].0.group, old);
    }

    /// Installed then removed in one batch: the remove stays last (the group
    /// ends absent).
    #[test]
    fn a_remove_after_an_install_of_the_same_group_stays_last() {
        let g = "ff05::5c:2:1".parse().unwrap();
        let changes = vec![
            Change::Install {
                vlan: 0,
                group: g,
                ports: [1].into(),
                previous: None,
            },
            Change::Remove {
                vlan: 0,
                group: g,
                ports: [1].into(),
            },
        ];
        let shape: Vec<SetOp> = ops_for(&changes, |_| 0).iter().map(|(o, _)| o.op).collect();
        assert_eq!(shape, vec![SetOp::AddOrReplace, SetOp::Delete]);
    }
}
