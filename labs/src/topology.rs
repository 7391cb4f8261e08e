//! Topology descriptions: switches, trunks (a tree), hosts and negotiating groups.
//!
//! Loaded from YAML (serde-saphyr) and validated before anything is built, so a
//! mistake in a topology file is reported with a message naming the offending entry.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv6Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Longest switch or host name accepted. Names appear in interface names (at most 15
/// bytes in Linux), so they must stay short.
pub const MAX_NAME_LEN: usize = 11;

/// Errors found while loading or validating a topology.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("cannot read topology file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML did not match the expected shape.
    #[error("topology YAML is invalid: {0}")]
    Yaml(String),
    /// A structural problem (unknown switch, loop, bad name...).
    #[error("topology is invalid: {0}")]
    Invalid(String),
}

/// What kind of switch a lab switch stands for. The lab builds a Linux bridge for
/// `linux-bridge` and `snmp` (an SNMP agent in front of a Linux bridge is the test
/// setup for the SNMP backend) and an Open vSwitch bridge for `openflow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// A Linux bridge programmed through the MDB.
    #[default]
    LinuxBridge,
    /// Open vSwitch with an OpenFlow 1.3 controller.
    Openflow,
    /// A switch managed through Q-BRIDGE-MIB over SNMP (data plane: Linux bridge).
    Snmp,
}

/// One switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SwitchSpec {
    /// The backend this switch stands for.
    #[serde(default)]
    pub backend: Backend,
}

/// One host, attached to one switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Name of the switch this host's `eth0` is plugged into.
    pub switch: String,
}

/// A negotiating (parent) group and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// The IPv6 multicast address. Default: `ff05::5c:1:N` where N is the 1-based
    /// position of the group in name order.
    #[serde(default)]
    pub group: Option<Ipv6Addr>,
    /// Hosts that are members.
    pub members: Vec<String>,
}

/// A whole lab topology. Maps are ordered by name; host indexes (addresses, MACs)
/// follow a natural name order (`X2` before `X10`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Switches by name.
    pub switches: BTreeMap<String, SwitchSpec>,
    /// Trunks between switches, each `[SA, SB]`. Must form a tree (no loops: the lab
    /// runs no spanning tree).
    #[serde(default)]
    pub links: Vec<[String; 2]>,
    /// Hosts by name.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostSpec>,
    /// Negotiating groups by name.
    #[serde(default)]
    pub negotiating_groups: BTreeMap<String, GroupSpec>,
}

impl Topology {
    /// Parse and validate a topology from YAML text.
    pub fn from_yaml_str(text: &str) -> Result<Self, TopologyError> {
        let topo: Topology =
            serde_saphyr::from_str(text).map_err(|e| TopologyError::Yaml(e.to_string()))?;
        topo.validate()?;
        Ok(topo)
    }

    /// Read, parse and validate a topology file.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self, TopologyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str(&text).map_err(|e| match e {
            TopologyError::Yaml(m) => TopologyError::Yaml(format!("{}: {m}", path.display())),
            TopologyError::Invalid(m) => TopologyError::Invalid(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Check names, references, and that the trunks form a tree spanning all switches.
    pub fn validate(&self) -> Result<(), TopologyError> {
        let bad = |m: String| Err(TopologyError::Invalid(m));
        if self.switches.is_empty() {
            return bad("no switches: add at least one under `switches:`".into());
        }
        for name in self.switches.keys().chain(self.hosts.keys()) {
            check_name(name)?;
        }
        for name in self.hosts.keys() {
            if self.switches.contains_key(name) {
                return bad(format!("`{name}` is both a switch and a host: rename one"));
            }
        }
        if self.hosts.len() > 0xfffe {
            return bad(format!(
                "{} hosts: at most 65534 are supported",
                self.hosts.len()
            ));
        }
        for (host, spec) in &self.hosts {
            if !self.switches.contains_key(&spec.switch) {
                return bad(format!(
                    "host `{host}` is on switch `{}`, which is not under `switches:`",
                    spec.switch
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for [a, b] in &self.links {
            for s in [a, b] {
                if !self.switches.contains_key(s) {
                    return bad(format!(
                        "link [{a}, {b}] names switch `{s}`, which is not under `switches:`"
                    ));
                }
            }
            if a == b {
                return bad(format!("link [{a}, {b}] connects a switch to itself"));
            }
            let key = if a < b { (a, b) } else { (b, a) };
            if !seen.insert(key) {
                return bad(format!("link [{a}, {b}] is listed twice"));
            }
        }
        // A tree over n switches has exactly n - 1 links and is connected.
        let n = self.switches.len();
        if self.links.len() >= n {
            return bad(format!(
                "{} links between {n} switches form a loop; the lab runs no spanning tree, \
                 so trunks must form a tree (at most {} links): remove a link",
                self.links.len(),
                n - 1
            ));
        }
        let first = self
            .switches
            .keys()
            .next()
            .map(String::as_str)
            .unwrap_or("");
        let reached = self.reachable_from(first);
        if reached.len() != n {
            let missing: Vec<&str> = self
                .switches
                .keys()
                .map(String::as_str)
                .filter(|s| !reached.contains(s))
                .collect();
            return bad(format!(
                "switches {missing:?} are not connected to `{first}` by links: add links \
                 so that all switches form one tree"
            ));
        }
        let mut addrs = BTreeSet::new();
        for (gname, g) in &self.negotiating_groups {
            if g.members.is_empty() {
                return bad(format!("negotiating group `{gname}` has no members"));
            }
            for m in &g.members {
                if !self.hosts.contains_key(m) {
                    return bad(format!(
                        "negotiating group `{gname}` lists member `{m}`, which is not under `hosts:`"
                    ));
                }
            }
            if let Some(addr) = g.group {
                if !addr.is_multicast() {
                    return bad(format!(
                        "negotiating group `{gname}` has address {addr}, which is not multicast (ff00::/8)"
                    ));
                }
                if !addrs.insert(addr) {
                    return bad(format!("address {addr} is used by two negotiating groups"));
                }
            }
        }
        Ok(())
    }

    fn reachable_from<'a>(&'a self, start: &'a str) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::from([start]);
        let mut queue = VecDeque::from([start]);
        while let Some(s) = queue.pop_front() {
            for n in self.neighbours(s) {
                if seen.insert(n) {
                    queue.push_back(n);
                }
            }
        }
        seen
    }

    /// Switches linked directly to `switch`, in link order.
    pub fn neighbours<'a>(&'a self, switch: &str) -> Vec<&'a str> {
        self.links
            .iter()
            .filter_map(|[a, b]| {
                if a == switch {
                    Some(b.as_str())
                } else if b == switch {
                    Some(a.as_str())
                } else {
                    None
                }
            })
            .collect()
    }

    /// Hosts in natural name order (`X2` before `X10`); a host's 1-based position is
    /// its index, used in its address and MAC.
    pub fn hosts_in_order(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.hosts.keys().map(String::as_str).collect();
        v.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)));
        v
    }

    /// Hosts on `switch` in natural order.
    pub fn hosts_on(&self, switch: &str) -> Vec<&str> {
        self.hosts_in_order()
            .into_iter()
            .filter(|h| self.hosts[*h].switch == switch)
            .collect()
    }

    /// The address of negotiating group `name`: its `group:` or the default.
    pub fn group_address(&self, name: &str) -> Option<Ipv6Addr> {
        let pos = self.negotiating_groups.keys().position(|k| k == name)?;
        let g = &self.negotiating_groups[name];
        Some(g.group.unwrap_or_else(|| {
            let [hi, lo] = u16::try_from(pos + 1).unwrap_or(u16::MAX).to_be_bytes();
            Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0x5c, 1, u16::from_be_bytes([hi, lo]))
        }))
    }

    /// For each switch, the neighbour switches behind which (inclusive) a given host
    /// set has at least one member: the trunk ports a static group for those hosts
    /// needs. Returns `(switch, neighbour)` pairs, meaning "on `switch`, the trunk toward
    /// `neighbour`".
    pub fn trunks_toward(&self, hosts: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for [a, b] in &self.links {
            for (from, to) in [(a, b), (b, a)] {
                let side = self.side_of(to, from);
                if hosts.iter().any(|h| {
                    self.hosts
                        .get(*h)
                        .is_some_and(|s| side.contains(s.switch.as_str()))
                }) {
                    out.push((from.clone(), to.clone()));
                }
            }
        }
        out
    }

    /// Switches reachable from `start` without passing through `blocked`.
    fn side_of<'a>(&'a self, start: &'a str, blocked: &'a str) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::from([start, blocked]);
        let mut queue = VecDeque::from([start]);
        while let Some(s) = queue.pop_front() {
            for n in self.neighbours(s) {
                if seen.insert(n) {
                    queue.push_back(n);
                }
            }
        }
        seen.remove(blocked);
        seen
    }
}

fn check_name(name: &str) -> Result<(), TopologyError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(TopologyError::Invalid(format!(
            "name `{name}` must be 1-{MAX_NAME_LEN} characters of A-Z, a-z, 0-9 or `_` \
             (it becomes part of Linux interface names)"
        )))
    }
}

/// Sort key: the name with its trailing digits compared as a number.
fn natural_key(name: &str) -> (&str, u64, &str) {
    let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
    let (stem, num) = name.split_at(name.len() - digits);
    (stem, num.parse().unwrap_or(0), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../topologies/seed-three-switch.yaml");
    const ONE: &str = include_str!("../topologies/one-switch.yaml");

    #[test]
    fn shipped_topologies_are_valid() {
        let seed = Topology::from_yaml_str(SEED).unwrap();
        assert_eq!(seed.switches.len(), 3);
        assert_eq!(seed.hosts.len(), 9);
        assert_eq!(seed.hosts_on("A"), ["X1", "X2"]);
        assert_eq!(seed.hosts_on("B"), ["X3", "X4", "X5", "X6"]);
        assert_eq!(seed.hosts_on("C"), ["X7", "X8", "X9"]);
        let one = Topology::from_yaml_str(ONE).unwrap();
        assert_eq!(one.switches.len(), 1);
    }

    #[test]
    fn natural_order() {
        let mut t = Topology::from_yaml_str(ONE).unwrap();
        for h in ["H10", "H2", "H1"] {
            t.hosts.insert(h.into(), HostSpec { switch: "S".into() });
        }
        let order = t.hosts_in_order();
        let pos = |n| order.iter().position(|h| *h == n).unwrap();
        assert!(pos("H1") < pos("H2") && pos("H2") < pos("H10"));
    }

    #[test]
    fn loops_and_islands_are_rejected() {
        let lp = "switches: {A: {}, B: {}, C: {}}\nlinks: [[A, B], [B, C], [C, A]]\n";
        let e = Topology::from_yaml_str(lp).unwrap_err().to_string();
        assert!(e.contains("loop"), "{e}");
        let island = "switches: {A: {}, B: {}, C: {}}\nlinks: [[A, B]]\n";
        let e = Topology::from_yaml_str(island).unwrap_err().to_string();
        assert!(e.contains("not connected") && e.contains("C"), "{e}");
        let dup = "switches: {A: {}, B: {}, C: {}}\nlinks: [[A, B], [B, A]]\n";
        let e = Topology::from_yaml_str(dup).unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn bad_references_are_rejected() {
        let t = "switches: {A: {}}\nhosts: {H1: {switch: Z}}\n";
        let e = Topology::from_yaml_str(t).unwrap_err().to_string();
        assert!(e.contains("`Z`"), "{e}");
        let t = "switches: {A: {}}\nhosts: {H1: {switch: A}}\n\
                 negotiating_groups: {NG: {members: [H9]}}\n";
        let e = Topology::from_yaml_str(t).unwrap_err().to_string();
        assert!(e.contains("H9"), "{e}");
        let t = "switches: {A-very-long-name: {}}\n";
        assert!(Topology::from_yaml_str(t).is_err());
        let t = "switches: {A: {backend: frobnicator}}\n";
        assert!(Topology::from_yaml_str(t).is_err());
    }

    #[test]
    fn trunks_toward_members() {
        let seed = Topology::from_yaml_str(SEED).unwrap();
        let mut t = seed.trunks_toward(&["X1", "X4", "X8"]);
        t.sort();
        let want: Vec<(String, String)> = [("A", "B"), ("B", "A"), ("B", "C"), ("C", "B")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(t, want);
        let only_b = seed.trunks_toward(&["X4"]);
        let mut only_b: Vec<_> = only_b.iter().map(|(a, b)| format!("{a}>{b}")).collect();
        only_b.sort();
        assert_eq!(only_b, ["A>B", "C>B"]);
    }

    #[test]
    fn default_group_addresses() {
        let seed = Topology::from_yaml_str(SEED).unwrap();
        let a = seed.group_address("NG0").unwrap();
        assert!(a.is_multicast());
        assert!(seed.group_address("nope").is_none());
    }
}
