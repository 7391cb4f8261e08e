//! Receiving one chunk's DATA datagrams: reassembly (shared with gets) and
//! the target side of a put (NACK timers, completion).

use crate::chunking::{datagram_count, datagram_range};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{ChunkKind, Data, Hash32, MAX_RANGES, Range};

/// Why a DATA datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("datagram total does not match the announced size")]
    WrongTotal,
    #[error("datagram index beyond the chunk")]
    BadIndex,
    #[error("datagram payload length does not match its index")]
    WrongLength,
}

/// Reassembles a chunk of known size from datagrams of `per` octets.
#[derive(Debug)]
pub struct Reassembly {
    size: usize,
    per: usize,
    total: u32,
    buf: Vec<u8>,
    have: Vec<bool>,
    received: u32,
    pub duplicates: u64,
}

impl Reassembly {
    /// `size` must already be checked against the node's limit.
    pub fn new(size: usize, per: usize) -> Self {
        let total = datagram_count(size, per);
        Reassembly {
            size,
            per: per.max(1),
            total,
            buf: vec![0; size],
            have: vec![false; total as usize],
            received: 0,
            duplicates: 0,
        }
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// Octets of the chunk (the buffer this reassembly holds).
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn received(&self) -> u32 {
        self.received
    }

    pub fn complete(&self) -> bool {
        self.received == self.total
    }

    /// Takes one datagram; `Ok(true)` if it was new.
    pub fn insert(&mut self, d: &Data) -> Result<bool, DataError> {
        self.insert_parts(d.index, d.total, &d.payload)
    }

    /// Takes one datagram's fields (e.g. a [`DataView`] over received
    /// bytes): the payload is copied once, into the chunk buffer.
    ///
    /// [`DataView`]: subcast_proto::replicast::DataView
    pub fn insert_parts(
        &mut self,
        index: u32,
        total: u32,
        payload: &[u8],
    ) -> Result<bool, DataError> {
        if total != self.total {
            return Err(DataError::WrongTotal);
        }
        let Some(slot) = self.have.get_mut(index as usize) else {
            return Err(DataError::BadIndex);
        };
        let r = datagram_range(self.size, self.per, index);
        if payload.len() != Self::expected_len(self.size, &r) {
            return Err(DataError::WrongLength);
        }
        if *slot {
            self.duplicates += 1;
            return Ok(false);
        }
        *slot = true;
        self.received += 1;
        if !r.is_empty() {
            self.buf[r].copy_from_slice(payload);
        }
        Ok(true)
    }

    /// Whether a datagram `index` of `len` payload octets would fill an
    /// empty slot: an index in range that has not arrived, and the length
    /// that index has.
    pub fn wants(&self, index: u32, len: usize) -> bool {
        let r = datagram_range(self.size, self.per, index);
        self.have.get(index as usize).is_some_and(|h| !*h)
            && len == Self::expected_len(self.size, &r)
    }

    /// Payload octets of the datagram covering `r` of a chunk of `size`
    /// (an empty chunk travels as one datagram of one octet).
    fn expected_len(size: usize, r: &std::ops::Range<usize>) -> usize {
        if size == 0 { 1 } else { r.len() }
    }

    /// Missing index ranges, at most `max`.
    pub fn missing(&self, max: usize) -> Vec<Range> {
        let mut out = Vec::new();
        let mut i = 0usize;
        let n = self.have.len();
        while i < n && out.len() < max {
            if self.have[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i < n && !self.have[i] {
                i += 1;
            }
            out.push(Range {
                start: start as u32,
                end: i as u32,
            });
        }
        out
    }

    pub fn into_payload(self) -> Vec<u8> {
        self.buf
    }
}

/// Timing of the target side.
#[derive(Debug, Clone, Copy)]
pub struct ReceiveTimers {
    /// NACK after this long without a new datagram.
    pub nack_delay: Duration,
    /// Give up after this many NACKs without progress.
    pub max_nacks: u32,
}

impl Default for ReceiveTimers {
    fn default() -> Self {
        ReceiveTimers {
            nack_delay: Duration::from_millis(100),
            max_nacks: 12,
        }
    }
}

/// Most ranges in one NACK: keeps it inside a 1500-octet MTU.
pub const NACK_RANGES: usize = 128;

/// What a target's receive asks its owner to do.
#[derive(Debug, PartialEq, Eq)]
pub enum ReceiveEvent {
    /// Send a NACK with these ranges to the sender.
    Nack(Vec<Range>),
    /// Every datagram is in: verify, store, ACK.
    Complete,
    /// No progress after `max_nacks` NACKs: drop the state.
    Expired,
}

/// The target side of one put transfer.
#[derive(Debug)]
pub struct Receive {
    pub txid: u64,
    pub chunk_id: Hash32,
    pub kind: ChunkKind,
    /// Where the sender's datagrams come from (NACKs and ACKs go there).
    pub sender: SocketAddr,
    /// The sender's node id (NACKs and ACKs are tagged for it).
    pub sender_id: u32,
    /// The delivery group joined for this transfer, if any.
    pub group: Option<std::net::Ipv6Addr>,
    pub data: Reassembly,
    /// When the transfer was accepted.
    pub started: Instant,
    /// Its DATA comes as keyed DATA under this key (from the ACCEPT).
    pub key: Option<subcast_proto::replicast::TransferKey>,
    /// Verify the tag of every keyed DATA datagram on arrival (a repeat
    /// of a transfer whose chunk failed its hash); otherwise only the
    /// first datagram and repeats are, the rest proven by the chunk's hash.
    pub verify_all: bool,
    timers: ReceiveTimers,
    deadline: Instant,
    nacks_without_progress: u32,
}

impl Receive {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        txid: u64,
        chunk_id: Hash32,
        kind: ChunkKind,
        size: usize,
        per: usize,
        sender: SocketAddr,
        sender_id: u32,
        group: Option<std::net::Ipv6Addr>,
        timers: ReceiveTimers,
        now: Instant,
    ) -> Self {
        Receive {
            txid,
            chunk_id,
            kind,
            sender,
            sender_id,
            group,
            data: Reassembly::new(size, per),
            started: now,
            key: None,
            verify_all: false,
            timers,
            // The first datagrams may still be queued behind other chunks.
            deadline: now + timers.nack_delay * 2,
            nacks_without_progress: 0,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// A DATA datagram for this transfer.
    pub fn on_data(&mut self, d: &Data, now: Instant) -> Result<Option<ReceiveEvent>, DataError> {
        self.on_data_parts(d.index, d.total, &d.payload, now)
    }

    /// [`Self::on_data`] over borrowed fields.
    pub fn on_data_parts(
        &mut self,
        index: u32,
        total: u32,
        payload: &[u8],
        now: Instant,
    ) -> Result<Option<ReceiveEvent>, DataError> {
        if self.data.insert_parts(index, total, payload)? {
            self.nacks_without_progress = 0;
            self.deadline = now + self.timers.nack_delay;
        }
        Ok(self.data.complete().then_some(ReceiveEvent::Complete))
    }

    fn nack_ranges(&self) -> Vec<Range> {
        self.data.missing(NACK_RANGES.min(MAX_RANGES))
    }

    /// The sender polls (repeated ACCEPT; it sends one when a pass is
    /// over): answer at once with what is missing.
    pub fn on_poll(&mut self, now: Instant) -> Option<ReceiveEvent> {
        if self.data.complete() {
            return Some(ReceiveEvent::Complete);
        }

        self.deadline = now + self.timers.nack_delay;
        Some(ReceiveEvent::Nack(self.nack_ranges()))
    }

    pub fn on_timeout(&mut self, now: Instant) -> Option<ReceiveEvent> {
        if now < self.deadline {
            return None;
        }
        if self.data.complete() {
            return Some(ReceiveEvent::Complete);
        }
        if self.nacks_without_progress >= self.timers.max_nacks {
            return Some(ReceiveEvent::Expired);
        }
        self.nacks_without_progress += 1;
        // Back off a little on repeated silence.
        self.deadline = now + self.timers.nack_delay * (1 + self.nacks_without_progress / 3);
        Some(ReceiveEvent::Nack(self.nack_ranges()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(index: u32, total: u32, payload: &[u8]) -> Data {
        Data {
            txid: 1,
            index,
            total,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn reassembles_and_reports_gaps() {
        let mut r = Reassembly::new(25, 10);
        assert_eq!(r.total(), 3);
        assert!(r.insert(&data(2, 3, &[3; 5])).unwrap());
        assert_eq!(r.missing(10), vec![Range { start: 0, end: 2 }]);
        assert!(!r.insert(&data(2, 3, &[3; 5])).unwrap());
        assert_eq!(r.insert(&data(0, 4, &[1; 10])), Err(DataError::WrongTotal));
        assert_eq!(r.insert(&data(0, 3, &[1; 9])), Err(DataError::WrongLength));
        assert_eq!(r.insert(&data(7, 3, &[1; 10])), Err(DataError::BadIndex));
        r.insert(&data(0, 3, &[1; 10])).unwrap();
        assert_eq!(r.missing(10), vec![Range { start: 1, end: 2 }]);
        r.insert(&data(1, 3, &[2; 10])).unwrap();
        assert!(r.complete());
        let p = r.into_payload();
        assert_eq!(&p[..10], &[1; 10]);
        assert_eq!(&p[20..], &[3; 5]);
    }

    #[test]
    fn empty_chunk_is_one_datagram() {
        let mut r = Reassembly::new(0, 10);
        assert_eq!(r.total(), 1);
        r.insert(&data(0, 1, &[0])).unwrap();
        assert!(r.complete());
        assert!(r.into_payload().is_empty());
    }

    #[test]
    fn nacks_then_expires_without_progress() {
        let t0 = Instant::now();
        let timers = ReceiveTimers {
            nack_delay: Duration::from_millis(10),
            max_nacks: 3,
        };
        let sender = "[fd00::9]:1000".parse().unwrap();
        let mut rx = Receive::new(
            1,
            [0; 32],
            ChunkKind::Data,
            30,
            10,
            sender,
            9,
            None,
            timers,
            t0,
        );
        assert_eq!(rx.on_timeout(t0), None);
        let mut now = rx.deadline();
        let mut nacks = 0;
        loop {
            match rx.on_timeout(now) {
                Some(ReceiveEvent::Nack(r)) => {
                    assert_eq!(r, vec![Range { start: 0, end: 3 }]);
                    nacks += 1;
                }
                Some(ReceiveEvent::Expired) => break,
                other => panic!("{other:?}"),
            }
            now = rx.deadline();
        }
        assert_eq!(nacks, 3);
    }
}
