//! The `node:` section of the configuration: what `serve` needs beyond
//! the cluster part (store, metrics, limits, journal, scrub).

use super::default_true;
use serde::Deserialize;
use std::path::PathBuf;

/// The `node:` section, needed by `serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Unique node id (the header's sender id); not 0. With `keys:` it is
    /// the key file's `node` (give it here only to cross-check); with the
    /// insecure `key:` it is required.
    #[serde(default)]
    pub id: Option<u32>,
    /// Chunk store directory.
    pub store: PathBuf,
    /// Prometheus `/metrics` address (e.g. `"[::]:9412"`); absent = no
    /// metrics server.
    #[serde(default)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Indices into `negotiating_groups` this node serves (default: all).
    #[serde(default)]
    pub member_of: Option<Vec<usize>>,
    /// Receives in progress at most; beyond, bids say "not now (busy)"
    /// and a PUT_ACCEPT is refused with PUT_ACK "busy".
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Largest chunk accepted ("too large" beyond).
    #[serde(default = "default_max_chunk")]
    pub max_chunk_size: usize,
    /// Bytes of disk kept free; beyond, bids say "not now (full)" and a
    /// PUT_ACCEPT is refused with PUT_ACK "full".
    #[serde(default = "default_reserve")]
    pub reserve_bytes: u64,
    /// Octets of chunk buffers held for receives at most ("busy" beyond).
    #[serde(default = "default_max_receive_bytes")]
    pub max_receive_bytes: u64,
    /// Receives from one sender at once at most ("busy" beyond).
    #[serde(default = "default_max_receives_per_peer")]
    pub max_receives_per_peer: usize,
    /// Fetches served at once at most (further GET_FETCHes unanswered).
    #[serde(default = "default_max_serves")]
    pub max_serves: usize,
    /// Fetches served to one requester at once at most.
    #[serde(default = "default_max_serves_per_peer")]
    pub max_serves_per_peer: usize,
    /// Disk reads in flight (offers, fetches) at most.
    #[serde(default = "default_max_reads")]
    pub max_reads: usize,
    /// Smallest payload per DATA datagram a GET_FETCH may ask for.
    #[serde(default = "default_min_fetch_payload")]
    pub min_fetch_payload: usize,
    /// Answers queued for sending at most (further ones are dropped).
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// Background verification: MiB read per second (0 turns it off).
    #[serde(default = "default_scrub_rate")]
    pub scrub_rate_mib_s: f64,
    /// A scrub pass over every chunk this often, in seconds (the first
    /// right after start).
    #[serde(default = "default_scrub_interval")]
    pub scrub_interval_s: u64,
    /// Lost copies (corrupt or missing) fetched back at once at most.
    #[serde(default = "default_max_repairs")]
    pub max_repairs: usize,
    /// MiB of the store's journal ring (`<store>/journal/ring`, prewritten
    /// in the background after the first start); chunks up to a quarter of
    /// it are durable once their record is synced there. 0 (the default)
    /// turns it off: every chunk's file and directory fsynced before its
    /// ACK (README "Journal": it did not pay on the lab's shared disk).
    #[serde(default = "default_journal_mib")]
    pub journal_mib: u64,
    /// The journal's checkpoint (chunk files fsynced, records freed) at
    /// least this often, in milliseconds.
    #[serde(default = "default_journal_checkpoint_ms")]
    pub journal_checkpoint_ms: u64,
    /// Only chunks up to this many KiB go through the journal (0: up to a
    /// quarter of the ring). A small bound journals manifests (a few
    /// hundred octets) and not the data chunks, so each byte of data is
    /// still written once.
    #[serde(default)]
    pub journal_max_kib: u64,
    /// Chunk files written around the page cache (`O_DIRECT`; README
    /// "Chunk files and the page cache"). Falls back by itself where the
    /// file system refuses it; false always writes through the cache.
    #[serde(default = "default_true")]
    pub direct_io: bool,
    /// Chunks shorter than this many KiB go through the page cache even
    /// with `direct_io` (a small file's direct write and its fsync's
    /// commit come one after the other).
    #[serde(default = "default_direct_io_min_kib")]
    pub direct_io_min_kib: u64,
    /// Multi-site: report every chunk stored to this site gateway
    /// (`{address, secret}`; README "Sites").
    #[serde(default)]
    pub gateway: Option<crate::sites::NotifyConfig>,
}

fn default_scrub_rate() -> f64 {
    16.0
}
fn default_scrub_interval() -> u64 {
    24 * 3600
}
fn default_max_repairs() -> usize {
    4
}
fn default_journal_mib() -> u64 {
    0
}
fn default_direct_io_min_kib() -> u64 {
    (crate::direct_io::DEFAULT_MIN_DIRECT / 1024) as u64
}
fn default_journal_checkpoint_ms() -> u64 {
    1000
}

impl NodeSection {
    /// The journal's settings; `None` when it is off.
    pub fn journal(&self) -> Option<crate::journal::JournalConfig> {
        (self.journal_mib > 0).then(|| crate::journal::JournalConfig {
            size: self.journal_mib << 20,
            checkpoint_every: std::time::Duration::from_millis(self.journal_checkpoint_ms.max(1)),
            max_record: usize::try_from(self.journal_max_kib.saturating_mul(1024))
                .unwrap_or(usize::MAX),
        })
    }

    pub fn scrub_params(&self) -> crate::node::scrub::ScrubParams {
        crate::node::scrub::ScrubParams {
            rate_bytes_per_s: (self.scrub_rate_mib_s * f64::from(1 << 20)) as u64,
            pass_interval: std::time::Duration::from_secs(self.scrub_interval_s.max(1)),
        }
    }

    pub fn limits(&self) -> crate::node::limits::Limits {
        crate::node::limits::Limits {
            max_concurrent: self.max_concurrent,
            max_receive_bytes: self.max_receive_bytes,
            max_receives_per_peer: self.max_receives_per_peer,
            max_chunk_size: self.max_chunk_size,
            reserve_bytes: self.reserve_bytes,
            max_serves: self.max_serves,
            max_serves_per_peer: self.max_serves_per_peer,
            max_reads: self.max_reads,
            min_fetch_payload: self.min_fetch_payload,
            max_queue: self.max_queue,
        }
    }
}

fn default_max_receive_bytes() -> u64 {
    crate::node::limits::Limits::default().max_receive_bytes
}
fn default_max_receives_per_peer() -> usize {
    crate::node::limits::Limits::default().max_receives_per_peer
}
fn default_max_serves() -> usize {
    crate::node::limits::Limits::default().max_serves
}
fn default_max_serves_per_peer() -> usize {
    crate::node::limits::Limits::default().max_serves_per_peer
}
fn default_max_reads() -> usize {
    crate::node::limits::Limits::default().max_reads
}
fn default_min_fetch_payload() -> usize {
    crate::node::limits::Limits::default().min_fetch_payload
}
fn default_max_queue() -> usize {
    crate::node::limits::Limits::default().max_queue
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
