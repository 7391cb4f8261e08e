//! One instruction as the core handles it: SET_SUBSET, CLEAR and BATCH are
//! all a list of items (one for SET_SUBSET and CLEAR) applied all or
//! nothing, answered with ACK / BATCH_ACK or one NAK.

use super::clock::Now;
use super::validate::Refusal;
use std::net::SocketAddr;
use subcast_proto::{Ack, BatchAck, BatchItem, Message, Nak};

/// Which message carried the instruction (decides the answer's form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Set,
    Clear,
    Batch,
}

/// An authenticated instruction waiting for, or in, the backend.
#[derive(Debug, Clone)]
pub struct Instruction {
    pub from: SocketAddr,
    pub sender_id: u32,
    pub txid: u64,
    pub form: Form,
    pub items: Vec<BatchItem>,
    pub received: Now,
    /// The switch was read for this instruction already.
    pub refreshed: bool,
}

impl Instruction {
    /// The instruction in `m`, if `m` is one.
    pub fn from_message(m: &Message, from: SocketAddr, sender_id: u32, now: Now) -> Option<Self> {
        let (txid, form, items) = match m {
            Message::SetSubset(s) => (s.txid, Form::Set, vec![BatchItem::from_set(s)]),
            Message::Clear(c) => (
                c.txid,
                Form::Clear,
                vec![BatchItem::Clear { group: c.group }],
            ),
            Message::Batch(b) => (b.txid, Form::Batch, b.items.clone()),
            _ => return None,
        };
        Some(Instruction {
            from,
            sender_id,
            txid,
            form,
            items,
            received: now,
            refreshed: false,
        })
    }

    /// The message name (metrics, logs).
    pub fn kind(&self) -> &'static str {
        match self.form {
            Form::Set => "SET_SUBSET",
            Form::Clear => "CLEAR",
            Form::Batch => "BATCH",
        }
    }

    /// The positive answer, with each item's port count.
    pub fn ack(&self, switch_id: u32, counts: Vec<u16>) -> Message {
        match self.form {
            Form::Set | Form::Clear => Message::Ack(Ack {
                txid: self.txid,
                switch_id,
                port_count: counts.first().copied().unwrap_or(0),
            }),
            Form::Batch => Message::BatchAck(BatchAck {
                txid: self.txid,
                switch_id,
                port_counts: counts,
            }),
        }
    }

    /// The refusal; for a batch the detail names the item.
    pub fn nak(&self, switch_id: u32, item: Option<usize>, r: &Refusal) -> Message {
        let detail = match (self.form, item) {
            (Form::Batch, Some(i)) => {
                let g = self.items.get(i).map(|x| x.group().to_string());
                Refusal::new(
                    r.reason,
                    format!("item {i} ({}): {}", g.unwrap_or_default(), r.detail),
                )
                .detail
            }
            _ => r.detail.clone(),
        };
        Message::Nak(Nak {
            txid: self.txid,
            switch_id,
            reason: r.reason,
            detail,
        })
    }
}
