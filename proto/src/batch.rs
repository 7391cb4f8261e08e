//! BATCH and BATCH_ACK: several subset groups set or cleared by one
//! instruction datagram, applied all-or-nothing by the agent.
//!
//! A controller that has more than one change for the same agent at the
//! same moment (a grant and an eviction, several grants at once, the
//! pre-enumerated groups after a HELLO) sends them as one BATCH. The agent
//! applies every item or none (one netlink batch, one OpenFlow bundle, one
//! SNMP SET) and answers with one BATCH_ACK carrying the port count of
//! every item in order, or one NAK (nothing applied; the detail names the
//! item).

use crate::error::DecodeError;
use crate::member::Members;
use crate::push::{Clear, SetSubset, check_multicast, check_set_families, check_vlan};
use crate::wire::{Reader, Writer};
use serde::{Deserialize, Serialize};
use std::net::Ipv6Addr;

/// Most items in one BATCH. A set item of three MAC members is 64 octets,
/// so 128 of them (8 KiB) fit the 9216-octet datagram limit.
pub const MAX_BATCH_ITEMS: usize = 128;

/// Smallest encoded item: a CLEAR item (op + group).
const MIN_ITEM_LEN: usize = 17;

const OP_SET: u8 = 1;
const OP_CLEAR: u8 = 2;

/// One change inside a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum BatchItem {
    /// As SET_SUBSET: `group` (X) = ports of `parent` (Y) toward `members`.
    Set {
        vlan: u16,
        parent: Ipv6Addr,
        group: Ipv6Addr,
        lifetime_ms: u32,
        members: Members,
    },
    /// As CLEAR: remove `group` now.
    Clear { group: Ipv6Addr },
}

impl BatchItem {
    /// The subset group the item changes.
    pub fn group(&self) -> Ipv6Addr {
        match self {
            BatchItem::Set { group, .. } | BatchItem::Clear { group } => *group,
        }
    }

    /// The item as a stand-alone SET_SUBSET or CLEAR with `txid`.
    pub fn to_single(&self, txid: u64) -> crate::Message {
        match self {
            BatchItem::Set {
                vlan,
                parent,
                group,
                lifetime_ms,
                members,
            } => crate::Message::SetSubset(SetSubset {
                txid,
                vlan: *vlan,
                parent: *parent,
                group: *group,
                lifetime_ms: *lifetime_ms,
                members: members.clone(),
            }),
            BatchItem::Clear { group } => crate::Message::Clear(Clear {
                txid,
                group: *group,
            }),
        }
    }

    /// The set item of a SET_SUBSET (its txid is the batch's).
    pub fn from_set(s: &SetSubset) -> Self {
        BatchItem::Set {
            vlan: s.vlan,
            parent: s.parent,
            group: s.group,
            lifetime_ms: s.lifetime_ms,
            members: s.members.clone(),
        }
    }

    fn emit(&self, w: &mut Writer) {
        match self {
            BatchItem::Set {
                vlan,
                parent,
                group,
                lifetime_ms,
                members,
            } => {
                w.u8(OP_SET);
                w.u16(*vlan);
                w.ipv6(parent);
                w.ipv6(group);
                w.u32(*lifetime_ms);
                members.emit(w);
            }
            BatchItem::Clear { group } => {
                w.u8(OP_CLEAR);
                w.ipv6(group);
            }
        }
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8("batch item op")? {
            OP_SET => {
                let vlan = check_vlan(r.u16("VLAN")?)?;
                let parent = check_multicast(r.ipv6("parent group")?, "parent group")?;
                let group = check_multicast(r.ipv6("subset group")?, "subset group")?;
                if group == parent {
                    return Err(DecodeError::Invalid {
                        field: "subset group",
                        why: "must differ from the parent group",
                    });
                }
                let lifetime_ms = r.u32("lifetime")?;
                if lifetime_ms == 0 {
                    return Err(DecodeError::Invalid {
                        field: "lifetime",
                        why: "must be at least 1 ms",
                    });
                }
                let members = Members::parse(r)?;
                check_set_families(parent, group, &members)?;
                Ok(BatchItem::Set {
                    vlan,
                    parent,
                    group,
                    lifetime_ms,
                    members,
                })
            }
            OP_CLEAR => Ok(BatchItem::Clear {
                group: check_multicast(r.ipv6("subset group")?, "subset group")?,
            }),
            _ => Err(DecodeError::Invalid {
                field: "batch item op",
                why: "must be 1 (set) or 2 (clear)",
            }),
        }
    }
}

/// Controller -> agent: apply every item, or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub txid: u64,
    pub items: Vec<BatchItem>,
}

impl Batch {
    /// Octets of the encoded body: a sender splits batches so that header,
    /// body and tag stay within [`crate::MAX_DATAGRAM`].
    pub fn body_len(&self) -> usize {
        let mut w = Writer::default();
        self.emit(&mut w);
        w.buf.len()
    }

    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.u16(self.items.len() as u16);
        for i in &self.items {
            i.emit(w);
        }
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let txid = r.u64("transaction id")?;
        let n = usize::from(r.u16("item count")?);
        if n == 0 {
            return Err(DecodeError::Invalid {
                field: "item count",
                why: "a batch needs at least one item",
            });
        }
        if n > MAX_BATCH_ITEMS {
            return Err(DecodeError::Invalid {
                field: "item count",
                why: "more than 128 items",
            });
        }
        r.check_count(n, MIN_ITEM_LEN, "batch items")?;
        let mut items: Vec<BatchItem> = Vec::with_capacity(n);
        for _ in 0..n {
            let item = BatchItem::parse(r)?;
            if items.iter().any(|i| i.group() == item.group()) {
                return Err(DecodeError::Invalid {
                    field: "batch item",
                    why: "a subset group appears twice in one batch",
                });
            }
            items.push(item);
        }
        Ok(Batch { txid, items })
    }
}

/// Agent -> controller: every item of the batch is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAck {
    pub txid: u64,
    pub switch_id: u32,
    /// Ports now in each item's group, in item order (0 for a clear).
    pub port_counts: Vec<u16>,
}

impl BatchAck {
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.u32(self.switch_id);
        w.u16(self.port_counts.len() as u16);
        for c in &self.port_counts {
            w.u16(*c);
        }
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let txid = r.u64("transaction id")?;
        let switch_id = r.u32("switch id")?;
        let n = usize::from(r.u16("item count")?);
        if n == 0 || n > MAX_BATCH_ITEMS {
            return Err(DecodeError::Invalid {
                field: "item count",
                why: "must be 1 to 128",
            });
        }
        r.check_count(n, 2, "port counts")?;
        let mut port_counts = Vec::with_capacity(n);
        for _ in 0..n {
            port_counts.push(r.u16("port count")?);
        }
        Ok(BatchAck {
            txid,
            switch_id,
            port_counts,
        })
    }
}
