//! Keys, keyed BLAKE3 tags and the replay window.
//!
//! The tag is `BLAKE3-keyed(key, header || body)`, 32 octets, appended to
//! the datagram. A receiver accepts a datagram when the key id is known,
//! the tag verifies, the timestamp is within the allowed skew of its own
//! clock, and the (key id, sender id, sequence) was not seen before inside
//! the window.

use crate::error::OpenError;
use std::collections::HashMap;
use std::fmt;

/// A 32-byte MAC key with its id.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub id: u32,
    bytes: [u8; 32],
}

impl Key {
    pub fn new(id: u32, bytes: [u8; 32]) -> Self {
        Key { id, bytes }
    }

    /// Parses a key file's text: 64 hex digits (whitespace ignored).
    pub fn from_hex(id: u32, text: &str) -> Result<Self, KeyError> {
        let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let raw = hex::decode(&clean).map_err(|_| KeyError::NotHex)?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|v: Vec<u8>| KeyError::Length(v.len()))?;
        Ok(Key { id, bytes })
    }

    pub fn tag(&self, data: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.bytes, data).as_bytes()
    }

    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        // blake3::Hash's PartialEq is constant-time.
        match <[u8; 32]>::try_from(tag) {
            Ok(t) => blake3::keyed_hash(&self.bytes, data) == blake3::Hash::from(t),
            Err(_) => false,
        }
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key {{ id: {}, bytes: <redacted> }}", self.id)
    }
}

/// A key that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "key file is not hex: write 64 hex digits (e.g. `head -c32 /dev/urandom | xxd -p -c64`)"
    )]
    NotHex,
    #[error("key is {0} bytes, must be 32 (64 hex digits)")]
    Length(usize),
}

/// The keys a receiver accepts, by id.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: HashMap<u32, Key>,
}

impl Keyring {
    pub fn new(keys: impl IntoIterator<Item = Key>) -> Self {
        Keyring {
            keys: keys.into_iter().map(|k| (k.id, k)).collect(),
        }
    }
    pub fn insert(&mut self, k: Key) {
        self.keys.insert(k.id, k);
    }
    pub fn get(&self, id: u32) -> Option<&Key> {
        self.keys.get(&id)
    }
}

/// Sliding anti-replay window of 1024 sequence numbers (as IPsec's, RFC 4303
/// appendix A), one per (key id, sender id).
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    highest: u64,
    seen_any: bool,
    bits: [u64; WINDOW_WORDS],
    /// Receiver clock (us) when a sequence was last accepted.
    last_us: u64,
}

const WINDOW_WORDS: usize = 16;
/// Sequence numbers this far below the highest seen are refused outright.
pub const WINDOW: u64 = (WINDOW_WORDS * 64) as u64;

impl ReplayWindow {
    /// Whether `seq` would be accepted (does not record it).
    pub fn check(&self, seq: u64) -> bool {
        if !self.seen_any || seq > self.highest {
            return true;
        }
        let diff = self.highest - seq;
        if diff >= WINDOW {
            return false;
        }
        !self.bit(seq)
    }

    /// Records `seq` as seen; call only after the tag verified.
    pub fn accept(&mut self, seq: u64) {
        if !self.seen_any {
            self.seen_any = true;
            self.highest = seq;
            self.bits = [0; WINDOW_WORDS];
        } else if seq > self.highest {
            let shift = seq - self.highest;
            if shift >= WINDOW {
                self.bits = [0; WINDOW_WORDS];
            } else {
                for s in (self.highest + 1)..=seq {
                    self.clear_bit(s);
                }
            }
            self.highest = seq;
        }
        self.set_bit(seq);
    }

    fn pos(seq: u64) -> (usize, u64) {
        let i = (seq % WINDOW) as usize;
        (i / 64, 1u64 << (i % 64))
    }
    fn bit(&self, seq: u64) -> bool {
        let (w, m) = Self::pos(seq);
        self.bits[w] & m != 0
    }
    fn set_bit(&mut self, seq: u64) {
        let (w, m) = Self::pos(seq);
        self.bits[w] |= m;
    }
    fn clear_bit(&mut self, seq: u64) {
        let (w, m) = Self::pos(seq);
        self.bits[w] &= !m;
    }
}

/// Default most senders one key may have replay state for at once.
pub const DEFAULT_MAX_SENDERS_PER_KEY: usize = 4096;

/// Replay state for every sender a receiver hears from, plus the clock
/// skew it tolerates.
///
/// Bounded and restart-safe:
/// - A sequence number ahead of the receiver's clock plus the skew is
///   refused (senders start their sequence at their clock, see
///   [`crate::Sealer`]), so one datagram with sequence `u64::MAX` cannot
///   make every later datagram of that sender a replay.
/// - A sender's window is dropped once nothing was accepted from it for
///   twice the skew: every datagram it ever accepted is then refused as
///   stale by the timestamp check anyway.
/// - At most [`ReplayGuard::max_senders_per_key`] live windows per key id;
///   a new sender beyond that is refused until windows expire (one key's
///   holder cannot evict other senders' state).
/// - [`ReplayGuard::with_start`]: a receiver that just started refuses
///   datagrams stamped before its own start, so a datagram captured before
///   a restart cannot be replayed after it (the windows were lost).
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    windows: HashMap<(u32, u32), ReplayWindow>,
    per_key: HashMap<u32, usize>,
    pub max_skew_us: u64,
    pub max_senders_per_key: usize,
    /// Receiver clock at start (0: no fresh-start rule).
    started_us: u64,
    last_sweep_us: u64,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::new(30_000_000)
    }
}

impl ReplayGuard {
    pub fn new(max_skew_us: u64) -> Self {
        ReplayGuard {
            windows: HashMap::new(),
            per_key: HashMap::new(),
            max_skew_us,
            max_senders_per_key: DEFAULT_MAX_SENDERS_PER_KEY,
            started_us: 0,
            last_sweep_us: 0,
        }
    }

    /// Applies the fresh-start rule: datagrams stamped before `now_us` (this
    /// receiver's start) are refused.
    pub fn with_start(mut self, now_us: u64) -> Self {
        self.started_us = now_us;
        self
    }

    /// Number of senders with live replay state.
    pub fn senders(&self) -> usize {
        self.windows.len()
    }

    /// Drops windows idle for more than twice the skew (see the type docs).
    fn sweep(&mut self, now_us: u64) {
        let idle = self.max_skew_us.saturating_mul(2);
        let per_key = &mut self.per_key;
        self.windows.retain(|(key, _), w| {
            let keep = now_us.saturating_sub(w.last_us) <= idle;
            if !keep && let Some(n) = per_key.get_mut(key) {
                *n = n.saturating_sub(1);
            }
            keep
        });
        self.per_key.retain(|_, n| *n > 0);
        self.last_sweep_us = now_us;
    }

    /// Checks freshness of an already authenticated header and records it.
    pub fn admit(
        &mut self,
        key_id: u32,
        sender_id: u32,
        sequence: u64,
        timestamp_us: u64,
        now_us: u64,
    ) -> Result<(), OpenError> {
        let skew = timestamp_us as i128 - now_us as i128;
        if skew.unsigned_abs() > u128::from(self.max_skew_us) {
            return Err(OpenError::Stale {
                skew_ms: (skew / 1000) as i64,
                limit_ms: self.max_skew_us / 1000,
            });
        }
        if timestamp_us < self.started_us {
            return Err(OpenError::BeforeStart {
                sender_id,
                before_ms: (self.started_us - timestamp_us) / 1000,
            });
        }
        if sequence > now_us.saturating_add(self.max_skew_us) {
            return Err(OpenError::SequenceAhead {
                sender_id,
                sequence,
            });
        }
        if now_us.saturating_sub(self.last_sweep_us) >= self.max_skew_us {
            self.sweep(now_us);
        }
        let k = (key_id, sender_id);
        if !self.windows.contains_key(&k) {
            let n = self.per_key.get(&key_id).copied().unwrap_or(0);
            if n >= self.max_senders_per_key {
                return Err(OpenError::TooManySenders {
                    key_id,
                    limit: self.max_senders_per_key,
                });
            }
        }
        let w = self.windows.entry(k).or_default();
        if !w.check(sequence) {
            return Err(OpenError::Replay {
                sender_id,
                sequence,
            });
        }
        if !w.seen_any {
            *self.per_key.entry(key_id).or_default() += 1;
        }
        w.accept(sequence);
        w.last_us = now_us;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_refuses_duplicates_and_old() {
        let mut w = ReplayWindow::default();
        assert!(w.check(5));
        w.accept(5);
        assert!(!w.check(5));
        assert!(w.check(4));
        w.accept(4);
        assert!(!w.check(4));
        w.accept(5 + WINDOW);
        assert!(!w.check(5), "too old");
        assert!(w.check(6 + WINDOW / 2));
        assert!(!w.check(5 + WINDOW));
    }

    #[test]
    fn window_reuse_after_slide_is_not_false_positive() {
        let mut w = ReplayWindow::default();
        for s in 0..3000 {
            assert!(w.check(s), "fresh {s}");
            w.accept(s);
            assert!(!w.check(s));
        }
        // Out of order inside the window.
        let mut w = ReplayWindow::default();
        w.accept(2000);
        assert!(w.check(1500));
        w.accept(1500);
        assert!(!w.check(1500));
        assert!(w.check(1501));
    }

    #[test]
    fn tag_verifies_and_rejects() {
        let k = Key::new(1, [7; 32]);
        let t = k.tag(b"hello");
        assert!(k.verify(b"hello", &t));
        assert!(!k.verify(b"hellO", &t));
        assert!(!Key::new(1, [8; 32]).verify(b"hello", &t));
        assert!(!k.verify(b"hello", &t[..31]));
    }

    #[test]
    fn skew_refused() {
        let mut g = ReplayGuard::new(1_000_000);
        assert!(matches!(
            g.admit(1, 1, 1, 0, 5_000_000),
            Err(OpenError::Stale { .. })
        ));
        assert!(g.admit(1, 1, 1, 5_000_000, 5_000_000).is_ok());
        assert!(matches!(
            g.admit(1, 1, 1, 5_000_000, 5_000_000),
            Err(OpenError::Replay { .. })
        ));
        // Another sender has its own window.
        assert!(g.admit(1, 2, 1, 5_000_000, 5_000_000).is_ok());
    }

    const NOW: u64 = 1_800_000_000_000_000;
    const SKEW: u64 = 30_000_000;

    /// One datagram with sequence u64::MAX under a victim's sender id must
    /// not turn the victim's later datagrams into replays.
    #[test]
    fn sequence_poisoning_refused() {
        let mut g = ReplayGuard::new(SKEW);
        assert!(matches!(
            g.admit(1, 7, u64::MAX, NOW, NOW),
            Err(OpenError::SequenceAhead { .. })
        ));
        assert!(matches!(
            g.admit(1, 7, NOW + SKEW + 1, NOW, NOW),
            Err(OpenError::SequenceAhead { .. })
        ));
        // The victim, whose sequence follows its clock, is unaffected.
        assert!(g.admit(1, 7, NOW - 5, NOW, NOW).is_ok());
        assert!(g.admit(1, 7, NOW - 4, NOW + 1, NOW + 1).is_ok());
        // Up to the skew ahead is still fine (a sender with a faster clock).
        assert!(g.admit(1, 8, NOW + SKEW, NOW, NOW).is_ok());
    }

    /// The per-sender map shrinks again: windows idle for twice the skew go.
    #[test]
    fn windows_expire_and_are_capped_per_key() {
        let mut g = ReplayGuard::new(SKEW);
        for s in 0..100 {
            g.admit(1, s, NOW, NOW, NOW).unwrap();
        }
        assert_eq!(g.senders(), 100);
        // A replay of an old datagram after its window expired is stale.
        let later = NOW + 2 * SKEW + 1;
        g.admit(2, 1, later, later, later).unwrap();
        assert_eq!(g.senders(), 1, "idle windows were dropped");
        assert!(matches!(
            g.admit(1, 3, NOW, NOW, later),
            Err(OpenError::Stale { .. })
        ));
        // The cap per key: key 1 may hold 3 senders, key 2 is unaffected.
        let mut g = ReplayGuard::new(SKEW);
        g.max_senders_per_key = 3;
        for s in 0..3 {
            g.admit(1, s, NOW, NOW, NOW).unwrap();
        }
        assert!(matches!(
            g.admit(1, 99, NOW, NOW, NOW),
            Err(OpenError::TooManySenders { key_id: 1, .. })
        ));
        assert!(g.admit(1, 0, NOW + 1, NOW, NOW).is_ok(), "known sender");
        assert!(g.admit(2, 99, NOW, NOW, NOW).is_ok());
        // Once the old windows expire there is room again.
        let later = NOW + 2 * SKEW + 1;
        assert!(g.admit(1, 99, later, later, later).is_ok());
    }

    /// After a restart the windows are empty: a datagram sealed before the
    /// receiver started is refused instead of accepted a second time.
    #[test]
    fn fresh_start_refuses_datagrams_from_before_the_start() {
        let sealed_at = NOW - 1_000_000;
        let mut before = ReplayGuard::new(SKEW);
        assert!(before.admit(1, 1, sealed_at, sealed_at, sealed_at).is_ok());
        // The receiver restarts at NOW; the captured datagram comes again.
        let mut naive = ReplayGuard::new(SKEW);
        assert!(naive.admit(1, 1, sealed_at, sealed_at, NOW).is_ok());
        let mut g = ReplayGuard::new(SKEW).with_start(NOW);
        assert!(matches!(
            g.admit(1, 1, sealed_at, sealed_at, NOW),
            Err(OpenError::BeforeStart { .. })
        ));
        assert!(g.admit(1, 1, NOW + 1, NOW + 1, NOW + 2).is_ok());
    }
}
