//! The time the core is given: a monotonic instant for timers and the wall
//! clock (microseconds since the Unix epoch) for the authenticated envelope.
//! The daemon passes [`Now::system`]; unit tests advance a simulated one.

use std::time::{Duration, Instant};

/// One moment, on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time (timers, lease expiry).
    pub at: Instant,
    /// Wall clock in microseconds (header timestamps, replay checks).
    pub unix_us: u64,
}

impl Now {
    pub fn new(at: Instant, unix_us: u64) -> Now {
        Now { at, unix_us }
    }

    /// The system clocks.
    pub fn system() -> Now {
        Now {
            at: Instant::now(),
            unix_us: subcast_proto::now_us(),
        }
    }

    /// The same moment `d` later on both clocks (simulated time).
    pub fn after(self, d: Duration) -> Now {
        Now {
            at: self.at + d,
            unix_us: self.unix_us + d.as_micros() as u64,
        }
    }

    /// Advances to `at` (no earlier than now) on both clocks.
    pub fn at(self, at: Instant) -> Now {
        self.after(at.saturating_duration_since(self.at))
    }
}
