//! Where the time of one chunk's put goes: the phases a [`crate::put::PutMachine`]
//! records and their sum.

use std::time::Instant;

/// Where the time of one chunk's put went, in milliseconds (consecutive
/// phases; their sum is the put's time).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct PutPhases {
    /// PROPOSAL to the end of the bid round (all members answered).
    pub bids: f64,
    /// Targets chosen to the rendezvous group granted (0 without one).
    pub grant: f64,
    /// PUT_ACCEPT queued to its leaving: the owner held it (the chunk
    /// waited for its turn to transfer, `put/turns.rs`, or an inline
    /// manifest for its version lookup).
    pub turn: f64,
    /// PUT_ACCEPT sent to every target's PUT_READY.
    pub ready: f64,
    /// Targets ready to the first DATA: the owner held DATA back (a
    /// manifest waits for its object's data chunks), or the pacer did.
    pub held: f64,
    /// First DATA to the end of the first pass.
    pub transfer: f64,
    /// End of the first pass to the last PUT_ACK (repairs, the targets'
    /// write and fsync, the ACKs' way back).
    pub acks: f64,
}

impl PutPhases {
    /// The mean of each phase over `v`.
    pub fn mean(v: &[PutPhases]) -> PutPhases {
        let n = v.len().max(1) as f64;
        let mut m = PutPhases::default();
        for p in v {
            m.bids += p.bids / n;
            m.grant += p.grant / n;
            m.turn += p.turn / n;
            m.ready += p.ready / n;
            m.held += p.held / n;
            m.transfer += p.transfer / n;
            m.acks += p.acks / n;
        }
        m
    }
}

/// When each phase of a put ended.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timeline {
    pub(crate) start: Option<Instant>,
    pub(crate) chosen: Option<Instant>,
    pub(crate) accept: Option<Instant>,
    pub(crate) accept_sent: Option<Instant>,
    pub(crate) ready: Option<Instant>,
    pub(crate) first_data: Option<Instant>,
    pub(crate) pass_done: Option<Instant>,
    pub(crate) done: Option<Instant>,
}

impl Timeline {
    pub(crate) fn phases(&self) -> PutPhases {
        let span = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64() * 1000.0,
            _ => 0.0,
        };
        // A phase that never happened (no DATA after a dedup) ends where
        // the next one that did begins.
        let chosen = self.chosen.or(self.done);
        let accept = self.accept.or(chosen);
        let sent = self.accept_sent.or(accept);
        let first = self.first_data.or(sent);
        let ready = self.ready.filter(|r| Some(*r) <= first).or(first);
        let pass = self.pass_done.or(first);
        PutPhases {
            bids: span(self.start, chosen),
            grant: span(chosen, accept),
            turn: span(accept, sent),
            ready: span(sent, ready),
            held: span(ready, first),
            transfer: span(first, pass),
            acks: span(pass, self.done),
        }
    }
}
