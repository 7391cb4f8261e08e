//! Configuration: the YAML model ([`model`]), its checks ([`validate`]) and
//! loading with located problems ([`check`]).
//!
//! The runtime [`Config`] is only ever built from a file that passed every
//! check, so the rest of the controller can trust it.

pub mod check;
mod family;
pub mod model;
mod unknown;
pub mod validate;
mod validate_rates;

pub use check::{DEFAULT_CONFIG, Problem, Severity, load_default, load_file, load_str};

use ipnet::Ipv6Net;
use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use subcast_proto::{Key, MacAddr};

/// A role an API token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Rendezvous requests and releases only.
    StorageNode,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::StorageNode => "storage-node",
        }
    }
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub controller_id: u32,
    pub udp_listen: SocketAddr,
    /// `None` = in memory (nothing survives a restart).
    pub database: Option<PathBuf>,
    /// This controller's slice of every pool: (index, count).
    pub pool_slice: (u32, u32),
    pub agent_timeout: Duration,
    /// Most rows the audit log keeps (oldest pruned first); 0: no limit.
    pub audit_max_rows: u64,
    pub keys: BTreeMap<u32, Key>,
    pub vlans: BTreeMap<u16, Vlan>,
    pub switches: Vec<Switch>,
    pub groups: Vec<Group>,
    pub lease_default: Duration,
    pub lease_max: Duration,
    /// A group whose last lease ended stays installed this long (0: it is
    /// cleared at once, and a release waits for the CLEAR).
    pub warm: Duration,
    /// Agent-side lifetime margin past (latest lease end + warm).
    pub hold: Duration,
    /// Default most leases per credential (0: no limit).
    pub max_leases_per_credential: u32,
    /// Budget of a switch with no reported capacity and no `budget:`.
    pub default_budget: u32,
    /// Share (percent) of each budget that pre-enumeration leaves for misses.
    pub miss_reserve_percent: u32,
    /// Most leases per storage node on the UDP path (None: the default).
    pub max_leases_per_sender: Option<u32>,
    pub retransmit: Duration,
    pub attempts: u32,
    pub api_listen: SocketAddr,
    pub tokens: Vec<Token>,
    pub max_body_bytes: usize,
    pub rendezvous_key_ids: Vec<u32>,
    /// The file it was read from (what a reload reads again); `None` for
    /// a config given as text.
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Vlan {
    pub id: u16,
    pub name: String,
    pub pool: Vec<Ipv6Net>,
}

#[derive(Debug, Clone)]
pub struct Switch {
    pub name: String,
    pub id: u32,
    pub vlans: Vec<u16>,
    pub agent: SocketAddr,
    /// Key instructions to this agent are sealed with.
    pub key_id: u32,
    /// Key this agent's own messages must be sealed with.
    pub agent_key_id: u32,
    /// Configured budget (groups), if any.
    pub budget: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub vlan: u16,
    pub parent: Ipv6Addr,
    pub members: Vec<GroupMember>,
    /// Targets per transfer (k).
    pub replicas: u32,
    pub preenumerate: Preenumerate,
}

/// Which target sets of a group are installed ahead of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preenumerate {
    None,
    /// Every set of `replicas` members.
    All,
    /// The N most requested target sets.
    Top(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub name: String,
    /// Its IPv6 address, or its IPv4 address IPv4-mapped (an IPv4 group's
    /// members; see `subcast_proto::group`). Shown with `to_canonical`.
    pub ip: Ipv6Addr,
    pub mac: MacAddr,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub secret: String,
    /// Most leases this token may hold (None: the default).
    pub max_leases: Option<u32>,
}

impl Config {
    /// The switches whose agents must apply an instruction for `vlan`.
    pub fn switches_in_vlan(&self, vlan: u16) -> impl Iterator<Item = &Switch> {
        self.switches
            .iter()
            .filter(move |s| s.vlans.contains(&vlan))
    }

    pub fn switch(&self, id: u32) -> Option<&Switch> {
        self.switches.iter().find(|s| s.id == id)
    }

    /// A parent group by address (IPv4 or IPv6) or by name.
    pub fn group(&self, parent_or_name: &str) -> Option<&Group> {
        match parent_or_name.parse::<std::net::IpAddr>() {
            Ok(a) => {
                let a = subcast_proto::group_field(a);
                self.groups.iter().find(|g| g.parent == a)
            }
            Err(_) => self.groups.iter().find(|g| g.name == parent_or_name),
        }
    }

    pub fn group_by_parent(&self, parent: Ipv6Addr) -> Option<&Group> {
        self.groups.iter().find(|g| g.parent == parent)
    }
}

impl Group {
    /// The member named by a name, an IP address or a MAC address.
    pub fn member(&self, who: &str) -> Option<&GroupMember> {
        if let Ok(a) = who.parse::<std::net::IpAddr>() {
            let a = subcast_proto::group_field(a);
            return self.members.iter().find(|m| m.ip == a);
        }
        if let Ok(mac) = who.parse::<MacAddr>() {
            return self.members.iter().find(|m| m.mac == mac);
        }
        self.members.iter().find(|m| m.name == who)
    }

    pub fn member_of(&self, m: &subcast_proto::Member) -> Option<&GroupMember> {
        match m {
            subcast_proto::Member::Ipv6(a) => self.members.iter().find(|x| x.ip == *a),
            subcast_proto::Member::Mac(mac) => self.members.iter().find(|x| x.mac == *mac),
            subcast_proto::Member::Ipv4(a) => {
                let a = a.to_ipv6_mapped();
                self.members.iter().find(|x| x.ip == a)
            }
        }
    }
}
