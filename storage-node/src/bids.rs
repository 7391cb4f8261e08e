//! Where a bid is decided: a member's answer to a PUT_PROPOSAL
//! ([`Bids::answer`]) and a client's ranking of the bids it got
//! ([`rank`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{BidStatus, NotNowReason, PutBid, PutProposal};

/// How long a bid counts against the queue if no ACCEPT settles it.
pub const RESERVATION: Duration = Duration::from_millis(300);

/// A member's limits.
#[derive(Debug, Clone, Copy)]
pub struct BidLimits {
    pub max_concurrent: usize,
    pub max_chunk_size: usize,
    pub reserve_bytes: u64,
    /// Bytes per second the node expects to ingest (for earliest start).
    pub ingest_rate: u64,
}

/// What the member is doing when a proposal arrives.
#[derive(Debug, Clone, Copy)]
pub struct BidState {
    pub already_stored: bool,
    pub free_bytes: u64,
    /// Transfers being received.
    pub receiving: usize,
    /// Bytes still to arrive for them.
    pub receiving_bytes: u64,
}

/// Bids given and not yet settled by an ACCEPT.
#[derive(Debug, Default)]
pub struct Bids {
    /// (expiry, sender, txid, size)
    reserved: VecDeque<(Instant, u32, u64, u32)>,
}

impl Bids {
    /// Answers proposal `p` from `sender`: bid, "already stored" or "not
    /// now" (too large, full, busy), with the earliest start after what is
    /// being received and what was promised to other proposals.
    pub fn answer(
        &mut self,
        sender: u32,
        p: &PutProposal,
        l: &BidLimits,
        s: &BidState,
        now: Instant,
        now_us: u64,
    ) -> PutBid {
        while self.reserved.front().is_some_and(|r| r.0 <= now) {
            self.reserved.pop_front();
        }
        let (status, reason, retry) = if s.already_stored {
            (BidStatus::AlreadyStored, NotNowReason::None, 0)
        } else if p.size as usize > l.max_chunk_size {
            (BidStatus::NotNow, NotNowReason::TooLarge, 0)
        } else if s.free_bytes < u64::from(p.size).saturating_add(l.reserve_bytes) {
            (BidStatus::NotNow, NotNowReason::Full, 60_000)
        } else if s.receiving + self.reserved.len() >= l.max_concurrent {
            (BidStatus::NotNow, NotNowReason::Busy, 50)
        } else {
            (BidStatus::Bid, NotNowReason::None, 0)
        };
        let queued: u64 =
            s.receiving_bytes + self.reserved.iter().map(|r| u64::from(r.3)).sum::<u64>();
        let delay_us = queued.saturating_mul(1_000_000) / l.ingest_rate.max(1);
        let depth = s.receiving + self.reserved.len();
        if status == BidStatus::Bid {
            self.reserved
                .push_back((now + RESERVATION, sender, p.txid, p.size));
        }
        PutBid {
            txid: p.txid,
            chunk_id: p.chunk_id,
            status,
            reason,
            earliest_start_us: now_us + delay_us,
            queue_depth: depth as u32,
            free_bytes: s.free_bytes,
            retry_after_ms: retry,
        }
    }

    /// An ACCEPT (naming us or not) settles the bid for `(sender, txid)`.
    pub fn settle(&mut self, sender: u32, txid: u64) {
        self.reserved.retain(|r| (r.1, r.2) != (sender, txid));
    }
}

/// A usable bid a client got.
#[derive(Debug, Clone)]
pub struct Bidder {
    pub node: u32,
    pub addr: SocketAddr,
    pub bid: PutBid,
}

/// Orders bids best first: starts within the same millisecond count as
/// equal; then the shorter queue, the emptier disk, and a tie-break
/// salted by the transaction id (so equal nodes share the load).
pub fn rank(bidders: &mut [Bidder], salt: u64) {
    bidders.sort_by_key(|b| {
        (
            b.bid.earliest_start_us / 1000,
            b.bid.queue_depth,
            std::cmp::Reverse(b.bid.free_bytes >> 30),
            (u64::from(b.node) ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32,
        )
    });
}
