//! Storage node <-> controller: RENDEZVOUS_REQUEST, RENDEZVOUS_GRANT,
//! RENDEZVOUS_RELEASE, RELEASE_ACK.

use crate::error::DecodeError;
use crate::group::{GroupAddr, check_member_family};
use crate::member::{Member, emit_list, parse_list};
use crate::push::{check_multicast, check_vlan};
use crate::wire::{Reader, Writer};
use serde::{Deserialize, Serialize};
use std::net::Ipv6Addr;

/// Ask for a rendezvous group: the subset of `parent` reaching `targets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RendezvousRequest {
    /// Chosen by the requester; echoed in the grant; a retransmitted
    /// request keeps its id and gets the same grant.
    pub request_id: u64,
    pub vlan: u16,
    pub parent: Ipv6Addr,
    pub lifetime_ms: u32,
    pub targets: Vec<Member>,
}

/// Why the controller refused a rendezvous request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefuseReason {
    UnknownParent = 1,
    NotAMember = 2,
    PoolExhausted = 3,
    AgentRefused = 4,
    AgentUnreachable = 5,
    BadRequest = 6,
    LifetimeTooLong = 7,
    Unauthorized = 8,
    Internal = 9,
    /// A switch in scope has no room for another group and nothing it
    /// holds can be evicted; the detail names the switch. The requester
    /// falls back to another transport.
    TableFull = 10,
    /// The requester's credential holds as many leases as it may.
    QuotaExceeded = 11,
}

impl RefuseReason {
    pub const ALL: [RefuseReason; 11] = [
        RefuseReason::UnknownParent,
        RefuseReason::NotAMember,
        RefuseReason::PoolExhausted,
        RefuseReason::AgentRefused,
        RefuseReason::AgentUnreachable,
        RefuseReason::BadRequest,
        RefuseReason::LifetimeTooLong,
        RefuseReason::Unauthorized,
        RefuseReason::Internal,
        RefuseReason::TableFull,
        RefuseReason::QuotaExceeded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RefuseReason::UnknownParent => "unknown-parent",
            RefuseReason::NotAMember => "not-a-member",
            RefuseReason::PoolExhausted => "pool-exhausted",
            RefuseReason::AgentRefused => "agent-refused",
            RefuseReason::AgentUnreachable => "agent-unreachable",
            RefuseReason::BadRequest => "bad-request",
            RefuseReason::LifetimeTooLong => "lifetime-too-long",
            RefuseReason::Unauthorized => "unauthorized",
            RefuseReason::Internal => "internal",
            RefuseReason::TableFull => "table-full",
            RefuseReason::QuotaExceeded => "quota-exceeded",
        }
    }
}

/// The controller's answer to a [`RendezvousRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RendezvousGrant {
    pub request_id: u64,
    pub outcome: GrantOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantOutcome {
    /// Every agent in scope acknowledged: send to `group` until `expires_at_ms`.
    Granted {
        group: Ipv6Addr,
        lease_id: u64,
        /// Unix time in milliseconds.
        expires_at_ms: u64,
        /// The group was already installed for this target set: the grant
        /// needed no switch update.
        reused: bool,
    },
    Refused {
        reason: RefuseReason,
        detail: String,
    },
}

/// Give a rendezvous group back before its lease ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RendezvousRelease {
    pub lease_id: u64,
}

/// The controller's answer to a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseAck {
    pub lease_id: u64,
    /// False when the lease was unknown (already expired or released).
    pub released: bool,
}

impl RendezvousRequest {
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u64(self.request_id);
        w.u16(self.vlan);
        w.ipv6(&self.parent);
        w.u32(self.lifetime_ms);
        emit_list(&self.targets, w);
    }
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request = RendezvousRequest {
            request_id: r.u64("request id")?,
            vlan: check_vlan(r.u16("VLAN")?)?,
            parent: check_multicast(r.ipv6("parent group")?, "parent group")?,
            lifetime_ms: r.u32("lifetime")?,
            targets: parse_list(r)?,
        };
        check_member_family(&request.targets, request.parent.family())?;
        Ok(request)
    }
}

/// RENDEZVOUS_GRANT flag: the group was already installed (a hit).
const GRANT_FLAG_REUSED: u8 = 0x01;

impl RendezvousGrant {
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u64(self.request_id);
        match &self.outcome {
            GrantOutcome::Granted {
                group,
                lease_id,
                expires_at_ms,
                reused,
            } => {
                w.u8(0);
                w.ipv6(group);
                w.u64(*lease_id);
                w.u64(*expires_at_ms);
                w.u8(u8::from(*reused) * GRANT_FLAG_REUSED);
                w.short_str("");
            }
            GrantOutcome::Refused { reason, detail } => {
                w.u8(*reason as u8);
                w.ipv6(&Ipv6Addr::UNSPECIFIED);
                w.u64(0);
                w.u64(0);
                w.u8(0);
                w.short_str(detail);
            }
        }
    }
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request_id = r.u64("request id")?;
        let status = r.u8("status")?;
        let group = r.ipv6("group")?;
        let lease_id = r.u64("lease id")?;
        let expires_at_ms = r.u64("expiry")?;
        let flags = r.u8("flags")?;
        if flags & !GRANT_FLAG_REUSED != 0 {
            return Err(DecodeError::Invalid {
                field: "flags",
                why: "unknown flag bits set",
            });
        }
        let detail = r.short_str("detail", 255)?;
        let outcome = if status == 0 {
            GrantOutcome::Granted {
                group: check_multicast(group, "group")?,
                lease_id,
                expires_at_ms,
                reused: flags & GRANT_FLAG_REUSED != 0,
            }
        } else {
            let reason = RefuseReason::ALL
                .into_iter()
                .find(|x| *x as u8 == status)
                .ok_or(DecodeError::Invalid {
                    field: "status",
                    why: "unknown refusal reason",
                })?;
            GrantOutcome::Refused { reason, detail }
        };
        Ok(RendezvousGrant {
            request_id,
            outcome,
        })
    }
}

impl RendezvousRelease {
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u64(self.lease_id);
    }
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RendezvousRelease {
            lease_id: r.u64("lease id")?,
        })
    }
}

impl ReleaseAck {
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u64(self.lease_id);
        w.u8(u8::from(!self.released));
    }
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let lease_id = r.u64("lease id")?;
        let released = match r.u8("status")? {
            0 => true,
            1 => false,
            _ => {
                return Err(DecodeError::Invalid {
                    field: "status",
                    why: "must be 0 (released) or 1 (unknown lease)",
                });
            }
        };
        Ok(ReleaseAck { lease_id, released })
    }
}
