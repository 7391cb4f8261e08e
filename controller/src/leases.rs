//! The table of rendezvous leases: who holds which group address until when.
//!
//! Invariant: at most one lease per group address. A lease is `Pending`
//! while its SET_SUBSET is being pushed and `Live` once every agent ACKed.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::Ipv6Addr;
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
    /// SET_SUBSET sent, not yet acknowledged by every agent.
    Pending,
    /// Granted: every agent in scope installed the group.
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
    /// Switch ids whose agents were told to install the group.
    pub switches: Vec<u32>,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub state: LeaseState,
    /// Who asked: a token name or "udp:ADDRESS".
    pub requester: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("group {0} already has a live lease")]
    GroupInUse(Ipv6Addr),
    #[error("lease id {0} already exists")]
    DuplicateId(u64),
}

#[derive(Debug, Default)]
pub struct Leases {
    by_id: HashMap<u64, Lease>,
    by_group: HashMap<Ipv6Addr, u64>,
}

impl Leases {
    pub fn insert(&mut self, l: Lease) -> Result<(), LeaseError> {
        if self.by_group.contains_key(&l.group) {
            return Err(LeaseError::GroupInUse(l.group));
        }
        if self.by_id.contains_key(&l.id) {
            return Err(LeaseError::DuplicateId(l.id));
        }
        self.by_group.insert(l.group, l.id);
        self.by_id.insert(l.id, l);
        Ok(())
    }

    pub fn remove(&mut self, id: u64) -> Option<Lease> {
        let l = self.by_id.remove(&id)?;
        self.by_group.remove(&l.group);
        Some(l)
    }

    pub fn get(&self, id: u64) -> Option<&Lease> {
        self.by_id.get(&id)
    }

    pub fn set_live(&mut self, id: u64) -> bool {
        match self.by_id.get_mut(&id) {
            Some(l) => {
                l.state = LeaseState::Live;
                true
            }
            None => false,
        }
    }

    /// All leases, oldest first.
    pub fn list(&self) -> Vec<Lease> {
        let mut v: Vec<Lease> = self.by_id.values().cloned().collect();
        v.sort_by_key(|l| (l.created_ms, l.id));
        v
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Live leases whose time is up at `now_ms`. Pending ones are finished
    /// by their own fan-out.
    pub fn expired(&self, now_ms: u64) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .by_id
            .values()
            .filter(|l| l.state == LeaseState::Live && l.expires_ms <= now_ms)
            .map(|l| l.id)
            .collect();
        v.sort_unstable();
        v
    }

    /// Live leases that involve `switch_id` (to re-push after its agent
    /// restarted).
    pub fn live_on_switch(&self, switch_id: u32) -> Vec<Lease> {
        self.by_id
            .values()
            .filter(|l| l.state == LeaseState::Live && l.switches.contains(&switch_id))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: u64, group: &str, expires_ms: u64) -> Lease {
        Lease {
            id,
            vlan: 10,
            parent: "ff15::1".parse().unwrap(),
            group: group.parse().unwrap(),
            targets: vec![],
            switches: vec![1, 2],
            created_ms: id,
            expires_ms,
            state: LeaseState::Pending,
            requester: "t".into(),
        }
    }

    #[test]
    fn one_lease_per_group() {
        let mut t = Leases::default();
        t.insert(lease(1, "ff15::5:1", 100)).unwrap();
        assert_eq!(
            t.insert(lease(2, "ff15::5:1", 100)),
            Err(LeaseError::GroupInUse("ff15::5:1".parse().unwrap()))
        );
        assert_eq!(
            t.insert(lease(1, "ff15::5:2", 100)),
            Err(LeaseError::DuplicateId(1))
        );
        assert!(t.remove(1).is_some());
        t.insert(lease(2, "ff15::5:1", 100)).unwrap();
        assert_eq!(t.len(), 1);
        assert!(t.remove(1).is_none());
    }

    #[test]
    fn only_live_leases_expire() {
        let mut t = Leases::default();
        t.insert(lease(1, "ff15::5:1", 100)).unwrap();
        t.insert(lease(2, "ff15::5:2", 200)).unwrap();
        t.insert(lease(3, "ff15::5:3", 50)).unwrap();
        assert!(
            t.expired(1000).is_empty(),
            "pending leases do not expire here"
        );
        t.set_live(1);
        t.set_live(2);
        assert_eq!(t.expired(99), Vec::<u64>::new());
        assert_eq!(t.expired(100), vec![1]);
        assert_eq!(t.expired(500), vec![1, 2]);
        assert_eq!(t.live_on_switch(2).len(), 2);
        assert_eq!(t.live_on_switch(9).len(), 0);
    }
}
