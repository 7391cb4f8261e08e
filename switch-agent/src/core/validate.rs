//! Checks an authenticated SET_SUBSET against what the agent knows, before
//! any switch lookup: rendezvous range, parent group, VLAN, membership.

use crate::config::ParentGroup;
use std::collections::HashMap;
use std::net::Ipv6Addr;
use subcast_proto::{MacAddr, Member, Members, NakReason, SetSubset};

/// Why an instruction is refused: the NAK reason and a readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: NakReason,
    pub detail: String,
}

impl Refusal {
    pub fn new(reason: NakReason, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        if detail.len() > 255 {
            let mut cut = 255;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        Refusal { reason, detail }
    }
}

/// The configured parent groups, indexed.
#[derive(Debug, Clone, Default)]
pub struct Parents {
    by_addr: HashMap<Ipv6Addr, ParentGroup>,
    /// IPv6 -> MAC of every configured member of every parent group.
    macs: HashMap<Ipv6Addr, MacAddr>,
}

impl Parents {
    pub fn new(groups: &[ParentGroup]) -> Self {
        let mut p = Parents::default();
        for g in groups {
            for m in &g.members {
                p.macs.insert(m.ipv6, m.mac);
            }
            p.by_addr.insert(g.address, g.clone());
        }
        p
    }

    pub fn get(&self, addr: &Ipv6Addr) -> Option<&ParentGroup> {
        self.by_addr.get(addr)
    }

    pub fn contains(&self, addr: &Ipv6Addr) -> bool {
        self.by_addr.contains_key(addr)
    }
}

/// Where the parent's ports come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentScope<'a> {
    /// From the configured members (the agent looks up each one's port).
    Configured(&'a ParentGroup),
    /// From the switch's own multicast table (MDB).
    Switch,
}

/// A SET_SUBSET that passed the checks that need no switch lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub scope: ParentScope<'a>,
    /// The listed members, by MAC when the configuration knows it.
    pub members: Vec<Member>,
}

/// Checks `set` and resolves its members (see the crate docs for the rule).
pub fn resolve<'a>(
    set: &SetSubset,
    parents: &'a Parents,
    range: &ipnet::Ipv6Net,
) -> Result<Resolved<'a>, Refusal> {
    if !range.contains(&set.group) {
        return Err(Refusal::new(
            NakReason::NotASubset,
            format!(
                "group {} is outside this agent's rendezvous range {range}",
                set.group
            ),
        ));
    }
    if parents.contains(&set.group) {
        return Err(Refusal::new(
            NakReason::NotASubset,
            format!("group {} is a configured parent group", set.group),
        ));
    }
    match parents.get(&set.parent) {
        Some(pg) => {
            if pg.vlan != set.vlan {
                return Err(Refusal::new(
                    NakReason::WrongVlan,
                    format!(
                        "parent {} is in VLAN {} here, the instruction says VLAN {}",
                        set.parent, pg.vlan, set.vlan
                    ),
                ));
            }
            let members = match &set.members {
                Members::List(list) => list
                    .iter()
                    .map(|m| {
                        pg.members
                            .iter()
                            .find(|d| match m {
                                Member::Mac(mac) => d.mac == *mac,
                                Member::Ipv6(a) => d.ipv6 == *a,
                                Member::Ipv4(a) => d.ipv6 == a.to_ipv6_mapped(),
                            })
                            .map(|d| Member::Mac(d.mac))
                            .ok_or_else(|| {
                                Refusal::new(
                                    NakReason::NotASubset,
                                    format!("{m} is not a member of parent {}", set.parent),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Members::Bitmap(b) => b
                    .indices()
                    .map(|i| {
                        pg.members
                            .get(i)
                            .map(|d| Member::Mac(d.mac))
                            .ok_or_else(|| {
                                Refusal::new(
                                    NakReason::NotASubset,
                                    format!(
                                        "bitmap bit {i} is beyond parent {}'s {} members",
                                        set.parent,
                                        pg.members.len()
                                    ),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            };
            Ok(Resolved {
                scope: ParentScope::Configured(pg),
                members,
            })
        }
        None => {
            let Members::List(list) = &set.members else {
                return Err(Refusal::new(
                    NakReason::UnknownParent,
                    format!(
                        "a bitmap needs the parent's member order, and parent {} is not configured on this agent",
                        set.parent
                    ),
                ));
            };
            let members = list
                .iter()
                .map(|m| match m {
                    Member::Ipv6(a) => parents.macs.get(a).map_or(*m, |mac| Member::Mac(*mac)),
                    Member::Ipv4(a) => parents
                        .macs
                        .get(&a.to_ipv6_mapped())
                        .map_or(*m, |mac| Member::Mac(*mac)),
                    Member::Mac(_) => *m,
                })
                .collect();
            Ok(Resolved {
                scope: ParentScope::Switch,
                members,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MemberDef;
    use subcast_proto::Bitmap;

    fn parents() -> Parents {
        let members = (1..=9)
            .map(|i| MemberDef {
                name: format!("x{i}"),
                ipv6: format!("fd00::{i}").parse().unwrap(),
                mac: MacAddr([2, 0, 0, 0, 0, i]),
            })
            .collect();
        Parents::new(&[ParentGroup {
            address: "ff15::1".parse().unwrap(),
            vlan: 0,
            members,
        }])
    }

    fn set(parent: &str, group: &str, vlan: u16, members: Members) -> SetSubset {
        SetSubset {
            txid: 1,
            vlan,
            parent: parent.parse().unwrap(),
            group: group.parse().unwrap(),
            lifetime_ms: 1000,
            members,
        }
    }

    fn range() -> ipnet::Ipv6Net {
        "ff15::5c00:0/104".parse().unwrap()
    }

    #[test]
    fn configured_parent_list_and_bitmap() {
        let p = parents();
        let list = Members::List(vec![
            Member::Ipv6("fd00::1".parse().unwrap()),
            Member::Mac(MacAddr([2, 0, 0, 0, 0, 4])),
        ]);
        let r = resolve(&set("ff15::1", "ff15::5c00:1", 0, list), &p, &range()).unwrap();
        assert_eq!(
            r.members,
            vec![
                Member::Mac(MacAddr([2, 0, 0, 0, 0, 1])),
                Member::Mac(MacAddr([2, 0, 0, 0, 0, 4]))
            ]
        );
        let bm = Members::Bitmap(Bitmap::from_indices([0, 3, 7]).unwrap());
        let r = resolve(&set("ff15::1", "ff15::5c00:1", 0, bm), &p, &range()).unwrap();
        assert_eq!(r.members[2], Member::Mac(MacAddr([2, 0, 0, 0, 0, 8])));
    }

    #[test]
    fn ipv4_groups_outside_an_ipv6_range_are_refused() {
        let p = parents();
        let g4 = |s: &str| subcast_proto::group_field(s.parse().unwrap());
        let one = Members::List(vec![Member::Ipv4("10.0.0.1".parse().unwrap())]);
        let mut s = set("ff15::1", "ff15::5c00:1", 0, one);
        s.parent = g4("239.1.0.1");
        s.group = g4("239.1.128.1");
        let e = resolve(&s, &p, &range()).unwrap_err();
        assert_eq!(e.reason, NakReason::NotASubset);
        assert!(e.detail.contains("outside"), "{}", e.detail);
    }

    #[test]
    fn configured_ipv4_parent_places_ipv4_members_by_mac() {
        let g4 = |s: &str| subcast_proto::group_field(s.parse().unwrap());
        let members = (1..=3)
            .map(|i| MemberDef {
                name: format!("x{i}"),
                ipv6: format!("::ffff:10.0.0.{i}").parse().unwrap(),
                mac: MacAddr([2, 0, 0, 0, 0, i]),
            })
            .collect();
        let p = Parents::new(&[ParentGroup {
            address: g4("239.1.0.1"),
            vlan: 0,
            members,
        }]);
        let range: ipnet::Ipv6Net = "::ffff:239.1.128.0/120".parse().unwrap();
        let list = Members::List(vec![
            Member::Ipv4("10.0.0.2".parse().unwrap()),
            Member::Mac(MacAddr([2, 0, 0, 0, 0, 3])),
        ]);
        let mut s = set("ff15::1", "ff15::5c00:1", 0, list);
        s.parent = g4("239.1.0.1");
        s.group = g4("239.1.128.1");
        let r = resolve(&s, &p, &range).unwrap();
        assert_eq!(
            r.members,
            vec![
                Member::Mac(MacAddr([2, 0, 0, 0, 0, 2])),
                Member::Mac(MacAddr([2, 0, 0, 0, 0, 3]))
            ]
        );
        s.members = Members::List(vec![Member::Ipv4("10.0.0.9".parse().unwrap())]);
        assert_eq!(
            resolve(&s, &p, &range).unwrap_err().reason,
            NakReason::NotASubset
        );
    }

    #[test]
    fn refusals() {
        let p = parents();
        let one = || Members::List(vec![Member::Ipv6("fd00::1".parse().unwrap())]);
        let e = resolve(&set("ff15::1", "ff15::5c00:1", 7, one()), &p, &range()).unwrap_err();
        assert_eq!(e.reason, NakReason::WrongVlan);
        let e = resolve(&set("ff15::1", "ff15::9", 0, one()), &p, &range()).unwrap_err();
        assert_eq!(e.reason, NakReason::NotASubset);
        assert!(e.detail.contains("outside"));
        let outsider = Members::List(vec![Member::Ipv6("fd00::99".parse().unwrap())]);
        let e = resolve(&set("ff15::1", "ff15::5c00:1", 0, outsider), &p, &range()).unwrap_err();
        assert_eq!(e.reason, NakReason::NotASubset);
        let bm = Members::Bitmap(Bitmap::from_indices([9]).unwrap());
        let e = resolve(&set("ff15::1", "ff15::5c00:1", 0, bm.clone()), &p, &range()).unwrap_err();
        assert_eq!(e.reason, NakReason::NotASubset);
        let e = resolve(&set("ff15::2", "ff15::5c00:1", 0, bm), &p, &range()).unwrap_err();
        assert_eq!(e.reason, NakReason::UnknownParent);
        // Unconfigured parent with a list: resolved later against the MDB,
        // configured MACs still used.
        let r = resolve(&set("ff15::2", "ff15::5c00:1", 0, one()), &p, &range()).unwrap();
        assert_eq!(r.scope, ParentScope::Switch);
        assert_eq!(r.members, vec![Member::Mac(MacAddr([2, 0, 0, 0, 0, 1]))]);
    }
}
