//! Where the next journal record goes: free space in a ring of
//! prewritten octets, and which records a checkpoint frees.
//!
//! Live records (written, their chunk files not yet fsynced by a
//! checkpoint) never overlap and never leave the prewritten part of the
//! file. No I/O here: the journal calls these under its lock.

use std::collections::VecDeque;

/// A live record: its sequence number, offset and padded length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    pub seq: u64,
    pub off: u64,
    pub len: u64,
}

/// The ring's state.
#[derive(Debug)]
pub struct Ring {
    /// Octets of the file prewritten so far (grows to the configured
    /// size; records only go below it).
    ready: u64,
    /// Where the next record would start without a wrap.
    pos: u64,
    /// Live records, oldest first (sequence numbers increase).
    live: VecDeque<Live>,
}

impl Ring {
    /// An empty ring over `ready` prewritten octets.
    pub fn new(ready: u64) -> Ring {
        Ring {
            ready,
            pos: 0,
            live: VecDeque::new(),
        }
    }

    /// More of the file is prewritten.
    pub fn grow(&mut self, ready: u64) {
        self.ready = self.ready.max(ready);
    }

    pub fn ready(&self) -> u64 {
        self.ready
    }

    /// Octets held by live records.
    pub fn used(&self) -> u64 {
        self.live.iter().map(|l| l.len).sum()
    }

    /// The oldest live record's sequence number.
    pub fn oldest(&self) -> Option<u64> {
        self.live.front().map(|l| l.seq)
    }

    /// Live records.
    pub fn live(&self) -> impl Iterator<Item = &Live> {
        self.live.iter()
    }

    /// Places a record of `len` octets with sequence number `seq` (greater
    /// than every live one); `None` when there is no room until a
    /// checkpoint frees some.
    pub fn reserve(&mut self, seq: u64, len: u64) -> Option<u64> {
        debug_assert!(self.live.back().is_none_or(|l| l.seq < seq));
        if len == 0 {
            return None;
        }
        let off = match self.live.front() {
            None => {
                if self.pos + len <= self.ready {
                    self.pos
                } else if len <= self.ready {
                    0
                } else {
                    return None;
                }
            }
            Some(tail) if tail.off < self.pos => {
                // Live: [tail, pos). Free: [pos, ready) and [0, tail).
                if self.pos + len <= self.ready {
                    self.pos
                } else if len <= tail.off {
                    0
                } else {
                    return None;
                }
            }
            Some(tail) => {
                // Wrapped: live [tail, ..) and [0, pos); free [pos, tail).
                if self.pos + len <= tail.off {
                    self.pos
                } else {
                    return None;
                }
            }
        };
        self.live.push_back(Live { seq, off, len });
        self.pos = off + len;
        Some(off)
    }

    /// A checkpoint made every record up to `seq` redundant: their space
    /// is free again.
    pub fn release_through(&mut self, seq: u64) {
        while self.live.front().is_some_and(|l| l.seq <= seq) {
            self.live.pop_front();
        }
        if self.live.is_empty() {
            // Nothing live: start again at the front, one run of free space.
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(r: &Ring) {
        let v: Vec<Live> = r.live().copied().collect();
        for (i, a) in v.iter().enumerate() {
            assert!(a.off + a.len <= r.ready(), "{a:?} beyond {}", r.ready());
            for b in &v[i + 1..] {
                assert!(
                    a.off + a.len <= b.off || b.off + b.len <= a.off,
                    "{a:?} overlaps {b:?}"
                );
            }
        }
    }

    #[test]
    fn fills_wraps_and_refuses_when_full() {
        let mut r = Ring::new(100);
        assert_eq!(r.reserve(1, 40), Some(0));
        assert_eq!(r.reserve(2, 40), Some(40));
        // 20 left at the end, nothing free at the front.
        assert_eq!(r.reserve(3, 30), None);
        r.release_through(1);
        // Wraps into the 40 octets the first record freed.
        assert_eq!(r.reserve(3, 30), Some(0));
        assert_eq!(r.reserve(4, 10), Some(30));
        assert_eq!(r.reserve(5, 1), None, "only [40, 80) is live after 30+10");
        r.release_through(4);
        assert_eq!(r.used(), 0);
        assert_eq!(r.reserve(6, 100), Some(0));
        assert_eq!(r.reserve(7, 101), None);
        check(&r);
    }

    #[test]
    fn grows_while_prewritten() {
        let mut r = Ring::new(0);
        assert_eq!(r.reserve(1, 10), None);
        r.grow(64);
        assert_eq!(r.reserve(1, 64), Some(0));
        r.grow(128);
        assert_eq!(r.reserve(2, 64), Some(64));
        check(&r);
    }

    proptest! {
        /// Whatever the order of reservations, growth and checkpoints, live
        /// records never overlap, stay in the prewritten part, and a
        /// refusal happens only when no free run is long enough.
        #[test]
        fn live_records_never_overlap(
            size in 1u64..4096,
            ops in proptest::collection::vec((0u8..4, 1u64..1500), 1..200),
        ) {
            let mut r = Ring::new(size / 2);
            let mut seq = 0u64;
            for (op, n) in ops {
                match op {
                    0 | 1 => {
                        seq += 1;
                        let before = r.used();
                        match r.reserve(seq, n) {
                            Some(_) => prop_assert_eq!(r.used(), before + n),
                            None => prop_assert!(n > r.ready() - before.min(r.ready()) || before > 0),
                        }
                    }
                    2 => r.release_through(seq.saturating_sub(n % 4)),
                    _ => r.grow(size),
                }
                check(&r);
            }
            r.release_through(seq);
            prop_assert_eq!(r.used(), 0);
            // Empty again: the whole prewritten part is one free run.
            let ready = r.ready();
            if ready > 0 {
                prop_assert_eq!(r.reserve(seq + 1, ready), Some(0));
            }
        }
    }
}
