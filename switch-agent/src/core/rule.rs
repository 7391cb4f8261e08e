//! The subset rule, applied to what one switch knows:
//!
//! ports(X) = (union of the ports toward each listed member) ∩ ports(Y)
//!
//! A member the switch cannot place, or one whose port is not in ports(Y),
//! refuses the whole instruction (nothing is installed). The result is never
//! a superset of ports(Y) and never empty.

use crate::backend::{PortId, PortSet};
use crate::core::validate::Refusal;
use subcast_proto::{Member, NakReason};

/// ports(Y) from the ports toward each configured member of Y (members the
/// switch cannot place contribute nothing).
pub fn parent_ports_from_members(ports: impl IntoIterator<Item = Option<PortId>>) -> PortSet {
    ports.into_iter().flatten().collect()
}

/// Applies the rule. `members` pairs each listed member with the port the
/// switch reaches it through (`None`: not in the forwarding table).
pub fn subset_ports(
    members: &[(Member, Option<PortId>)],
    parent_ports: &PortSet,
) -> Result<PortSet, Refusal> {
    let mut out = PortSet::new();
    for (m, port) in members {
        let Some(p) = port else {
            return Err(Refusal::new(
                NakReason::NotASubset,
                format!("this switch cannot place member {m}: not in its forwarding table"),
            ));
        };
        if !parent_ports.contains(p) {
            return Err(Refusal::new(
                NakReason::NotASubset,
                format!("member {m} is behind port {p}, which is not a port of the parent group"),
            ));
        }
        out.insert(*p);
    }
    // Intersection is implied by the check above; kept explicit as the rule.
    let out: PortSet = out.intersection(parent_ports).copied().collect();
    if out.is_empty() {
        return Err(Refusal::new(NakReason::NotASubset, "no member listed"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use subcast_proto::MacAddr;

    fn m(i: u8) -> Member {
        Member::Mac(MacAddr([2, 0, 0, 0, 0, i]))
    }

    /// The seed write-up's three switches (SA, SB, SC; hosts X1..X9).
    /// Ports are numbered as in the table; trunks are 100 (SA), 200 (SB),
    /// 300 (SC) on each switch.
    #[test]
    fn seed_table() {
        const SA: u32 = 100;
        const SB: u32 = 200;
        const SC: u32 = 300;
        // member -> port, per switch (from the seed table's unicast rows).
        let fdb: [[u32; 9]; 3] = [
            [2, 7, SB, SB, SB, SB, SC, SC, SC],
            [SA, SA, 4, 5, 12, 14, SC, SC, SC],
            [SA, SA, SB, SB, SB, SB, 3, 7, 10],
        ];
        let expect: [&[u32]; 3] = [&[2, SB, SC], &[SA, 5, SC], &[SA, SB, 7]];
        for (sw, row) in fdb.iter().enumerate() {
            let parent = parent_ports_from_members(row.iter().map(|p| Some(*p)));
            let listed: Vec<_> = [0usize, 3, 7]
                .iter()
                .map(|&i| (m(i as u8 + 1), Some(row[i])))
                .collect();
            let got = subset_ports(&listed, &parent).unwrap();
            assert_eq!(
                got,
                expect[sw].iter().copied().collect::<PortSet>(),
                "switch {sw}"
            );
        }
    }

    #[test]
    fn unplaceable_or_outside_refused() {
        let parent: PortSet = [1, 2].into();
        let e = subset_ports(&[(m(1), Some(1)), (m(2), None)], &parent).unwrap_err();
        assert_eq!(e.reason, NakReason::NotASubset);
        let e = subset_ports(&[(m(1), Some(3))], &parent).unwrap_err();
        assert_eq!(e.reason, NakReason::NotASubset);
        assert!(subset_ports(&[], &parent).is_err());
    }

    proptest! {
        #[test]
        fn never_a_superset(parent in proptest::collection::btree_set(0u32..16, 0..16),
                            listed in proptest::collection::vec(proptest::option::of(0u32..16), 0..10)) {
            let members: Vec<_> = listed.iter().enumerate().map(|(i, p)| (m(i as u8), *p)).collect();
            if let Ok(ports) = subset_ports(&members, &parent) {
                prop_assert!(ports.is_subset(&parent));
                prop_assert!(!ports.is_empty());
                prop_assert!(listed.iter().all(|p| p.is_some_and(|p| ports.contains(&p))));
            }
        }
    }
}
