//! The push protocol between controller and switch agents: HELLO,
//! HEARTBEAT, SET_SUBSET, CLEAR, ACK, NAK.

use crate::error::DecodeError;
use crate::group::GroupAddr;
use crate::member::Members;
use crate::wire::{Reader, Writer};
use serde::{Deserialize, Serialize};
use std::net::Ipv6Addr;

/// Which kind of switch an agent drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    LinuxBridge = 1,
    Openflow = 2,
    Snmp = 3,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::LinuxBridge => "linux-bridge",
            BackendKind::Openflow => "openflow",
            BackendKind::Snmp => "snmp",
        }
    }
    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            1 => BackendKind::LinuxBridge,
            2 => BackendKind::Openflow,
            3 => BackendKind::Snmp,
            _ => {
                return Err(DecodeError::Invalid {
                    field: "backend kind",
                    why: "must be 1, 2 or 3",
                });
            }
        })
    }
}

/// Agent -> controller, at start and whenever the controller seems new;
/// repeated until a [`HelloAck`] for the same `instance` arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub switch_id: u32,
    pub backend: BackendKind,
    pub port_count: u16,
    /// Subset groups this switch can hold for subcast: the backend's
    /// table size minus the entries subcast does not own (bridge
    /// `hash_max`, OVS group table, configured for SNMP). 0: unknown.
    pub table_capacity: u32,
    /// Identifies this run of the agent (its start time in microseconds):
    /// a new instance means every group it held is gone.
    pub instance: u64,
    pub software_version: String,
}

/// Controller -> agent: the HELLO of `instance` was received (the
/// controller re-pushes that switch's live groups after sending it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloAck {
    pub switch_id: u32,
    pub instance: u64,
}

/// Agent -> controller, periodically: liveness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub switch_id: u32,
    pub installed_groups: u32,
    pub uptime_s: u32,
    /// As in HELLO; it changes when other users of the switch's table do.
    pub table_capacity: u32,
}

/// Controller -> agent: set subset group `group` (X) to the ports of
/// `parent` (Y) that lead to `members`, for `lifetime_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSubset {
    pub txid: u64,
    pub vlan: u16,
    pub parent: Ipv6Addr,
    pub group: Ipv6Addr,
    pub lifetime_ms: u32,
    pub members: Members,
}

/// Controller -> agent: remove subset group `group` now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clear {
    pub txid: u64,
    pub group: Ipv6Addr,
}

/// Agent -> controller: the instruction is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub txid: u64,
    pub switch_id: u32,
    /// Number of ports now in the subset group on this switch.
    pub port_count: u16,
}

/// Why an agent refused an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NakReason {
    NotASubset = 1,
    UnknownParent = 2,
    WrongVlan = 3,
    BadAuth = 4,
    Replay = 5,
    TableFull = 6,
    BackendError = 7,
    Malformed = 8,
}

impl NakReason {
    pub const ALL: [NakReason; 8] = [
        NakReason::NotASubset,
        NakReason::UnknownParent,
        NakReason::WrongVlan,
        NakReason::BadAuth,
        NakReason::Replay,
        NakReason::TableFull,
        NakReason::BackendError,
        NakReason::Malformed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NakReason::NotASubset => "not-a-subset",
            NakReason::UnknownParent => "unknown-parent",
            NakReason::WrongVlan => "wrong-vlan",
            NakReason::BadAuth => "bad-auth",
            NakReason::Replay => "replay",
            NakReason::TableFull => "table-full",
            NakReason::BackendError => "backend-error",
            NakReason::Malformed => "malformed",
        }
    }

    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        NakReason::ALL
            .into_iter()
            .find(|r| *r as u8 == v)
            .ok_or(DecodeError::Invalid {
                field: "NAK reason",
                why: "unknown reason code",
            })
    }
}

/// Agent -> controller: the instruction is refused; nothing was installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nak {
    pub txid: u64,
    pub switch_id: u32,
    pub reason: NakReason,
    /// Human-readable detail (at most 255 bytes on the wire).
    pub detail: String,
}

/// Longest software version string.
pub const MAX_VERSION_LEN: usize = 64;

pub(crate) fn check_vlan(vlan: u16) -> Result<u16, DecodeError> {
    if vlan > 4094 {
        return Err(DecodeError::Invalid {
            field: "VLAN",
            why: "must be 0 (untagged) to 4094",
        });
    }
    Ok(vlan)
}

/// A group field of either family ([`crate::group`]).
pub(crate) fn check_multicast(a: Ipv6Addr, field: &'static str) -> Result<Ipv6Addr, DecodeError> {
    crate::group::check_group(a, field)
}

/// The family rules of a set: X of Y's family, IP members of that family.
pub(crate) fn check_set_families(
    parent: Ipv6Addr,
    group: Ipv6Addr,
    members: &Members,
) -> Result<(), DecodeError> {
    crate::group::check_same_family(parent, group)?;
    if let Members::List(l) = members {
        crate::group::check_member_family(l, parent.family())?;
    }
    Ok(())
}

impl Hello {
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u32(self.switch_id);
        w.u8(self.backend as u8);
        w.u16(self.port_count);
        w.u32(self.table_capacity);
        w.u64(self.instance);
        w.short_str(&self.software_version);
    }
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Hello {
            switch_id: r.u32("switch id")?,
            backend: BackendKind::from_u8(r.u8("backend kind")?)?,
            port_count: r.u16("port count")?,
            table_capacity: r.u32("table capacity")?,
            instance: r.u64("instance")?,
            software_version: r.short_str("software version", MAX_VERSION_LEN)?,
        })
    }
}

impl HelloAck {
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u32(self.switch_id);
        w.u64(self.instance);
    }
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(HelloAck {
            switch_id: r.u32("switch id")?,
            instance: r.u64("instance")?,
        })
    }
}

impl Heartbeat {
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u32(self.switch_id);
        w.u32(self.installed_groups);
        w.u32(self.uptime_s);
        w.u32(self.table_capacity);
    }
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Heartbeat {
            switch_id: r.u32("switch id")?,
            installed_groups: r.u32("installed groups")?,
            uptime_s: r.u32("uptime")?,
            table_capacity: r.u32("table capacity")?,
        })
    }
}

impl SetSubset {
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.u16(self.vlan);
        w.ipv6(&self.parent);
        w.ipv6(&self.group);
        w.u32(self.lifetime_ms);
        self.members.emit(w);
    }
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let txid = r.u64("transaction id")?;
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
        Ok(SetSubset {
            txid,
            vlan,
            parent,
            group,
            lifetime_ms,
            members,
        })
    }
}

impl Clear {
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.ipv6(&self.group);
    }
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Clear {
            txid: r.u64("transaction id")?,
            group: check_multicast(r.ipv6("subset group")?, "subset group")?,
        })
    }
}

impl Ack {
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.u32(self.switch_id);
        w.u16(self.port_count);
    }
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Ack {
            txid: r.u64("transaction id")?,
            switch_id: r.u32("switch id")?,
            port_count: r.u16("port count")?,
        })
    }
}

impl Nak {
    pub(crate) fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.u32(self.switch_id);
        w.u8(self.reason as u8);
        w.short_str(&self.detail);
    }
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Nak {
            txid: r.u64("transaction id")?,
            switch_id: r.u32("switch id")?,
            reason: NakReason::from_u8(r.u8("NAK reason")?)?,
            detail: r.short_str("detail", 255)?,
        })
    }
}
