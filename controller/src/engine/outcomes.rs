//! Agents' answers to items, routed to the group they concern, and the
//! audit log of every instruction.

use super::Engine;
use super::fanout::{Done, Outcome, Purpose};
use crate::metrics::SwitchOpLabel;
use crate::store::AuditEntry;
use std::time::Instant;

impl Engine {
    pub(super) fn on_item_done(&mut self, now: Instant, d: Done) {
        if d.outcome != Outcome::Cancelled {
            self.audit(now, &d);
        }
        if let Outcome::Acked(_) = d.outcome {
            let op = match d.item.purpose {
                Purpose::Install => "set",
                Purpose::Refresh => "refresh",
                Purpose::Repush => "repush",
                Purpose::Clear => "clear",
            };
            let switch = self
                .cfg
                .switch(d.item.switch)
                .map_or_else(|| d.item.switch.to_string(), |s| s.name.clone());
            self.metrics
                .switch_ops
                .get_or_create(&SwitchOpLabel {
                    switch,
                    op: op.to_owned(),
                })
                .inc();
        }
        match d.item.purpose {
            Purpose::Clear => self.clear_done(now, d),
            _ => self.set_done(now, d),
        }
    }

    fn audit(&mut self, now: Instant, d: &Done) {
        let mut detail = match &d.outcome {
            Outcome::Acked(n) => format!("{n} ports"),
            Outcome::Naked { reason, detail } => format!("{}: {detail}", reason.name()),
            _ => String::new(),
        };
        if d.batch_len > 1 {
            if !detail.is_empty() {
                detail.push(' ');
            }
            detail.push_str(&format!("(in a BATCH of {})", d.batch_len));
        }
        let row = AuditEntry {
            at_ms: self.clock.unix_ms(now),
            txid: d.txid,
            lease_id: d.item.lease,
            switch_id: d.item.switch,
            group: d.item.body.group().to_string(),
            instruction: d.item.purpose.name().to_owned(),
            outcome: d.outcome.name().to_owned(),
            sends: d.sends,
            detail,
        };
        self.audit_buf.push(row);
    }

    /// Writes the audit rows gathered since the last call.
    pub(super) fn flush_audit(&mut self) {
        if !self.audit_buf.is_empty() {
            let rows = std::mem::take(&mut self.audit_buf);
            self.write(super::StoreOp::Audit(rows));
        }
    }
}
