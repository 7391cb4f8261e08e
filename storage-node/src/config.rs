//! The node / client configuration file (YAML).
//!
//! One file describes the cluster (negotiating groups, port, key) and,
//! for `serve`, the node itself (`node:` section). See
//! `storage-node/examples/node.yaml`.

mod node_section;
pub use node_section::NodeSection;

use crate::transport::{Family, Mode};
use serde::Deserialize;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use subcast_proto::Key;
use subcast_proto::replicast::{
    KEYED_DATA_OVERHEAD, MAX_DATAGRAM_PAYLOAD, MAX_TARGETS, data_overhead,
};

/// Who a process is (see [`Config::identity`]).
#[derive(Debug, Clone)]
pub struct Identity {
    pub keys: std::sync::Arc<subcast_proto::PairKeys>,
    pub addresses: crate::keys::Addresses,
}

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

/// Where this node's pair keys are (`keys:`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// A key file written by `subcast-node keys derive` (see [`crate::keys`]).
    pub file: PathBuf,
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
fn default_inline_max() -> usize {
    crate::chunking::DEFAULT_INLINE_MAX
}
fn default_true() -> bool {
    true
}
fn default_parallel() -> usize {
    4
}
fn default_put_window() -> usize {
    6
}
fn default_put_transfers() -> usize {
    2
}

fn default_put_max_s() -> f64 {
    1800.0
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The cluster's negotiating groups, in the same order everywhere:
    /// an id belongs to group `first 8 octets mod len` (see placement).
    /// IPv6 (ff00::/8) or IPv4 (224.0.0.0/4) groups, all of one family:
    /// the family of every socket (IPv4 ones are kept IPv4-mapped).
    #[serde(deserialize_with = "any_family_groups")]
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
    /// Objects of 1 byte up to this many (and at most one chunk) are
    /// stored inside their version manifest: one proposal, one transfer
    /// and one durable write per put instead of two of each, and one
    /// fetch fewer per get. 0 stores every object in chunks.
    #[serde(default = "default_inline_max")]
    pub inline_max: usize,
    /// Send DATA in UDP GSO batches (one send call per up to 64
    /// datagrams to one destination, cut into frames by the NIC or, where
    /// it has no UDP segmentation offload, by the kernel at the
    /// interface). On by default where the kernel has it; `false` sends
    /// DATA up to 64 datagrams per call (`sendmmsg`). On a veth with
    /// `tx-udp-segmentation` on, a batch crosses the bridge as one packet
    /// (captures and counters then see batches; the labs turn it off).
    #[serde(default = "default_true")]
    pub udp_gso: bool,
    /// A client (a writer) sends large DATA batches from two threads at
    /// once (a send thread beside the one that seals; see
    /// `send_thread.rs`): on a software switch or a veth, each send carries
    /// the forwarding to every receiver with it. On by default; `false`
    /// sends from one thread. A node serving gets sends from one thread
    /// (two made 64 MiB gets slower in the seed lab: 910-960 ms against
    /// 500-540).
    #[serde(default = "default_true")]
    pub udp_send_thread: bool,
    /// Chunks in flight at once per get (and per listing's fetches).
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// Chunks of one put in flight at once: negotiating (bids, grant,
    /// READYs), transferring, or waiting for their targets' acknowledgements
    /// (each holds its payload until acknowledged). A storage node accepts
    /// `node.max_receives_per_peer` (8) receives from one writer at a time
    /// and refuses more ("not now" to a proposal, "busy" to an ACCEPT).
    /// Where a group has no more live members than R, every target holds
    /// every chunk of the window and the manifest: keep `put_window` + 1
    /// within that limit, or a target replaced in mid-put may answer
    /// "busy" and the put fail (window 8: 3 of 5 runs of `tests/crash.rs`
    /// failed so, window 6: none of 6).
    #[serde(default = "default_put_window")]
    pub put_window: usize,
    /// Of a put's `put_window` chunks, how many transfer (send their first
    /// pass) at once. The others take their bids and group meanwhile and
    /// hold their ACCEPT (see `put/turns.rs`); fewer transfers at once fill
    /// the targets' receive buffers less (64 MiB puts on the seed lab with
    /// 8 in the window: 2 or 3 at once the fastest, 4 sent more repairs).
    #[serde(default = "default_put_transfers")]
    pub put_transfers: usize,
    /// Longest a put may take from its first data chunk's acknowledgement
    /// to releasing its manifest, in seconds; a put slower than that is
    /// abandoned before its manifest (nothing is stored under the name) and
    /// fails with "retry". gc's `--grace-s` must be at least twice this, so
    /// gc never collects the chunks of a put still under way.
    #[serde(default = "default_put_max_s")]
    pub put_max_s: f64,
    /// Default transport for puts.
    #[serde(default)]
    pub transport: Mode,
    /// Rendezvous puts whose group the controller refuses for a full
    /// switch table go by this transport instead (ng-multicast or unicast).
    #[serde(default)]
    pub fallback_transport: Mode,
    /// This node's or client's pair keys (secure mode; see
    /// [`crate::keys`]). Exactly one of `keys` and `key`.
    #[serde(default)]
    pub keys: Option<KeysConfig>,
    /// INSECURE single-key mode (labs): every node and client holds this
    /// one cluster key and may claim any node id. Exactly one of `keys`
    /// and `key`.
    #[serde(default)]
    pub key: Option<KeyConfig>,
    /// Node ids of each negotiating group's members (optional): a bid
    /// round or lookup then ends exactly when all of them answered, and
    /// datagrams to the group are tagged for exactly them (without it: for
    /// every peer in the key file). Without it a client learns members
    /// from their answers.
    #[serde(default, deserialize_with = "any_family_members")]
    pub members: std::collections::HashMap<Ipv6Addr, Vec<u32>>,
    #[serde(default)]
    pub controller: Option<ControllerConfig>,
    #[serde(default)]
    pub node: Option<NodeSection>,
    /// Directory relative key files are resolved against (the config's).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Groups of either family, IPv4 ones in IPv4-mapped form.
fn any_family_groups<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Ipv6Addr>, D::Error> {
    let v: Vec<IpAddr> = Deserialize::deserialize(d)?;
    Ok(v.into_iter().map(crate::transport::canonical).collect())
}

/// `members:` keyed by groups of either family (IPv4 ones mapped).
fn any_family_members<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::HashMap<Ipv6Addr, Vec<u32>>, D::Error> {
    let m: std::collections::HashMap<IpAddr, Vec<u32>> = Deserialize::deserialize(d)?;
    Ok(m.into_iter()
        .map(|(g, v)| (crate::transport::canonical(g), v))
        .collect())
}

/// An address in the node's form as the admin wrote it (IPv4 unmapped).
fn shown(a: &Ipv6Addr) -> String {
    match a.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => a.to_string(),
    }
}

/// The commented default configuration `subcast-node default-config`
/// prints (the same as `examples/node.yaml`; it validates as written).
pub const DEFAULT_CONFIG: &str = include_str!("../examples/node.yaml");

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
            "negotiating_groups: list at least one IPv6 (ff00::/8) or IPv4 (224.0.0.0/4) multicast group"
        );
        anyhow::ensure!(
            self.put_transfers >= 1 && self.put_window >= self.put_transfers,
            "put_transfers ({}) must be at least 1 and put_window ({}) at least put_transfers",
            self.put_transfers,
            self.put_window
        );
        let family = self.family();
        for (i, g) in self.negotiating_groups.iter().enumerate() {
            match Family::of(g) {
                Family::Ipv6 => anyhow::ensure!(
                    g.is_multicast(),
                    "negotiating_groups[{i}]: {g} is not an IPv6 multicast address (ff00::/8)"
                ),
                Family::Ipv4 => anyhow::ensure!(
                    crate::transport::is_group(g),
                    "negotiating_groups[{i}]: {} is not an IPv4 multicast address (224.0.0.0/4; e.g. 239.x.y.z, administratively scoped)",
                    shown(g)
                ),
            }
            anyhow::ensure!(
                Family::of(g) == family,
                "negotiating_groups[{i}]: {} is {} but negotiating_groups[0] ({}) is {}: one config is one address family (a node speaks either IPv4 or IPv6, not both); list groups of one family",
                shown(g),
                Family::of(g).name(),
                shown(&self.negotiating_groups[0]),
                family.name()
            );
        }
        for g in self.members.keys() {
            anyhow::ensure!(
                self.negotiating_groups.contains(g),
                "members: {} is not one of negotiating_groups",
                shown(g)
            );
        }
        anyhow::ensure!(
            self.fallback_transport != Mode::Rendezvous,
            "fallback_transport must be ng-multicast or unicast"
        );
        anyhow::ensure!(self.replicas >= 1, "replicas must be at least 1");
        anyhow::ensure!(
            self.put_max_s.is_finite() && self.put_max_s > 0.0,
            "put_max_s must be a positive number of seconds (default 1800)"
        );
        anyhow::ensure!(
            self.chunk_size >= 1 && self.chunk_size <= 16 << 20,
            "chunk_size must be 1 byte to 16 MiB"
        );
        anyhow::ensure!(
            self.inline_max <= crate::chunking::MAX_INLINE,
            "inline_max must be 0 (off) to {} bytes (1 MiB)",
            crate::chunking::MAX_INLINE
        );
        let least = self.family().ip_udp_overhead() + data_overhead(MAX_TARGETS) + 64;
        anyhow::ensure!(
            self.mtu >= least,
            "mtu {} is too small (at least {least})",
            self.mtu
        );
        anyhow::ensure!(self.rate_mbps >= 1, "rate_mbps must be at least 1");
        match (&self.keys, &self.key) {
            (Some(_), Some(_)) => anyhow::bail!(
                "give `keys:` (pair keys, secure) or `key:` (one shared key, insecure lab mode), not both"
            ),
            (None, None) => anyhow::bail!(
                "no keys: add `keys: {{file: NODE.keys}}` (write it with `subcast-node keys derive`), or `key:` for the insecure single-key lab mode"
            ),
            _ => {}
        }
        for (g, m) in &self.members {
            anyhow::ensure!(
                m.iter().all(|id| *id != 0),
                "members: {g} lists node id 0 (reserved)"
            );
        }
        if let Some(n) = &self.node {
            anyhow::ensure!(n.id != Some(0), "node.id must not be 0");
            anyhow::ensure!(
                n.id.is_some() || self.keys.is_some(),
                "node.id is required with the single-key `key:` (with `keys:` the key file names the node)"
            );
            anyhow::ensure!(
                n.max_concurrent >= 1 && n.max_receives_per_peer >= 1,
                "node.max_concurrent and node.max_receives_per_peer must be at least 1"
            );
            anyhow::ensure!(
                n.max_receive_bytes >= n.max_chunk_size as u64,
                "node.max_receive_bytes ({}) must hold at least one chunk of node.max_chunk_size ({})",
                n.max_receive_bytes,
                n.max_chunk_size
            );
            anyhow::ensure!(
                n.max_serves >= 1 && n.max_serves_per_peer >= 1 && n.max_reads >= 1,
                "node.max_serves, max_serves_per_peer and max_reads must be at least 1"
            );
            anyhow::ensure!(n.max_queue >= 16, "node.max_queue must be at least 16");
            anyhow::ensure!(
                n.scrub_rate_mib_s >= 0.0 && n.scrub_rate_mib_s.is_finite(),
                "node.scrub_rate_mib_s must be 0 (off) or more"
            );
            anyhow::ensure!(n.max_repairs >= 1, "node.max_repairs must be at least 1");
            anyhow::ensure!(
                n.journal_mib == 0 || (1..=65536).contains(&n.journal_mib),
                "node.journal_mib must be 0 (off) or 1-65536 (MiB)"
            );
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

    /// The address family of every socket: that of the negotiating groups
    /// (validated to be one).
    pub fn family(&self) -> Family {
        self.negotiating_groups
            .first()
            .map(Family::of)
            .unwrap_or_default()
    }

    /// Payload octets per DATA datagram of a put: keyed DATA (0x47), the
    /// same for any number of targets.
    pub fn put_datagram_payload(&self) -> usize {
        (self.mtu - self.family().ip_udp_overhead() - KEYED_DATA_OVERHEAD).min(MAX_DATAGRAM_PAYLOAD)
    }

    /// Payload octets per DATA datagram for this MTU when it is tagged for
    /// `receivers` (the IP and UDP headers of the family, 48 or 28 octets,
    /// the Replicast header and the tag list subtracted; the single-key
    /// mode always has one entry).
    pub fn datagram_payload(&self, receivers: usize) -> usize {
        let entries = if self.keys.is_some() {
            receivers.clamp(1, MAX_TARGETS)
        } else {
            1
        };
        (self.mtu - self.family().ip_udp_overhead() - data_overhead(entries))
            .min(MAX_DATAGRAM_PAYLOAD)
    }

    /// Who this process is: its pair keys and its peers' known addresses.
    /// `serve` uses the node's id; a client in the insecure single-key
    /// mode picks a random id.
    pub fn identity(&self) -> anyhow::Result<Identity> {
        if let Some(k) = &self.keys {
            let path = self.base_dir.join(&k.file);
            let file = crate::keys::KeyFile::load(&path)?;
            if let Some(id) = self.node.as_ref().and_then(|n| n.id) {
                anyhow::ensure!(
                    id == file.node,
                    "node.id {id} but key file {} belongs to node {}",
                    path.display(),
                    file.node
                );
            }
            let keys = file.pair_keys()?;
            for p in &file.peers {
                if let Some(a) = p.address {
                    anyhow::ensure!(
                        Family::of(&a) == self.family(),
                        "key file {}: peer {} has the {} address {} but negotiating_groups are {}; derive the key file again with --peers ID={} addresses",
                        path.display(),
                        p.id,
                        Family::of(&a).name(),
                        shown(&a),
                        self.family().name(),
                        self.family().name()
                    );
                }
            }
            for (g, m) in &self.members {
                for id in m {
                    anyhow::ensure!(
                        *id == file.node || keys.knows(*id),
                        "members: node {id} of {g} has no pair key in {}; derive the key file again with it among --peers",
                        path.display()
                    );
                }
            }
            return Ok(Identity {
                keys: std::sync::Arc::new(keys),
                addresses: file.addresses(),
            });
        }
        let Some(k) = &self.key else {
            anyhow::bail!("no keys configured");
        };
        let secret = k.load(&self.base_dir)?;
        let id = match self.node.as_ref().and_then(|n| n.id) {
            Some(id) => id,
            None => rand::random::<u32>() | 0x8000_0000,
        };
        let bytes: [u8; 32] = hex::decode(secret.to_hex())?
            .try_into()
            .map_err(|_| anyhow::anyhow!("key is not 32 bytes"))?;
        Ok(Identity {
            keys: std::sync::Arc::new(subcast_proto::PairKeys::shared(secret.id, id, &bytes)),
            addresses: crate::keys::Addresses::default(),
        })
    }

    /// Node ids a datagram to negotiating group `g` is tagged for: the
    /// configured members, else every peer of the key file.
    pub fn audience(&self, g: &Ipv6Addr, keys: &subcast_proto::PairKeys) -> Vec<u32> {
        match self.members.get(g).filter(|m| !m.is_empty()) {
            Some(m) => m
                .iter()
                .copied()
                .filter(|id| *id != keys.own_id())
                .collect(),
            None => keys.peers(),
        }
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
    fn a_puts_window_and_its_manifest_fit_a_nodes_receives_per_writer() {
        // Where a group has R live members, each holds every chunk of the
        // window and the manifest at once; one more and it answers "busy".
        let per_writer = crate::node::limits::Limits::default().max_receives_per_peer;
        assert!(default_put_window() < per_writer);
        let c = Config::parse(include_str!("../examples/node.yaml")).unwrap();
        assert_eq!(c.put_window, default_put_window());
        assert_eq!(c.put_transfers, default_put_transfers());
        let bad =
            include_str!("../examples/node.yaml").replace("put_transfers: 2", "put_transfers: 7");
        let e = Config::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("put_window (6) at least put_transfers"), "{e}");
    }

    #[test]
    fn example_parses() {
        let text = include_str!("../examples/node.yaml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.port, DEFAULT_NODE_PORT);
        // Secure mode: DATA to 3 targets carries 3 tag entries.
        assert_eq!(c.datagram_payload(3), 1500 - 48 - data_overhead(3));
        assert_eq!(c.datagram_payload(1), 1500 - 48 - data_overhead(1));
        // IPv4 headers are 20 octets shorter: 20 more payload octets.
        let v4 = Config::parse(&text.replace("ff15::5c:", "239.92.0.")).unwrap();
        assert_eq!(v4.family(), crate::transport::Family::Ipv4);
        assert_eq!(v4.datagram_payload(3), 1500 - 28 - data_overhead(3));
        assert!(c.keys.is_some() && c.key.is_none());
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
        let e = Config::parse("negotiating_groups: [ff15::1]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("keys derive"), "{e}");
        let e = Config::parse(
            "negotiating_groups: [ff15::1]\nkey: {id: 1, hex: '00'}\nkeys: {file: a.keys}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not both"), "{e}");
        let e = Config::parse(
            "negotiating_groups: [ff15::1]\nkey: {id: 1, hex: '00'}\nnode: {store: /tmp/x}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("node.id is required"), "{e}");
    }

    const KEY: &str = "key: {id: 1, hex: '00'}\n";

    #[test]
    fn ipv4_groups_set_the_family() {
        let c = Config::parse(include_str!("../examples/node-ipv4.yaml")).unwrap();
        assert_eq!(c.family(), Family::Ipv4);
        let g: Ipv6Addr = "::ffff:239.92.0.1".parse().unwrap();
        assert_eq!(c.negotiating_groups[0], g);
        assert_eq!(
            crate::transport::sock_addr(g, 7412),
            "239.92.0.1:7412".parse::<SocketAddr>().unwrap()
        );
        let c = Config::parse(&format!(
            "negotiating_groups: [239.1.0.1, 239.1.0.2]\nmembers: {{239.1.0.2: [1, 2]}}\n{KEY}"
        ))
        .unwrap();
        assert_eq!(c.members[&c.negotiating_groups[1]], vec![1, 2]);
        assert_eq!(c.member_groups().len(), 2);
        // IPv6 configs stay IPv6.
        let c = Config::parse(&format!("negotiating_groups: [ff15::1]\n{KEY}")).unwrap();
        assert_eq!(c.family(), Family::Ipv6);
        assert_eq!(
            crate::transport::sock_addr(c.negotiating_groups[0], 1),
            "[ff15::1]:1".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn ipv4_refusals_name_the_entry() {
        let e = |text: String| Config::parse(&text).unwrap_err().to_string();
        let m = e(format!("negotiating_groups: [239.1.0.1, 10.0.0.1]\n{KEY}"));
        assert!(
            m.contains("negotiating_groups[1]: 10.0.0.1 is not an IPv4 multicast address"),
            "{m}"
        );
        let m = e(format!("negotiating_groups: [239.1.0.1, ff15::1]\n{KEY}"));
        assert!(
            m.contains("negotiating_groups[1]: ff15::1 is IPv6 but negotiating_groups[0] (239.1.0.1) is IPv4"),
            "{m}"
        );
        let m = e(format!("negotiating_groups: [ff15::1, 239.1.0.1]\n{KEY}"));
        assert!(m.contains("239.1.0.1 is IPv4"), "{m}");
        let m = e(format!(
            "negotiating_groups: [239.1.0.1]\nmembers: {{239.1.0.9: [1]}}\n{KEY}"
        ));
        assert!(
            m.contains("members: 239.1.0.9 is not one of negotiating_groups"),
            "{m}"
        );
        // Not an address at all: serde's positioned error.
        let m = e(format!("negotiating_groups: [239.1.0.300]\n{KEY}"));
        assert!(m.contains("line 1"), "{m}");
    }

    #[test]
    fn key_file_addresses_must_match_the_family() {
        let dir = tempfile::tempdir().unwrap();
        let peers = crate::keys::parse_peers("2=fd00::2").unwrap();
        let kf = crate::keys::KeyFile::derive(&[4u8; 32], 1, 1, &peers).unwrap();
        std::fs::write(dir.path().join("n1.keys"), kf.to_yaml()).unwrap();
        let mut c =
            Config::parse("negotiating_groups: [239.1.0.1]\nkeys: {file: n1.keys}\n").unwrap();
        c.base_dir = dir.path().to_owned();
        let m = c.identity().unwrap_err().to_string();
        assert!(m.contains("peer 2 has the IPv6 address fd00::2"), "{m}");
        let peers = crate::keys::parse_peers("2=10.0.0.2").unwrap();
        let kf = crate::keys::KeyFile::derive(&[4u8; 32], 1, 1, &peers).unwrap();
        std::fs::write(dir.path().join("n1.keys"), kf.to_yaml()).unwrap();
        let id = c.identity().unwrap();
        assert!(id.addresses.allows(2, "10.0.0.2:7412".parse().unwrap()));
        assert!(!id.addresses.allows(2, "10.0.0.3:7412".parse().unwrap()));
        assert!(
            !id.addresses
                .allows(2, "[::ffff:10.0.0.3]:7412".parse().unwrap())
        );
    }
}
