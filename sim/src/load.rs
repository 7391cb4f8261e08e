//! The storage nodes' load: who puts a chunk to which negotiating group's
//! members, and when.

use crate::fabric::Fabric;
use crate::setup::{NegGroup, parent_of};
use rand::Rng;
use rand::rngs::StdRng;

/// One chunk put: the sender, its negotiating group and the R targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub sender: usize,
    pub group: usize,
    pub targets: Vec<usize>,
}

/// How puts arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrivals {
    /// Every node puts `per_node` chunks a second (Poisson, open loop).
    Open { per_node: f64 },
    /// `clients` back-to-back clients (the lab bench's closed loop): the next
    /// request right after the release of the last.
    Closed { clients: usize },
}

/// How targets are chosen.
#[derive(Debug, Clone)]
pub enum Picker {
    /// Any node puts to a uniformly chosen negotiating group (the chunk's
    /// hash), to `replicas` of its members chosen uniformly (their bids),
    /// never itself.
    Cluster { nodes: usize, replicas: usize },
    /// The lab bench: one sender, uniformly one of a fixed list of sets of
    /// group 0.
    Sets {
        sender: usize,
        sets: Vec<Vec<usize>>,
    },
}

impl Picker {
    pub fn pick(&self, rng: &mut StdRng, groups: &[NegGroup]) -> Put {
        match self {
            Picker::Cluster { nodes, replicas } => {
                let sender = rng.random_range(0..*nodes);
                let group = rng.random_range(0..groups.len());
                let pool: Vec<usize> = groups[group]
                    .members
                    .iter()
                    .copied()
                    .filter(|m| *m != sender)
                    .collect();
                let k = (*replicas).min(pool.len());
                let mut idx: Vec<usize> = (0..pool.len()).collect();
                for i in 0..k {
                    let j = rng.random_range(i..idx.len());
                    idx.swap(i, j);
                }
                let mut targets: Vec<usize> = idx[..k].iter().map(|i| pool[*i]).collect();
                targets.sort_unstable();
                Put {
                    sender,
                    group,
                    targets,
                }
            }
            Picker::Sets { sender, sets } => Put {
                sender: *sender,
                group: 0,
                targets: sets[rng.random_range(0..sets.len())].clone(),
            },
        }
    }
}

/// EdgeFS-like negotiating groups: `count` groups of `size` members, spread
/// over the leaves (consecutive members on different leaves), every node in
/// about `count * size / nodes` groups.
pub fn negotiating_groups(f: &Fabric, count: usize, size: usize) -> Vec<NegGroup> {
    let n = f.hosts.len();
    let leaves = f.switches.iter().filter(|s| s.leaf).count().max(1);
    let per_leaf = n.div_ceil(leaves);
    // Node k of the spread order sits on leaf k % leaves.
    let spread = |k: usize| -> usize {
        let k = k % n;
        let (leaf, slot) = (k % leaves, k / leaves);
        (leaf * per_leaf + slot).min(n - 1)
    };
    (0..count)
        .map(|g| {
            let mut members: Vec<usize> = Vec::new();
            let mut k = g * size;
            while members.len() < size.min(n) {
                let h = spread(k);
                if !members.contains(&h) {
                    members.push(h);
                }
                k += 1;
            }
            NegGroup {
                parent: parent_of(g),
                members,
            }
        })
        .collect()
}

/// Every `k`-subset of `items`, in lexicographic order.
pub fn combinations(items: &[usize], k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        for mut rest in combinations(&items[i + 1..], k - 1) {
            rest.insert(0, items[i]);
            out.push(rest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn groups_spread_over_leaves_and_puts_avoid_the_sender() {
        let f = Fabric::leaf_spine(4, 6, 2, 1);
        let g = negotiating_groups(&f, 4, 12);
        for ng in &g {
            assert_eq!(ng.members.len(), 12);
            let leaves: std::collections::BTreeSet<usize> =
                ng.members.iter().map(|m| f.hosts[*m].switch).collect();
            assert_eq!(leaves.len(), 4, "{:?}", ng.members);
        }
        let p = Picker::Cluster {
            nodes: 24,
            replicas: 3,
        };
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let put = p.pick(&mut rng, &g);
            assert_eq!(put.targets.len(), 3);
            assert!(!put.targets.contains(&put.sender));
            assert!(put.targets.iter().all(|t| g[put.group].members.contains(t)));
        }
        assert_eq!(combinations(&[1, 2, 3, 4, 5, 6], 3).len(), 20);
    }
}
