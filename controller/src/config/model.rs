//! The configuration file as written: YAML structs with source locations.
//!
//! Every struct denies unknown keys, so a typo is an error with a line and
//! column. Values that later checks complain about are `Spanned`, so the
//! complaint points at the value. [`super::validate`] turns this into the
//! runtime [`super::Config`].

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A string, integer or other value together with where it was written.
pub type S<T> = Spanned<T>;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub controller: RawController,
    #[serde(default)]
    pub keys: Vec<RawKey>,
    pub vlans: Vec<RawVlan>,
    #[serde(default)]
    pub switches: Vec<RawSwitch>,
    #[serde(default)]
    pub groups: Vec<RawGroup>,
    #[serde(default)]
    pub leases: RawLeases,
    #[serde(default)]
    pub fanout: RawFanout,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub rendezvous: RawRendezvous,
    #[serde(default)]
    pub budgets: RawBudgets,
}

/// `controller:` this process itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawController {
    /// Sender id in every datagram this controller seals (1..).
    pub id: Option<S<u32>>,
    /// UDP address for agents (HELLO/HEARTBEAT/ACK/NAK) and rendezvous.
    pub udp_listen: Option<S<String>>,
    /// SQLite file; `:memory:` keeps nothing across restarts.
    pub database: Option<S<String>>,
    /// Which slice of every pool this controller owns: "INDEX/COUNT",
    /// e.g. "0/2" and "1/2" for two controllers side by side.
    pub pool_slice: Option<S<String>>,
    /// An agent silent for this long is shown as down and refused.
    pub agent_timeout_ms: Option<S<u64>>,
    /// Most rows the audit log keeps (the oldest go first); 0: no limit.
    pub audit_max_rows: Option<S<u64>>,
}

/// `keys:` MAC keys, by id, in files of 64 hex digits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub id: S<u32>,
    /// Path of the key file, relative to the config file.
    pub file: Option<S<String>>,
    /// The key inline (64 hex digits): for labs only.
    pub hex: Option<S<String>>,
}

/// `vlans:` one broadcast domain and its rendezvous address pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVlan {
    /// 0 (untagged) to 4094.
    pub id: S<u16>,
    pub name: Option<S<String>>,
    /// Multicast prefixes leased as rendezvous groups, e.g. "ff15::5c:1:0/112".
    pub pool: Vec<S<String>>,
}

/// `switches:` a switch and the agent that drives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwitch {
    pub name: S<String>,
    /// The switch id the agent reports in HELLO/ACK/NAK.
    pub id: S<u32>,
    /// VLANs this switch carries; its agent gets SET_SUBSET for them.
    pub vlans: Vec<S<u16>>,
    pub agent: RawAgent,
    /// Most subset groups the controller asks this switch to hold; the
    /// effective budget is the lower of this and the capacity the agent
    /// reports in HELLO/HEARTBEAT.
    pub budget: Option<S<u32>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// "[fd00::1]:7410" or "10.0.0.1:7410" (the port defaults to 7410).
    pub address: S<String>,
    /// Key the controller seals SET_SUBSET/CLEAR with (one of the agent's
    /// `controller_keys`).
    pub key_id: S<u32>,
    /// Key the agent seals HELLO/HEARTBEAT/ACK/NAK with (its own `key`);
    /// default: `key_id`.
    pub agent_key_id: Option<S<u32>>,
}

/// `groups:` a negotiating (parent) group and its members.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: S<String>,
    pub vlan: S<u16>,
    pub parent: S<String>,
    pub members: Vec<RawMember>,
    /// Targets per transfer (k): the size of the target sets that
    /// `preenumerate: all` installs ahead of time.
    pub replicas: Option<S<u32>>,
    /// Target sets installed ahead of time: `none` (default), `all` (every
    /// set of `replicas` members) or `{ top: N }` (the N most requested).
    pub preenumerate: Option<S<RawPreenumerate>>,
}

/// `preenumerate:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawPreenumerate {
    Word(String),
    Top { top: u32 },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMember {
    pub name: S<String>,
    /// The member's address in an IPv6 group.
    pub ipv6: Option<S<String>>,
    /// The member's address in an IPv4 group.
    pub ipv4: Option<S<String>>,
    pub mac: S<String>,
}

/// `leases:` lifetimes of rendezvous groups.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeases {
    pub default_ms: Option<S<u64>>,
    pub max_ms: Option<S<u64>>,
    /// A group whose last lease ended stays installed this long for reuse.
    pub warm_ms: Option<S<u64>>,
    /// Agent-side lifetime margin past (latest lease end + warm_ms).
    pub hold_ms: Option<S<u64>>,
    /// Most leases one credential may hold at once (0: no limit).
    pub max_per_credential: Option<S<u32>>,
}

/// `budgets:` how many groups the controller asks switches to hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudgets {
    /// Budget of a switch whose agent reports no capacity and that has no
    /// `budget:` of its own.
    pub default: Option<S<u32>>,
    /// Share of every budget that pre-enumeration leaves free for misses.
    pub miss_reserve_percent: Option<S<u32>>,
}

/// `fanout:` retransmission of SET_SUBSET/CLEAR.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFanout {
    /// First retransmission after this long without an answer.
    pub retransmit_ms: Option<S<u64>>,
    /// Sends per agent (first send included) before giving up.
    pub attempts: Option<S<u32>>,
}

/// `api:` the HTTP API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub listen: Option<S<String>>,
    #[serde(default)]
    pub tokens: Vec<RawToken>,
    /// Largest request body accepted (bytes).
    pub max_body_bytes: Option<S<u64>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// "admin" or "storage-node".
    pub role: S<String>,
    pub name: Option<S<String>>,
    /// File holding the token (relative to the config file).
    pub file: Option<S<String>>,
    /// The token inline: for labs only.
    pub token: Option<S<String>>,
    /// Most leases this token may hold at once (default:
    /// leases.max_per_credential).
    pub max_leases: Option<S<u32>>,
}

/// `rendezvous:` the binary UDP rendezvous path for storage nodes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRendezvous {
    /// Key ids storage nodes may seal RENDEZVOUS_REQUEST with.
    #[serde(default)]
    pub key_ids: Vec<S<u32>>,
    /// Most leases one storage node (key id + sender id) may hold at once
    /// over UDP (default: leases.max_per_credential).
    pub max_leases_per_sender: Option<S<u32>>,
}
