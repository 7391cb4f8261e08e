//! Leases: who holds which rendezvous group until when. A lease is a
//! reference to a group; several leases may share one group (same parent
//! and target set). Each has its own random id, owner and end.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::Instant;
use subcast_proto::MacAddr;

/// One target of a rendezvous group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub ipv6: Ipv6Addr,
    pub mac: MacAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// Waiting for its group to be installed (or refreshed).
    Pending,
    /// Granted: every agent in scope holds the group.
    Live,
}

impl LeaseState {
    pub fn name(self) -> &'static str {
        match self {
            LeaseState::Pending => "pending",
            LeaseState::Live => "live",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(LeaseState::Pending),
            "live" => Some(LeaseState::Live),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: u64,
    pub vlan: u16,
    pub parent: Ipv6Addr,
    pub group: Ipv6Addr,
    pub targets: Vec<Target>,
    /// Switch ids whose agents hold the group.
    pub switches: Vec<u32>,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub state: LeaseState,
    /// The credential that owns it: a token name or "udp:key K/node N".
    pub requester: String,
    /// The group was already installed: the grant needed no switch update.
    #[serde(default)]
    pub reused: bool,
}

/// A lease as the engine holds it.
#[derive(Debug, Clone)]
pub struct Held {
    pub lease: Lease,
    pub gid: u64,
    pub end: Instant,
}

/// Every lease, and how many each owner holds.
#[derive(Debug, Default)]
pub struct LeaseBook {
    by_id: HashMap<u64, Held>,
    by_owner: HashMap<String, u32>,
}

impl LeaseBook {
    pub fn insert(&mut self, h: Held) {
        *self.by_owner.entry(h.lease.requester.clone()).or_default() += 1;
        if let Some(old) = self.by_id.insert(h.lease.id, h) {
            self.uncount(&old.lease.requester);
        }
    }

    fn uncount(&mut self, owner: &str) {
        if let Some(n) = self.by_owner.get_mut(owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_owner.remove(owner);
            }
        }
    }

    pub fn remove(&mut self, id: u64) -> Option<Held> {
        let h = self.by_id.remove(&id)?;
        self.uncount(&h.lease.requester);
        Some(h)
    }

    pub fn get(&self, id: u64) -> Option<&Held> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Held> {
        self.by_id.get_mut(&id)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    pub fn held_by(&self, owner: &str) -> u32 {
        self.by_owner.get(owner).copied().unwrap_or(0)
    }

    /// All leases, oldest first.
    pub fn list(&self) -> Vec<Lease> {
        let mut v: Vec<Lease> = self.by_id.values().map(|h| h.lease.clone()).collect();
        v.sort_by_key(|l| (l.created_ms, l.id));
        v
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Held> {
        self.by_id.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(id: u64, owner: &str) -> Held {
        Held {
            lease: Lease {
                id,
                vlan: 10,
                parent: "ff15::1".parse().unwrap(),
                group: "ff15::5:1".parse().unwrap(),
                targets: vec![],
                switches: vec![1],
                created_ms: id,
                expires_ms: 100,
                state: LeaseState::Live,
                requester: owner.into(),
                reused: false,
            },
            gid: 1,
            end: Instant::now(),
        }
    }

    #[test]
    fn counts_per_owner() {
        let mut b = LeaseBook::default();
        b.insert(held(1, "a"));
        b.insert(held(2, "a"));
        b.insert(held(3, "b"));
        assert_eq!(b.held_by("a"), 2);
        assert!(b.remove(1).is_some());
        assert!(b.remove(1).is_none());
        assert_eq!(b.held_by("a"), 1);
        assert_eq!(b.list().len(), 2);
    }
}
