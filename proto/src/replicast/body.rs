//! Bodies of the Replicast messages: for each message its `emit` and its
//! `parse` side by side. Parsing is total and allocates only for bytes
//! present; emitting truncates lists to their limits.

use super::*;
use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

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

impl PutProposal {
    fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.bytes(&self.chunk_id);
        w.u32(self.size);
        w.u8(self.kind as u8);
        w.u8(self.replicas);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PutProposal {
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
        })
    }
}

impl PutBid {
    fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.bytes(&self.chunk_id);
        w.u8(self.status as u8);
        w.u8(self.reason as u8);
        w.u64(self.earliest_start_us);
        w.u32(self.queue_depth);
        w.u64(self.free_bytes);
        w.u32(self.retry_after_ms);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PutBid {
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
        })
    }
}

impl PutAccept {
    fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.bytes(&self.chunk_id);
        w.u32(self.size);
        w.u8(self.kind as u8);
        w.u16(self.datagram_payload);
        w.ipv6(&self.group);
        let n = self.targets.len().min(MAX_TARGETS);
        w.u8(n as u8);
        for t in &self.targets[..n] {
            w.u32(*t);
        }
        debug_assert!(
            self.keys.is_empty() || self.keys.len() == self.targets.len(),
            "one wrapped key per target"
        );
        if !self.keys.is_empty() && self.keys.len() == n {
            w.u8(n as u8);
            for k in &self.keys {
                w.bytes(k);
            }
        }
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let txid = r.u64("txid")?;
        let chunk_id = r.array("chunk id")?;
        let size = r.u32("size")?;
        let kind = ChunkKind::parse(r.u8("chunk kind")?)?;
        let datagram_payload = check_payload_size(r.u16("datagram payload")?)?;
        let group = r.ipv6("group")?;
        if !crate::group::GroupAddr::is_group(&group) && !group.is_unspecified() {
            return Err(DecodeError::Invalid {
                field: "group",
                why: "must be multicast (IPv6, or IPv4 in IPv4-mapped form), or :: for unicast delivery",
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
        let mut keys = Vec::new();
        if r.remaining() > 0 {
            if usize::from(r.u8("key count")?) != n {
                return Err(DecodeError::Invalid {
                    field: "key count",
                    why: "must equal the target count (one wrapped key per target)",
                });
            }
            r.check_count(n, WRAPPED_KEY_LEN, "wrapped keys")?;
            for _ in 0..n {
                keys.push(r.array("wrapped key")?);
            }
        }
        Ok(PutAccept {
            txid,
            chunk_id,
            size,
            kind,
            datagram_payload,
            group,
            targets,
            keys,
        })
    }
}

impl Data {
    fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.u32(self.index);
        w.u32(self.total);
        w.bytes(&self.payload);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (txid, index, total) = parse_data_fields(r)?;
        let payload = r.bytes(r.remaining(), "payload")?.to_vec();
        check_data_payload(payload.len())?;
        Ok(Data {
            txid,
            index,
            total,
            payload,
        })
    }
}

/// DATA's fixed fields (txid, index, total), shared with the in-place path.
pub(super) fn parse_data_fields(r: &mut Reader<'_>) -> Result<(u64, u32, u32), DecodeError> {
    let txid = r.u64("txid")?;
    let index = r.u32("index")?;
    let total = r.u32("total")?;
    if index >= total {
        return Err(DecodeError::Invalid {
            field: "index",
            why: "must be below total",
        });
    }
    Ok((txid, index, total))
}

pub(super) fn check_data_payload(len: usize) -> Result<(), DecodeError> {
    if len == 0 {
        return Err(DecodeError::Invalid {
            field: "payload",
            why: "a DATA datagram carries at least one octet",
        });
    }
    Ok(())
}

impl PutAck {
    fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.bytes(&self.chunk_id);
        w.u8(self.status as u8);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PutAck {
            txid: r.u64("txid")?,
            chunk_id: r.array("chunk id")?,
            status: parse_enum(
                r.u8("ack status")?,
                &[
                    (0, AckStatus::Stored),
                    (1, AckStatus::HashMismatch),
                    (2, AckStatus::StoreFailed),
                    (3, AckStatus::Busy),
                    (4, AckStatus::Full),
                    (5, AckStatus::TooLarge),
                ],
                "ack status",
            )?,
        })
    }
}

impl Nack {
    fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        emit_ranges(&self.ranges, w);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Nack {
            txid: r.u64("txid")?,
            ranges: parse_ranges(r, false)?,
        })
    }
}

impl PutReady {
    fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.bytes(&self.chunk_id);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PutReady {
            txid: r.u64("txid")?,
            chunk_id: r.array("chunk id")?,
        })
    }
}

impl GetRequest {
    fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.bytes(&self.chunk_id);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetRequest {
            txid: r.u64("txid")?,
            chunk_id: r.array("chunk id")?,
        })
    }
}

impl GetOffer {
    fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.bytes(&self.chunk_id);
        w.u8(self.status as u8);
        w.u32(self.size);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetOffer {
            txid: r.u64("txid")?,
            chunk_id: r.array("chunk id")?,
            status: parse_enum(
                r.u8("offer status")?,
                &[(0, OfferStatus::Have), (1, OfferStatus::Corrupt)],
                "offer status",
            )?,
            size: r.u32("size")?,
        })
    }
}

impl GetFetch {
    fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.bytes(&self.chunk_id);
        w.u16(self.datagram_payload);
        emit_ranges(&self.ranges, w);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetFetch {
            txid: r.u64("txid")?,
            chunk_id: r.array("chunk id")?,
            datagram_payload: check_payload_size(r.u16("datagram payload")?)?,
            ranges: parse_ranges(r, true)?,
        })
    }
}

impl ManifestQuery {
    fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.bytes(&self.name_hash);
        w.u64(self.version);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ManifestQuery {
            txid: r.u64("txid")?,
            name_hash: r.array("name hash")?,
            version: r.u64("version")?,
        })
    }
}

impl ManifestOffer {
    fn emit(&self, w: &mut Writer) {
        w.u64(self.txid);
        w.bytes(&self.name_hash);
        let n = self.versions.len().min(MAX_OFFERED_VERSIONS);
        w.u8(n as u8);
        for v in &self.versions[..n] {
            w.u64(v.version);
            w.u32(v.writer);
            w.bytes(&v.manifest_id);
            w.u32(v.size);
        }
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let txid = r.u64("txid")?;
        let name_hash = r.array("name hash")?;
        let n = usize::from(r.u8("version count")?);
        if n > MAX_OFFERED_VERSIONS {
            return Err(DecodeError::Invalid {
                field: "version count",
                why: "more than 16 versions",
            });
        }
        r.check_count(n, 48, "versions")?;
        let mut versions = Vec::with_capacity(n);
        for _ in 0..n {
            versions.push(VersionEntry {
                version: r.u64("version")?,
                writer: r.u32("writer")?,
                manifest_id: r.array("manifest id")?,
                size: r.u32("manifest size")?,
            });
        }
        Ok(ManifestOffer {
            txid,
            name_hash,
            versions,
        })
    }
}

impl ReplicastMessage {
    pub(super) fn emit_body(&self, w: &mut Writer) {
        match self {
            ReplicastMessage::PutProposal(m) => m.emit(w),
            ReplicastMessage::PutBid(m) => m.emit(w),
            ReplicastMessage::PutAccept(m) => m.emit(w),
            ReplicastMessage::Data(m) => m.emit(w),
            ReplicastMessage::PutAck(m) => m.emit(w),
            ReplicastMessage::Nack(m) => m.emit(w),
            ReplicastMessage::PutReady(m) => m.emit(w),
            ReplicastMessage::GetRequest(m) => m.emit(w),
            ReplicastMessage::GetOffer(m) => m.emit(w),
            ReplicastMessage::GetFetch(m) => m.emit(w),
            ReplicastMessage::ManifestQuery(m) => m.emit(w),
            ReplicastMessage::ManifestOffer(m) => m.emit(w),
        }
    }

    pub(super) fn parse_body(msg_type: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use replicast_type::*;
        Ok(match msg_type {
            PUT_PROPOSAL => ReplicastMessage::PutProposal(PutProposal::parse(r)?),
            PUT_BID => ReplicastMessage::PutBid(PutBid::parse(r)?),
            PUT_ACCEPT => ReplicastMessage::PutAccept(PutAccept::parse(r)?),
            DATA => ReplicastMessage::Data(Data::parse(r)?),
            PUT_ACK => ReplicastMessage::PutAck(PutAck::parse(r)?),
            NACK => ReplicastMessage::Nack(Nack::parse(r)?),
            PUT_READY => ReplicastMessage::PutReady(PutReady::parse(r)?),
            GET_REQUEST => ReplicastMessage::GetRequest(GetRequest::parse(r)?),
            GET_OFFER => ReplicastMessage::GetOffer(GetOffer::parse(r)?),
            GET_FETCH => ReplicastMessage::GetFetch(GetFetch::parse(r)?),
            MANIFEST_QUERY => ReplicastMessage::ManifestQuery(ManifestQuery::parse(r)?),
            MANIFEST_OFFER => ReplicastMessage::ManifestOffer(ManifestOffer::parse(r)?),
            other => return Err(DecodeError::UnknownType(other)),
        })
    }
}

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
