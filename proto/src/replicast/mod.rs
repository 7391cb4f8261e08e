//! Replicast messages between storage nodes and their clients (type codes
//! 0x40..0x5f).
//!
//! They share the 32-octet [`Header`] and the type code space of
//! [`crate::Message`], but travel in their own envelope ([`tagged`]): the
//! header's TAG_LIST flag is set and the single 32-octet tag of the push
//! protocol is replaced by a tag list, one 16-octet tag per intended
//! receiver, each under the key that sender and receiver share
//! ([`crate::pairkeys`]). Messages: [`ReplicastMessage`]; seal with
//! [`ReplicastSealer`] or [`seal`], open with [`open`] (DATA in place:
//! [`open_data`], [`seal_data_into`]).
//!
//! Body layouts (all integers big-endian; `id` is a 32-octet BLAKE3 hash):
//!
//! ```text
//! 0x40 PUT_PROPOSAL   txid:8 id:32 size:4 kind:1 replicas:1
//! 0x41 PUT_BID        txid:8 id:32 status:1 reason:1 earliest_start_us:8
//!                     queue_depth:4 free_bytes:8 retry_after_ms:4
//! 0x42 PUT_ACCEPT     txid:8 id:32 size:4 kind:1 datagram_payload:2
//!                     group:16 count:1 node_id:4 * count
//!                     [keys:1 (= count) wrapped_key:32 * keys]
//! 0x43 DATA           txid:8 index:4 total:4 payload:rest
//! 0x47 keyed DATA     its own short form, no header or tag list
//!                     (see [`transfer`])
//! 0x44 PUT_ACK        txid:8 id:32 status:1 (0 stored, 1 hash mismatch, 2 store
//!                     failed, 3 busy, 4 full, 5 too large)
//! 0x45 NACK           txid:8 count:2 (start:4 end:4) * count
//! 0x46 PUT_READY      txid:8 id:32        (target joined the delivery group)
//! 0x48 GET_REQUEST    txid:8 id:32
//! 0x49 GET_OFFER      txid:8 id:32 status:1 size:4
//! 0x4a GET_FETCH      txid:8 id:32 datagram_payload:2 count:2
//!                     (start:4 end:4) * count        (count 0 = everything)
//! 0x4c MANIFEST_QUERY txid:8 name_hash:32 version:8   (version 0 = newest)
//! 0x4d MANIFEST_OFFER txid:8 name_hash:32 count:1
//!                     (version:8 writer:4 id:32 size:4) * count
//! 0x4e untagged DATA  keyed DATA without its tag (see [`transfer`])
//! ```
//!
//! Contract: decoding is total and allocates only for bytes present.

mod body;
mod data;
pub mod tagged;
pub mod transfer;

pub use data::{DataView, data_len, open_data, seal_data_into};
pub use tagged::{
    MAX_RECEIVERS, ReplicastDatagram, ReplicastSealer, SealError, TAG_ENTRY_LEN, TAG_LEN, TAG_LIST,
    TagEntry, decode, open, seal, tag_encoded,
};
pub use transfer::{
    KEYED_DATA, KEYED_DATA_OVERHEAD, KeyedData, TAG_EVERY, TransferKey, UNTAGGED_DATA,
    WRAPPED_KEY_LEN, first_pass_tags, is_keyed_type, keyed_data_len, seal_keyed_data_into,
    seal_untagged_data_into, untagged_data_len,
};

use crate::envelope::MAX_DATAGRAM;
use crate::header::HEADER_LEN;
use serde::{Deserialize, Serialize};
use std::net::Ipv6Addr;

/// Replicast type codes (the header's Type octet).
pub mod replicast_type {
    pub const PUT_PROPOSAL: u8 = 0x40;
    pub const PUT_BID: u8 = 0x41;
    pub const PUT_ACCEPT: u8 = 0x42;
    pub const DATA: u8 = 0x43;
    pub const PUT_ACK: u8 = 0x44;
    pub const NACK: u8 = 0x45;
    pub const PUT_READY: u8 = 0x46;
    pub const GET_REQUEST: u8 = 0x48;
    pub const GET_OFFER: u8 = 0x49;
    pub const GET_FETCH: u8 = 0x4a;
    pub const MANIFEST_QUERY: u8 = 0x4c;
    pub const MANIFEST_OFFER: u8 = 0x4d;
}

/// Octets of a DATA datagram besides its payload and its tag entries:
/// header, txid, index, total and the tag count.
pub const DATA_FIXED_OVERHEAD: usize = HEADER_LEN + 16 + 1;

/// Octets of a DATA datagram besides its payload, with `receivers` tag
/// entries.
pub const fn data_overhead(receivers: usize) -> usize {
    DATA_FIXED_OVERHEAD + receivers * TAG_ENTRY_LEN
}

/// Largest payload one DATA datagram may carry (a DATA datagram this size
/// with one tag entry fits [`MAX_DATAGRAM`]; with more entries a sender
/// uses smaller payloads).
pub const MAX_DATAGRAM_PAYLOAD: usize = MAX_DATAGRAM - 80;
/// At most this many targets in one PUT_ACCEPT.
pub const MAX_TARGETS: usize = 32;
/// At most this many ranges in one NACK or GET_FETCH.
pub const MAX_RANGES: usize = 512;
/// At most this many versions in one MANIFEST_OFFER.
pub const MAX_OFFERED_VERSIONS: usize = 16;

/// A chunk id or name hash: BLAKE3, 32 octets.
pub type Hash32 = [u8; 32];

/// What a chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChunkKind {
    /// Object data, placed by its own id.
    Data = 0,
    /// A version manifest, placed by the hash of the object's name.
    Manifest = 1,
}

/// Client -> negotiating group: who can store this chunk?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutProposal {
    pub txid: u64,
    pub chunk_id: Hash32,
    pub size: u32,
    pub kind: ChunkKind,
    pub replicas: u8,
}

/// A member's answer to a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BidStatus {
    /// Can take the transfer at `earliest_start_us`.
    Bid = 0,
    /// Already holds the chunk (deduplication): counts as a replica.
    AlreadyStored = 1,
    /// Busy or full: ask again after `retry_after_ms`.
    NotNow = 2,
}

/// Why a member said "not now".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotNowReason {
    None = 0,
    Busy = 1,
    Full = 2,
    TooLarge = 3,
}

/// Member -> client (unicast).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutBid {
    pub txid: u64,
    pub chunk_id: Hash32,
    pub status: BidStatus,
    pub reason: NotNowReason,
    /// Unix time in microseconds at which the member can start receiving.
    pub earliest_start_us: u64,
    /// Transfers the member has in progress.
    pub queue_depth: u32,
    pub free_bytes: u64,
    pub retry_after_ms: u32,
}

/// Client -> negotiating group: these targets, this delivery group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutAccept {
    pub txid: u64,
    pub chunk_id: Hash32,
    pub size: u32,
    pub kind: ChunkKind,
    /// Payload octets per DATA datagram (the last may be shorter).
    pub datagram_payload: u16,
    /// Where DATA is sent: the rendezvous group, the negotiating group
    /// (either family, IPv4 as `::ffff:224.0.0.0/100`, see
    /// [`crate::group`]), or `::` for unicast delivery to each target.
    pub group: Ipv6Addr,
    /// Node ids (header sender ids of their bids).
    pub targets: Vec<u32>,
    /// The transfer key wrapped for each target, in the order of
    /// `targets` (DATA then comes as keyed DATA, 0x47); empty: DATA is
    /// 0x43 with a tag list.
    pub keys: Vec<[u8; WRAPPED_KEY_LEN]>,
}

/// One slice of a chunk (put payload or get reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    pub txid: u64,
    pub index: u32,
    pub total: u32,
    pub payload: Vec<u8>,
}

/// Outcome of a transfer at one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckStatus {
    /// Hash verified, written, fsynced, renamed.
    Stored = 0,
    /// BLAKE3 of the received payload is not the chunk id.
    HashMismatch = 1,
    /// The local write failed (I/O error).
    StoreFailed = 2,
    /// Refused before any payload: the target has as many transfers or
    /// buffered octets as its limits allow (a limit per sender included).
    Busy = 3,
    /// Refused, or the write failed: not enough free space.
    Full = 4,
    /// Refused: the chunk is larger than the target accepts.
    TooLarge = 5,
}

/// Target -> client (unicast).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutAck {
    pub txid: u64,
    pub chunk_id: Hash32,
    pub status: AckStatus,
}

/// A half-open range `[start, end)` of datagram indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Range {
    pub start: u32,
    pub end: u32,
}

/// Target -> client: datagram ranges still missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nack {
    pub txid: u64,
    pub ranges: Vec<Range>,
}

/// Target -> client (unicast): joined the rendezvous group named in the
/// PUT_ACCEPT; DATA may start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutReady {
    pub txid: u64,
    pub chunk_id: Hash32,
}

/// Client -> negotiating group: who holds this chunk?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRequest {
    pub txid: u64,
    pub chunk_id: Hash32,
}

/// A holder's answer to a get request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OfferStatus {
    Have = 0,
    /// The holder's copy failed verification; it is quarantined, never served.
    Corrupt = 1,
}

/// Holder -> client (unicast).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetOffer {
    pub txid: u64,
    pub chunk_id: Hash32,
    pub status: OfferStatus,
    pub size: u32,
}

/// Client -> one holder: send these ranges (none listed = everything).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetFetch {
    pub txid: u64,
    pub chunk_id: Hash32,
    pub datagram_payload: u16,
    pub ranges: Vec<Range>,
}

/// Client -> the name's negotiating group: which versions do you hold?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestQuery {
    pub txid: u64,
    pub name_hash: Hash32,
    /// 0 = the newest versions (up to [`MAX_OFFERED_VERSIONS`]).
    pub version: u64,
}

/// One version manifest a node holds. Versions are ordered by (version,
/// writer, manifest id): two writers that chose the same version number
/// both keep theirs, and the higher writer id is the newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionEntry {
    pub version: u64,
    /// Node id of the client that wrote the version.
    pub writer: u32,
    pub manifest_id: Hash32,
    pub size: u32,
}

/// Holder -> client (unicast), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestOffer {
    pub txid: u64,
    pub name_hash: Hash32,
    pub versions: Vec<VersionEntry>,
}

/// Every Replicast message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplicastMessage {
    PutProposal(PutProposal),
    PutBid(PutBid),
    PutAccept(PutAccept),
    Data(Data),
    PutAck(PutAck),
    Nack(Nack),
    PutReady(PutReady),
    GetRequest(GetRequest),
    GetOffer(GetOffer),
    GetFetch(GetFetch),
    ManifestQuery(ManifestQuery),
    ManifestOffer(ManifestOffer),
}

impl ReplicastMessage {
    pub fn msg_type(&self) -> u8 {
        use replicast_type::*;
        match self {
            ReplicastMessage::PutProposal(_) => PUT_PROPOSAL,
            ReplicastMessage::PutBid(_) => PUT_BID,
            ReplicastMessage::PutAccept(_) => PUT_ACCEPT,
            ReplicastMessage::Data(_) => DATA,
            ReplicastMessage::PutAck(_) => PUT_ACK,
            ReplicastMessage::Nack(_) => NACK,
            ReplicastMessage::PutReady(_) => PUT_READY,
            ReplicastMessage::GetRequest(_) => GET_REQUEST,
            ReplicastMessage::GetOffer(_) => GET_OFFER,
            ReplicastMessage::GetFetch(_) => GET_FETCH,
            ReplicastMessage::ManifestQuery(_) => MANIFEST_QUERY,
            ReplicastMessage::ManifestOffer(_) => MANIFEST_OFFER,
        }
    }

    /// Name used in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            ReplicastMessage::PutProposal(_) => "PUT_PROPOSAL",
            ReplicastMessage::PutBid(_) => "PUT_BID",
            ReplicastMessage::PutAccept(_) => "PUT_ACCEPT",
            ReplicastMessage::Data(_) => "DATA",
            ReplicastMessage::PutAck(_) => "PUT_ACK",
            ReplicastMessage::Nack(_) => "NACK",
            ReplicastMessage::PutReady(_) => "PUT_READY",
            ReplicastMessage::GetRequest(_) => "GET_REQUEST",
            ReplicastMessage::GetOffer(_) => "GET_OFFER",
            ReplicastMessage::GetFetch(_) => "GET_FETCH",
            ReplicastMessage::ManifestQuery(_) => "MANIFEST_QUERY",
            ReplicastMessage::ManifestOffer(_) => "MANIFEST_OFFER",
        }
    }

    /// The transaction id every Replicast message carries.
    pub fn txid(&self) -> u64 {
        match self {
            ReplicastMessage::PutProposal(m) => m.txid,
            ReplicastMessage::PutBid(m) => m.txid,
            ReplicastMessage::PutAccept(m) => m.txid,
            ReplicastMessage::Data(m) => m.txid,
            ReplicastMessage::PutAck(m) => m.txid,
            ReplicastMessage::Nack(m) => m.txid,
            ReplicastMessage::PutReady(m) => m.txid,
            ReplicastMessage::GetRequest(m) => m.txid,
            ReplicastMessage::GetOffer(m) => m.txid,
            ReplicastMessage::GetFetch(m) => m.txid,
            ReplicastMessage::ManifestQuery(m) => m.txid,
            ReplicastMessage::ManifestOffer(m) => m.txid,
        }
    }
}

impl crate::envelope::Body for ReplicastMessage {
    fn msg_type(&self) -> u8 {
        ReplicastMessage::msg_type(self)
    }
    fn emit_body(&self, w: &mut crate::wire::Writer) {
        ReplicastMessage::emit_body(self, w)
    }
    fn parse_body(
        msg_type: u8,
        r: &mut crate::wire::Reader<'_>,
    ) -> Result<Self, crate::error::DecodeError> {
        ReplicastMessage::parse_body(msg_type, r)
    }
}

// More tests (every message, truncations, bad fields): storage-node/tests/replicast_wire.rs.
