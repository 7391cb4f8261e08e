//! Pre-enumeration (the seed's "alternate method"): target sets installed
//! before anyone asks, so that a claim costs one controller round trip
//! and no switch update.
//!
//! Per parent group, `preenumerate: all` pins every set of `replicas`
//! members, `preenumerate: { top: N }` the N sets requested most since
//! the controller started. Pinned groups never warm out and are not
//! evicted; they are installed once every agent of the VLAN said HELLO,
//! in BATCHes, and only into the share of each switch's budget that
//! `budgets.miss_reserve_percent` does not keep for misses.

use super::Engine;
use super::groups::{GState, GroupKey};
use super::resolve::Resolved;
use crate::config::Preenumerate;
use crate::leases::Target;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often pre-enumeration is looked at again.
pub const PERIOD: Duration = Duration::from_secs(1);
/// Most groups one look installs (the rest come a period later).
const PER_LOOK: usize = 1024;

/// Requests per target set since the start.
#[derive(Debug, Default)]
pub struct Usage {
    counts: HashMap<GroupKey, u64>,
}

impl Usage {
    pub fn count(&mut self, k: &GroupKey) {
        match self.counts.get_mut(k) {
            Some(c) => *c += 1,
            None => {
                self.counts.insert(k.clone(), 1);
            }
        }
    }

    /// The `n` most requested target sets of `parent`.
    pub fn top(&self, vlan: u16, parent: std::net::Ipv6Addr, n: usize) -> Vec<GroupKey> {
        let mut v: Vec<(&GroupKey, u64)> = self
            .counts
            .iter()
            .filter(|(k, _)| k.vlan == vlan && k.parent == parent)
            .map(|(k, c)| (k, *c))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.into_iter().take(n).map(|(k, _)| k.clone()).collect()
    }
}

/// Every `k`-subset of `0..n`, in lexicographic order.
pub fn combinations(n: usize, k: usize) -> Vec<Vec<u16>> {
    let mut out = Vec::new();
    if k == 0 || k > n {
        return out;
    }
    let mut c: Vec<usize> = (0..k).collect();
    loop {
        out.push(c.iter().map(|x| *x as u16).collect());
        let mut i = k;
        while i > 0 && c[i - 1] == n - k + i - 1 {
            i -= 1;
        }
        if i == 0 {
            return out;
        }
        c[i - 1] += 1;
        for j in i..k {
            c[j] = c[j - 1] + 1;
        }
    }
}

impl Engine {
    pub(super) fn preenumerate(&mut self, now: Instant) {
        let mut budget = PER_LOOK;
        for gi in 0..self.cfg.groups.len() {
            let g = &self.cfg.groups[gi];
            let (vlan, parent) = (g.vlan, g.parent);
            let wanted: Vec<GroupKey> = match g.preenumerate {
                Preenumerate::None => continue,
                Preenumerate::All => combinations(g.members.len(), g.replicas as usize)
                    .into_iter()
                    .map(|targets| GroupKey {
                        vlan,
                        parent,
                        targets,
                    })
                    .collect(),
                Preenumerate::Top(n) => self.usage.top(vlan, parent, n as usize),
            };
            if !self.vlan_ready(vlan) {
                continue;
            }
            if let Preenumerate::Top(_) = g.preenumerate {
                self.unpin_unwanted(now, vlan, parent, &wanted);
            }
            let switches: Vec<u32> = self.cfg.switches_in_vlan(vlan).map(|s| s.id).collect();
            for key in wanted {
                if budget == 0 {
                    return;
                }
                let room = switches.iter().all(|s| self.budgets.preenum_room(*s) > 0);
                if let Some(gid) = self.groups.find(&key) {
                    let Some(gr) = self.groups.get_mut(gid) else {
                        continue;
                    };
                    if gr.pinned || gr.state == GState::Tearing {
                        continue;
                    }
                    let pin_room = switches.iter().all(|s| {
                        let b = &self.budgets.per[s];
                        let reserve = (u64::from(b.limit())
                            * u64::from(self.cfg.miss_reserve_percent))
                        .div_ceil(100) as u32;
                        b.pinned + reserve.max(1) < b.limit()
                    });
                    if !pin_room {
                        continue;
                    }
                    gr.pinned = true;
                    for s in &switches {
                        self.budgets.pin(*s, true);
                    }
                    self.groups.relist(gid, false);
                    continue;
                }
                if !room {
                    continue;
                }
                let targets: Vec<Target> = key
                    .targets
                    .iter()
                    .map(|i| {
                        let m = &self.cfg.groups[gi].members[usize::from(*i)];
                        Target {
                            name: m.name.clone(),
                            ipv6: m.ip,
                            mac: m.mac,
                        }
                    })
                    .collect();
                let r = Resolved {
                    gi,
                    key,
                    targets,
                    lifetime: Duration::ZERO,
                };
                match self.create_group(now, r, switches.clone(), Vec::new(), None, true) {
                    Ok(_) => budget -= 1,
                    Err(e) => {
                        tracing::warn!(detail = %e.detail, "pre-enumeration stopped");
                        return;
                    }
                }
            }
        }
    }

    fn unpin_unwanted(
        &mut self,
        now: Instant,
        vlan: u16,
        parent: std::net::Ipv6Addr,
        wanted: &[GroupKey],
    ) {
        let drop: Vec<u64> = self
            .groups
            .by_id
            .values()
            .filter(|g| {
                g.pinned && g.vlan == vlan && g.parent == parent && !wanted.contains(&g.key)
            })
            .map(|g| g.id)
            .collect();
        for gid in drop {
            let Some(g) = self.groups.get_mut(gid) else {
                continue;
            };
            g.pinned = false;
            let sws: Vec<u32> = g.switches().collect();
            let idle = g.refs == 0 && g.state == GState::Installed;
            for s in sws {
                self.budgets.pin(s, false);
            }
            if idle {
                self.start_warm(now, gid);
            } else {
                self.groups.relist(gid, false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::combinations;

    #[test]
    fn all_subsets() {
        let c = combinations(6, 3);
        assert_eq!(c.len(), 20);
        assert_eq!(c[0], vec![0, 1, 2]);
        assert_eq!(c[19], vec![3, 4, 5]);
        assert_eq!(combinations(12, 3).len(), 220);
        assert!(combinations(2, 3).is_empty());
    }
}
