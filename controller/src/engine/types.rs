//! The values that cross the engine's boundary: requests, refusals,
//! answers, store writes.

use crate::leases::Lease;
use crate::store::AuditEntry;
use std::net::{Ipv6Addr, SocketAddr};
use subcast_proto::RefuseReason;

/// How a request names a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// A member name, IPv6 or MAC address as text (HTTP).
    Text(String),
    /// A wire member (UDP).
    Member(subcast_proto::Member),
}

/// Who asks: the credential leases are counted against and owned by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// An API token's name, or "udp:key K/node N" for a storage node on
    /// the UDP path.
    pub name: String,
    /// Admins may release anyone's lease.
    pub admin: bool,
    /// Most leases this credential may hold (None: no limit).
    pub max_leases: Option<u32>,
}

impl Caller {
    /// An admin without a quota (tests, tools).
    pub fn admin(name: &str) -> Caller {
        Caller {
            name: name.to_owned(),
            admin: true,
            max_leases: None,
        }
    }
}

/// A rendezvous request from either front end.
#[derive(Debug, Clone)]
pub struct Request {
    /// Parent group address or group name.
    pub parent: String,
    pub vlan: Option<u16>,
    pub targets: Vec<TargetSpec>,
    /// 0 or `None`: the configured default.
    pub lifetime_ms: Option<u64>,
    /// Owner of the lease (a token name or the UDP sender).
    pub requester: String,
    /// "udp" or "http", for metrics.
    pub path: &'static str,
}

/// A refusal a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefuseReason,
    pub detail: String,
    /// The switch that refused, did not answer or has no room, if any.
    pub switch: Option<String>,
}

impl Refusal {
    pub fn new(reason: RefuseReason, detail: impl Into<String>) -> Self {
        Refusal {
            reason,
            detail: detail.into(),
            switch: None,
        }
    }
    pub fn at(mut self, switch: String) -> Self {
        self.switch = Some(switch);
        self
    }
}

/// Why a release did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseError {
    /// No such lease (expired or released).
    Unknown,
    /// Another credential owns it.
    NotOwner { owner: String },
    /// Still being granted.
    Pending,
}

/// Result of a release: the lease and, when its group was cleared at
/// once (warm_ms 0), the per-switch outcome of the CLEAR.
#[derive(Debug, Clone)]
pub struct Released {
    pub lease: Lease,
    pub clear: Vec<(u32, String)>,
    /// "warm" (kept for reuse), "in-use" (other leases hold it),
    /// "cleared" or "pinned".
    pub group_state: &'static str,
}

/// The answer to an HTTP-side request, handed out by `poll_reply`.
#[derive(Debug, Clone)]
pub enum Answer {
    Granted(Lease),
    Refused(Refusal),
    Released(Released),
    NotReleased(ReleaseError),
}

/// An HTTP request's handle, chosen by the driver.
pub type Handle = u64;

/// A durable change; the driver applies writes in `seq` order and reports
/// the highest one done with `Event::StoreDone`.
#[derive(Debug, Clone)]
pub struct StoreWrite {
    pub seq: u64,
    pub op: StoreOp,
}

/// A row of the `groups` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub group: Ipv6Addr,
    pub vlan: u16,
    pub parent: Ipv6Addr,
    pub targets: Vec<crate::leases::Target>,
    pub switches: Vec<u32>,
    /// Every lease granted on the group ends by then (Unix ms).
    pub hold_until_ms: u64,
    pub pinned: bool,
    pub created_ms: u64,
}

#[derive(Debug, Clone)]
pub enum StoreOp {
    PutGroup(GroupRow),
    HoldGroup {
        group: Ipv6Addr,
        hold_until_ms: u64,
    },
    DeleteGroup {
        group: Ipv6Addr,
    },
    PutLease(Lease),
    DeleteLease {
        id: u64,
    },
    /// Addresses of `vlan`'s slice with index below `upto` may have been
    /// pushed: a restart sweeps them.
    PoolMark {
        vlan: u16,
        upto: u64,
    },
    Audit(Vec<AuditEntry>),
    AgentHello {
        switch_id: u32,
        address: String,
        software_version: String,
        backend: &'static str,
        at_ms: u64,
    },
}

/// What the engine gets told.
#[derive(Debug, Clone)]
pub enum Event {
    /// A datagram on the controller's UDP socket.
    Datagram { from: SocketAddr, bytes: Vec<u8> },
    /// An HTTP rendezvous request; the answer comes from `poll_reply`.
    Request {
        handle: Handle,
        req: Request,
        caller: Caller,
    },
    /// An HTTP release.
    Release {
        handle: Handle,
        lease_id: u64,
        caller: Caller,
    },
    /// Every store write up to this sequence number is durable.
    StoreDone { upto: u64 },
}
