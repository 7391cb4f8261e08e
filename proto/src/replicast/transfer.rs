//! Keyed DATA (type 0x47): a put's payload under one transfer key.
//!
//! A DATA datagram (0x43) carries the 32-octet header and one 20-octet tag
//! entry per receiver: 69 octets or more besides its payload. Sent over a
//! rendezvous group to three targets that is 9-13 % of every frame at an
//! MTU of 1500. Keyed DATA carries what a target needs and nothing else:
//!
//! ```text
//! Magic (0x5343):2 | Version (1):1 | Type (0x47):1 | txid:8 | index:4
//! | payload | tag:8
//! tag = first 8 octets of BLAKE3-keyed(K_t, every preceding octet)
//! ```
//!
//! 24 octets besides the payload, whatever the number of targets.
//!
//! The transfer key `K_t` (32 octets, random per transfer) reaches each
//! target in the PUT_ACCEPT, which is sealed as every Replicast message is
//! (header, tag list, replay guard). It travels wrapped, once per target:
//!
//! ```text
//! wrapped_i = K_t XOR BLAKE3-keyed(K(sender, target_i),
//!                                  "subcast transfer key v1" || txid:8 || target_i:4)
//! ```
//!
//! with the key sender and target share (in the insecure single-key mode,
//! the shared key). Only the sender and that target can unwrap it. A
//! sender never uses one txid with two transfer keys.
//!
//! What the fields no longer in DATA were for, and what replaces them:
//! - Sender ID and Key ID: the receiver finds the transfer (and its
//!   sender) by txid, among the transfers it accepted.
//! - Sequence and timestamp (replay): a replayed datagram of a transfer
//!   in progress is a duplicate index; after the transfer, its txid is
//!   unknown and its key gone.
//! - Total: known from the ACCEPT's size and datagram payload.
//! - A 16-octet tag: the 8-octet tag only keeps those without the
//!   transfer key (anyone off the sender-target paths) from injecting
//!   datagrams, for the seconds one transfer lasts; the chunk's BLAKE3 id,
//!   checked by every target before its PUT_ACK, is what proves the
//!   payload.
//!
//! Untagged DATA (type 0x4e) is keyed DATA without its tag, for the
//! datagrams a target takes unverified anyway (an index it does not hold
//! yet, of a transfer of which it holds a verified datagram):
//!
//! ```text
//! Magic (0x5343):2 | Version (1):1 | Type (0x4e):1 | txid:8 | index:4 | payload
//! ```
//!
//! The sender tags the datagrams a target must verify: the first pass's
//! every [`TAG_EVERY`]-th index (0 included), so that a target that lost
//! index 0 still finds a verified datagram soon after, every repeat, and
//! (where its batches can overtake each other) the first datagram of each
//! batch.
//! Tagging the rest cost the sender a keyed BLAKE3 per datagram (1.0-1.8
//! ms of CPU per MiB) that no target ever checked.

use crate::error::DecodeError;
use crate::header::{MAGIC, VERSION};
use crate::pairkeys::PairKeys;

/// The type code of keyed DATA.
pub const KEYED_DATA: u8 = 0x47;
/// The type code of untagged DATA (keyed DATA without its tag).
pub const UNTAGGED_DATA: u8 = 0x4e;
/// The first pass of a transfer tags index 0 and every index that is a
/// multiple of this; the rest go as untagged DATA.
pub const TAG_EVERY: u32 = 32;
/// Octets of the keyed DATA tag.
pub const KEYED_TAG_LEN: usize = 8;
/// Octets before the payload: magic, version, type, txid, index.
pub const KEYED_DATA_PREFIX: usize = 4 + 8 + 4;
/// Octets of a keyed DATA datagram besides its payload.
pub const KEYED_DATA_OVERHEAD: usize = KEYED_DATA_PREFIX + KEYED_TAG_LEN;
/// Octets of one wrapped transfer key in a PUT_ACCEPT.
pub const WRAPPED_KEY_LEN: usize = 32;

const WRAP_CONTEXT: &[u8] = b"subcast transfer key v1";

/// One transfer's DATA key (32 octets; redacted in `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct TransferKey([u8; 32]);

impl std::fmt::Debug for TransferKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransferKey(<redacted>)")
    }
}

fn pad(pair: &[u8; 32], txid: u64, target: u32) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(pair);
    h.update(WRAP_CONTEXT);
    h.update(&txid.to_be_bytes());
    h.update(&target.to_be_bytes());
    *h.finalize().as_bytes()
}

fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut o = [0u8; 32];
    for i in 0..32 {
        o[i] = a[i] ^ b[i];
    }
    o
}

impl TransferKey {
    /// A key from 32 random octets (the caller's random source).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        TransferKey(b)
    }

    /// The key wrapped for `target` of transfer `txid`, under the key this
    /// node shares with it; `None` without one.
    pub fn wrap(&self, keys: &PairKeys, txid: u64, target: u32) -> Option<[u8; WRAPPED_KEY_LEN]> {
        let k = keys.wrap_key(target)?;
        Some(xor(&self.0, &pad(k, txid, target)))
    }

    /// Unwraps the key a PUT_ACCEPT from `sender` carries for this node
    /// (`me`, its node id, which the wrap used); `None` without a key
    /// shared with `sender`. A wrong key is not detected here: the first
    /// datagram's tag fails.
    pub fn unwrap(
        keys: &PairKeys,
        sender: u32,
        txid: u64,
        me: u32,
        wrapped: &[u8; WRAPPED_KEY_LEN],
    ) -> Option<TransferKey> {
        let k = keys.open_key(sender)?;
        Some(TransferKey(xor(wrapped, &pad(k, txid, me))))
    }

    fn tag(&self, signed: &[u8]) -> [u8; KEYED_TAG_LEN] {
        let full = blake3::keyed_hash(&self.0, signed);
        let mut t = [0u8; KEYED_TAG_LEN];
        t.copy_from_slice(&full.as_bytes()[..KEYED_TAG_LEN]);
        t
    }
}

/// Octets of a keyed DATA datagram carrying `payload_len` octets.
pub const fn keyed_data_len(payload_len: usize) -> usize {
    KEYED_DATA_OVERHEAD + payload_len
}

/// Octets of an untagged DATA datagram carrying `payload_len` octets.
pub const fn untagged_data_len(payload_len: usize) -> usize {
    KEYED_DATA_PREFIX + payload_len
}

/// Whether the first pass of a transfer sends `index` tagged (keyed DATA)
/// rather than untagged.
pub const fn first_pass_tags(index: u32) -> bool {
    index.is_multiple_of(TAG_EVERY)
}

/// Appends an untagged DATA datagram to `out`.
pub fn seal_untagged_data_into(out: &mut Vec<u8>, txid: u64, index: u32, payload: &[u8]) {
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.push(VERSION);
    out.push(UNTAGGED_DATA);
    out.extend_from_slice(&txid.to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Appends a keyed DATA datagram to `out`, copying the payload once, from
/// the chunk into the send buffer.
pub fn seal_keyed_data_into(
    out: &mut Vec<u8>,
    key: &TransferKey,
    txid: u64,
    index: u32,
    payload: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.push(VERSION);
    out.push(KEYED_DATA);
    out.extend_from_slice(&txid.to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(payload);
    let t = key.tag(&out[start..]);
    out.extend_from_slice(&t);
}

/// A keyed (0x47) or untagged (0x4e) DATA datagram split, not yet
/// verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedData<'a> {
    pub txid: u64,
    pub index: u32,
    pub payload: &'a [u8],
    signed: &'a [u8],
    /// `None`: untagged DATA.
    tag: Option<[u8; KEYED_TAG_LEN]>,
}

/// Whether the type octet `t` is keyed or untagged DATA.
pub const fn is_keyed_type(t: u8) -> bool {
    t == KEYED_DATA || t == UNTAGGED_DATA
}

impl<'a> KeyedData<'a> {
    /// `Ok(None)` if `bytes` is neither keyed nor untagged DATA (another
    /// subcast datagram, or too short to say); an error if it says it is
    /// one of them and is malformed. Total: never panics.
    pub fn parse(bytes: &'a [u8]) -> Result<Option<Self>, DecodeError> {
        if bytes.len() < 4
            || bytes[..2] != MAGIC.to_be_bytes()
            || bytes[2] != VERSION
            || !is_keyed_type(bytes[3])
        {
            return Ok(None);
        }
        if bytes.len() > crate::envelope::MAX_DATAGRAM {
            return Err(DecodeError::TooLong(bytes.len()));
        }
        let tagged = bytes[3] == KEYED_DATA;
        if tagged && bytes.len() < KEYED_DATA_OVERHEAD + 1 {
            return Err(DecodeError::Invalid {
                field: "keyed DATA",
                why: "shorter than its fields, a tag and one payload octet (25 octets)",
            });
        }
        if !tagged && bytes.len() < KEYED_DATA_PREFIX + 1 {
            return Err(DecodeError::Invalid {
                field: "untagged DATA",
                why: "shorter than its fields and one payload octet (17 octets)",
            });
        }
        let (signed, tag) = if tagged {
            let (signed, tag) = bytes.split_at(bytes.len() - KEYED_TAG_LEN);
            let mut t = [0u8; KEYED_TAG_LEN];
            t.copy_from_slice(tag);
            (signed, Some(t))
        } else {
            (bytes, None)
        };
        let mut txid = [0u8; 8];
        txid.copy_from_slice(&signed[4..12]);
        let mut index = [0u8; 4];
        index.copy_from_slice(&signed[12..16]);
        Ok(Some(KeyedData {
            txid: u64::from_be_bytes(txid),
            index: u32::from_be_bytes(index),
            payload: &signed[KEYED_DATA_PREFIX..],
            signed,
            tag,
        }))
    }

    /// Whether it carries a tag (keyed DATA, not untagged DATA).
    pub fn is_tagged(&self) -> bool {
        self.tag.is_some()
    }

    /// Whether the tag holds under `key` (never for untagged DATA).
    pub fn verify(&self, key: &TransferKey) -> bool {
        self.tag.is_some_and(|t| {
            let want = key.tag(self.signed);
            constant_time_eq::constant_time_eq(&want, &t)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring(me: u32) -> PairKeys {
        PairKeys::provision(3, &[5u8; 32], me, [1, 2, 3, 4, 9]).unwrap()
    }

    #[test]
    fn wrapped_key_opens_only_at_its_target() {
        let k = TransferKey::from_bytes([0x42; 32]);
        let client = ring(9);
        let w = k.wrap(&client, 77, 2).unwrap();
        assert_eq!(TransferKey::unwrap(&ring(2), 9, 77, 2, &w), Some(k.clone()));
        // Another target, another txid, another sender: another key.
        assert_ne!(TransferKey::unwrap(&ring(3), 9, 77, 3, &w), Some(k.clone()));
        assert_ne!(TransferKey::unwrap(&ring(2), 9, 78, 2, &w), Some(k.clone()));
        assert_ne!(TransferKey::unwrap(&ring(2), 1, 77, 2, &w), Some(k.clone()));
        // The wrapped key is not the key.
        assert_ne!(w, [0x42; 32]);
        // No pair key with the target: nothing to wrap with.
        assert_eq!(k.wrap(&client, 77, 12), None);
        // The single-key mode wraps under the shared key.
        let a = PairKeys::shared(1, 9, &[7; 32]);
        let b = PairKeys::shared(1, 2, &[7; 32]);
        let w = k.wrap(&a, 5, 2).unwrap();
        assert_eq!(TransferKey::unwrap(&b, 9, 5, 2, &w), Some(k));
    }

    #[test]
    fn keyed_data_layout() {
        let k = TransferKey::from_bytes([1; 32]);
        let mut out = vec![0xee];
        seal_keyed_data_into(&mut out, &k, 0x0102030405060708, 9, b"abc");
        assert_eq!(out.len(), 1 + keyed_data_len(3));
        assert_eq!(
            &out[1..20],
            &[
                0x53, 0x43, 1, 0x47, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9, b'a', b'b', b'c'
            ]
        );
        let v = KeyedData::parse(&out[1..]).unwrap().unwrap();
        assert_eq!(
            (v.txid, v.index, v.payload),
            (0x0102030405060708, 9, &b"abc"[..])
        );
        assert!(v.verify(&k));
        assert!(!v.verify(&TransferKey::from_bytes([2; 32])));
        // Other subcast datagrams and strangers are not keyed DATA.
        assert_eq!(KeyedData::parse(&[0x53, 0x43, 1, 0x43, 0]).unwrap(), None);
        assert_eq!(KeyedData::parse(b"").unwrap(), None);
        // Keyed DATA without a payload octet is malformed.
        let mut empty = Vec::new();
        seal_keyed_data_into(&mut empty, &k, 1, 0, b"");
        assert!(KeyedData::parse(&empty).is_err());
    }

    #[test]
    fn untagged_data_layout() {
        let k = TransferKey::from_bytes([1; 32]);
        let mut out = vec![0xee];
        seal_untagged_data_into(&mut out, 0x0102030405060708, 9, b"abc");
        assert_eq!(out.len(), 1 + untagged_data_len(3));
        assert_eq!(
            &out[1..],
            &[
                0x53, 0x43, 1, 0x4e, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9, b'a', b'b', b'c'
            ]
        );
        let v = KeyedData::parse(&out[1..]).unwrap().unwrap();
        assert_eq!(
            (v.txid, v.index, v.payload, v.is_tagged()),
            (0x0102030405060708, 9, &b"abc"[..], false)
        );
        // No key verifies it, the transfer's own included.
        assert!(!v.verify(&k));
        // Keyed DATA with the same fields is tagged and 8 octets longer.
        let mut keyed = Vec::new();
        seal_keyed_data_into(&mut keyed, &k, 0x0102030405060708, 9, b"abc");
        assert_eq!(keyed.len(), out.len() - 1 + KEYED_TAG_LEN);
        assert!(KeyedData::parse(&keyed).unwrap().unwrap().is_tagged());
        // Untagged DATA without a payload octet is malformed.
        let mut empty = Vec::new();
        seal_untagged_data_into(&mut empty, 1, 0, b"");
        assert!(KeyedData::parse(&empty).is_err());
        // Which indexes the first pass tags.
        let tagged: Vec<u32> = (0..100).filter(|i| first_pass_tags(*i)).collect();
        assert_eq!(tagged, vec![0, 32, 64, 96]);
    }

    proptest! {
        #[test]
        fn parse_is_total(bytes in prop::collection::vec(any::<u8>(), 0..200), typed in any::<bool>()) {
            let mut b = bytes;
            if typed && b.len() >= 4 {
                let t = if b.len() % 2 == 0 { KEYED_DATA } else { UNTAGGED_DATA };
                b[..4].copy_from_slice(&[0x53, 0x43, 1, t]);
            }
            if let Ok(Some(v)) = KeyedData::parse(&b) {
                // The payload ends before the tag, or at the end untagged.
                let end = if v.is_tagged() { b.len() - KEYED_TAG_LEN } else { b.len() };
                prop_assert_eq!(v.payload, &b[KEYED_DATA_PREFIX..end]);
                prop_assert!(!v.payload.is_empty());
            }
        }

        #[test]
        fn untagged_round_trip(payload in prop::collection::vec(any::<u8>(), 1..1500), txid in any::<u64>(), index in any::<u32>()) {
            let mut out = Vec::new();
            seal_untagged_data_into(&mut out, txid, index, &payload);
            let v = KeyedData::parse(&out).unwrap().unwrap();
            prop_assert_eq!((v.txid, v.index, v.payload), (txid, index, &payload[..]));
            prop_assert!(!v.is_tagged());
            prop_assert!(!v.verify(&TransferKey::from_bytes([3; 32])));
        }

        #[test]
        fn any_flipped_bit_fails_the_tag(payload in prop::collection::vec(any::<u8>(), 1..1500), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let k = TransferKey::from_bytes([3; 32]);
            let mut out = Vec::new();
            seal_keyed_data_into(&mut out, &k, 11, 4, &payload);
            let v = KeyedData::parse(&out).unwrap().unwrap();
            prop_assert!(v.verify(&k));
            prop_assert_eq!(v.payload, &payload[..]);
            let i = pos.index(out.len());
            if i >= 4 {
                out[i] ^= 1 << bit;
                let v = KeyedData::parse(&out).unwrap().unwrap();
                prop_assert!(!v.verify(&k));
            }
        }
    }
}
