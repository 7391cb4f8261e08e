//! Sans-I/O pieces shared by senders: what to transmit, a paced source of
//! DATA datagrams for one chunk, and the token-bucket pacer.

use crate::chunking::{datagram_count, datagram_range};
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{Data, Range, ReplicastMessage};

/// A datagram a state machine wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub msg: ReplicastMessage,
}

/// The DATA datagrams of one chunk, produced lazily so a pacer decides
/// when: first every index to each fresh destination, then repeats asked
/// for by NACKs (each to the destination that asked).
#[derive(Debug)]
pub struct Outgoing {
    txid: u64,
    payload: Arc<Vec<u8>>,
    per: usize,
    total: u32,
    fresh_dests: Vec<SocketAddr>,
    /// Next (index, destination number) of the first pass.
    cursor: (u32, usize),
    resend: VecDeque<(SocketAddr, u32)>,
    queued: HashSet<(SocketAddr, u32)>,
    pub sent_datagrams: u64,
    pub sent_payload_bytes: u64,
}

impl Outgoing {
    pub fn new(txid: u64, payload: Arc<Vec<u8>>, per: usize, fresh_dests: Vec<SocketAddr>) -> Self {
        let total = datagram_count(payload.len(), per);
        Outgoing {
            txid,
            payload,
            per: per.max(1),
            total,
            fresh_dests,
            cursor: (0, 0),
            resend: VecDeque::new(),
            queued: HashSet::new(),
            sent_datagrams: 0,
            sent_payload_bytes: 0,
        }
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// Whether the first pass is over.
    pub fn first_pass_done(&self) -> bool {
        self.fresh_dests.is_empty() || self.cursor.0 >= self.total
    }

    /// Whether nothing is left to send right now.
    pub fn idle(&self) -> bool {
        self.first_pass_done() && self.resend.is_empty()
    }

    /// Queues `ranges` for `dest`; indices not yet sent in the first pass
    /// (and out-of-range ones) are skipped. Returns how many were queued.
    pub fn request(&mut self, dest: SocketAddr, ranges: &[Range]) -> usize {
        let mut n = 0;
        for r in ranges {
            let end = r.end.min(self.total);
            for i in r.start..end {
                let pending_first = !self.first_pass_done() && i >= self.cursor.0;
                if pending_first && self.fresh_dests.contains(&dest) {
                    continue;
                }
                if self.queued.insert((dest, i)) {
                    self.resend.push_back((dest, i));
                    n += 1;
                }
            }
        }
        n
    }

    /// Queues every index for `dest` (a replacement target or a get).
    pub fn request_all(&mut self, dest: SocketAddr) -> usize {
        self.request(
            dest,
            &[Range {
                start: 0,
                end: self.total,
            }],
        )
    }

    fn data(&mut self, dest: SocketAddr, index: u32) -> Transmit {
        let r = datagram_range(self.payload.len(), self.per, index);
        self.sent_datagrams += 1;
        self.sent_payload_bytes += r.len() as u64;
        Transmit {
            dest,
            msg: ReplicastMessage::Data(Data {
                txid: self.txid,
                index,
                total: self.total,
                payload: if r.is_empty() {
                    // An empty chunk still travels as one datagram; DATA
                    // carries at least one octet, so send a zero that the
                    // receiver trims by the announced size.
                    vec![0]
                } else {
                    self.payload[r].to_vec()
                },
            }),
        }
    }

    /// The next datagram to send, if any.
    pub fn next_datagram(&mut self) -> Option<Transmit> {
        if let Some((dest, i)) = self.resend.pop_front() {
            self.queued.remove(&(dest, i));
            return Some(self.data(dest, i));
        }
        if self.first_pass_done() {
            return None;
        }
        let (i, d) = self.cursor;
        let dest = self.fresh_dests[d];
        self.cursor = if d + 1 < self.fresh_dests.len() {
            (i, d + 1)
        } else {
            (i + 1, 0)
        };
        Some(self.data(dest, i))
    }
}

/// Token bucket: `rate` bytes per second, bursts up to `burst` bytes.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    pub fn new(rate_bytes_per_s: u64, burst: usize, now: Instant) -> Self {
        Pacer {
            rate: rate_bytes_per_s.max(1) as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }

    /// Whether a datagram may go now (tokens may go negative by one datagram).
    pub fn ready(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens > 0.0
    }

    pub fn consume(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }

    /// When the next datagram may go.
    pub fn next_ready(&self) -> Instant {
        if self.tokens > 0.0 {
            self.last
        } else {
            self.last + Duration::from_secs_f64((-self.tokens + 1.0) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, n], 7412))
    }

    #[test]
    fn first_pass_then_resends() {
        let payload = Arc::new((0..250u8).collect::<Vec<u8>>());
        let mut o = Outgoing::new(9, payload, 100, vec![addr(1), addr(2)]);
        assert_eq!(o.total(), 3);
        // Not yet sent: a NACK for index 2 is skipped for a fresh destination.
        assert_eq!(o.request(addr(1), &[Range { start: 2, end: 3 }]), 0);
        let mut seen = Vec::new();
        while let Some(t) = o.next_datagram() {
            let ReplicastMessage::Data(d) = t.msg else {
                panic!()
            };
            seen.push((t.dest, d.index, d.payload.len()));
        }
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[5], (addr(2), 2, 50));
        assert!(o.idle());
        assert_eq!(o.request(addr(2), &[Range { start: 1, end: 9 }]), 2);
        assert_eq!(
            o.request(addr(2), &[Range { start: 1, end: 2 }]),
            0,
            "deduplicated"
        );
        assert_eq!(o.next_datagram().unwrap().dest, addr(2));
        assert_eq!(o.request_all(addr(3)), 3);
        assert_eq!(o.sent_payload_bytes, 500 + 100);
    }

    #[test]
    fn pacer_limits_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1_000_000, 10_000, t0);
        let mut sent = 0usize;
        let mut now = t0;
        while now < t0 + Duration::from_millis(100) {
            if p.ready(now) {
                p.consume(1000);
                sent += 1000;
            } else {
                now = p.next_ready().max(now + Duration::from_micros(1));
            }
        }
        // 100 ms at 1 MB/s plus the 10 kB burst.
        assert!((100_000..=112_000).contains(&sent), "{sent}");
    }
}
