//! Topologies with `stp: true`: trunks may form loops, and the bridges' spanning
//! tree decides which of them forward. Everything that follows the tree (static
//! groups, the expected ports of a rendezvous group) works on
//! [`Topology::active_tree`]: the same topology without the blocked trunks.

use std::collections::BTreeSet;

use super::locate::Where;
use super::{Backend, Topology};

impl Topology {
    /// `stp: true` needs Linux-bridge data planes (the lab runs the kernel's
    /// spanning tree; its OVS switches run none).
    pub(super) fn check_stp(&self) -> Result<(), (Where, String)> {
        if let Some((name, _)) = self
            .switches
            .iter()
            .find(|(_, s)| s.backend == Backend::Openflow)
        {
            return Err((
                Where::Switch(name.clone()),
                format!(
                    "switch `{name}` is `backend: openflow`, but `stp: true` runs the Linux \
                     bridges' spanning tree, which the lab's Open vSwitch switches do not take \
                     part in: use `linux-bridge` or `snmp`, or remove `stp: true` and the \
                     links that make loops"
                ),
            ));
        }
        Ok(())
    }

    /// This topology with only the trunks that forward: `blocked` lists trunks
    /// (either order) the spanning tree blocked or that are down. Without loops and
    /// with nothing blocked, the same topology.
    pub fn active_tree(&self, blocked: &BTreeSet<(String, String)>) -> Topology {
        let mut t = self.clone();
        t.links.retain(|l| {
            let (a, b) = l.ends();
            !blocked.contains(&(a.to_string(), b.to_string()))
                && !blocked.contains(&(b.to_string(), a.to_string()))
        });
        t
    }

    /// Whether the trunks form one tree over all switches (no loop, nothing cut
    /// off): what [`Topology::active_tree`] gives once the spanning tree converged.
    pub fn is_tree(&self) -> bool {
        let Some(first) = self.switches.keys().next() else {
            return true;
        };
        self.links.len() + 1 == self.switches.len()
            && self.reachable_from(first).len() == self.switches.len()
    }

    /// Whether the trunks close at least one loop (more links than a tree has).
    pub fn has_loops(&self) -> bool {
        self.links.len() >= self.switches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIANGLE: &str = include_str!("../../topologies/seed-triangle.yaml");

    #[test]
    fn loops_need_stp_and_the_error_says_so() {
        let lp = "switches: {A: {}, B: {}, C: {}}\nlinks: [[A, B], [B, C], [C, A]]\n";
        let e = Topology::from_yaml_str(lp).unwrap_err().to_string();
        assert!(e.contains("loop") && e.contains("stp: true"), "{e}");
        assert!(e.contains("line 2"), "positioned: {e}");
        let t = Topology::from_yaml_str(&format!("stp: true\n{lp}")).unwrap();
        assert!(t.stp && t.has_loops() && !t.is_tree());
        // Still one network.
        let island = "stp: true\nswitches: {A: {}, B: {}, C: {}, D: {}}\n\
                      links: [[A, B], [B, C], [C, A]]\n";
        let e = Topology::from_yaml_str(island).unwrap_err().to_string();
        assert!(e.contains("not connected") && e.contains("D"), "{e}");
        // Not on Open vSwitch.
        let ovs = "stp: true\nswitches: {A: {}, B: {backend: openflow}}\nlinks: [[A, B]]\n";
        let e = Topology::from_yaml_str(ovs).unwrap_err().to_string();
        assert!(e.contains("openflow") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn active_tree_drops_blocked_trunks_in_either_order() {
        let t = Topology::from_yaml_str(TRIANGLE).unwrap();
        assert!(t.stp && t.links.len() == 3);
        assert_eq!(t.hosts.len(), 9);
        let blocked = BTreeSet::from([("C".to_string(), "A".to_string())]);
        let tree = t.active_tree(&blocked);
        assert!(tree.is_tree());
        assert_eq!(tree.neighbours("A"), ["B"]);
        // On the tree, X1 (on A) is behind B as seen from C.
        let toward = tree.trunks_toward(&["X1"]);
        assert!(toward.contains(&("C".into(), "B".into())), "{toward:?}");
        assert!(t.active_tree(&BTreeSet::new()).has_loops());
        // Serialized back without loss.
        let again = serde_saphyr::to_string(&t).unwrap();
        assert_eq!(Topology::from_yaml_str(&again).unwrap(), t);
    }
}
