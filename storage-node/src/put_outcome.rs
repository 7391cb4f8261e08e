//! How one chunk's put ends and what it asks of its owner.

use crate::put_phases::PutPhases;
use std::net::Ipv6Addr;
use subcast_proto::replicast::Hash32;

/// Why a put failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    #[error(
        "chunk {chunk}: only {have} of {want} targets available in negotiating group {group} ({not_now} said \"not now\"); start more nodes, free disk space, or lower --replicas"
    )]
    NotEnoughTargets {
        chunk: String,
        group: Ipv6Addr,
        want: usize,
        have: usize,
        not_now: usize,
    },
    #[error(
        "chunk {chunk}: the controller gave no rendezvous group ({why}); check the controller, or use --transport ng-multicast"
    )]
    Rendezvous { chunk: String, why: String },
    #[error(
        "chunk {chunk}: put given up by its owner before its ACCEPT (a new proposal replaces it)"
    )]
    Abandoned { chunk: String },
}

/// Result of a successful put.
#[derive(Debug, Clone, PartialEq)]
pub struct PutOutcome {
    pub chunk_id: Hash32,
    pub size: usize,
    /// Node ids that stored the chunk in this put.
    pub stored_on: Vec<u32>,
    /// Node ids that already held it (deduplication).
    pub already: Vec<u32>,
    /// Targets that failed and were replaced.
    pub replaced: u32,
    pub datagrams_sent: u64,
    pub payload_bytes_sent: u64,
    /// Why the fallback transport was used, if it was.
    pub fallback: Option<String>,
    /// DATA went without waiting for the targets' PUT_READY: they were
    /// known members of the rendezvous group already.
    pub ready_skipped: bool,
    /// How long each phase took.
    pub phases: PutPhases,
}

/// What the owner must do besides transmitting.
#[derive(Debug, Clone, PartialEq)]
pub enum PutEvent {
    /// Ask the controller for a rendezvous group of `parent` reaching
    /// `targets`, then call [`PutMachine::on_group`](crate::put::PutMachine::on_group).
    NeedRendezvous {
        parent: Ipv6Addr,
        targets: Vec<Ipv6Addr>,
    },
    Done(PutOutcome),
    Failed(PutError),
}
