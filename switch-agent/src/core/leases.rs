//! Leases of installed subset groups: every group expires at its lifetime,
//! with or without a controller. Pure: the caller passes `now`.
//!
//! Policy for repeated instructions (decided in `apply.rs`):
//! - the same txid for an installed group is a retransmission: it is
//!   re-acknowledged and changes nothing, not even the expiry (a lost ACK
//!   must not lengthen a lease the controller already counts);
//! - another txid with the same port set (and VLAN) is a refresh: the
//!   expiry and txid are renewed and the switch is not touched;
//! - another txid with another port set replaces the group (ports, expiry).

use crate::backend::PortSet;
use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// One installed subset group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub txid: u64,
    pub vlan: u16,
    pub parent: Ipv6Addr,
    pub ports: PortSet,
    pub expires: Instant,
    /// The members the group was set for (re-planned when the switch's
    /// ports change state, see `core/repush.rs`).
    pub members: Vec<subcast_proto::Member>,
}

/// The installed groups by address.
#[derive(Debug, Clone, Default)]
pub struct Leases {
    map: HashMap<Ipv6Addr, Lease>,
}

impl Leases {
    pub fn get(&self, group: &Ipv6Addr) -> Option<&Lease> {
        self.map.get(group)
    }

    pub fn get_mut(&mut self, group: &Ipv6Addr) -> Option<&mut Lease> {
        self.map.get_mut(group)
    }

    pub fn insert(&mut self, group: Ipv6Addr, lease: Lease) -> Option<Lease> {
        self.map.insert(group, lease)
    }

    pub fn remove(&mut self, group: &Ipv6Addr) -> Option<Lease> {
        self.map.remove(group)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Ipv6Addr, &Lease)> {
        self.map.iter()
    }

    /// Removes and returns the leases whose expiry is at or before `now`.
    pub fn take_expired(&mut self, now: Instant) -> Vec<(Ipv6Addr, Lease)> {
        let due: Vec<Ipv6Addr> = self
            .map
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(g, _)| *g)
            .collect();
        due.into_iter()
            .filter_map(|g| self.map.remove(&g).map(|l| (g, l)))
            .collect()
    }

    /// The earliest expiry, if any lease is held.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.map.values().map(|l| l.expires).min()
    }
}

/// The expiry of a lease of `lifetime_ms` (capped at `max_ms`) from `now`.
pub fn expiry(now: Instant, lifetime_ms: u32, max_ms: u32) -> Instant {
    now + Duration::from_millis(u64::from(lifetime_ms.min(max_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(txid: u64, expires: Instant) -> Lease {
        Lease {
            txid,
            vlan: 0,
            parent: "ff15::1".parse().unwrap(),
            ports: [1, 2].into(),
            expires,
            members: Vec::new(),
        }
    }

    #[test]
    fn expire_in_order_without_sleeping() {
        let t0 = Instant::now();
        let mut l = Leases::default();
        let a: Ipv6Addr = "ff15::5c00:1".parse().unwrap();
        let b: Ipv6Addr = "ff15::5c00:2".parse().unwrap();
        l.insert(a, lease(1, expiry(t0, 100, 1000)));
        l.insert(b, lease(2, expiry(t0, 5000, 1000)));
        assert_eq!(l.next_deadline(), Some(t0 + Duration::from_millis(100)));
        assert!(l.take_expired(t0 + Duration::from_millis(99)).is_empty());
        let e = l.take_expired(t0 + Duration::from_millis(100));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, a);
        // b's 5000 ms were capped at 1000.
        assert_eq!(l.next_deadline(), Some(t0 + Duration::from_millis(1000)));
        assert_eq!(l.take_expired(t0 + Duration::from_secs(2)).len(), 1);
        assert!(l.is_empty() && l.next_deadline().is_none());
    }
}
