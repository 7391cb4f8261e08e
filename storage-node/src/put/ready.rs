//! Where a put decides when its DATA may start on a rendezvous group.
//!
//! Each target joins the group when it gets the PUT_ACCEPT and answers
//! PUT_READY; DATA waits for every READY (at most `join_lead`, the
//! unready getting the ACCEPT again every `ready_retry`). A target stays a
//! member for `node::LINGER` after its last transfer on a group, so when
//! the owner knows that every target finished a transfer on this very
//! group within `warm_for` ([`PutMachine::set_warm`]), DATA follows the
//! ACCEPT at once: the ACCEPT leaves first on the same path, so each
//! target knows the transfer before its DATA arrives. Were a target not a
//! member after all (restarted, or its linger list overflowed), the poll
//! after the pass finds what it misses and the repeats go to it, as for
//! any loss.

use super::{MAX_WRITING_ANSWERS, PutMachine, State};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

impl PutMachine {
    /// The owner knows every target of the group it is about to give
    /// ([`Self::on_group`]) to be a member of it already.
    pub fn set_warm(&mut self, warm: bool) {
        self.warm = warm;
    }

    /// After a put that ended on a rendezvous group with every target's
    /// PUT_ACK (none replaced): the group and until when its targets are
    /// members for sure (`warm_for` from `now`; zero turns this off).
    pub fn warm_until(&self, now: Instant) -> Option<(Ipv6Addr, Instant)> {
        let all_acked = !self.targets.is_empty() && self.targets.iter().all(|t| t.acked);
        (self.on_rendezvous_group(self.delivery)
            && all_acked
            && self.replaced == 0
            && !self.p.timers.warm_for.is_zero()
            && matches!(self.state, State::Finished))
        .then(|| (self.delivery, now + self.p.timers.warm_for))
    }

    /// Whether `delivery` is a rendezvous group: not unicast (unspecified)
    /// and not the negotiating group (ng-multicast, or the fallback).
    pub(super) fn on_rendezvous_group(&self, delivery: Ipv6Addr) -> bool {
        !delivery.is_unspecified() && delivery != self.p.group
    }

    /// When DATA may start once the ACCEPT to `delivery` is out.
    pub(super) fn lead(&mut self, delivery: Ipv6Addr, now: Instant) {
        if !self.on_rendezvous_group(delivery) {
            // Unicast, or the negotiating group the targets are members
            // of: nobody has a group to join. The ACCEPT leaves first and
            // travels the same path, so every target knows the transfer
            // when its DATA arrives; DATA follows at once. (A target whose
            // ACCEPT was lost is found by the poll after the pass.)
            self.data_not_before = None;
            self.lead_pending = false;
        } else if self.warm {
            // Every target is a member already: as above.
            for t in &mut self.targets {
                t.ready = true;
            }
            self.tl.ready = Some(now);
            self.data_not_before = None;
            self.lead_pending = false;
        } else {
            // DATA waits for every target's PUT_READY (it joined the
            // rendezvous group), counted from when the ACCEPT actually
            // leaves (poll_transmit).
            self.data_not_before = Some(now + Duration::from_secs(3600));
            self.lead_pending = true;
        }
    }

    /// A PUT_READY from `sender`.
    pub(super) fn on_ready(&mut self, sender: u32, now: Instant) {
        if let Some(t) = self.targets.iter_mut().find(|t| t.node == sender) {
            // A READY to a poll once DATA went out: the target is
            // alive (writing, or still waiting for its first DATA,
            // which its own NACK timer asks for): not silent.
            if t.ready
                && t.polls > 0
                && matches!(self.state, State::Sending)
                && t.writing_answers < MAX_WRITING_ANSWERS
            {
                t.writing_answers += 1;
                t.polls = 0;
            }
            t.ready = true;
        }
        if self.targets.iter().all(|t| t.ready) {
            if self.tl.ready.is_none() && matches!(self.state, State::Sending) {
                self.tl.ready = Some(now);
            }
            if !self.lead_pending {
                self.data_not_before = None;
                self.ready_retry_at = None;
            }
        }
    }
}
