//! Where a node checks what it holds: the scrubber reads every chunk back
//! in the background (unverified ones first, right after a start), at a
//! configured rate, one read at a time; a chunk found corrupt (quarantined
//! by the store) or missing is dropped from the index and re-fetched
//! ([`super::repair`]).

use super::{Job, NodeAction, NodeCore};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use subcast_proto::replicast::Hash32;

/// How the scrubber paces itself.
#[derive(Debug, Clone, Copy)]
pub struct ScrubParams {
    /// Octets read per second (0: no scrubbing).
    pub rate_bytes_per_s: u64,
    /// A pass over everything this often (the first at start).
    pub pass_interval: Duration,
}

impl Default for ScrubParams {
    fn default() -> Self {
        ScrubParams {
            rate_bytes_per_s: 0,
            pass_interval: Duration::from_secs(24 * 3600),
        }
    }
}

/// The scrubber's state.
#[derive(Debug, Default)]
pub(super) struct Scrubber {
    queue: VecDeque<Hash32>,
    /// When the next chunk may be read (pacing).
    next_at: Option<Instant>,
    /// When the next pass starts (None: at once).
    pass_due: Option<Instant>,
    busy: bool,
}

impl NodeCore {
    /// Starts the next scrub read if it is due.
    pub(super) fn scrub_tick(&mut self, now: Instant) {
        let rate = self.p.scrub.rate_bytes_per_s;
        if rate == 0 || self.scrubber.busy || self.scrubber.next_at.is_some_and(|t| now < t) {
            return;
        }
        if self.scrubber.queue.is_empty() {
            if self.scrubber.pass_due.is_some_and(|t| now < t) {
                return;
            }
            self.scrubber.queue = self.index.scrub_order().into();
            self.scrubber.pass_due = Some(now + self.p.scrub.pass_interval);
            self.counters.scrub_passes += 1;
        }
        // Leave room for gets: scrub only while few reads are in flight.
        if self.reads_in_flight() >= self.p.limits.max_reads / 2 {
            self.scrubber.next_at = Some(now + Duration::from_millis(10));
            return;
        }
        while let Some(id) = self.scrubber.queue.pop_front() {
            if !self.index.has_file(&id) {
                continue;
            }
            let job = self.job(Job::Scrub { id });
            self.actions.push_back(NodeAction::Read { job, id });
            self.scrubber.busy = true;
            return;
        }
    }

    /// When the scrubber wants to run next.
    pub(super) fn scrub_timeout(&self) -> Option<Instant> {
        if self.p.scrub.rate_bytes_per_s == 0 || self.scrubber.busy {
            return None;
        }
        if self.scrubber.queue.is_empty() {
            return Some(self.scrubber.pass_due.unwrap_or(self.now));
        }
        Some(self.scrubber.next_at.unwrap_or(self.now))
    }

    /// A scrub read finished: `Ok(len)` verified, or the copy is gone.
    pub(super) fn on_scrubbed(&mut self, id: Hash32, result: Result<usize, Lost>) {
        self.scrubber.busy = false;
        let read = match result {
            Ok(len) => {
                self.index.mark_verified(&id);
                self.counters.scrub_verified += 1;
                len
            }
            Err(lost) => {
                match lost {
                    Lost::Corrupt => self.counters.scrub_corrupt += 1,
                    Lost::Missing => self.counters.scrub_missing += 1,
                }
                self.lost(&id);
                0
            }
        };
        let rate = self.p.scrub.rate_bytes_per_s.max(1);
        let pause = Duration::from_secs_f64(read.max(4096) as f64 / rate as f64);
        self.scrubber.next_at = Some(self.now + pause);
    }

    /// A copy this node had is gone (found corrupt and quarantined, or
    /// missing): it no longer counts, and it is fetched back from a holder.
    pub(super) fn lost(&mut self, id: &Hash32) {
        let Some(e) = self.index.entry(id) else {
            return;
        };
        let place = match e.kind {
            subcast_proto::replicast::ChunkKind::Manifest => self.index.manifest_name_hash(id),
            subcast_proto::replicast::ChunkKind::Data => Some(*id),
        };
        self.index.remove(id);
        match place {
            Some(p) => self.want_repair(*id, e, p),
            None => {
                tracing::error!(chunk = %hex::encode(id), "manifest lost here and its name is unknown: not re-fetched")
            }
        }
    }
}

/// How a copy was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lost {
    Corrupt,
    Missing,
}
