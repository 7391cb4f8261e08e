//! The bridge's multicast database (MDB), mirrored from one dump and then
//! RTM_NEWMDB / RTM_DELMDB notifications (`watch.rs`): parent groups the
//! configuration does not define are read from here without a netlink
//! round trip, and the capacity counts the groups others hold.

use super::mdb::{self, MdbAddr, MdbEntry};
use crate::backend::PortSet;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;

/// (VLAN id, group) -> port -> entry state, for one bridge.
#[derive(Debug, Clone, Default)]
pub struct MdbMirror {
    bridge: u32,
    groups: HashMap<(u16, MdbAddr), BTreeMap<u32, u8>>,
}

impl MdbMirror {
    pub fn new(bridge: u32) -> Self {
        MdbMirror {
            bridge,
            groups: HashMap::new(),
        }
    }

    /// Replaces everything with a fresh dump (entries of other bridges are
    /// ignored).
    pub fn replace(&mut self, entries: impl IntoIterator<Item = MdbEntry>) {
        self.groups.clear();
        for e in entries {
            self.apply(mdb::RTM_NEWMDB, &e);
        }
    }

    /// Applies one notified entry (RTM_NEWMDB adds, RTM_DELMDB removes).
    pub fn apply(&mut self, ty: u16, e: &MdbEntry) {
        if e.bridge != self.bridge {
            return;
        }
        let key = (e.vid, e.addr);
        match ty {
            mdb::RTM_NEWMDB | mdb::RTM_GETMDB => {
                self.groups.entry(key).or_default().insert(e.port, e.state);
            }
            mdb::RTM_DELMDB => {
                if let Some(ports) = self.groups.get_mut(&key) {
                    ports.remove(&e.port);
                    if ports.is_empty() {
                        self.groups.remove(&key);
                    }
                }
            }
            _ => {}
        }
    }

    /// Ports of `group` on `vlan` (entries without a VLAN count for every
    /// VLAN), the bridge itself (host joins) excluded; `None` if none.
    pub fn ports(&self, vlan: u16, group: Ipv6Addr) -> Option<PortSet> {
        let mut out = PortSet::new();
        for vid in [vlan, 0] {
            if let Some(p) = self.groups.get(&(vid, MdbAddr::from_group(group))) {
                out.extend(p.keys().filter(|p| **p != self.bridge));
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Number of groups (the unit of the bridge's `mcast_hash_max`) outside
    /// `range`: the ones subcast does not own.
    pub fn groups_outside(&self, range: Option<&ipnet::Ipv6Net>) -> usize {
        self.groups
            .keys()
            .filter(|(_, a)| match (a.group(), range) {
                (Some(g), Some(r)) => !r.contains(&g),
                _ => true,
            })
            .count()
    }

    /// Entries inside `range` the bridge learned (temporary), as
    /// (port, vid, group).
    pub fn learned_in(&self, range: &ipnet::Ipv6Net) -> Vec<(u32, u16, Ipv6Addr)> {
        let mut out = Vec::new();
        for ((vid, a), ports) in &self.groups {
            let Some(g) = a.group() else { continue };
            if !range.contains(&g) {
                continue;
            }
            for (port, state) in ports {
                if *state == mdb::MDB_TEMPORARY && *port != self.bridge {
                    out.push((*port, *vid, g));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(port: u32, vid: u16, g: &str, state: u8) -> MdbEntry {
        MdbEntry {
            bridge: 9,
            port,
            state,
            flags: 0,
            vid,
            addr: MdbAddr::Ipv6(g.parse().unwrap()),
        }
    }

    #[test]
    fn follows_adds_and_deletes() {
        let mut m = MdbMirror::new(9);
        m.replace([
            e(3, 0, "ff15::1", 1),
            e(4, 0, "ff15::1", 0),
            e(9, 0, "ff15::1", 0),
            e(5, 7, "ff15::1", 1),
            e(3, 0, "ff15::5c00:1", 0),
        ]);
        let mut other = e(1, 0, "ff15::1", 1);
        other.bridge = 8;
        m.apply(mdb::RTM_NEWMDB, &other);
        let g: Ipv6Addr = "ff15::1".parse().unwrap();
        assert_eq!(m.ports(0, g), Some([3, 4].into()));
        assert_eq!(m.ports(7, g), Some([3, 4, 5].into()));
        let range: ipnet::Ipv6Net = "ff15::5c00:0/104".parse().unwrap();
        assert_eq!(m.groups_outside(Some(&range)), 2);
        assert_eq!(
            m.learned_in(&range),
            vec![(3, 0, "ff15::5c00:1".parse().unwrap())]
        );
        m.apply(mdb::RTM_DELMDB, &e(3, 0, "ff15::1", 1));
        m.apply(mdb::RTM_DELMDB, &e(4, 0, "ff15::1", 1));
        assert_eq!(m.ports(0, g), None, "only the host join is left");
        assert_eq!(m.groups_outside(Some(&range)), 2);
        m.apply(mdb::RTM_DELMDB, &e(9, 0, "ff15::1", 1));
        assert_eq!(m.groups_outside(Some(&range)), 1);
    }
}
