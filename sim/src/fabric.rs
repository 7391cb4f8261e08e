//! The simulated fabric: switches, ports, hosts, the FDB each switch learns,
//! and the walk of one datagram through the forwarding state the agents
//! installed (to count the links it crosses and check who got it).
//!
//! Leaf-spine: leaf `l` has its servers on ports `1..=S` and spine `p` on
//! port `S+1+p`; spine `p` has leaf `l` on port `1+l`. The VLAN is one L2
//! domain, so its multicast tree is a spanning tree: every leaf reaches the
//! other leaves through spine 0 (the root); the other spines carry unicast
//! (ECMP) but no traffic of this VLAN's groups, yet hold every group, since
//! the controller installs a group on every switch of its VLAN.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use subcast_proto::MacAddr;

/// Where a port leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Host(usize),
    Switch { sw: usize, port: u32 },
}

#[derive(Debug, Clone)]
pub struct Switch {
    pub name: String,
    /// Port -> what is behind it.
    pub ports: BTreeMap<u32, Peer>,
    /// Host -> the port the switch reaches it through (its FDB).
    pub fdb: Vec<u32>,
    /// A leaf (servers attached) or a spine / transit switch.
    pub leaf: bool,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub switch: usize,
    pub port: u32,
    pub mac: MacAddr,
    pub ipv6: std::net::Ipv6Addr,
}

/// The whole fabric.
#[derive(Debug, Clone)]
pub struct Fabric {
    pub switches: Vec<Switch>,
    pub hosts: Vec<Host>,
    /// One-way latency of one link, microseconds.
    pub link_us: u64,
    /// Hops between two switches on the tree (for control-message latency).
    hops: Vec<Vec<u32>>,
    /// Switch the controller is attached to.
    pub controller_switch: usize,
}

/// What one multicast datagram did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    /// Links the datagram crossed (each copy counted once per link).
    pub links: u64,
    /// Copies each host received.
    pub delivered: BTreeMap<usize, u32>,
}

impl Walk {
    /// Every target got exactly one copy and nobody else any.
    pub fn exact(&self, targets: &[usize]) -> bool {
        let want: BTreeSet<usize> = targets.iter().copied().collect();
        self.delivered.len() == want.len()
            && self
                .delivered
                .iter()
                .all(|(h, n)| *n == 1 && want.contains(h))
    }
}

pub fn mac_of(i: usize) -> MacAddr {
    let i = i as u32;
    MacAddr([0x02, 0x5c, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8])
}

pub fn ipv6_of(i: usize) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::new(0xfd00, 0x5c, 0, 0, 0, 0, (i >> 16) as u16, i as u16)
}

impl Fabric {
    /// `leaves` x `per_leaf` servers, `spines` spines.
    pub fn leaf_spine(leaves: usize, per_leaf: usize, spines: usize, link_us: u64) -> Fabric {
        let spines = spines.max(1);
        let mut switches = Vec::new();
        let mut hosts = Vec::new();
        for l in 0..leaves {
            let mut ports = BTreeMap::new();
            for j in 0..per_leaf {
                let h = l * per_leaf + j;
                ports.insert(1 + j as u32, Peer::Host(h));
                hosts.push(Host {
                    name: format!("n{h}"),
                    switch: l,
                    port: 1 + j as u32,
                    mac: mac_of(h),
                    ipv6: ipv6_of(h),
                });
            }
            for p in 0..spines {
                ports.insert(
                    (per_leaf + 1 + p) as u32,
                    Peer::Switch {
                        sw: leaves + p,
                        port: 1 + l as u32,
                    },
                );
            }
            switches.push(Switch {
                name: format!("leaf{l}"),
                ports,
                fdb: Vec::new(),
                leaf: true,
            });
        }
        for p in 0..spines {
            let ports = (0..leaves)
                .map(|l| {
                    (
                        1 + l as u32,
                        Peer::Switch {
                            sw: l,
                            port: (per_leaf + 1 + p) as u32,
                        },
                    )
                })
                .collect();
            switches.push(Switch {
                name: format!("spine{p}"),
                ports,
                fdb: Vec::new(),
                leaf: false,
            });
        }
        let n = hosts.len();
        for (l, sw) in switches.iter_mut().enumerate().take(leaves) {
            sw.fdb = (0..n)
                .map(|h| {
                    if h / per_leaf == l {
                        1 + (h % per_leaf) as u32
                    } else {
                        (per_leaf + 1) as u32 // toward spine 0, the tree's root
                    }
                })
                .collect();
        }
        for sw in switches.iter_mut().skip(leaves) {
            sw.fdb = (0..n).map(|h| 1 + (h / per_leaf) as u32).collect();
        }
        let mut hops = vec![vec![0u32; switches.len()]; switches.len()];
        for (a, row) in hops.iter_mut().enumerate() {
            for (b, v) in row.iter_mut().enumerate() {
                *v = match (a < leaves, b < leaves) {
                    _ if a == b => 0,
                    (true, true) => 2,
                    (true, false) | (false, true) => 1,
                    (false, false) => 2,
                };
            }
        }
        Fabric {
            switches,
            hosts,
            link_us,
            hops,
            controller_switch: 0,
        }
    }

    /// The seed's three-switch lab: A-B-C in a chain, X1..X9.
    pub fn seed_three_switch(link_us: u64) -> Fabric {
        let at = [
            ("X1", 0),
            ("X2", 0),
            ("X3", 1),
            ("X4", 1),
            ("X5", 1),
            ("X6", 1),
            ("X7", 2),
            ("X8", 2),
            ("X9", 2),
        ];
        let mut switches: Vec<Switch> = ["A", "B", "C"]
            .iter()
            .map(|n| Switch {
                name: (*n).to_owned(),
                ports: BTreeMap::new(),
                fdb: Vec::new(),
                leaf: true,
            })
            .collect();
        let mut hosts = Vec::new();
        for (i, (name, sw)) in at.iter().enumerate() {
            let port = 1 + switches[*sw].ports.len() as u32;
            switches[*sw].ports.insert(port, Peer::Host(i));
            hosts.push(Host {
                name: (*name).to_owned(),
                switch: *sw,
                port,
                mac: mac_of(i),
                ipv6: ipv6_of(i),
            });
        }
        // Trunks: A port 100 <-> B port 100, B port 101 <-> C port 100.
        switches[0]
            .ports
            .insert(100, Peer::Switch { sw: 1, port: 100 });
        switches[1]
            .ports
            .insert(100, Peer::Switch { sw: 0, port: 100 });
        switches[1]
            .ports
            .insert(101, Peer::Switch { sw: 2, port: 100 });
        switches[2]
            .ports
            .insert(100, Peer::Switch { sw: 1, port: 101 });
        let fdb = |sw: usize, h: usize| -> u32 {
            let hs = hosts[h].switch;
            match (sw, hs) {
                (a, b) if a == b => hosts[h].port,
                (0, _) => 100,
                (2, _) => 100,
                (1, 0) => 100,
                _ => 101,
            }
        };
        let n = hosts.len();
        let fdbs: Vec<Vec<u32>> = (0..3)
            .map(|s| (0..n).map(|h| fdb(s, h)).collect())
            .collect();
        for (s, f) in fdbs.into_iter().enumerate() {
            switches[s].fdb = f;
        }
        let hops = vec![vec![0, 1, 2], vec![1, 0, 1], vec![2, 1, 0]];
        Fabric {
            switches,
            hosts,
            link_us,
            hops,
            controller_switch: 0,
        }
    }

    pub fn host_by_name(&self) -> HashMap<String, usize> {
        self.hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect()
    }

    /// One-way latency from the controller to switch `sw`'s agent (each
    /// switch's agent runs on the switch; the controller on a server).
    pub fn ctl_to_switch_us(&self, sw: usize) -> u64 {
        self.link_us * (1 + u64::from(self.hops[self.controller_switch][sw]))
    }

    /// One-way latency between a host and the controller.
    pub fn host_to_ctl_us(&self, h: usize) -> u64 {
        self.link_us * (2 + u64::from(self.hops[self.hosts[h].switch][self.controller_switch]))
    }

    /// Links a unicast copy from `from` to `to` crosses.
    pub fn unicast_links(&self, from: usize, to: usize) -> u64 {
        let (a, b) = (self.hosts[from].switch, self.hosts[to].switch);
        // host->switch, the switch path, switch->host; on the tree.
        2 + u64::from(self.tree_hops(a, b))
    }

    fn tree_hops(&self, a: usize, b: usize) -> u32 {
        // Follow the FDB toward any host of `b`, counting switch-to-switch links.
        let Some(h) = self.hosts.iter().position(|x| x.switch == b) else {
            return self.hops[a][b];
        };
        let (mut at, mut n) = (a, 0);
        while at != b && n < 64 {
            match self.switches[at].ports.get(&self.switches[at].fdb[h]) {
                Some(Peer::Switch { sw, .. }) => at = *sw,
                _ => break,
            }
            n += 1;
        }
        n
    }

    /// The ports switch `sw` forwards a group for `targets` to (the subset
    /// rule: the port toward each target).
    pub fn ideal_ports(&self, sw: usize, targets: &[usize]) -> BTreeSet<u32> {
        targets.iter().map(|t| self.switches[sw].fdb[*t]).collect()
    }

    /// Sends one datagram from host `from` through the group whose port set
    /// on each switch `ports(sw)` gives (`None`: not installed there).
    pub fn walk(&self, from: usize, ports: impl Fn(usize) -> Option<BTreeSet<u32>>) -> Walk {
        let mut w = Walk {
            links: 1,
            ..Walk::default()
        };
        let mut stack = vec![(self.hosts[from].switch, self.hosts[from].port)];
        let mut seen = BTreeSet::new();
        while let Some((sw, ingress)) = stack.pop() {
            if !seen.insert((sw, ingress)) || seen.len() > 4 * self.switches.len() {
                continue;
            }
            let Some(out) = ports(sw) else { continue };
            for p in out.into_iter().filter(|p| *p != ingress) {
                match self.switches[sw].ports.get(&p) {
                    Some(Peer::Host(h)) => {
                        w.links += 1;
                        *w.delivered.entry(*h).or_default() += 1;
                    }
                    Some(Peer::Switch { sw: next, port }) => {
                        w.links += 1;
                        stack.push((*next, *port));
                    }
                    None => {}
                }
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_spine_walk_reaches_exactly_the_targets() {
        let f = Fabric::leaf_spine(4, 3, 2, 1);
        let targets = [1, 4, 10];
        let w = f.walk(0, |sw| Some(f.ideal_ports(sw, &targets)));
        assert!(w.exact(&targets), "{w:?}");
        // n0 -> leaf0 (1), leaf0 -> n1 (1), leaf0 -> spine0 (1),
        // spine0 -> leaf1, leaf3 (2), leaves -> n4, n10 (2).
        assert_eq!(w.links, 7);
        assert_eq!(f.unicast_links(0, 1), 2);
        assert_eq!(f.unicast_links(0, 4), 4);
    }

    #[test]
    fn seed_walk_crosses_b_to_reach_c() {
        let f = Fabric::seed_three_switch(1);
        let targets = [0, 2, 6]; // X1 (A), X3 (B), X7 (C) from X2
        let w = f.walk(1, |sw| Some(f.ideal_ports(sw, &targets)));
        assert!(w.exact(&targets), "{w:?}");
        assert_eq!(f.unicast_links(1, 6), 4);
        let missing = f.walk(1, |sw| (sw != 2).then(|| f.ideal_ports(sw, &targets)));
        assert!(!missing.exact(&targets));
    }
}
