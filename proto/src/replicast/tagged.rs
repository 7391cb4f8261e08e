//! The Replicast envelope: header with the TAG_LIST flag, body, tag list.
//!
//! ```text
//! header (32, Flags = TAG_LIST) | body (Body Length) | count:1 (1..255)
//! | (receiver id:4 | tag:16) * count
//! ```
//!
//! `digest = BLAKE3(header || body)`; the entry for receiver `r` carries
//! the first 16 octets of `BLAKE3-keyed(K(sender, r), digest)`, with the
//! key sender and receiver share ([`crate::pairkeys`]). The datagram is
//! hashed once whatever the number of receivers; each entry costs one
//! keyed hash of 32 octets. A receiver finds the entry with its own id,
//! verifies it under the key it shares with the header's Sender ID, and
//! refuses a datagram without one ([`OpenError::NotForMe`]) before
//! hashing anything. In the insecure single-key mode there is one entry,
//! for [`ANY_RECEIVER`], under the shared key.
//!
//! The tag list itself is not covered by the tags: removing an entry only
//! keeps that receiver from accepting the datagram (as dropping it would),
//! and adding one needs a key the attacker does not hold.

use super::{ReplicastMessage, body};
use crate::auth::ReplayGuard;
use crate::envelope::MAX_DATAGRAM;
use crate::error::{DecodeError, OpenError};
use crate::header::{HEADER_LEN, Header};
use crate::pairkeys::{ANY_RECEIVER, PairKeys};
use crate::wire::{Reader, Writer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Header flag: the datagram ends in a tag list (set on every Replicast
/// datagram, never on push or rendezvous datagrams).
pub const TAG_LIST: u16 = 0x0001;
/// Octets of one tag.
pub const TAG_LEN: usize = 16;
/// Octets of one tag-list entry (receiver id and tag).
pub const TAG_ENTRY_LEN: usize = 4 + TAG_LEN;
/// Most entries in one tag list (its count is one octet).
pub const MAX_RECEIVERS: usize = 255;

/// One entry of a tag list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagEntry {
    pub receiver: u32,
    pub tag: [u8; TAG_LEN],
}

/// A decoded Replicast datagram: header, message and its tag list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicastDatagram {
    pub header: Header,
    pub message: ReplicastMessage,
    pub tags: Vec<TagEntry>,
}

/// Why a datagram could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "none of the receivers {0:?} is a peer in this node's key file: provision their pair keys (`subcast-node keys derive`)"
    )]
    NoReceiver(Vec<u32>),
    #[error("sealed datagram would be {0} octets, more than the maximum of 9216")]
    TooLong(usize),
}

/// The parts of a datagram that decoding finds, before any key is used.
pub(super) struct Frame<'a> {
    pub header: Header,
    /// Header and body: what the digest covers.
    pub signed: &'a [u8],
    pub body: &'a [u8],
    /// The raw entries (count * 20 octets).
    entries: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Splits a datagram. Total: never panics.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(DecodeError::TooLong(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        let header = Header::parse_checked(&mut r, |flags| {
            if flags & !TAG_LIST != 0 {
                return Err(DecodeError::Invalid {
                    field: "flags",
                    why: "unknown flag (only TAG_LIST, 0x0001, is defined)",
                });
            }
            if flags & TAG_LIST == 0 {
                return Err(DecodeError::Invalid {
                    field: "flags",
                    why: "a Replicast datagram carries a tag list (flag 0x0001)",
                });
            }
            Ok(())
        })?;
        let body = r.bytes(usize::from(header.body_len), "body")?;
        let n = usize::from(r.u8("tag count")?);
        if n == 0 {
            return Err(DecodeError::Invalid {
                field: "tag count",
                why: "a datagram names at least one receiver",
            });
        }
        r.check_count(n, TAG_ENTRY_LEN, "tag list")?;
        let entries = r.bytes(n * TAG_ENTRY_LEN, "tag list")?;
        r.finish()?;
        Ok(Frame {
            header,
            signed: &bytes[..HEADER_LEN + body.len()],
            body,
            entries,
        })
    }

    pub fn entries(&self) -> impl Iterator<Item = TagEntry> + '_ {
        self.entries.chunks_exact(TAG_ENTRY_LEN).map(|e| TagEntry {
            receiver: u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
            tag: e[4..].try_into().unwrap_or([0; TAG_LEN]),
        })
    }

    /// Checks this receiver's entry: key generation, an entry for it, the
    /// tag under the key it shares with the sender. Does not touch the
    /// replay state.
    pub fn verify(&self, keys: &PairKeys) -> Result<(), OpenError> {
        let h = &self.header;
        if h.key_id != keys.key_id() {
            return Err(OpenError::UnknownKey(h.key_id));
        }
        let me = keys.own_entry();
        let entry = self
            .entries()
            .find(|e| e.receiver == me)
            .ok_or(OpenError::NotForMe {
                sender_id: h.sender_id,
                receiver: me,
            })?;
        let key = keys.open_key(h.sender_id).ok_or(OpenError::UnknownSender {
            sender_id: h.sender_id,
        })?;
        let digest = blake3::hash(self.signed);
        let want = tag(key, &digest);
        if !constant_time_eq::constant_time_eq_16(&want, &entry.tag) {
            return Err(OpenError::BadMac { key_id: h.key_id });
        }
        Ok(())
    }

    pub fn message(&self) -> Result<ReplicastMessage, DecodeError> {
        let mut br = Reader::new(self.body);
        let m = ReplicastMessage::parse_body(self.header.msg_type, &mut br)?;
        br.finish()?;
        Ok(m)
    }
}

/// One entry's tag.
fn tag(key: &[u8; 32], digest: &blake3::Hash) -> [u8; TAG_LEN] {
    let full = blake3::keyed_hash(key, digest.as_bytes());
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&full.as_bytes()[..TAG_LEN]);
    t
}

/// Appends the tag list for `receivers` over `out[start..]` (header and
/// body). Receivers without a pair key, duplicates and the sender itself
/// are skipped; in single-key mode the list is the one wildcard entry.
pub(super) fn emit_tags(
    out: &mut Vec<u8>,
    start: usize,
    keys: &PairKeys,
    receivers: &[u32],
) -> Result<(), SealError> {
    let digest = blake3::hash(&out[start..]);
    let count_at = out.len();
    out.push(0);
    let mut n = 0usize;
    if keys.is_shared() {
        if let Some(k) = keys.tag_key(ANY_RECEIVER) {
            out.extend_from_slice(&ANY_RECEIVER.to_be_bytes());
            out.extend_from_slice(&tag(k, &digest));
            n = 1;
        }
    } else {
        for r in receivers {
            if n == MAX_RECEIVERS {
                break;
            }
            let listed = out[count_at + 1..]
                .chunks_exact(TAG_ENTRY_LEN)
                .any(|e| e[..4] == r.to_be_bytes());
            let Some(k) = keys.tag_key(*r) else { continue };
            if listed {
                continue;
            }
            out.extend_from_slice(&r.to_be_bytes());
            out.extend_from_slice(&tag(k, &digest));
            n += 1;
        }
    }
    if n == 0 {
        out.truncate(start);
        return Err(SealError::NoReceiver(receivers.to_vec()));
    }
    out[count_at] = n as u8;
    let len = out.len() - start;
    if len > MAX_DATAGRAM {
        out.truncate(start);
        return Err(SealError::TooLong(len));
    }
    Ok(())
}

/// Appends header (with TAG_LIST) for `msg_type` and a body of `body_len`
/// octets written by `body`, then the tag list.
pub(super) fn seal_with(
    out: &mut Vec<u8>,
    keys: &PairKeys,
    sequence: u64,
    timestamp_us: u64,
    receivers: &[u32],
    msg_type: u8,
    body: impl FnOnce(&mut Writer),
) -> Result<(), SealError> {
    let start = out.len();
    let mut w = Writer {
        buf: std::mem::take(out),
    };
    let header_at = w.buf.len();
    Header {
        msg_type,
        body_len: 0,
        key_id: keys.key_id(),
        sender_id: keys.own_id(),
        sequence,
        timestamp_us,
    }
    .emit_with_flags(&mut w, TAG_LIST);
    body(&mut w);
    let body_len = w.buf.len() - header_at - HEADER_LEN;
    let Ok(bl) = u16::try_from(body_len) else {
        let len = w.buf.len() - start;
        w.buf.truncate(start);
        *out = w.buf;
        return Err(SealError::TooLong(len));
    };
    w.buf[header_at + 6..header_at + 8].copy_from_slice(&bl.to_be_bytes());
    *out = w.buf;
    emit_tags(out, start, keys, receivers)
}

/// Encodes `msg` from `keys`' node (Sender ID, Key ID) with a tag for each
/// of `receivers` it shares a key with.
pub fn seal(
    keys: &PairKeys,
    sequence: u64,
    timestamp_us: u64,
    receivers: &[u32],
    msg: &ReplicastMessage,
) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::with_capacity(256);
    seal_with(
        &mut out,
        keys,
        sequence,
        timestamp_us,
        receivers,
        msg.msg_type(),
        |w| msg.emit_body(w),
    )?;
    Ok(out)
}

/// Appends a tag list for `receivers` to an already encoded header and
/// body (TAG_LIST set, Body Length right), e.g. one altered on purpose for
/// a test vector.
pub fn tag_encoded(
    keys: &PairKeys,
    header_and_body: &[u8],
    receivers: &[u32],
) -> Result<Vec<u8>, SealError> {
    let mut out = header_and_body.to_vec();
    emit_tags(&mut out, 0, keys, receivers)?;
    Ok(out)
}

/// Decodes a Replicast datagram without checking any tag. Total.
pub fn decode(bytes: &[u8]) -> Result<ReplicastDatagram, DecodeError> {
    let f = Frame::parse(bytes)?;
    Ok(ReplicastDatagram {
        header: f.header,
        message: f.message()?,
        tags: f.entries().collect(),
    })
}

/// Decodes, verifies this node's tag entry and admits the header into the
/// replay guard (keyed by Key ID and Sender ID).
pub fn open(
    keys: &PairKeys,
    guard: &mut ReplayGuard,
    bytes: &[u8],
    now_us: u64,
) -> Result<ReplicastDatagram, OpenError> {
    let f = Frame::parse(bytes)?;
    let message = f.message()?;
    f.verify(keys)?;
    let h = &f.header;
    guard.admit(h.key_id, h.sender_id, h.sequence, h.timestamp_us, now_us)?;
    Ok(ReplicastDatagram {
        header: f.header,
        message,
        tags: f.entries().collect(),
    })
}

/// Stamps outgoing Replicast datagrams of one node: its keys, and a
/// sequence number that follows the clock (the larger of the previous plus
/// one and the clock at sealing, as [`crate::Sealer`]'s).
#[derive(Debug, Clone)]
pub struct ReplicastSealer {
    keys: Arc<PairKeys>,
    next_seq: u64,
}

impl ReplicastSealer {
    pub fn new(keys: Arc<PairKeys>, now_us: u64) -> Self {
        ReplicastSealer {
            keys,
            next_seq: now_us.max(1),
        }
    }

    pub fn keys(&self) -> &PairKeys {
        &self.keys
    }

    pub fn sender_id(&self) -> u32 {
        self.keys.own_id()
    }

    /// Uses up the next sequence number.
    pub fn next_sequence(&mut self, now_us: u64) -> u64 {
        let seq = self.next_seq.max(now_us);
        self.next_seq = seq.saturating_add(1);
        seq
    }

    /// Seals `msg` for `receivers` (node ids).
    pub fn seal(
        &mut self,
        msg: &ReplicastMessage,
        receivers: &[u32],
        now_us: u64,
    ) -> Result<Vec<u8>, SealError> {
        let seq = self.next_sequence(now_us);
        seal(&self.keys, seq, now_us, receivers, msg)
    }
}

/// DATA's fields parsed in place from a frame (payload not copied).
pub(super) fn data_fields<'a>(f: &Frame<'a>) -> Result<(u64, u32, u32, &'a [u8]), DecodeError> {
    let mut r = Reader::new(f.body);
    let (txid, index, total) = body::parse_data_fields(&mut r)?;
    let payload = r.bytes(r.remaining(), "payload")?;
    body::check_data_payload(payload.len())?;
    Ok((txid, index, total, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicast::{PutReady, replicast_type};

    const NOW: u64 = 1_800_000_000_000_000;

    fn ready() -> ReplicastMessage {
        ReplicastMessage::PutReady(PutReady {
            txid: 7,
            chunk_id: [3; 32],
        })
    }

    fn node(id: u32) -> PairKeys {
        PairKeys::provision(1, &[5; 32], id, 1..=10).unwrap()
    }

    #[test]
    fn each_receiver_opens_its_own_entry_only() {
        let a = node(1);
        let bytes = seal(&a, NOW, NOW, &[2, 3, 99, 2, 1], &ready()).unwrap();
        let dg = decode(&bytes).unwrap();
        // 99 has no key with 1, 2 is listed once, the sender not at all.
        let ids: Vec<u32> = dg.tags.iter().map(|t| t.receiver).collect();
        assert_eq!(ids, vec![2, 3]);
        assert_eq!(bytes.len(), 32 + 40 + 1 + 2 * TAG_ENTRY_LEN);
        for r in [2, 3] {
            let got = open(&node(r), &mut ReplayGuard::default(), &bytes, NOW).unwrap();
            assert_eq!(got.message, ready());
            assert_eq!(got.header.sender_id, 1);
        }
        let e = open(&node(4), &mut ReplayGuard::default(), &bytes, NOW).unwrap_err();
        assert_eq!(e.kind(), "not-for-me");
        // Replayed to the same receiver: refused.
        let mut g = ReplayGuard::default();
        open(&node(2), &mut g, &bytes, NOW).unwrap();
        assert_eq!(
            open(&node(2), &mut g, &bytes, NOW).unwrap_err().kind(),
            "replay"
        );
    }

    /// Node 2 holds K(1,2) and K(2,3) but not K(1,3): it cannot make node 3
    /// accept anything claiming to come from node 1.
    #[test]
    fn a_peer_cannot_forge_another_sender() {
        let two = node(2);
        let honest = seal(&two, NOW, NOW, &[3], &ready()).unwrap();
        let mut forged = honest.clone();
        // Claim sender 1 (header octets 12..16).
        forged[12..16].copy_from_slice(&1u32.to_be_bytes());
        let e = open(&node(3), &mut ReplayGuard::default(), &forged, NOW).unwrap_err();
        assert_eq!(e.kind(), "bad-mac");
        // With a key node 3 does not share with the claimed sender at all.
        let mut stranger = honest.clone();
        stranger[12..16].copy_from_slice(&77u32.to_be_bytes());
        let e = open(&node(3), &mut ReplayGuard::default(), &stranger, NOW).unwrap_err();
        assert_eq!(e.kind(), "unknown-sender");
        // Another key generation.
        let e = open(
            &PairKeys::provision(2, &[5; 32], 3, 1..=10).unwrap(),
            &mut ReplayGuard::default(),
            &honest,
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.kind(), "unknown-key");
    }

    #[test]
    fn single_key_mode_uses_one_wildcard_entry() {
        let s = [9u8; 32];
        let a = PairKeys::shared(1, 12345, &s);
        let bytes = seal(&a, NOW, NOW, &[], &ready()).unwrap();
        let dg = decode(&bytes).unwrap();
        assert_eq!(dg.tags.len(), 1);
        assert_eq!(dg.tags[0].receiver, ANY_RECEIVER);
        let b = PairKeys::shared(1, 2, &s);
        assert!(open(&b, &mut ReplayGuard::default(), &bytes, NOW).is_ok());
        // A secure node refuses it: nothing is addressed to it.
        let e = open(&node(2), &mut ReplayGuard::default(), &bytes, NOW).unwrap_err();
        assert_eq!(e.kind(), "not-for-me");
        // No receiver at all: nothing is sealed.
        assert!(matches!(
            seal(&node(1), NOW, NOW, &[42], &ready()),
            Err(SealError::NoReceiver(_))
        ));
    }

    #[test]
    fn frame_refusals() {
        let a = node(1);
        let bytes = seal(&a, NOW, NOW, &[2], &ready()).unwrap();
        let kind = |b: &[u8]| decode(b).unwrap_err().kind();
        let mut no_flag = bytes.clone();
        no_flag[5] = 0;
        assert_eq!(kind(&no_flag), "invalid-field");
        let mut other_flag = bytes.clone();
        other_flag[4] = 0x80;
        assert_eq!(kind(&other_flag), "invalid-field");
        let mut zero = bytes[..bytes.len() - TAG_ENTRY_LEN].to_vec();
        *zero.last_mut().unwrap() = 0;
        assert_eq!(kind(&zero), "invalid-field");
        assert_eq!(kind(&bytes[..bytes.len() - 1]), "truncated");
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(kind(&long), "trailing-bytes");
        // A push datagram is not a Replicast one.
        assert_eq!(bytes[3], replicast_type::PUT_READY);
    }
}
