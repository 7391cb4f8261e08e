//! Who a node is and whom it can authenticate: key files of pair keys
//! (`subcast-node keys derive`), the peers' known addresses, and the
//! insecure single-key mode.
//!
//! A key file is written by provisioning from the cluster secret and holds
//! only the node's own pairs (never the secret):
//!
//! ```yaml
//! # subcast-node pair keys of node 3: keep private (mode 0600)
//! node: 3
//! key_id: 1
//! peers:
//!   - { id: 1, key: "64 hex digits", address: "fd00:5c::1" }
//!   - { id: 100, key: "64 hex digits" }
//! ```
//!
//! A peer with an `address` is accepted only from that address and
//! answered only there; one without is answered where its datagrams come
//! from.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use subcast_proto::PairKeys;

/// One peer in a key file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    pub id: u32,
    /// K(node, id), 64 hex digits.
    pub key: String,
    /// Where the peer's datagrams come from (and answers go).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv6Addr>,
}

/// A key file's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// The node (or client) id these keys belong to.
    pub node: u32,
    /// Generation of the cluster secret (the header's Key ID).
    pub key_id: u32,
    pub peers: Vec<PeerEntry>,
}

fn hex32(text: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = hex::decode(&clean).map_err(|_| anyhow::anyhow!("{what} is not hex"))?;
    raw.try_into().map_err(|v: Vec<u8>| {
        anyhow::anyhow!("{what} is {} bytes, must be 32 (64 hex digits)", v.len())
    })
}

/// Reads a cluster secret file (64 hex digits).
pub fn read_secret(path: &Path) -> anyhow::Result<[u8; 32]> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the cluster secret {}: {e} (create one with `subcast-node keys secret --out FILE`)",
            path.display()
        )
    })?;
    hex32(&text, &format!("cluster secret {}", path.display()))
}

impl KeyFile {
    pub fn parse(text: &str) -> anyhow::Result<KeyFile> {
        let k: KeyFile = serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(k.node != 0, "node: 0 is reserved; ids start at 1");
        let mut seen = std::collections::HashSet::new();
        for p in &k.peers {
            anyhow::ensure!(seen.insert(p.id), "peer {} is listed twice", p.id);
            anyhow::ensure!(p.id != 0, "peer id 0 is reserved");
            anyhow::ensure!(p.id != k.node, "peer {} is the node itself", p.id);
            hex32(&p.key, &format!("key of peer {}", p.id))?;
        }
        Ok(k)
    }

    pub fn load(path: &Path) -> anyhow::Result<KeyFile> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read key file {}: {e} (write it with `subcast-node keys derive --secret SECRET --node ID --peers IDS --out FILE`)",
                path.display()
            )
        })?;
        KeyFile::parse(&text).map_err(|e| anyhow::anyhow!("key file {}: {e}", path.display()))
    }

    /// Provisioning: `node`'s pairs with `peers` (id, known address).
    pub fn derive(
        secret: &[u8; 32],
        key_id: u32,
        node: u32,
        peers: &[(u32, Option<Ipv6Addr>)],
    ) -> anyhow::Result<KeyFile> {
        let keys = PairKeys::provision(key_id, secret, node, peers.iter().map(|p| p.0))?;
        let all = keys.pair_keys();
        let mut out = Vec::new();
        for (id, addr) in peers {
            if let Some(k) = all.get(id)
                && !out.iter().any(|p: &PeerEntry| p.id == *id)
            {
                out.push(PeerEntry {
                    id: *id,
                    key: hex::encode(k),
                    address: *addr,
                });
            }
        }
        out.sort_by_key(|p| p.id);
        Ok(KeyFile {
            node,
            key_id,
            peers: out,
        })
    }

    pub fn to_yaml(&self) -> String {
        let mut s = format!(
            "# subcast-node pair keys of node {}: keep private (mode 0600)\nnode: {}\nkey_id: {}\npeers:\n",
            self.node, self.node, self.key_id
        );
        for p in &self.peers {
            s += &format!("  - {{ id: {}, key: \"{}\"", p.id, p.key);
            if let Some(a) = p.address {
                s += &format!(", address: \"{a}\"");
            }
            s += " }\n";
        }
        s
    }

    pub fn pair_keys(&self) -> anyhow::Result<PairKeys> {
        let mut pairs = Vec::new();
        for p in &self.peers {
            pairs.push((p.id, hex32(&p.key, "key")?));
        }
        Ok(PairKeys::from_pairs(self.key_id, self.node, pairs)?)
    }

    pub fn addresses(&self) -> Addresses {
        Addresses {
            known: self
                .peers
                .iter()
                .filter_map(|p| p.address.map(|a| (p.id, a)))
                .collect(),
        }
    }
}

/// Known addresses of peers: datagrams from elsewhere are refused.
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    known: HashMap<u32, Ipv6Addr>,
}

impl Addresses {
    pub fn new(known: impl IntoIterator<Item = (u32, Ipv6Addr)>) -> Self {
        Addresses {
            known: known.into_iter().collect(),
        }
    }

    /// Whether an authenticated datagram of `sender` may come from `from`.
    pub fn allows(&self, sender: u32, from: SocketAddr) -> bool {
        match self.known.get(&sender) {
            None => true,
            Some(a) => match from.ip() {
                IpAddr::V6(ip) => ip == *a,
                IpAddr::V4(ip) => ip.to_ipv6_mapped() == *a,
            },
        }
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

/// Parses a peer list: `1-5,100,7=fd00:5c::7` (ranges, single ids, an id
/// with its address).
pub fn parse_peers(spec: &str) -> anyhow::Result<Vec<(u32, Option<Ipv6Addr>)>> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some((id, addr)) = item.split_once('=') {
            let id: u32 = id
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("peer {item:?}: {id:?} is not a node id"))?;
            let addr: IpAddr = addr.trim().parse().map_err(|_| {
                anyhow::anyhow!("peer {item:?}: {addr:?} is not an IPv6 or IPv4 address")
            })?;
            let addr = crate::transport::canonical(addr);
            out.push((id, Some(addr)));
        } else if let Some((a, b)) = item.split_once('-') {
            let (a, b): (u32, u32) = (
                a.trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("peer range {item:?}: bad start"))?,
                b.trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("peer range {item:?}: bad end"))?,
            );
            anyhow::ensure!(
                a <= b && b - a < 100_000,
                "peer range {item:?}: start must not exceed end (at most 100000 ids)"
            );
            out.extend((a..=b).map(|i| (i, None)));
        } else {
            let id: u32 = item.parse().map_err(|_| {
                anyhow::anyhow!("peer {item:?} is not a node id, range or id=address")
            })?;
            out.push((id, None));
        }
    }
    anyhow::ensure!(!out.is_empty(), "--peers names no peer");
    Ok(out)
}

/// Writes `text` to `path` readable by the owner only.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_write_parse_round_trip() {
        let s = [4u8; 32];
        let peers = parse_peers("1-3, 100, 7=fd00:5c::7").unwrap();
        assert_eq!(peers.len(), 5);
        let k = KeyFile::derive(&s, 2, 3, &peers).unwrap();
        // Not itself.
        assert_eq!(
            k.peers.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![1, 2, 7, 100]
        );
        let back = KeyFile::parse(&k.to_yaml()).unwrap();
        let keys = back.pair_keys().unwrap();
        assert_eq!(keys.own_id(), 3);
        assert_eq!(keys.key_id(), 2);
        assert_eq!(
            keys.pair_keys()[&7],
            subcast_proto::pairkeys::derive_pair_key(&s, 7, 3)
        );
        let a = back.addresses();
        let seven: SocketAddr = "[fd00:5c::7]:7412".parse().unwrap();
        let other: SocketAddr = "[fd00:5c::8]:7412".parse().unwrap();
        assert!(a.allows(7, seven));
        assert!(!a.allows(7, other));
        assert!(a.allows(1, other), "no address known: allowed");
        // The secret is not in the file.
        assert!(!k.to_yaml().contains(&hex::encode(s)));
    }

    #[test]
    fn bad_files_and_specs_say_what_is_wrong() {
        let e = KeyFile::parse("node: 0\nkey_id: 1\npeers: []\n").unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
        let e =
            KeyFile::parse("node: 2\nkey_id: 1\npeers:\n  - { id: 3, key: \"00\" }\n").unwrap_err();
        assert!(e.to_string().contains("64 hex"), "{e}");
        assert!(parse_peers("5-2").is_err());
        assert!(parse_peers("x").is_err());
        assert!(parse_peers("3=nothere").is_err());
    }
}
