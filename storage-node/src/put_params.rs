//! What one chunk's put is told: its settings and timers.

use crate::transport::Mode;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;
use subcast_proto::PairKeys;
use subcast_proto::replicast::{ChunkKind, TransferKey, WRAPPED_KEY_LEN};

/// Timing of a put.
#[derive(Debug, Clone, Copy)]
pub struct PutTimers {
    /// Longest wait for bids in one round.
    pub bid_timeout: Duration,
    /// Once R usable bids are in, wait this much longer for better ones
    /// (no member known).
    pub bid_grace: Duration,
    /// As `bid_grace`, while known members have not answered yet.
    pub bid_grace_known: Duration,
    /// Proposal rounds before giving up.
    pub max_rounds: u32,
    /// Silence from a target before it is polled.
    pub poll_interval: Duration,
    /// After a pass of DATA, how long a target that has not acknowledged
    /// is left alone before its first poll. A target whose pass is over
    /// NACKs its own gaps (`ReceiveTimers::gap_grace`); the poll finds
    /// the one that lost the pass's last datagrams, or all of them, and
    /// so knows of no end. Polling at once instead costs every put:
    /// three more datagrams each way while the targets write.
    pub tail_poll: Duration,
    /// Unanswered polls before a target is replaced.
    pub max_polls: u32,
    /// Longest wait between PUT_ACCEPT and the first DATA for the
    /// targets' PUT_READY (they know the transfer and joined its group).
    pub join_lead: Duration,
    /// A target's PUT_READY missing this long: its ACCEPT (or READY) was
    /// lost; send the ACCEPT to it again.
    pub ready_retry: Duration,
    /// After a put on a rendezvous group ends with every target's PUT_ACK,
    /// its targets are taken to be members of the group for this long: a
    /// put to the same group meanwhile sends DATA right after its ACCEPT,
    /// without waiting for PUT_READY. A target stays a member for
    /// `node::LINGER` (2 s) after its last transfer on a group, so the
    /// default of 1 s leaves a second of margin. Zero: always wait.
    pub warm_for: Duration,
}

impl PutTimers {
    /// How long a bid round goes on once R usable bids are in: with
    /// members known and some still out, long enough for a slow one. A
    /// lost bid or a dead member costs this rather than `bid_timeout`;
    /// members still out then are set aside until they answer again.
    pub fn grace_after_r(&self, members_known: bool) -> Duration {
        if members_known {
            self.bid_grace_known
        } else {
            self.bid_grace
        }
    }
}

impl Default for PutTimers {
    fn default() -> Self {
        PutTimers {
            bid_timeout: Duration::from_millis(200),
            bid_grace: Duration::from_millis(3),
            bid_grace_known: Duration::from_millis(20),
            max_rounds: 5,
            poll_interval: Duration::from_millis(25),
            tail_poll: Duration::from_millis(5),
            max_polls: 40,
            join_lead: Duration::from_millis(100),
            ready_retry: Duration::from_millis(5),
            warm_for: Duration::from_secs(1),
        }
    }
}

/// What a put needs to know.
#[derive(Debug, Clone)]
pub struct PutParams {
    pub replicas: usize,
    pub mode: Mode,
    /// The chunk's negotiating group.
    pub group: Ipv6Addr,
    /// The nodes' UDP port.
    pub port: u16,
    pub datagram_payload: usize,
    pub kind: ChunkKind,
    pub timers: PutTimers,
    /// Rendezvous mode: the transport used when the controller has no
    /// room for a group (ng-multicast or unicast).
    pub fallback: Mode,
}

/// The key a put's DATA travels under (keyed DATA, 0x47): this node's
/// pair keys wrap it for each target in the PUT_ACCEPT.
#[derive(Debug, Clone)]
pub struct DataKey {
    pub keys: Arc<PairKeys>,
    pub key: Arc<TransferKey>,
}

impl DataKey {
    /// A fresh random transfer key.
    pub fn random(keys: Arc<PairKeys>) -> Self {
        DataKey {
            keys,
            key: Arc::new(TransferKey::from_bytes(rand::random())),
        }
    }

    /// The key wrapped for each of `targets`, in order; `None` if one of
    /// them shares no key with this node (then DATA goes as 0x43 with a
    /// tag list, which would not reach it either).
    pub fn wrap_for(&self, txid: u64, targets: &[u32]) -> Option<Vec<[u8; WRAPPED_KEY_LEN]>> {
        targets
            .iter()
            .map(|t| self.key.wrap(&self.keys, txid, *t))
            .collect()
    }
}
