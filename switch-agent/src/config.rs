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
}

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
    pub address: Ipv6Addr,
    #[serde(default)]
    pub vlan: u16,
    pub members: Vec<MemberDef>,
}

/// One member of a parent group.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MemberDef {
    pub name: String,
    pub ipv6: Ipv6Addr,
    pub mac: MacAddr,
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
        if !self.rendezvous_range.addr().is_multicast() {
            return Err(format!(
                "rendezvous_range {} is not multicast: use a range inside ff00::/8 (e.g. ff15::5c00:0/104)",
                self.rendezvous_range
            ));
        }
        if self.rendezvous_range.prefix_len() < 8 {
            return Err("rendezvous_range must be at most ff00::/8".into());
        }
        if self.controller_keys.is_empty() {
            return Err(
                "controller_keys is empty: list at least one key the controller signs with".into(),
            );
        }
        if self.heartbeat_interval_ms == 0 {
            return Err("heartbeat_interval_ms must be at least 1".into());
        }
        let mut seen = HashSet::new();
        for (i, g) in self.parent_groups.iter().enumerate() {
            let at = format!("parent_groups[{i}] ({})", g.address);
            if !g.address.is_multicast() {
                return Err(format!("{at}: address must be IPv6 multicast"));
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
            }
        }
        Ok(())
    }

    /// Reads the controller keys.
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let mut ring = Keyring::default();
        for k in &self.controller_keys {
            ring.insert(read_key(k)?);
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

    const EXAMPLE: &str = include_str!("../examples/agent.yaml");

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
}
