//! Replicast messages between storage nodes and their clients (type codes
//! 0x40..0x5f).
//!
//! They share the 32-octet [`Header`], the keyed BLAKE3 tag and the type
//! code space of [`crate::Message`], but form their own closed enum,
//! [`ReplicastMessage`], with its own [`encode`] / [`decode`] / [`open`].
//!
//! Body layouts (all integers big-endian; `id` is a 32-octet BLAKE3 hash):
//!
//! ```text
//! 0x40 PUT_PROPOSAL   txid:8 id:32 size:4 kind:1 replicas:1
//! 0x41 PUT_BID        txid:8 id:32 status:1 reason:1 earliest_start_us:8
//!                     queue_depth:4 free_bytes:8 retry_after_ms:4
//! 0x42 PUT_ACCEPT     txid:8 id:32 size:4 kind:1 datagram_payload:2
//!                     group:16 count:1 node_id:4 * count
//! 0x43 DATA           txid:8 index:4 total:4 payload:rest
//! 0x44 PUT_ACK        txid:8 id:32 status:1
//! 0x45 NACK           txid:8 count:2 (start:4 end:4) * count
//! 0x46 PUT_READY      txid:8 id:32        (target joined the delivery group)
//! 0x48 GET_REQUEST    txid:8 id:32
//! 0x49 GET_OFFER      txid:8 id:32 status:1 size:4
//! 0x4a GET_FETCH      txid:8 id:32 datagram_payload:2 count:2
//!                     (start:4 end:4) * count        (count 0 = everything)
//! 0x4c MANIFEST_QUERY txid:8 name_hash:32 version:8   (version 0 = newest)
//! 0x4d MANIFEST_OFFER txid:8 name_hash:32 count:1
//!                     (version:8 id:32 size:4) * count
//! ```
//!
//! Contract: decoding is total and allocates only for bytes present.

use crate::auth::{Key, Keyring, ReplayGuard};
use crate::envelope::{
    Body, Envelope, MAX_DATAGRAM, Origin, Sealer, decode_any, open_any, seal_any,
};
use crate::error::{DecodeError, OpenError};
use crate::header::{HEADER_LEN, MAC_LEN};
use crate::wire::{Reader, Writer};
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

/// Bytes around the payload of a DATA datagram: header, txid, index,
/// total, tag.
pub const DATA_OVERHEAD: usize = HEADER_LEN + 16 + MAC_LEN;
/// Largest payload one DATA datagram may carry.
pub const MAX_DATAGRAM_PAYLOAD: usize = MAX_DATAGRAM - DATA_OVERHEAD;
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

impl ChunkKind {
    fn parse(v: u8) -> Result<Self, DecodeError> {
        match v {
            0 => Ok(ChunkKind::Data),
            1 => Ok(ChunkKind::Manifest),
            _ => Err(DecodeError::Invalid {
                field: "chunk kind",
                why: "must be 0 (data) or 1 (manifest)",
            }),
        }
    }
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
    /// Where DATA is sent: the rendezvous group, the negotiating group,
    /// or `::` for unicast delivery to each target.
    pub group: Ipv6Addr,
    /// Node ids (header sender ids of their bids).
    pub targets: Vec<u32>,
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
    /// The local write failed (disk full, I/O error).
    StoreFailed = 2,
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

/// One version manifest a node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionEntry {
    pub version: u64,
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

fn parse_enum<T: Copy>(v: u8, all: &[(u8, T)], field: &'static str) -> Result<T, DecodeError> {
    all.iter()
        .find(|(c, _)| *c == v)
        .map(|(_, t)| *t)
        .ok_or(DecodeError::Invalid {
            field,
            why: "unknown code",
        })
}

fn emit_ranges(ranges: &[Range], w: &mut Writer) {
    w.u16(ranges.len().min(MAX_RANGES) as u16);
    for r in ranges.iter().take(MAX_RANGES) {
        w.u32(r.start);
        w.u32(r.end);
    }
}

fn parse_ranges(r: &mut Reader<'_>, allow_empty: bool) -> Result<Vec<Range>, DecodeError> {
    let n = usize::from(r.u16("range count")?);
    if n == 0 && !allow_empty {
        return Err(DecodeError::Invalid {
            field: "range count",
            why: "a NACK names at least one range",
        });
    }
    if n > MAX_RANGES {
        return Err(DecodeError::Invalid {
            field: "range count",
            why: "more than 512 ranges",
        });
    }
    r.check_count(n, 8, "ranges")?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let start = r.u32("range start")?;
        let end = r.u32("range end")?;
        if start >= end {
            return Err(DecodeError::Invalid {
                field: "range",
                why: "start must be below end",
            });
        }
        v.push(Range { start, end });
    }
    Ok(v)
}

fn check_payload_size(v: u16) -> Result<u16, DecodeError> {
    if v == 0 || usize::from(v) > MAX_DATAGRAM_PAYLOAD {
        return Err(DecodeError::Invalid {
            field: "datagram payload",
            why: "must be 1 to 9136 octets",
        });
    }
    Ok(v)
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

    fn emit_body(&self, w: &mut Writer) {
        match self {
            ReplicastMessage::PutProposal(m) => {
                w.u64(m.txid);
                w.bytes(&m.chunk_id);
                w.u32(m.size);
                w.u8(m.kind as u8);
                w.u8(m.replicas);
            }
            ReplicastMessage::PutBid(m) => {
                w.u64(m.txid);
                w.bytes(&m.chunk_id);
                w.u8(m.status as u8);
                w.u8(m.reason as u8);
                w.u64(m.earliest_start_us);
                w.u32(m.queue_depth);
                w.u64(m.free_bytes);
                w.u32(m.retry_after_ms);
            }
            ReplicastMessage::PutAccept(m) => {
                w.u64(m.txid);
                w.bytes(&m.chunk_id);
                w.u32(m.size);
                w.u8(m.kind as u8);
                w.u16(m.datagram_payload);
                w.ipv6(&m.group);
                let n = m.targets.len().min(MAX_TARGETS);
                w.u8(n as u8);
                for t in &m.targets[..n] {
                    w.u32(*t);
                }
            }
            ReplicastMessage::Data(m) => {
                w.u64(m.txid);
                w.u32(m.index);
                w.u32(m.total);
                w.bytes(&m.payload);
            }
            ReplicastMessage::PutAck(m) => {
                w.u64(m.txid);
                w.bytes(&m.chunk_id);
                w.u8(m.status as u8);
            }
            ReplicastMessage::Nack(m) => {
                w.u64(m.txid);
                emit_ranges(&m.ranges, w);
            }
            ReplicastMessage::GetRequest(m) => {
                w.u64(m.txid);
                w.bytes(&m.chunk_id);
            }
            ReplicastMessage::PutReady(m) => {
                w.u64(m.txid);
                w.bytes(&m.chunk_id);
            }
            ReplicastMessage::GetOffer(m) => {
                w.u64(m.txid);
                w.bytes(&m.chunk_id);
                w.u8(m.status as u8);
                w.u32(m.size);
            }
            ReplicastMessage::GetFetch(m) => {
                w.u64(m.txid);
                w.bytes(&m.chunk_id);
                w.u16(m.datagram_payload);
                emit_ranges(&m.ranges, w);
            }
            ReplicastMessage::ManifestQuery(m) => {
                w.u64(m.txid);
                w.bytes(&m.name_hash);
                w.u64(m.version);
            }
            ReplicastMessage::ManifestOffer(m) => {
                w.u64(m.txid);
                w.bytes(&m.name_hash);
                let n = m.versions.len().min(MAX_OFFERED_VERSIONS);
                w.u8(n as u8);
                for v in &m.versions[..n] {
                    w.u64(v.version);
                    w.bytes(&v.manifest_id);
                    w.u32(v.size);
                }
            }
        }
    }

    fn parse_body(msg_type: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use replicast_type::*;
        Ok(match msg_type {
            PUT_PROPOSAL => ReplicastMessage::PutProposal(PutProposal {
                txid: r.u64("txid")?,
                chunk_id: r.array("chunk id")?,
                size: r.u32("size")?,
                kind: ChunkKind::parse(r.u8("chunk kind")?)?,
                replicas: match r.u8("replicas")? {
                    0 => {
                        return Err(DecodeError::Invalid {
                            field: "replicas",
                            why: "must be at least 1",
                        });
                    }
                    n => n,
                },
            }),
            PUT_BID => ReplicastMessage::PutBid(PutBid {
                txid: r.u64("txid")?,
                chunk_id: r.array("chunk id")?,
                status: parse_enum(
                    r.u8("bid status")?,
                    &[
                        (0, BidStatus::Bid),
                        (1, BidStatus::AlreadyStored),
                        (2, BidStatus::NotNow),
                    ],
                    "bid status",
                )?,
                reason: parse_enum(
                    r.u8("not-now reason")?,
                    &[
                        (0, NotNowReason::None),
                        (1, NotNowReason::Busy),
                        (2, NotNowReason::Full),
                        (3, NotNowReason::TooLarge),
                    ],
                    "not-now reason",
                )?,
                earliest_start_us: r.u64("earliest start")?,
                queue_depth: r.u32("queue depth")?,
                free_bytes: r.u64("free bytes")?,
                retry_after_ms: r.u32("retry after")?,
            }),
            PUT_ACCEPT => {
                let txid = r.u64("txid")?;
                let chunk_id = r.array("chunk id")?;
                let size = r.u32("size")?;
                let kind = ChunkKind::parse(r.u8("chunk kind")?)?;
                let datagram_payload = check_payload_size(r.u16("datagram payload")?)?;
                let group = r.ipv6("group")?;
                if !group.is_multicast() && !group.is_unspecified() {
                    return Err(DecodeError::Invalid {
                        field: "group",
                        why: "must be multicast, or :: for unicast delivery",
                    });
                }
                let n = usize::from(r.u8("target count")?);
                if n == 0 || n > MAX_TARGETS {
                    return Err(DecodeError::Invalid {
                        field: "target count",
                        why: "must be 1 to 32",
                    });
                }
                r.check_count(n, 4, "targets")?;
                let mut targets = Vec::with_capacity(n);
                for _ in 0..n {
                    targets.push(r.u32("target")?);
                }
                ReplicastMessage::PutAccept(PutAccept {
                    txid,
                    chunk_id,
                    size,
                    kind,
                    datagram_payload,
                    group,
                    targets,
                })
            }
            DATA => {
                let txid = r.u64("txid")?;
                let index = r.u32("index")?;
                let total = r.u32("total")?;
                if index >= total {
                    return Err(DecodeError::Invalid {
                        field: "index",
                        why: "must be below total",
                    });
                }
                let payload = r.bytes(r.remaining(), "payload")?.to_vec();
                if payload.is_empty() {
                    return Err(DecodeError::Invalid {
                        field: "payload",
                        why: "a DATA datagram carries at least one octet",
                    });
                }
                ReplicastMessage::Data(Data {
                    txid,
                    index,
                    total,
                    payload,
                })
            }
            PUT_ACK => ReplicastMessage::PutAck(PutAck {
                txid: r.u64("txid")?,
                chunk_id: r.array("chunk id")?,
                status: parse_enum(
                    r.u8("ack status")?,
                    &[
                        (0, AckStatus::Stored),
                        (1, AckStatus::HashMismatch),
                        (2, AckStatus::StoreFailed),
                    ],
                    "ack status",
                )?,
            }),
            NACK => ReplicastMessage::Nack(Nack {
                txid: r.u64("txid")?,
                ranges: parse_ranges(r, false)?,
            }),
            PUT_READY => ReplicastMessage::PutReady(PutReady {
                txid: r.u64("txid")?,
                chunk_id: r.array("chunk id")?,
            }),
            GET_REQUEST => ReplicastMessage::GetRequest(GetRequest {
                txid: r.u64("txid")?,
                chunk_id: r.array("chunk id")?,
            }),
            GET_OFFER => ReplicastMessage::GetOffer(GetOffer {
                txid: r.u64("txid")?,
                chunk_id: r.array("chunk id")?,
                status: parse_enum(
                    r.u8("offer status")?,
                    &[(0, OfferStatus::Have), (1, OfferStatus::Corrupt)],
                    "offer status",
                )?,
                size: r.u32("size")?,
            }),
            GET_FETCH => ReplicastMessage::GetFetch(GetFetch {
                txid: r.u64("txid")?,
                chunk_id: r.array("chunk id")?,
                datagram_payload: check_payload_size(r.u16("datagram payload")?)?,
                ranges: parse_ranges(r, true)?,
            }),
            MANIFEST_QUERY => ReplicastMessage::ManifestQuery(ManifestQuery {
                txid: r.u64("txid")?,
                name_hash: r.array("name hash")?,
                version: r.u64("version")?,
            }),
            MANIFEST_OFFER => {
                let txid = r.u64("txid")?;
                let name_hash = r.array("name hash")?;
                let n = usize::from(r.u8("version count")?);
                if n > MAX_OFFERED_VERSIONS {
                    return Err(DecodeError::Invalid {
                        field: "version count",
                        why: "more than 16 versions",
                    });
                }
                r.check_count(n, 44, "versions")?;
                let mut versions = Vec::with_capacity(n);
                for _ in 0..n {
                    versions.push(VersionEntry {
                        version: r.u64("version")?,
                        manifest_id: r.array("manifest id")?,
                        size: r.u32("manifest size")?,
                    });
                }
                ReplicastMessage::ManifestOffer(ManifestOffer {
                    txid,
                    name_hash,
                    versions,
                })
            }
            other => return Err(DecodeError::UnknownType(other)),
        })
    }
}

/// A decoded Replicast datagram: header, message and the tag it carried.
pub type ReplicastDatagram = Envelope<ReplicastMessage>;

impl Body for ReplicastMessage {
    fn msg_type(&self) -> u8 {
        ReplicastMessage::msg_type(self)
    }
    fn emit_body(&self, w: &mut Writer) {
        ReplicastMessage::emit_body(self, w)
    }
    fn parse_body(msg_type: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        ReplicastMessage::parse_body(msg_type, r)
    }
}

/// Encodes and tags `msg` with `key` (the header's key id is `key.id`).
pub fn encode(key: &Key, origin: Origin, msg: &ReplicastMessage) -> Vec<u8> {
    seal_any(key, origin, msg)
}

/// Decodes a Replicast datagram without checking its tag. Total.
pub fn decode(bytes: &[u8]) -> Result<ReplicastDatagram, DecodeError> {
    decode_any(bytes)
}

/// Decodes, verifies the tag against `keyring` and admits the header into
/// the replay guard.
pub fn open(
    keyring: &Keyring,
    guard: &mut ReplayGuard,
    bytes: &[u8],
    now_us: u64,
) -> Result<ReplicastDatagram, OpenError> {
    open_any(keyring, guard, bytes, now_us)
}

/// Stamps outgoing Replicast datagrams (the same [`Sealer`] as the push
/// protocol's: one key, one sender id, increasing sequence numbers).
pub type ReplicastSealer = Sealer;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_count_refused_without_allocation() {
        // A NACK claiming 512 ranges but carrying one.
        let mut w = Writer::default();
        w.u64(1);
        w.u16(512);
        w.u32(0);
        w.u32(1);
        let mut r = Reader::new(&w.buf);
        let e = ReplicastMessage::parse_body(replicast_type::NACK, &mut r).unwrap_err();
        assert_eq!(e.kind(), "truncated");
    }
}
// More tests (every message, truncations, bad fields): storage-node/tests/replicast_wire.rs.
