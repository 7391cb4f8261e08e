//! Topology descriptions: switches, trunks (a tree), hosts, negotiating groups, and
//! loss and rate settings per link.
//!
//! Loaded from YAML (serde-saphyr) and validated before anything is built, so a
//! mistake in a topology file is reported with its line and column and a message
//! naming the offending entry.

mod link;
mod locate;
pub mod sites;
mod stp;
mod validate;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use link::LinkSpec;
pub use locate::Pos;
pub use validate::{RENDEZVOUS_POOL, RENDEZVOUS_POOL_V4, in_rendezvous_pool};

/// Longest switch or host name accepted. Names appear in interface names (at most 15
/// bytes in Linux), so they must stay short.
pub const MAX_NAME_LEN: usize = 11;

/// Link MTU without an `mtu` field.
pub const DEFAULT_MTU: u32 = 1500;
/// `mtu` accepted: IPv6's minimum to the usual jumbo frame.
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 1280..=9000;

/// Highest `rate_mbit` accepted (100 Gbit/s).
pub const MAX_RATE_MBIT: f64 = 100_000.0;

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
    /// A structural problem (unknown switch, loop, bad name, bad value...).
    #[error("topology is invalid: {0}")]
    Invalid(String),
    /// Like `Invalid`, at a known place in the file.
    #[error("topology is invalid at {file}line {line}, column {column}: {message}")]
    InvalidAt {
        /// `PATH, ` when read from a file, else empty.
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// What is wrong and what to do.
        message: String,
    },
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

/// The IP family of a lab (`family:` in a topology file): what the hosts'
/// addresses, the negotiating and rendezvous groups and the snooping protocol
/// (MLD or IGMP) are.
///
/// * `ipv6` (default): hosts at `fd00:5c::N/64`, IPv6 groups, MLD snooping.
/// * `ipv4`: hosts also get `10.92.HI.LO/15` (switches' bridges `10.93.HI.LO/15`),
///   negotiating groups are IPv4 (default `239.92.0.N`), rendezvous groups come
///   from [`RENDEZVOUS_POOL_V4`], the bridges snoop IGMP with their own querier
///   (queries dropped on trunks), closed switches drop IGMP reports from hosts,
///   and `subcast-lab` configures the daemons in IPv4. The IPv6 plumbing of the
///   lab itself (link-local and ULA addresses, MLD querier) stays: the lab uses
///   it to learn MACs; no subcast daemon uses IPv6 then.
/// * `dual`: both: negotiating groups may be of either family (default IPv6),
///   IGMP and MLD are both closed on closed switches; `subcast-lab` runs one
///   stack of daemons per family for put-get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv6 hosts, IPv6 groups, MLD snooping.
    #[default]
    Ipv6,
    /// IPv4 hosts and groups with IGMP snooping.
    Ipv4,
    /// IPv4 and IPv6 groups side by side on the same bridges.
    Dual,
}

impl Family {
    /// `ipv6`, `ipv4` or `dual`, as written in topology files.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv6 => "ipv6",
            Family::Ipv4 => "ipv4",
            Family::Dual => "dual",
        }
    }

    /// Whether it is the default (`ipv6`), for serde's `skip_serializing_if`.
    pub fn is_default(&self) -> bool {
        *self == Family::Ipv6
    }

    /// Whether hosts get IPv4 addresses and bridges handle IGMP (`ipv4`, `dual`).
    pub fn has_ipv4(self) -> bool {
        self != Family::Ipv6
    }
}

/// One switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SwitchSpec {
    /// The backend this switch stands for.
    #[serde(default)]
    pub backend: Backend,
    /// How the agent reaches a `backend: snmp` switch's SNMP agent (only allowed
    /// there; default v2c).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snmp: Option<SnmpSpec>,
}

impl SwitchSpec {
    /// A switch of kind `backend` with default options.
    pub fn of(backend: Backend) -> Self {
        SwitchSpec {
            backend,
            snmp: None,
        }
    }

    /// The SNMP version a `backend: snmp` switch is driven with (`None` for the
    /// other kinds).
    pub fn snmp_version(&self) -> Option<SnmpVersion> {
        (self.backend == Backend::Snmp)
            .then(|| self.snmp.as_ref().map(|s| s.version).unwrap_or_default())
    }
}

/// Options of a `backend: snmp` switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SnmpSpec {
    /// The SNMP version the agent uses.
    #[serde(default)]
    pub version: SnmpVersion,
}

/// SNMP version of a `backend: snmp` switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SnmpVersion {
    /// SNMPv2c with a read-write community.
    #[default]
    V2c,
    /// SNMPv3, authPriv (HMAC-SHA-1 authentication, AES-128 privacy).
    V3,
}

impl SnmpVersion {
    /// `v2c` or `v3`, as written in topology files.
    pub fn name(self) -> &'static str {
        match self {
            SnmpVersion::V2c => "v2c",
            SnmpVersion::V3 => "v3",
        }
    }
}

/// One host, attached to one switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Name of the switch this host's `eth0` is plugged into.
    pub switch: String,
    /// Percentage of UDP datagrams dropped on this host's link, each direction
    /// (overrides the topology's `loss_pct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<f64>,
    /// Rate limit of this host's link in Mbit/s, each direction (overrides the
    /// topology's `rate_mbit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_mbit: Option<f64>,
}

impl HostSpec {
    /// A host on `switch` without shaping overrides.
    pub fn on(switch: &str) -> Self {
        HostSpec {
            switch: switch.to_string(),
            ..HostSpec::default()
        }
    }
}

/// A negotiating (parent) group and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// The multicast address: IPv6 in an `ipv6` topology, IPv4 (224.0.0.0/4) in an
    /// `ipv4` one, either in a `dual` one. Default: `ff05::5c:1:N` (`ipv6`, `dual`)
    /// or `239.92.0.N` (`ipv4`), where N is the 1-based position of the group in
    /// name order.
    #[serde(default)]
    pub group: Option<IpAddr>,
    /// Hosts that are members.
    pub members: Vec<String>,
}

/// A whole lab topology. Maps are ordered by name; host indexes (addresses, MACs)
/// follow a natural name order (`X2` before `X10`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// IP family of the lab (default `ipv6`; see [`Family`]).
    #[serde(default, skip_serializing_if = "Family::is_default")]
    pub family: Family,
    /// Percentage of UDP datagrams dropped on every link, each direction (0-100;
    /// links and hosts may override it). See the README for exactly what is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<f64>,
    /// Rate limit of every link in Mbit/s, each direction (links and hosts may
    /// override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_mbit: Option<f64>,
    /// MTU of every link and bridge, and the storage nodes' datagram size
    /// (1280-9000; default 1500). Storage networks often run 9000-byte
    /// "jumbo" frames: six times fewer datagrams per chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Model hosts whose NICs segment UDP as they segment TCP (UDP segmentation
    /// offload) and coalesce on receive (GRO), with switches that forward in
    /// hardware: a UDP GSO batch then crosses the lab's bridges whole, as a TCP
    /// TSO segment always does, instead of being cut into frames at the sending
    /// host. Default off: each host cuts its UDP batches into frames, so that
    /// captures, interface counters and loss rules see frames. With it on they
    /// see batches, so it cannot be combined with `loss_pct`, and hosts behind
    /// Open vSwitch switches cannot have it (their checksums are computed in
    /// software, which turns segmentation offload off).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nic_offload: bool,
    /// Switches by name.
    pub switches: BTreeMap<String, SwitchSpec>,
    /// Trunks between switches. Must form a tree (no loops: the lab runs no
    /// spanning tree) unless `stp` is set.
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// Run the Linux bridges' spanning tree (`stp_state 1`): `links` may then
    /// form loops, and the bridges block trunks until the active links form a
    /// tree. Only Linux-bridge data planes (`linux-bridge`, `snmp`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stp: bool,
    /// Hosts by name.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostSpec>,
    /// Negotiating groups by name.
    #[serde(default)]
    pub negotiating_groups: BTreeMap<String, GroupSpec>,
}

/// Loss and rate that apply to one link (both directions).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Shaping {
    /// Percentage of UDP datagrams dropped per direction (0 = none).
    pub loss_pct: f64,
    /// Rate limit in Mbit/s per direction (`None` = unlimited).
    pub rate_mbit: Option<f64>,
}

impl Topology {
    /// Parse and validate a topology from YAML text.
    pub fn from_yaml_str(text: &str) -> Result<Self, TopologyError> {
        Self::parse(text, "")
    }

    fn parse(text: &str, file: &str) -> Result<Self, TopologyError> {
        let positioned = |(w, message)| match locate::locate(text, &w) {
            Some(p) => TopologyError::InvalidAt {
                file: file.to_string(),
                line: p.line,
                column: p.column,
                message,
            },
            None if file.is_empty() => TopologyError::Invalid(message),
            None => TopologyError::Invalid(format!("{file}{message}")),
        };
        let topo: Topology =
            serde_saphyr::from_str(text).map_err(|e| TopologyError::Yaml(e.to_string()))?;
        topo.check().map_err(positioned)?;
        Ok(topo)
    }

    /// Read, parse and validate a topology file.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self, TopologyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &format!("{}, ", path.display())).map_err(|e| match e {
            TopologyError::Yaml(m) => TopologyError::Yaml(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// MTU of every link (the `mtu` field, or Ethernet's 1500).
    pub fn mtu(&self) -> u32 {
        self.mtu.unwrap_or(DEFAULT_MTU)
    }

    /// Check names, references, shaping values, and that the trunks form a tree
    /// spanning all switches.
    pub fn validate(&self) -> Result<(), TopologyError> {
        self.check().map_err(|(_, m)| TopologyError::Invalid(m))
    }

    /// Loss and rate of the link between host `host` and its switch.
    pub fn host_shaping(&self, host: &str) -> Shaping {
        let h = self.hosts.get(host);
        Shaping {
            loss_pct: h.and_then(|h| h.loss_pct).or(self.loss_pct).unwrap_or(0.0),
            rate_mbit: h.and_then(|h| h.rate_mbit).or(self.rate_mbit),
        }
    }

    /// Loss and rate of the trunk between switches `a` and `b` (either order).
    pub fn link_shaping(&self, a: &str, b: &str) -> Shaping {
        let l = self.links.iter().find(|l| {
            let (x, y) = l.ends();
            (x == a && y == b) || (x == b && y == a)
        });
        Shaping {
            loss_pct: l.and_then(|l| l.loss_pct).or(self.loss_pct).unwrap_or(0.0),
            rate_mbit: l.and_then(|l| l.rate_mbit).or(self.rate_mbit),
        }
    }

    /// Whether any link of the topology drops datagrams or is rate limited.
    pub fn is_shaped(&self) -> bool {
        self.shapings()
            .any(|s| s.loss_pct > 0.0 || s.rate_mbit.is_some())
    }

    /// Whether any link of the topology drops datagrams.
    pub fn is_lossy(&self) -> bool {
        self.shapings().any(|s| s.loss_pct > 0.0)
    }

    /// The shaping of every host link, then every trunk.
    fn shapings(&self) -> impl Iterator<Item = Shaping> + '_ {
        self.hosts
            .keys()
            .map(|h| self.host_shaping(h))
            .chain(self.links.iter().map(|l| {
                let (a, b) = l.ends();
                self.link_shaping(a, b)
            }))
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
            .filter_map(|l| {
                let (a, b) = l.ends();
                if a == switch {
                    Some(b)
                } else if b == switch {
                    Some(a)
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

    /// The address of negotiating group `name` in the protocol's group form: an
    /// IPv6 group as is, an IPv4 group IPv4-mapped (`::ffff:239.92.0.1`, as
    /// `subcast_proto::group_field` writes it). See [`Topology::group_ip`].
    pub fn group_address(&self, name: &str) -> Option<Ipv6Addr> {
        self.group_ip(name).map(|a| match a {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        })
    }

    /// The address of negotiating group `name`: its `group:` or the default of the
    /// topology's family.
    pub fn group_ip(&self, name: &str) -> Option<IpAddr> {
        let pos = self.negotiating_groups.keys().position(|k| k == name)?;
        let g = &self.negotiating_groups[name];
        let n = u16::try_from(pos + 1).unwrap_or(u16::MAX);
        Some(g.group.unwrap_or_else(|| {
            if self.family == Family::Ipv4 {
                let [hi, lo] = n.to_be_bytes();
                IpAddr::V4(Ipv4Addr::new(239, 92, hi, lo))
            } else {
                IpAddr::V6(Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0x5c, 1, n))
            }
        }))
    }

    /// For each switch, the neighbour switches behind which (inclusive) a given host
    /// set has at least one member: the trunk ports a static group for those hosts
    /// needs. Returns `(switch, neighbour)` pairs, meaning "on `switch`, the trunk toward
    /// `neighbour`".
    pub fn trunks_toward(&self, hosts: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for l in &self.links {
            let (a, b) = l.ends();
            for (from, to) in [(a, b), (b, a)] {
                let side = self.side_of(to, from);
                if hosts.iter().any(|h| {
                    self.hosts
                        .get(*h)
                        .is_some_and(|s| side.contains(s.switch.as_str()))
                }) {
                    out.push((from.to_string(), to.to_string()));
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

/// Sort key: the name with its trailing digits compared as a number.
fn natural_key(name: &str) -> (&str, u64, &str) {
    let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
    let (stem, num) = name.split_at(name.len() - digits);
    (stem, num.parse().unwrap_or(0), name)
}

#[cfg(test)]
mod tests;
