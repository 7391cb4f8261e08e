//! The journal's on-disk records and its checkpoint file.
//!
//! A record (little-endian), starting on a 4 KiB boundary:
//!
//! ```text
//!  0  magic "SCJ1"
//!  4  seq      u64   increases by one per record
//! 12  kind     u8    0 data, 1 manifest
//! 13  reserved 3 octets, zero
//! 16  len      u32   payload octets
//! 20  id       32    BLAKE3 of the payload (the chunk id)
//! 52  check    8     first 8 octets of BLAKE3(octets 0..52)
//! 60  payload, then zeros to the next 4 KiB boundary
//! ```
//!
//! A record counts at replay only if its header checks and its payload
//! hashes to its id: a torn write (never acknowledged) is skipped.
//!
//! The checkpoint file holds `"SCK1" | seq u64 | check 8` (check = first 8
//! octets of BLAKE3 of the 12 before): records up to `seq` are on disk as
//! chunk files and are never replayed.

use subcast_proto::replicast::{ChunkKind, Hash32};

pub const MAGIC: &[u8; 4] = b"SCJ1";
pub const HEADER: usize = 60;
/// Records start on this boundary.
pub const ALIGN: u64 = 4096;
pub const CHECKPOINT_MAGIC: &[u8; 4] = b"SCK1";
pub const CHECKPOINT_LEN: usize = 20;

/// A record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub seq: u64,
    pub kind: ChunkKind,
    pub len: u32,
    pub id: Hash32,
}

fn check8(b: &[u8]) -> [u8; 8] {
    let h = blake3::hash(b);
    let mut c = [0u8; 8];
    c.copy_from_slice(&h.as_bytes()[..8]);
    c
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER] {
        let mut b = [0u8; HEADER];
        b[..4].copy_from_slice(MAGIC);
        b[4..12].copy_from_slice(&self.seq.to_le_bytes());
        b[12] = match self.kind {
            ChunkKind::Data => 0,
            ChunkKind::Manifest => 1,
        };
        b[16..20].copy_from_slice(&self.len.to_le_bytes());
        b[20..52].copy_from_slice(&self.id);
        let c = check8(&b[..52]);
        b[52..60].copy_from_slice(&c);
        b
    }

    /// A header, if `b` starts with a well-formed one.
    pub fn decode(b: &[u8]) -> Option<Header> {
        let b = b.get(..HEADER)?;
        if &b[..4] != MAGIC || b[13..16] != [0, 0, 0] || b[52..60] != check8(&b[..52]) {
            return None;
        }
        let kind = match b[12] {
            0 => ChunkKind::Data,
            1 => ChunkKind::Manifest,
            _ => return None,
        };
        Some(Header {
            seq: u64::from_le_bytes(b[4..12].try_into().ok()?),
            kind,
            len: u32::from_le_bytes(b[16..20].try_into().ok()?),
            id: b[20..52].try_into().ok()?,
        })
    }

    /// Octets the record takes in the ring, padding included.
    pub fn span(&self) -> u64 {
        span_of(self.len as usize)
    }
}

/// Octets a record of `payload` octets takes in the ring.
pub fn span_of(payload: usize) -> u64 {
    ((HEADER + payload) as u64).div_ceil(ALIGN) * ALIGN
}

pub fn encode_checkpoint(seq: u64) -> [u8; CHECKPOINT_LEN] {
    let mut b = [0u8; CHECKPOINT_LEN];
    b[..4].copy_from_slice(CHECKPOINT_MAGIC);
    b[4..12].copy_from_slice(&seq.to_le_bytes());
    let c = check8(&b[..12]);
    b[12..20].copy_from_slice(&c);
    b
}

/// The checkpoint's sequence number; 0 (replay everything) when the file
/// is absent or torn.
pub fn decode_checkpoint(b: &[u8]) -> u64 {
    match b.get(..CHECKPOINT_LEN) {
        Some(b) if &b[..4] == CHECKPOINT_MAGIC && b[12..20] == check8(&b[..12]) => {
            u64::from_le_bytes(b[4..12].try_into().unwrap_or_default())
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spans_are_aligned() {
        assert_eq!(span_of(0), 4096);
        assert_eq!(span_of(4096 - 60), 4096);
        assert_eq!(span_of(4096 - 59), 8192);
        assert_eq!(span_of(262_144), 266_240);
    }

    #[test]
    fn checkpoint_roundtrip_and_torn() {
        let mut b = encode_checkpoint(77);
        assert_eq!(decode_checkpoint(&b), 77);
        b[5] ^= 1;
        assert_eq!(decode_checkpoint(&b), 0);
        assert_eq!(decode_checkpoint(&[]), 0);
    }

    proptest! {
        #[test]
        fn header_roundtrip(seq: u64, manifest: bool, len: u32, id: [u8; 32]) {
            let h = Header {
                seq,
                kind: if manifest { ChunkKind::Manifest } else { ChunkKind::Data },
                len,
                id,
            };
            prop_assert_eq!(Header::decode(&h.encode()), Some(h));
        }

        /// Any single flipped bit makes the header unreadable.
        #[test]
        fn header_flip_detected(seq: u64, len: u32, id: [u8; 32], bit in 0usize..(HEADER * 8)) {
            let h = Header { seq, kind: ChunkKind::Data, len, id };
            let mut b = h.encode();
            b[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(Header::decode(&b), None);
        }

        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Header::decode(&b);
            let _ = decode_checkpoint(&b);
        }
    }
}
