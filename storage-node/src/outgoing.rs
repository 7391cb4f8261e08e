//! Sans-I/O pieces shared by senders: what to transmit, a paced source of
//! DATA datagrams for one chunk, and the token-bucket pacer.

use crate::chunking::{datagram_count, datagram_range};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{Data, Range, ReplicastMessage, TransferKey, first_pass_tags};

/// Whom a control datagram is tagged for (its tag list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// One node (unicast).
    Node(u32),
    /// Every member of this negotiating group (the owner knows them).
    Members(std::net::Ipv6Addr),
    /// These nodes (DATA to a group: its targets).
    Nodes(Arc<[u32]>),
}

/// A datagram a state machine wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub to: To,
    pub msg: ReplicastMessage,
}

/// A DATA datagram to send, its payload still in the chunk buffer: the
/// owner seals it straight into its send buffer
/// ([`subcast_proto::replicast::seal_data_into`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutData {
    pub dest: SocketAddr,
    /// Node ids the datagram is tagged for (the targets behind `dest`).
    pub to: Arc<[u32]>,
    pub txid: u64,
    pub index: u32,
    pub total: u32,
    /// The transfer key: sent as keyed DATA (0x47) under it; `None`: DATA
    /// (0x43) with a tag list for `to`.
    pub key: Option<Arc<TransferKey>>,
    /// With a key: tagged (keyed DATA), or untagged DATA (0x4e) for a
    /// first-pass index a target takes unverified
    /// ([`subcast_proto::replicast::first_pass_tags`]). Repeats are
    /// always tagged. The sender also tags the first datagram of each run
    /// of a transfer in a send batch (`udp.rs`).
    pub tagged: bool,
    /// The last datagram of a pass (of the first pass to its
    /// destination, or of a batch of repeats): it leaves after every
    /// datagram sent before it, never overtaking one (`udp.rs`), so a
    /// target that receives it and still misses an index has lost that
    /// one and asks for it at once.
    pub ends_pass: bool,
    chunk: Arc<Vec<u8>>,
    range: std::ops::Range<usize>,
}

impl OutData {
    /// The payload octets (an empty chunk travels as one zero octet that
    /// the receiver trims by the announced size: DATA carries at least one).
    pub fn payload(&self) -> &[u8] {
        if self.range.is_empty() {
            &[0]
        } else {
            &self.chunk[self.range.clone()]
        }
    }

    /// As a message (copies the payload; for tests and simulation).
    pub fn to_transmit(&self) -> Transmit {
        Transmit {
            dest: self.dest,
            to: To::Nodes(self.to.clone()),
            msg: ReplicastMessage::Data(Data {
                txid: self.txid,
                index: self.index,
                total: self.total,
                payload: self.payload().to_vec(),
            }),
        }
    }
}

/// What a state machine wants sent: a control message or DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Control(Transmit),
    Data(OutData),
}

impl Outbound {
    pub fn dest(&self) -> SocketAddr {
        match self {
            Outbound::Control(t) => t.dest,
            Outbound::Data(d) => d.dest,
        }
    }

    /// As a message (copies a DATA payload; for tests and simulation).
    pub fn into_transmit(self) -> Transmit {
        match self {
            Outbound::Control(t) => t,
            Outbound::Data(d) => d.to_transmit(),
        }
    }
}

/// The DATA datagrams of one chunk, produced lazily so a pacer decides
/// when: first every index to each fresh destination, then repeats asked
/// for by NACKs. A repeat that several members of the first pass's group
/// asked for goes once to the group; one asked for by a single target
/// goes to it alone.
#[derive(Debug)]
pub struct Outgoing {
    txid: u64,
    payload: Arc<Vec<u8>>,
    per: usize,
    total: u32,
    fresh_dests: Vec<SocketAddr>,
    /// The multicast destination of the first pass and who is on it.
    group: Option<(SocketAddr, Vec<SocketAddr>)>,
    /// Next (index, destination number) of the first pass.
    cursor: (u32, usize),
    /// Indices asked for, in the order first asked.
    resend: VecDeque<u32>,
    /// Who asked for each index in `resend`.
    wanted: HashMap<u32, Vec<SocketAddr>>,
    /// Copies of the index being repeated still to go, one per requester.
    pending: VecDeque<(SocketAddr, u32)>,
    /// Node ids behind each destination (for the tag list).
    receivers: HashMap<SocketAddr, Arc<[u32]>>,
    /// Keyed DATA under this transfer key (every target got it wrapped).
    key: Option<Arc<TransferKey>>,
    pub sent_datagrams: u64,
    pub sent_payload_bytes: u64,
    /// Repeats sent once to the group for several requesters.
    pub repair_to_group: u64,
    /// Repeats sent to one requester.
    pub repair_unicast: u64,
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
            group: None,
            cursor: (0, 0),
            resend: VecDeque::new(),
            wanted: HashMap::new(),
            pending: VecDeque::new(),
            receivers: HashMap::new(),
            key: None,
            sent_datagrams: 0,
            sent_payload_bytes: 0,
            repair_to_group: 0,
            repair_unicast: 0,
        }
    }

    /// The first pass goes to multicast `group`, which reaches `members`:
    /// repeats several of them ask for go once to the group.
    pub fn with_group(mut self, group: SocketAddr, members: Vec<SocketAddr>) -> Self {
        self.group = Some((group, members));
        self
    }

    /// Node ids behind `dest` (a target, or a group and the targets on it).
    pub fn set_receivers(&mut self, dest: SocketAddr, ids: Vec<u32>) {
        self.receivers.insert(dest, ids.into());
    }

    /// Sends keyed DATA under `key` (the ACCEPT carried it wrapped for
    /// every target).
    pub fn with_key(mut self, key: Option<Arc<TransferKey>>) -> Self {
        self.key = key;
        self
    }

    /// As [`Self::set_receivers`], builder style.
    pub fn with_receivers(mut self, dest: SocketAddr, ids: Vec<u32>) -> Self {
        self.set_receivers(dest, ids);
        self
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// Octets of the chunk being sent.
    pub fn chunk_len(&self) -> usize {
        self.payload.len()
    }

    /// Whether the first pass is over.
    pub fn first_pass_done(&self) -> bool {
        self.fresh_dests.is_empty() || self.cursor.0 >= self.total
    }

    /// Whether nothing is left to send right now.
    pub fn idle(&self) -> bool {
        self.first_pass_done() && self.resend.is_empty() && self.pending.is_empty()
    }

    fn in_first_pass(&self, dest: &SocketAddr) -> bool {
        self.fresh_dests.contains(dest)
            || self
                .group
                .as_ref()
                .is_some_and(|(_, members)| members.contains(dest))
    }

    /// Queues `ranges` for `dest`; indices not yet sent in the first pass
    /// (and out-of-range ones) are skipped. Returns how many were queued.
    pub fn request(&mut self, dest: SocketAddr, ranges: &[Range]) -> usize {
        let mut n = 0;
        let first = self.in_first_pass(&dest);
        for r in ranges {
            let end = r.end.min(self.total);
            for i in r.start..end {
                let pending_first = !self.first_pass_done() && i >= self.cursor.0;
                if pending_first && first {
                    continue;
                }
                let w = self.wanted.entry(i).or_default();
                if w.is_empty() {
                    self.resend.push_back(i);
                }
                if !w.contains(&dest) {
                    w.push(dest);
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

    fn data(&mut self, dest: SocketAddr, index: u32, tagged: bool) -> OutData {
        let r = datagram_range(self.payload.len(), self.per, index);
        self.sent_datagrams += 1;
        self.sent_payload_bytes += r.len() as u64;
        let to = self
            .receivers
            .get(&dest)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()));
        OutData {
            dest,
            to,
            txid: self.txid,
            index,
            total: self.total,
            key: self.key.clone(),
            tagged,
            ends_pass: false,
            chunk: self.payload.clone(),
            range: r,
        }
    }

    /// The next datagram to send, if any.
    pub fn next_datagram(&mut self) -> Option<OutData> {
        let mut d = self.next_inner()?;
        d.ends_pass |= self.idle();
        Some(d)
    }

    fn next_inner(&mut self) -> Option<OutData> {
        if let Some((dest, i)) = self.pending.pop_front() {
            self.repair_unicast += 1;
            return Some(self.data(dest, i, true));
        }
        if let Some(i) = self.resend.pop_front() {
            let mut who = self.wanted.remove(&i).unwrap_or_default();
            if let Some((group, members)) = &self.group {
                let on_group = who.iter().filter(|d| members.contains(d)).count();
                if on_group >= 2 {
                    let group = *group;
                    who.retain(|d| !members.contains(d));
                    self.pending.extend(who.into_iter().map(|d| (d, i)));
                    self.repair_to_group += 1;
                    return Some(self.data(group, i, true));
                }
            }
            self.pending.extend(who.into_iter().map(|d| (d, i)));
            return self.next_inner();
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
        let mut d = self.data(dest, i, first_pass_tags(i));
        d.ends_pass = i + 1 == self.total;
        Some(d)
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
            seen.push((t.dest, t.index, t.payload().len()));
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
    fn the_last_datagram_of_each_pass_is_marked() {
        let payload = Arc::new(vec![7u8; 250]);
        let mut o = Outgoing::new(9, payload, 100, vec![addr(1), addr(2)]);
        let mut ends = Vec::new();
        while let Some(t) = o.next_datagram() {
            ends.push((t.dest, t.index, t.ends_pass));
        }
        // Each destination's last index of the first pass.
        let first: Vec<_> = ends.iter().filter(|e| e.2).map(|e| (e.0, e.1)).collect();
        assert_eq!(first, vec![(addr(1), 2), (addr(2), 2)]);
        // A batch of repeats: only its last.
        o.request(addr(1), &[Range { start: 0, end: 2 }]);
        o.request(addr(2), &[Range { start: 1, end: 2 }]);
        let mut rep = Vec::new();
        while let Some(t) = o.next_datagram() {
            rep.push((t.dest, t.index, t.ends_pass));
        }
        assert_eq!(
            rep,
            vec![(addr(1), 0, false), (addr(1), 1, false), (addr(2), 1, true)]
        );
    }

    #[test]
    fn repeats_several_targets_miss_go_once_to_the_group() {
        let payload = Arc::new(vec![7u8; 1000]);
        let g = SocketAddr::from(([0xff15u16, 0, 0, 0, 0, 0, 0, 1], 7412));
        let mut o =
            Outgoing::new(9, payload, 100, vec![g]).with_group(g, vec![addr(1), addr(2), addr(3)]);
        while o.next_datagram().is_some() {}
        assert_eq!(o.sent_datagrams, 10);
        o.request(addr(1), &[Range { start: 2, end: 4 }]);
        o.request(addr(2), &[Range { start: 3, end: 5 }]);
        o.request(addr(9), &[Range { start: 3, end: 4 }]);
        let mut sent = Vec::new();
        while let Some(t) = o.next_datagram() {
            sent.push((t.dest, t.index));
        }
        // 2 to 1 alone; 3 once to the group (1 and 2) and to 9, not on it;
        // 4 to 2 alone.
        assert_eq!(sent, vec![(addr(1), 2), (g, 3), (addr(9), 3), (addr(2), 4)]);
        assert_eq!((o.repair_to_group, o.repair_unicast), (1, 3));
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
