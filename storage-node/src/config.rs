//! The node / client configuration file (YAML).
//!
//! One file describes the cluster (negotiating groups, port, key) and,
//! for `serve`, the node itself (`node:` section). See
//! `storage-node/examples/node.yaml`.

use crate::transport::Mode;
use serde::Deserialize;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use subcast_proto::Key;
use subcast_proto::replicast::{DATA_OVERHEAD, MAX_DATAGRAM_PAYLOAD};

/// Default UDP port of storage nodes.
pub const DEFAULT_NODE_PORT: u16 = 7412;

/// A MAC key: inline hex or a file holding hex.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub id: u32,
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub hex: Option<String>,
}

impl KeyConfig {
    pub fn load(&self, base: &Path) -> anyhow::Result<Key> {
        let text = match (&self.hex, &self.file) {
            (Some(h), None) => h.clone(),
            (None, Some(f)) => {
                let p = base.join(f);
                std::fs::read_to_string(&p).map_err(|e| {
                    anyhow::anyhow!("cannot read key file {}: {e} (create it with `head -c32 /dev/urandom | xxd -p -c64 > FILE`)", p.display())
                })?
            }
            _ => anyhow::bail!("key {}: give exactly one of `file` or `hex`", self.id),
        };
        Ok(Key::from_hex(self.id, &text)?)
    }
}

/// Where the controller is, for `--transport rendezvous`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// e.g. `"[fd00::100]:7411"`
    pub address: SocketAddr,
    pub key: KeyConfig,
    #[serde(default)]
    pub vlan: u16,
    #[serde(default = "default_lifetime")]
    pub lifetime_ms: u32,
}

fn default_lifetime() -> u32 {
    5000
}

/// The `node:` section, needed by `serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Unique node id (the header's sender id); not 0.
    pub id: u32,
    /// Chunk store directory.
    pub store: PathBuf,
    /// Indices into `negotiating_groups` this node serves (default: all).
    #[serde(default)]
    pub member_of: Option<Vec<usize>>,
    /// Receives in progress at most; beyond, bids say "not now (busy)".
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Largest chunk accepted.
    #[serde(default = "default_max_chunk")]
    pub max_chunk_size: usize,
    /// Bytes of disk kept free; beyond, bids say "not now (full)".
    #[serde(default = "default_reserve")]
    pub reserve_bytes: u64,
}

fn default_max_concurrent() -> usize {
    16
}
fn default_max_chunk() -> usize {
    16 << 20
}
fn default_reserve() -> u64 {
    64 << 20
}
fn default_port() -> u16 {
    DEFAULT_NODE_PORT
}
fn default_hops() -> u32 {
    1
}
fn default_mtu() -> usize {
    1500
}
fn default_rate() -> u64 {
    1000
}
fn default_replicas() -> usize {
    3
}
fn default_chunk_size() -> usize {
    crate::chunking::DEFAULT_CHUNK_SIZE
}
fn default_parallel() -> usize {
    4
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The cluster's negotiating groups, in the same order everywhere:
    /// an id belongs to group `first 8 octets mod len` (see placement).
    pub negotiating_groups: Vec<Ipv6Addr>,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Interface for multicast (name); default: the system's choice.
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default = "default_hops")]
    pub hops: u32,
    /// Link MTU; DATA datagrams are sized to fit it.
    #[serde(default = "default_mtu")]
    pub mtu: usize,
    /// Pacing rate of payload datagrams, in Mbit/s.
    #[serde(default = "default_rate")]
    pub rate_mbps: u64,
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    #[serde(default = "default_chunk_size")]
    pub chunk_size: usize,
    /// Chunks in flight at once per put / get.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// Default transport for puts.
    #[serde(default)]
    pub transport: Mode,
    pub key: KeyConfig,
    #[serde(default)]
    pub controller: Option<ControllerConfig>,
    #[serde(default)]
    pub node: Option<NodeSection>,
    /// Directory relative key files are resolved against (the config's).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let mut c =
            Config::parse(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        c.base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
        Ok(c)
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let c: Config = serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.negotiating_groups.is_empty(),
            "negotiating_groups: list at least one IPv6 multicast group"
        );
        for g in &self.negotiating_groups {
            anyhow::ensure!(
                g.is_multicast(),
                "negotiating_groups: {g} is not an IPv6 multicast address (ff00::/8)"
            );
        }
        anyhow::ensure!(self.replicas >= 1, "replicas must be at least 1");
        anyhow::ensure!(
            self.chunk_size >= 1 && self.chunk_size <= 16 << 20,
            "chunk_size must be 1 byte to 16 MiB"
        );
        anyhow::ensure!(
            self.mtu >= 48 + DATA_OVERHEAD + 64,
            "mtu {} is too small (at least {})",
            self.mtu,
            48 + DATA_OVERHEAD + 64
        );
        anyhow::ensure!(self.rate_mbps >= 1, "rate_mbps must be at least 1");
        if let Some(n) = &self.node {
            anyhow::ensure!(n.id != 0, "node.id must not be 0");
            for i in n.member_of.iter().flatten() {
                anyhow::ensure!(
                    *i < self.negotiating_groups.len(),
                    "node.member_of: index {i} but only {} negotiating groups are listed",
                    self.negotiating_groups.len()
                );
            }
        }
        Ok(())
    }

    /// Payload octets per DATA datagram for this MTU (IPv6 + UDP headers
    /// and the Replicast header and tag subtracted).
    pub fn datagram_payload(&self) -> usize {
        (self.mtu - 48 - DATA_OVERHEAD).min(MAX_DATAGRAM_PAYLOAD)
    }

    pub fn node(&self) -> anyhow::Result<&NodeSection> {
        self.node.as_ref().ok_or_else(|| {
            anyhow::anyhow!("`serve` needs a `node:` section (id, store) in the config")
        })
    }

    /// The groups this node serves.
    pub fn member_groups(&self) -> Vec<Ipv6Addr> {
        match self.node.as_ref().and_then(|n| n.member_of.clone()) {
            Some(idx) => idx.iter().map(|i| self.negotiating_groups[*i]).collect(),
            None => self.negotiating_groups.clone(),
        }
    }

    pub fn rate_bytes_per_s(&self) -> u64 {
        self.rate_mbps * 1_000_000 / 8
    }

    /// Pacer burst: 2 ms at the configured rate (timers wake about once a
    /// millisecond), at least 64 KiB.
    pub fn pacer_burst(&self) -> usize {
        ((self.rate_bytes_per_s() / 500) as usize).max(64 << 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses() {
        let text = include_str!("../examples/node.yaml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.port, DEFAULT_NODE_PORT);
        assert_eq!(c.datagram_payload(), 1500 - 48 - DATA_OVERHEAD);
        assert!(c.node().is_ok());
        let k = KeyConfig {
            id: 1,
            file: None,
            hex: Some("00".repeat(32)),
        };
        assert_eq!(k.load(Path::new(".")).unwrap().id, 1);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = Config::parse("negotiating_groups: [fd00::1]\nkey: {id: 1, hex: '00'}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an IPv6 multicast"), "{e}");
        let e = Config::parse("negotiating_groups: [ff15::1]\nkey: {id: 1, hex: '00'}\nbogus: 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}
