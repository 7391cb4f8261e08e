//! Multi-site replication: the site gateway (`subcast-node gateway`).
//!
//! A gateway is a client of its own site's cluster and holds one TCP
//! stream per inter-site link to other sites' gateways. The site's nodes
//! report every chunk and manifest they store to it (`node.gateway` in
//! their config, [`notify`]); it forwards by the rule of [`rule`]:
//! a chunk arriving on a link that is already known here is refused,
//! a new one is verified by hash, stored in the local cluster by the
//! normal put path and then sent on every other link. See the crate's
//! README, "Sites".

pub mod gateway;
pub mod notify;
pub mod rule;
pub mod status;
pub mod wire;

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The gateway's configuration file (`gateway --sites FILE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// This site's name (what peers and the handshake call it).
    pub site: String,
    /// Where the links' peers connect (TCP).
    pub listen: SocketAddr,
    /// Where the site's nodes connect to report their stores (TCP).
    pub notify_listen: SocketAddr,
    /// Secret the site's nodes prove (file of 64 hex digits).
    pub notify_secret: PathBuf,
    /// `/metrics` and `/v1/sites` (HTTP); absent = none.
    #[serde(default)]
    pub status: Option<SocketAddr>,
    /// Inter-site links, declared by their two ends: each gateway lists
    /// the other end of each of its links.
    #[serde(default)]
    pub links: Vec<LinkConfig>,
    /// Chunks kept in memory for forwarding, MiB (default 256).
    #[serde(default = "default_cache_mib")]
    pub cache_mib: usize,
    /// Socket buffers of the links, bytes (default 8 MiB: a 1 Gbit/s
    /// link with 60 ms of round trip).
    #[serde(default = "default_buffer")]
    pub socket_buffer: usize,
    #[serde(skip)]
    pub base_dir: PathBuf,
}

fn default_cache_mib() -> usize {
    256
}
fn default_buffer() -> usize {
    8 << 20
}

/// One end of a link.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The site at the other end.
    pub peer: String,
    /// Its gateway's `listen` address. The end whose site name sorts
    /// first connects; the other accepts (and may omit it).
    #[serde(default)]
    pub address: Option<SocketAddr>,
    /// The link's secret (64 hex digits), the same file at both ends.
    pub secret: PathBuf,
}

impl GatewayConfig {
    pub fn load(path: &Path) -> anyhow::Result<GatewayConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut c: GatewayConfig = serde_saphyr::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        c.base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
        anyhow::ensure!(
            !c.site.is_empty() && c.site.len() < 64,
            "site name must be 1 to 63 bytes"
        );
        for l in &c.links {
            anyhow::ensure!(
                l.peer != c.site,
                "link to {:?}: a site cannot link to itself",
                l.peer
            );
            anyhow::ensure!(
                l.peer.len() < 64,
                "link to {:?}: site name too long",
                l.peer
            );
            if c.site < l.peer && l.address.is_none() {
                anyhow::bail!(
                    "link to {:?}: this end connects (its name sorts first) and needs the peer's `address`",
                    l.peer
                );
            }
        }
        let mut peers: Vec<&str> = c.links.iter().map(|l| l.peer.as_str()).collect();
        peers.sort_unstable();
        anyhow::ensure!(
            peers.windows(2).all(|w| w[0] != w[1]),
            "a peer site is listed twice in `links`"
        );
        Ok(c)
    }

    pub fn secret(&self, p: &Path) -> anyhow::Result<[u8; 32]> {
        crate::keys::read_secret(&self.base_dir.join(p))
    }
}

/// `node.gateway`: where a storage node reports what it stores.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The gateway's `notify_listen` address.
    pub address: SocketAddr,
    /// The gateway's `notify_secret` (same file).
    pub secret: PathBuf,
}
