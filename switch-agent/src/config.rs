//! The agent's configuration: one YAML file (see `examples/agent.yaml`).

use serde::Deserialize;
use std::collections::HashSet;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use subcast_proto::{Key, Keyring, MacAddr};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This switch's id: HELLO/ACK/NAK carry it, and it is the sender id
    /// of every datagram the agent seals.
    pub switch_id: u32,
    /// The switch's name as the controller's config knows it: the
    /// `switch` label of every metric (default: the switch id).
    #[serde(default)]
    pub name: Option<String>,
    pub backend: BackendConfig,
    /// Where HELLO and HEARTBEAT go. ACK/NAK go to the source of the instruction.
    pub controller: SocketAddr,
    /// UDP address the agent listens on (default `[::]:7410`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` address; absent = no metrics server.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// The agent's own key: seals ACK/NAK/HELLO/HEARTBEAT.
    pub key: KeyFile,
    /// Keys the agent accepts instructions under (the controllers').
    pub controller_keys: Vec<KeyFile>,
    /// Subset group addresses the controller leases from. The agent only
    /// installs groups inside it, and removes everything inside it at start.
    /// IPv6 (`ff15::5c00:0/104`), or IPv4 (`239.92.128.0/24`, Linux bridge
    /// only), kept in the protocol's group form (`::ffff:239.92.128.0/120`).
    #[serde(deserialize_with = "range_of_either_family")]
    pub rendezvous_range: ipnet::Ipv6Net,
    #[serde(default = "default_heartbeat")]
    pub heartbeat_interval_ms: u64,
    /// Allowed clock difference with the controller (replay protection).
    #[serde(default = "default_skew")]
    pub max_clock_skew_ms: u64,
    /// Longest lease the agent grants; longer lifetimes are shortened to it.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_ms: u32,
    /// Parent groups the agent knows, with their ordered members (the same
    /// definitions the controller has; BIER bitmaps index this order).
    #[serde(default)]
    pub parent_groups: Vec<ParentGroup>,
    /// Networks instructions may come from (e.g. `["fd00::100/128"]`);
    /// datagrams from elsewhere are dropped unanswered. Empty: any source.
    #[serde(default)]
    pub controller_sources: Vec<ipnet::IpNet>,
    /// Subset groups this switch may hold for subcast. Sets the capacity
    /// reported in HELLO/HEARTBEAT where the backend cannot tell (SNMP) and
    /// lowers it where it can (bridge `hash_max` minus other groups, OVS
    /// group table). The agent refuses (NAK table-full) an instruction that
    /// would exceed it.
    #[serde(default)]
    pub table_capacity: Option<u32>,
    /// Period of the guard sweep that removes groups inside
    /// `rendezvous_range` the agent does not hold (others can write the
    /// switch's table). Default 10000 for `kind: snmp`; 0 turns it off.
    /// Linux bridges and OVS are guarded by MDB notifications and a drop
    /// flow instead, and sweep only if this is set.
    #[serde(default)]
    pub guard_sweep_ms: Option<u64>,
}

/// A rendezvous range as written: an IPv6 prefix, or an IPv4 prefix kept
/// IPv4-mapped (prefix length + 96), the group form of `subcast_proto::group`.
fn range_of_either_family<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<ipnet::Ipv6Net, D::Error> {
    let s = String::deserialize(d)?;
    match s.parse::<ipnet::IpNet>() {
        Ok(ipnet::IpNet::V6(n)) => Ok(n),
        Ok(ipnet::IpNet::V4(n)) => {
            ipnet::Ipv6Net::new(n.network().to_ipv6_mapped(), n.prefix_len() + 96)
                .map_err(serde::de::Error::custom)
        }
        Err(_) => Err(serde::de::Error::custom(format!(
            "rendezvous_range {s:?} is not an IPv6 or IPv4 prefix: write e.g. ff15::5c00:0/104 or 239.92.128.0/24"
        ))),
    }
}

/// The commented default configuration `subcast-agent default-config`
/// prints (the same as `examples/agent.yaml`; it validates as written).
pub const DEFAULT_CONFIG: &str = include_str!("../examples/agent.yaml");

/// Default guard sweep period of SNMP switches.
pub const DEFAULT_SNMP_SWEEP_MS: u64 = 10_000;

/// Which switch the agent drives.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum BackendConfig {
    /// A Linux bridge in the agent's own network namespace.
    LinuxBridge { bridge: String },
    /// An Open vSwitch bridge whose OpenFlow 1.3 controller the agent is
    /// (`kind: openflow`, `listen: "127.0.0.1:6653"`, ...; see
    /// `examples/agent-openflow.yaml`).
    Openflow(crate::backend::openflow::OpenflowConfig),
    /// A switch driven over SNMP (Q-BRIDGE-MIB); `credentials` is the
    /// `subcast-snmp` YAML file (address, vlan, v2c or v3; see
    /// `examples/agent-snmp.yaml`).
    Snmp { credentials: PathBuf },
}

impl BackendConfig {
    /// The `kind:` of the backend (the `backend` label of the metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::LinuxBridge { .. } => "linux-bridge",
            BackendConfig::Openflow(_) => "openflow",
            BackendConfig::Snmp { .. } => "snmp",
        }
    }

    /// One line for `check-config` and logs, e.g. `linux bridge "br0"`.
    pub fn describe(&self) -> String {
        match self {
            BackendConfig::LinuxBridge { bridge } => format!("linux bridge {bridge:?}"),
            BackendConfig::Openflow(of) => format!("openflow, listening on {}", of.listen),
            BackendConfig::Snmp { credentials } => {
                format!("snmp, credentials {}", credentials.display())
            }
        }
    }
}

/// A key: id and a file holding 64 hex digits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub id: u32,
    pub file: PathBuf,
}

/// A parent (negotiating) group.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ParentGroup {
    /// IPv6 (`ff15::1`), or IPv4 (`239.92.0.1`) kept IPv4-mapped.
    #[serde(deserialize_with = "group_of_either_family")]
    pub address: Ipv6Addr,
    #[serde(default)]
    pub vlan: u16,
    pub members: Vec<MemberDef>,
}

/// One member of a parent group: `ipv6:` in an IPv6 group, `ipv4:` in an
/// IPv4 one.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(try_from = "RawMemberDef")]
pub struct MemberDef {
    pub name: String,
    /// Its IPv6 address, or its IPv4 address IPv4-mapped (`::ffff:10.0.0.1`).
    pub ipv6: Ipv6Addr,
    pub mac: MacAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemberDef {
    name: String,
    ipv6: Option<Ipv6Addr>,
    ipv4: Option<std::net::Ipv4Addr>,
    mac: MacAddr,
}

impl TryFrom<RawMemberDef> for MemberDef {
    type Error = String;
    fn try_from(r: RawMemberDef) -> Result<Self, String> {
        let ipv6 = match (r.ipv6, r.ipv4) {
            (Some(a), None) if a.to_ipv4_mapped().is_none() => a,
            (None, Some(a)) if !a.is_multicast() && !a.is_unspecified() && !a.is_broadcast() => {
                a.to_ipv6_mapped()
            }
            (None, Some(a)) => {
                return Err(format!("member {:?}: ipv4 {a} is not unicast", r.name));
            }
            _ => {
                return Err(format!(
                    "member {:?}: give exactly one of ipv6 (IPv6 group) or ipv4 (IPv4 group)",
                    r.name
                ));
            }
        };
        Ok(MemberDef {
            name: r.name,
            ipv6,
            mac: r.mac,
        })
    }
}

/// A group address as written, IPv4 kept IPv4-mapped.
fn group_of_either_family<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Ipv6Addr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<std::net::IpAddr>()
        .map(subcast_proto::group_field)
        .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an IPv6 or IPv4 address")))
}

fn default_listen() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::UNSPECIFIED, subcast_proto::DEFAULT_AGENT_PORT))
}
fn default_heartbeat() -> u64 {
    5000
}
fn default_skew() -> u64 {
    30_000
}
fn default_max_lifetime() -> u32 {
    600_000
}

/// A configuration that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("key file {path} (key id {id}): {err}")]
    Key {
        path: PathBuf,
        id: u32,
        err: subcast_proto::KeyError,
    },
}

impl Config {
    /// The `switch` label of the metrics: `name`, or the switch id.
    pub fn switch_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.switch_id.to_string())
    }

    /// The guard sweep period, if any (see [`Config::guard_sweep_ms`]).
    pub fn sweep_interval(&self) -> Option<std::time::Duration> {
        let ms = match (&self.backend, self.guard_sweep_ms) {
            (_, Some(ms)) => ms,
            (BackendConfig::Snmp { .. }, None) => DEFAULT_SNMP_SWEEP_MS,
            _ => 0,
        };
        (ms > 0).then(|| std::time::Duration::from_millis(ms))
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.to_owned(),
            err,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks configuration text (`path` is used in messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.check().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    /// Semantic checks serde cannot express.
    pub fn check(&self) -> Result<(), String> {
        if let Some(v4) = self.rendezvous_range.addr().to_ipv4_mapped() {
            let len = self.rendezvous_range.prefix_len().saturating_sub(96);
            if !v4.is_multicast() || len < 4 {
                return Err(format!(
                    "rendezvous_range {v4}/{len} is not inside 224.0.0.0/4: use e.g. 239.92.128.0/24"
                ));
            }
            if len < 9 {
                return Err(format!(
                    "rendezvous_range {v4}/{len} is shorter than /9: its groups would share Ethernet addresses (01:00:5e + the low 23 bits)"
                ));
            }
            return self.check_rest();
        }
        if !self.rendezvous_range.addr().is_multicast() {
            return Err(format!(
                "rendezvous_range {} is not multicast: use a range inside ff00::/8 (e.g. ff15::5c00:0/104)",
                self.rendezvous_range
            ));
        }
        if self.rendezvous_range.prefix_len() < 8 {
            return Err("rendezvous_range must be at most ff00::/8".into());
        }
        self.check_rest()
    }

    fn check_rest(&self) -> Result<(), String> {
        if self.controller_keys.is_empty() {
            return Err(
                "controller_keys is empty: list at least one key the controller signs with".into(),
            );
        }
        if self.heartbeat_interval_ms == 0 {
            return Err("heartbeat_interval_ms must be at least 1".into());
        }
        if self.table_capacity == Some(0) {
            return Err(
                "table_capacity must be at least 1 (leave it out when the backend reports it)"
                    .into(),
            );
        }
        let mut seen = HashSet::new();
        for (i, g) in self.parent_groups.iter().enumerate() {
            let at = format!("parent_groups[{i}] ({})", g.address);
            if !subcast_proto::GroupAddr::is_group(&g.address) {
                return Err(format!(
                    "{at}: address must be multicast (IPv6 ff00::/8 or IPv4 224.0.0.0/4)"
                ));
            }
            let family = subcast_proto::GroupAddr::family(&g.address);
            if family != subcast_proto::GroupAddr::family(&self.rendezvous_range.addr()) {
                return Err(format!(
                    "{at}: a parent group of the agent is of its rendezvous_range's family ({})",
                    subcast_proto::GroupAddr::family(&self.rendezvous_range.addr())
                ));
            }
            if self.rendezvous_range.contains(&g.address) {
                return Err(format!(
                    "{at}: a parent group must not lie inside rendezvous_range {} (the agent would delete it at start)",
                    self.rendezvous_range
                ));
            }
            if g.vlan > 4094 {
                return Err(format!("{at}: vlan must be 0 (untagged) to 4094"));
            }
            if !seen.insert(g.address) {
                return Err(format!("{at}: listed twice"));
            }
            if g.members.is_empty() {
                return Err(format!("{at}: has no members"));
            }
            if g.members.len() > subcast_proto::member::MAX_BITMAP_BITS {
                return Err(format!("{at}: more than 4096 members"));
            }
            let mut names = HashSet::new();
            for m in &g.members {
                if !names.insert(&m.name) {
                    return Err(format!("{at}: member name {:?} listed twice", m.name));
                }
                if m.ipv6.is_multicast() || m.ipv6.is_unspecified() {
                    return Err(format!("{at}: member {:?} needs a unicast ipv6", m.name));
                }
                if subcast_proto::GroupAddr::family(&m.ipv6) != family {
                    return Err(format!(
                        "{at}: member {:?} is named by an address of the other family (use ipv4: in an IPv4 group, ipv6: in an IPv6 one)",
                        m.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads the controller keys. Refuses the agent's own key among them
    /// (by id or by value): agents that share a key could otherwise
    /// instruct each other.
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let own = read_key(&self.key)?;
        let mut ring = Keyring::default();
        for k in &self.controller_keys {
            let key = read_key(k)?;
            if k.id == own.id || key.to_hex() == own.to_hex() {
                return Err(ConfigError::Invalid {
                    path: k.file.clone(),
                    message: format!(
                        "controller key id {} is the agent's own key (key id {}): an agent must \
                         not accept instructions under a key it (or another agent) holds; give \
                         the controller its own key",
                        k.id, own.id
                    ),
                });
            }
            ring.insert(key);
        }
        Ok(ring)
    }

    /// Reads the agent's own key.
    pub fn own_key(&self) -> Result<Key, ConfigError> {
        read_key(&self.key)
    }
}

fn read_key(k: &KeyFile) -> Result<Key, ConfigError> {
    let text = std::fs::read_to_string(&k.file).map_err(|err| ConfigError::Read {
        path: k.file.clone(),
        err,
    })?;
    Key::from_hex(k.id, &text).map_err(|err| ConfigError::Key {
        path: k.file.clone(),
        id: k.id,
        err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = DEFAULT_CONFIG;

    #[test]
    fn example_parses() {
        let c = Config::parse(EXAMPLE, Path::new("agent.yaml")).unwrap();
        assert_eq!(c.switch_id, 1);
        assert_eq!(c.parent_groups[0].members.len(), 3);
        assert!(matches!(c.backend, BackendConfig::LinuxBridge { .. }));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let bad = EXAMPLE.replace("switch_id: 1", "switch_id: one");
        let e = Config::parse(&bad, Path::new("a.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.yaml"), "{e}");
        assert!(e.contains("line") || e.contains("switch_id"), "{e}");
        let bad = EXAMPLE.replace("ff15::5c00:0/104", "fd00::/104");
        let e = Config::parse(&bad, Path::new("a.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not multicast"), "{e}");
        let bad = EXAMPLE.replace("address: ff15::1", "address: ff15::5c00:7");
        let e = Config::parse(&bad, Path::new("a.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("inside rendezvous_range"), "{e}");
    }

    #[test]
    fn ipv4_rendezvous_range() {
        let parse = |t: &str| Config::parse(t, Path::new("a.yaml"));
        // The example without its (IPv6) parent groups, on an IPv4 range.
        let cut = EXAMPLE
            .find("parent_groups:")
            .expect("example lists parent groups");
        let end = EXAMPLE[cut..]
            .find("\n\n")
            .map_or(EXAMPLE.len(), |e| cut + e + 1);
        let base = format!("{}{}", &EXAMPLE[..cut], &EXAMPLE[end..]);
        let v4 = base.replace("ff15::5c00:0/104", "239.92.128.0/24");
        let c = parse(&v4).unwrap();
        assert_eq!(c.rendezvous_range.to_string(), "::ffff:239.92.128.0/120");
        let e = parse(&v4.replace("239.92.128.0/24", "239.0.0.0/8"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("shorter than /9"), "{e}");
        let e = parse(&v4.replace("239.92.128.0/24", "10.92.128.0/24"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("224.0.0.0/4"), "{e}");
        let e = parse(&EXAMPLE.replace("ff15::5c00:0/104", "239.92.128.0/24"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rendezvous_range's family"), "{e}");
        let with_parent = format!(
            "{v4}parent_groups:\n  - address: 239.92.0.1\n    members:\n      - {{ name: x1, ipv4: 10.92.0.1, mac: \"02:00:00:00:00:01\" }}\n"
        );
        let c = parse(&with_parent).unwrap();
        assert_eq!(c.parent_groups[0].address.to_string(), "::ffff:239.92.0.1");
        assert_eq!(
            c.parent_groups[0].members[0].ipv6.to_string(),
            "::ffff:10.92.0.1"
        );
        let e = parse(&with_parent.replace("ipv4: 10.92.0.1", "ipv6: \"fd00::1\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("other family"), "{e}");
        let snmp = include_str!("../examples/agent-snmp.yaml");
        let range = snmp
            .lines()
            .find_map(|l| l.strip_prefix("rendezvous_range: "))
            .expect("snmp example has a range");
        // SNMP installs IPv4 groups as rows of their 01:00:5e MACs.
        let v4 = snmp
            .replace(range, "239.92.128.0/24")
            .replace("address: ff15::1", "address: 239.92.0.1")
            .replace("ipv6: \"fd00::", "ipv4: \"10.92.0.");
        parse(&v4).expect("snmp with an IPv4 range");
    }

    #[test]
    fn new_keys_parse_and_snmp_sweeps_by_default() {
        let text =
            format!("{EXAMPLE}controller_sources: [\"fd00::100/128\"]\ntable_capacity: 500\n");
        let c = Config::parse(&text, Path::new("a.yaml")).unwrap();
        assert_eq!(c.table_capacity, Some(500));
        assert_eq!(c.controller_sources.len(), 1);
        assert_eq!(c.sweep_interval(), None);
        let snmp_text = include_str!("../examples/agent-snmp.yaml");
        let snmp = Config::parse(snmp_text, Path::new("s.yaml")).unwrap();
        assert_eq!(snmp.table_capacity, Some(256));
        let default = snmp_text.replace("guard_sweep_ms: 10000\n", "");
        assert_eq!(
            Config::parse(&default, Path::new("s.yaml"))
                .unwrap()
                .sweep_interval(),
            Some(std::time::Duration::from_millis(DEFAULT_SNMP_SWEEP_MS))
        );
        let off = snmp_text.replace("guard_sweep_ms: 10000", "guard_sweep_ms: 0");
        assert_eq!(
            Config::parse(&off, Path::new("s.yaml"))
                .unwrap()
                .sweep_interval(),
            None
        );
    }

    /// A configuration that lists the agent's own key as a controller key
    /// is refused: every agent holding that key could instruct this one.
    #[test]
    fn own_key_as_controller_key_is_refused() {
        let dir = std::env::temp_dir().join(format!("subcast-agent-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.key"), dir.join("b.key"));
        std::fs::write(&a, "11".repeat(32)).unwrap();
        std::fs::write(&b, "22".repeat(32)).unwrap();
        let cfg = |own: &Path, own_id: u32, ctl: &Path, ctl_id: u32| {
            let text = EXAMPLE
                .replace(
                    "key: { id: 101, file: /etc/subcast/agent-1.key }",
                    &format!("key: {{ id: {own_id}, file: {own:?} }}"),
                )
                .replace(
                    "  - { id: 1, file: /etc/subcast/controller.key }",
                    &format!("  - {{ id: {ctl_id}, file: {ctl:?} }}"),
                );
            Config::parse(&text, Path::new("k.yaml")).unwrap()
        };
        assert!(cfg(&a, 101, &b, 1).keyring().is_ok());
        let e = cfg(&a, 101, &a, 1).keyring().unwrap_err().to_string();
        assert!(e.contains("own key"), "{e}");
        assert!(cfg(&a, 101, &b, 101).keyring().is_err(), "same id");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
