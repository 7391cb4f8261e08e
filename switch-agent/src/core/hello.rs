//! HELLO until acknowledged, and HEARTBEAT.
//!
//! HELLO goes out when the start cleanup is done and is repeated, the
//! interval doubling from 500 ms up to 5 s, until a HELLO_ACK carrying this
//! run's instance arrives: a restarted agent whose HELLO was lost would
//! otherwise never get its live groups back. HEARTBEAT runs on its own
//! interval from the first HELLO on (a controller that predates HELLO_ACK
//! still sees the agent alive).

use std::time::{Duration, Instant};

pub const HELLO_FIRST_RETRY: Duration = Duration::from_millis(500);
pub const HELLO_MAX_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct HelloTimer {
    acked: bool,
    next_hello: Option<Instant>,
    retry: Duration,
    next_heartbeat: Option<Instant>,
    heartbeat: Duration,
    /// HELLOs sent so far.
    pub sent: u32,
}

impl HelloTimer {
    pub fn new(heartbeat: Duration) -> Self {
        HelloTimer {
            acked: false,
            next_hello: None,
            retry: HELLO_FIRST_RETRY,
            next_heartbeat: None,
            heartbeat: heartbeat.max(Duration::from_millis(1)),
            sent: 0,
        }
    }

    /// The agent is ready: HELLO now, heartbeats from now on.
    pub fn start(&mut self, now: Instant) {
        self.next_hello = Some(now);
        self.next_heartbeat = Some(now + self.heartbeat);
    }

    pub fn acked(&self) -> bool {
        self.acked
    }

    /// Whether a HELLO is due; if so, schedules the next retry.
    pub fn hello_due(&mut self, now: Instant) -> bool {
        match self.next_hello {
            Some(t) if !self.acked && t <= now => {
                self.next_hello = Some(now + self.retry);
                self.retry = (self.retry * 2).min(HELLO_MAX_RETRY);
                self.sent += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether a HEARTBEAT is due; if so, schedules the next one.
    pub fn heartbeat_due(&mut self, now: Instant) -> bool {
        match self.next_heartbeat {
            Some(t) if t <= now => {
                self.next_heartbeat = Some(now + self.heartbeat);
                true
            }
            _ => false,
        }
    }

    /// A HELLO_ACK for this run arrived: no more HELLOs.
    pub fn on_ack(&mut self) {
        self.acked = true;
        self.next_hello = None;
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let h = if self.acked { None } else { self.next_hello };
        [h, self.next_heartbeat].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_seconds_until_acked() {
        let t0 = Instant::now();
        let mut h = HelloTimer::new(Duration::from_secs(60));
        assert_eq!(h.poll_timeout(), None, "nothing before start");
        h.start(t0);
        let mut at = t0;
        let mut gaps = Vec::new();
        let mut last: Option<Instant> = None;
        for _ in 0..8 {
            at = h.poll_timeout().unwrap();
            assert!(h.hello_due(at));
            assert!(!h.hello_due(at), "one HELLO per due time");
            if let Some(l) = last {
                gaps.push((at - l).as_millis());
            }
            last = Some(at);
        }
        assert_eq!(gaps, vec![500, 1000, 2000, 4000, 5000, 5000, 5000]);
        h.on_ack();
        assert!(!h.hello_due(at + Duration::from_secs(100)));
        assert_eq!(h.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    }
}
