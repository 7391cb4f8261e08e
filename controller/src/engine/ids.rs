//! Transaction ids, lease ids, the wall clock and sealing.
//!
//! Lease ids are the controller id in the top 8 bits and 56 random bits
//! from a CSPRNG (ChaCha12 seeded from the OS): not guessable, and two
//! controllers side by side never collide. Transaction ids only need to
//! be unique and increasing: controller id, then a counter started at the
//! clock in microseconds (so they also increase across restarts).

use rand::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::time::Instant;
use subcast_proto::{
    Datagram, Key, Keyring, Message, OpenError, Origin, ReplayGuard, decode, seal, verify_tag,
};

const LOW: u64 = (1 << 56) - 1;

#[derive(Debug)]
pub struct Ids {
    prefix: u64,
    txid: u64,
    rng: rand::rngs::StdRng,
}

impl Ids {
    pub fn new(controller_id: u32, unix_us: u64, seed: [u8; 32]) -> Ids {
        Ids {
            prefix: u64::from(controller_id & 0xff) << 56,
            txid: unix_us & LOW,
            rng: rand::rngs::StdRng::from_seed(seed),
        }
    }

    pub fn txid(&mut self) -> u64 {
        self.txid = (self.txid + 1) & LOW;
        self.prefix | self.txid.max(1)
    }

    /// A random lease id for which `taken` is false.
    pub fn lease(&mut self, taken: impl Fn(u64) -> bool) -> u64 {
        loop {
            let id = self.prefix | (self.rng.next_u64() & LOW);
            if id & LOW != 0 && !taken(id) {
                return id;
            }
        }
    }
}

/// Maps the engine's monotonic `Instant`s to Unix time. The driver
/// re-anchors it from the system clock as it runs.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_us: u64,
}

impl Clock {
    pub fn new(now: Instant, unix_us: u64) -> Clock {
        Clock {
            base: now,
            base_us: unix_us,
        }
    }
    pub fn unix_us(&self, t: Instant) -> u64 {
        if t >= self.base {
            self.base_us + t.duration_since(self.base).as_micros() as u64
        } else {
            self.base_us
                .saturating_sub(self.base.duration_since(t).as_micros() as u64)
        }
    }
    pub fn unix_ms(&self, t: Instant) -> u64 {
        self.unix_us(t) / 1000
    }
    /// The instant of Unix time `ms` (clamped to the anchor's past).
    pub fn instant_of_ms(&self, ms: u64) -> Instant {
        let us = ms.saturating_mul(1000);
        if us >= self.base_us {
            self.base + std::time::Duration::from_micros(us - self.base_us)
        } else {
            self.base
                .checked_sub(std::time::Duration::from_micros(self.base_us - us))
                .unwrap_or(self.base)
        }
    }
}

/// Seals outgoing datagrams with a fresh sequence number each time.
#[derive(Debug)]
pub struct Sealing {
    controller_id: u32,
    keys: BTreeMap<u32, Key>,
    seq: u64,
}

impl Sealing {
    pub fn new(controller_id: u32, keys: BTreeMap<u32, Key>, unix_us: u64) -> Sealing {
        Sealing {
            controller_id,
            keys,
            seq: unix_us.max(1),
        }
    }
    /// New keys (a reload); the sequence goes on.
    pub fn set_keys(&mut self, keys: BTreeMap<u32, Key>) {
        self.keys = keys;
    }

    pub fn seal(&mut self, key_id: u32, msg: &Message, unix_us: u64) -> Option<Vec<u8>> {
        let key = self.keys.get(&key_id)?;
        self.seq += 1;
        let origin = Origin {
            key_id,
            sender_id: self.controller_id,
            sequence: self.seq,
            timestamp_us: unix_us,
        };
        Some(seal(key, origin, msg))
    }
}

/// Opens incoming datagrams (known key, good tag, fresh, not replayed),
/// like [`subcast_proto::Opener`], with keys a reload can replace while
/// the replay windows carry on.
#[derive(Debug)]
pub struct Opening {
    keyring: Keyring,
    guard: ReplayGuard,
}

impl Opening {
    pub fn new(keys: &BTreeMap<u32, Key>) -> Opening {
        Opening {
            keyring: Keyring::new(keys.values().cloned()),
            guard: ReplayGuard::default(),
        }
    }

    pub fn set_keys(&mut self, keys: &BTreeMap<u32, Key>) {
        self.keyring = Keyring::new(keys.values().cloned());
    }

    /// Senders with live replay state.
    pub fn senders(&self) -> usize {
        self.guard.senders()
    }

    pub fn open(&mut self, bytes: &[u8], now_us: u64) -> Result<Datagram, OpenError> {
        let dg = decode(bytes)?;
        verify_tag(&self.keyring, bytes, &dg)?;
        let h = &dg.header;
        self.guard
            .admit(h.key_id, h.sender_id, h.sequence, h.timestamp_us, now_us)?;
        Ok(dg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_are_random_and_carry_the_controller() {
        let mut ids = Ids::new(3, 1_000_000, [7; 32]);
        let a = ids.lease(|_| false);
        let b = ids.lease(|_| false);
        assert_eq!(a >> 56, 3);
        assert_eq!(b >> 56, 3);
        assert_ne!(a, b);
        assert!((a & LOW).abs_diff(b & LOW) > 1_000_000, "not sequential");
        let t1 = ids.txid();
        assert!(ids.txid() > t1);
        assert_eq!(t1 >> 56, 3);
    }

    #[test]
    fn clock_maps_both_ways() {
        let t0 = Instant::now();
        let c = Clock::new(t0, 5_000_000);
        let t1 = t0 + std::time::Duration::from_millis(250);
        assert_eq!(c.unix_ms(t1), 5_250);
        assert_eq!(c.instant_of_ms(5_250), t1);
    }
}
