//! Receiving one chunk's DATA datagrams: reassembly (shared with gets) and
//! the target side of a put (NACK timers, completion).

use crate::chunk_buf::ChunkBuf;
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
    buf: ChunkBuf,
    have: Vec<bool>,
    received: u32,
    pub duplicates: u64,
}

impl Reassembly {
    /// `size` must already be checked against the node's limit.
    pub fn new(size: usize, per: usize) -> Self {
        Self::with_buf(ChunkBuf::zeroed(size), per)
    }

    /// Reassembles into `buf` (a chunk of `buf.len()` octets, e.g. from a
    /// [`crate::chunk_buf::ChunkPool`]): whatever it holds is overwritten
    /// by the datagrams before the reassembly is complete.
    pub fn with_buf(buf: ChunkBuf, per: usize) -> Self {
        let size = buf.len();
        let total = datagram_count(size, per);
        Reassembly {
            size,
            per: per.max(1),
            total,
            buf,
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

    /// Whether the last datagram (the highest index) is in.
    pub fn has_last(&self) -> bool {
        self.have.last().copied().unwrap_or(false)
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

    /// The chunk's buffer (meaningful once [`Self::complete`]).
    pub fn into_payload(self) -> ChunkBuf {
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
    /// The last datagram of a transfer's first pass ends it (the sender
    /// sends it after every other): a target that misses some then NACKs
    /// at once. After that, each datagram that arrives while some are
    /// still missing arms a NACK after this long without another,
    /// instead of `nack_delay` (a repeat may be lost too); longer where
    /// the transfer showed it needs more: twice the longest a datagram
    /// arrived after a later one of its first pass (a sender's batches
    /// overtake each other), or four mean gaps between its datagrams (a
    /// paced sender).
    pub gap_grace: Duration,
}

impl Default for ReceiveTimers {
    fn default() -> Self {
        ReceiveTimers {
            nack_delay: Duration::from_millis(100),
            max_nacks: 12,
            gap_grace: Duration::from_millis(1),
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
    /// A NACK was sent for this transfer.
    asked: bool,
    /// First and latest arrival of a new datagram (the mean gap).
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    /// The highest index that arrived before any NACK, and when.
    highest: Option<(u32, Instant)>,
    /// The longest a datagram arrived after that highest one.
    reorder: Duration,
}

impl Receive {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        txid: u64,
        chunk_id: Hash32,
        kind: ChunkKind,
        buf: ChunkBuf,
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
            data: Reassembly::with_buf(buf, per),
            started: now,
            key: None,
            verify_all: false,
            timers,
            // The first datagrams may still be queued behind other chunks.
            deadline: now + timers.nack_delay * 2,
            nacks_without_progress: 0,
            asked: false,
            first_at: None,
            last_at: None,
            highest: None,
            reorder: Duration::ZERO,
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
        let progress = self.data.insert_parts(index, total, payload)?;
        let last = index + 1 == self.data.total();
        if self.data.complete() {
            return Ok(Some(ReceiveEvent::Complete));
        }
        if progress {
            self.nacks_without_progress = 0;
            self.first_at.get_or_insert(now);
            self.last_at = Some(now);
            if !self.asked {
                match self.highest {
                    Some((h, at)) if index < h => {
                        self.reorder = self.reorder.max(now.saturating_duration_since(at));
                    }
                    _ => self.highest = Some((index, now)),
                }
            }
            if last && !self.asked {
                // The first pass ended: its last datagram leaves after
                // every other (`OutData::ends_pass`), so what is missing
                // was lost. (The sender no longer polls when a pass ends.)
                return Ok(Some(self.nack(now)));
            }
            // After that NACK a repeat may be lost too: ask again soon.
            self.deadline = now
                + if self.data.has_last() {
                    self.gap_grace()
                } else {
                    self.timers.nack_delay
                };
        }
        Ok(None)
    }

    /// How long a target whose pass is over waits for a missing datagram
    /// before its NACK: `gap_grace`, twice the reordering this transfer
    /// showed, or four mean gaps between its datagrams (a slow or paced
    /// sender), whichever is longest; at most `nack_delay`.
    fn gap_grace(&self) -> Duration {
        let mean = match (self.first_at, self.last_at) {
            (Some(a), Some(b)) if self.data.received() > 1 => {
                b.saturating_duration_since(a) / (self.data.received() - 1)
            }
            _ => Duration::ZERO,
        };
        self.timers
            .gap_grace
            .max(mean * 4)
            .max(self.reorder * 2)
            .min(self.timers.nack_delay)
    }

    fn nack_ranges(&self) -> Vec<Range> {
        self.data.missing(NACK_RANGES.min(MAX_RANGES))
    }

    /// A NACK now; the next one after `nack_delay` unless repeats arrive.
    fn nack(&mut self, now: Instant) -> ReceiveEvent {
        self.asked = true;
        self.deadline = now + self.timers.nack_delay;
        ReceiveEvent::Nack(self.nack_ranges())
    }

    /// The sender polls (repeated ACCEPT; it sends one when a pass is
    /// over): answer at once with what is missing.
    pub fn on_poll(&mut self, now: Instant) -> Option<ReceiveEvent> {
        if self.data.complete() {
            return Some(ReceiveEvent::Complete);
        }
        Some(self.nack(now))
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
        let ev = self.nack(now);
        // Back off a little on repeated silence.
        self.deadline = now + self.timers.nack_delay * (1 + self.nacks_without_progress / 3);
        Some(ev)
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
            gap_grace: Duration::from_millis(1),
        };
        let sender = "[fd00::9]:1000".parse().unwrap();
        let mut rx = Receive::new(
            1,
            [0; 32],
            ChunkKind::Data,
            ChunkBuf::zeroed(30),
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

    fn rx_of(total: u32, t0: Instant) -> Receive {
        let sender = "[fd00::9]:1000".parse().unwrap();
        Receive::new(
            1,
            [0; 32],
            ChunkKind::Data,
            ChunkBuf::zeroed(total as usize * 10),
            10,
            sender,
            9,
            None,
            ReceiveTimers::default(),
            t0,
        )
    }

    #[test]
    fn the_end_of_the_first_pass_asks_for_its_gaps_at_once() {
        let t0 = Instant::now();
        let nack_delay = ReceiveTimers::default().nack_delay;
        let mut rx = rx_of(6, t0);
        let us = Duration::from_micros(10);
        // 0, 1, 3, 4 arrive: the pass is not over, no NACK before
        // `nack_delay` of silence.
        for (k, i) in [0u32, 1, 3, 4].into_iter().enumerate() {
            let now = t0 + us * k as u32;
            assert_eq!(rx.on_data(&data(i, 6, &[0; 10]), now), Ok(None));
            assert_eq!(rx.deadline(), now + nack_delay);
        }
        // The last one: 2 was lost.
        let t_last = t0 + us * 4;
        assert_eq!(
            rx.on_data(&data(5, 6, &[0; 10]), t_last),
            Ok(Some(ReceiveEvent::Nack(vec![Range { start: 2, end: 3 }])))
        );
        assert_eq!(rx.deadline(), t_last + nack_delay);
        // The repeat completes it.
        assert_eq!(
            rx.on_data(&data(2, 6, &[0; 10]), t_last + us),
            Ok(Some(ReceiveEvent::Complete))
        );
    }

    #[test]
    fn after_the_nack_each_repeat_arms_a_short_grace() {
        let t0 = Instant::now();
        let timers = ReceiveTimers::default();
        // A fast sender: `gap_grace`.
        let mut rx = rx_of(6, t0);
        let us = Duration::from_micros(10);
        for (k, i) in [0u32, 3].into_iter().enumerate() {
            assert_eq!(
                rx.on_data(&data(i, 6, &[0; 10]), t0 + us * k as u32),
                Ok(None)
            );
        }
        assert!(
            rx.on_data(&data(5, 6, &[0; 10]), t0 + us * 2)
                .unwrap()
                .is_some()
        );
        // The repeats of 1, 2 and 4 come; 2 and 4 are lost again.
        let t_rep = t0 + us * 30;
        assert_eq!(rx.on_data(&data(1, 6, &[0; 10]), t_rep), Ok(None));
        assert_eq!(rx.deadline(), t_rep + timers.gap_grace);
        assert_eq!(rx.on_timeout(t_rep + timers.gap_grace / 2), None);
        assert_eq!(
            rx.on_timeout(t_rep + timers.gap_grace),
            Some(ReceiveEvent::Nack(vec![
                Range { start: 2, end: 3 },
                Range { start: 4, end: 5 }
            ]))
        );
        // A paced sender, 2 ms between datagrams: four gaps.
        let mut rx = rx_of(8, t0);
        let gap = Duration::from_millis(2);
        for (k, i) in [0u32, 1, 2, 4].into_iter().enumerate() {
            assert_eq!(
                rx.on_data(&data(i, 8, &[0; 10]), t0 + gap * k as u32),
                Ok(None)
            );
        }
        assert!(
            rx.on_data(&data(7, 8, &[0; 10]), t0 + gap * 4)
                .unwrap()
                .is_some()
        );
        let t_rep = t0 + gap * 5;
        assert_eq!(rx.on_data(&data(3, 8, &[0; 10]), t_rep), Ok(None));
        assert_eq!(rx.deadline(), t_rep + (t_rep - t0) / 5 * 4);
        // A sender whose batches overtook each other by 3 ms in the first
        // pass: twice that.
        let mut rx = rx_of(8, t0);
        for (t, i) in [(0u32, 0u32), (1, 1), (2, 4), (3, 5), (303, 2)] {
            assert_eq!(rx.on_data(&data(i, 8, &[0; 10]), t0 + us * t), Ok(None));
        }
        assert_eq!(
            rx.on_data(&data(7, 8, &[0; 10]), t0 + us * 304),
            Ok(Some(ReceiveEvent::Nack(vec![
                Range { start: 3, end: 4 },
                Range { start: 6, end: 7 }
            ])))
        );
        // Repeats come in the order asked for: not counted as reordering.
        let t_rep = t0 + Duration::from_millis(4);
        assert_eq!(rx.on_data(&data(6, 8, &[0; 10]), t_rep), Ok(None));
        assert_eq!(rx.deadline(), t_rep + Duration::from_millis(6));
    }

    #[test]
    fn a_duplicate_of_the_last_datagram_asks_nothing_again() {
        let t0 = Instant::now();
        let mut rx = rx_of(3, t0);
        assert!(rx.on_data(&data(2, 3, &[0; 10]), t0).unwrap().is_some());
        let d = rx.deadline();
        assert_eq!(
            rx.on_data(&data(2, 3, &[0; 10]), t0 + Duration::from_micros(500)),
            Ok(None)
        );
        assert_eq!(rx.deadline(), d);
    }
}
