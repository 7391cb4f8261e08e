//! What a put's owner holds back: DATA behind a gate (a chunked object's
//! manifest), or the PUT_ACCEPT itself until the owner knows whether the
//! put is still wanted (an inline manifest).
//!
//! A small object's manifest carries the object itself (see
//! `manifest.rs`, format 3) and its version number, which the version
//! lookup decides. The owner proposes the manifest under the number it
//! expects (1 for a new name) at the same time as the lookup, so the bids
//! and the lookup's answers come back in the same round trip. The ACCEPT,
//! the first message that makes a target expect DATA, waits for the
//! lookup: if it confirms the number the owner releases the hold, and
//! otherwise abandons the put (no target was told anything but the
//! proposal, which it forgets like any proposal it was not chosen for)
//! and proposes again under the right number.

use super::PutMachine;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use subcast_proto::replicast::ReplicastMessage;

const HELD: u8 = 0;
const RELEASED: u8 = 1;
const ABANDONED: u8 = 2;

/// Shared between the owner and one [`PutMachine`]; starts held.
#[derive(Debug, Clone, Default)]
pub struct Hold(Arc<AtomicU8>);

impl Hold {
    pub fn new() -> Self {
        Self::default()
    }

    /// The put goes on: its ACCEPT may leave. The owner runs the put's
    /// machine again after this (it has something to send).
    pub fn release(&self) {
        let _ = self
            .0
            .compare_exchange(HELD, RELEASED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Gives the put up if it is still held (no ACCEPT left); returns
    /// whether it was. The machine then finishes with
    /// [`crate::put::PutError::Abandoned`].
    pub fn abandon(&self) -> bool {
        self.0
            .compare_exchange(HELD, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub fn is_held(&self) -> bool {
        self.0.load(Ordering::Acquire) == HELD
    }

    pub fn is_abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire) == ABANDONED
    }
}

impl PutMachine {
    /// Negotiates (bids, group, ACCEPT, READY) at once but sends DATA only
    /// after `gate` turned true: a version manifest is placed while its
    /// object's data chunks are being acknowledged, and stored only after
    /// they were (a manifest must never name chunks that are not stored).
    /// The owner calls [`Self::wants_to_send`] again after opening it.
    pub fn with_gate(mut self, gate: Arc<AtomicBool>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Proposes, collects bids and gets the group at once, but sends the
    /// ACCEPT (and so DATA) only once `hold` is released; an abandoned
    /// hold finishes the put with [`PutError::Abandoned`] (see
    /// `put_hold.rs`).
    pub fn with_hold(mut self, hold: Hold) -> Self {
        self.hold = Some(hold);
        self
    }

    pub fn is_abandoned(&self) -> bool {
        self.hold.as_ref().is_some_and(Hold::is_abandoned)
    }

    /// The next control datagram is the ACCEPT and the owner holds it:
    /// until the lookup confirmed the put ([`Self::with_hold`]), or until
    /// the chunk's turn to transfer ([`Self::set_queued`]).
    pub(super) fn accept_held(&self) -> bool {
        (self.hold.as_ref().is_some_and(Hold::is_held) || self.queued)
            && self
                .control
                .front()
                .is_some_and(|t| matches!(t.msg, ReplicastMessage::PutAccept(_)))
    }

    pub(super) fn gated(&self) -> bool {
        self.gate
            .as_ref()
            .is_some_and(|g| !g.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decided_once() {
        let h = Hold::new();
        assert!(h.is_held() && !h.is_abandoned());
        h.release();
        assert!(!h.is_held());
        assert!(!h.abandon(), "a released put cannot be abandoned");
        assert!(!h.is_abandoned());
        let h = Hold::new();
        assert!(h.clone().abandon());
        h.release();
        assert!(h.is_abandoned() && !h.is_held());
    }
}
