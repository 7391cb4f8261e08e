//! Where a writer decides which chunks of its puts transfer now.
//!
//! A put keeps several chunks in flight (`put_window`) but lets only a few
//! of them send their first pass at once (`put_transfers`): those already
//! sending, then the oldest of the rest. The others get their bids and
//! their rendezvous group meanwhile and hold their PUT_ACCEPT, so that
//! when a turn frees the next chunk's targets are chosen and its group
//! granted; its ACCEPT, READYs and DATA follow, while the other transfer
//! keeps the link busy. Letting every negotiated chunk send at once
//! instead shares the link among all of them: each pass takes longer, the
//! targets' receive buffers fill, and more is repaired (64 MiB puts on the
//! seed lab, 16 chunks in flight: 1.24 octets sent per payload octet
//! against 1.056).
//!
//! The ACCEPT waits, not only the DATA: the ACCEPT starts a target's
//! receive, which NACKs every 100-500 ms without DATA and drops the
//! transfer after 12 NACKs (~3.4 s). A chunk that waited longer than that
//! for its turn (a slow link) was sent twice in the simulation
//! (`sim/turns.rs`).

use super::PutMachine;

impl PutMachine {
    /// Whether the chunk's first pass is under way: DATA went out, and
    /// not all of it yet. Before that it negotiates (bids, grant, READYs);
    /// after, it only waits for acknowledgements (and perhaps repairs).
    fn is_transferring(&self) -> bool {
        !self.is_finished() && self.tl.first_data.is_some() && self.tl.pass_done.is_none()
    }

    /// Whether the chunk has not begun its first pass (and is not over).
    fn is_before_data(&self) -> bool {
        !self.is_finished() && self.tl.first_data.is_none()
    }

    /// Holds the PUT_ACCEPT, and so the DATA, back (proposals still go,
    /// bids and the group are taken) while `queued` (see [`take_turns`]).
    pub fn set_queued(&mut self, queued: bool) {
        self.queued = queued;
    }
}

/// Lets at most `transfers` of `puts` transfer at once: those in their
/// first pass, then the oldest (by start, then txid) that have not begun
/// it. The rest take their bids and group and hold their ACCEPT. A chunk
/// given a turn keeps it: older chunks only leave the waiting ones.
pub fn take_turns<'a>(puts: impl IntoIterator<Item = &'a mut PutMachine>, transfers: usize) {
    let mut puts: Vec<&mut PutMachine> = puts.into_iter().collect();
    puts.sort_by_key(|m| (m.tl.start, m.txid));
    let transferring = puts.iter().filter(|m| m.is_transferring()).count();
    let mut turns = transfers.max(1).saturating_sub(transferring);
    for m in puts.iter_mut().filter(|m| m.is_before_data()) {
        m.set_queued(turns == 0);
        turns = turns.saturating_sub(1);
    }
}
