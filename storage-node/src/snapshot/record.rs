//! Snapshot records and tombstones: what they look like as chunks.
//!
//! A snapshot record is the content of the object `.snapshots/BUCKET/NAME`
//! (so it is cut into chunks named by BLAKE3, replicated and verified like
//! any object, and found by its version manifest). Encoding (big-endian):
//!
//! ```text
//! magic "SCSN" | format 1:1 | bucket_len:2 bucket | name_len:2 name | cut_us:8
//! | count:4 | (name_len:2 name | version:8 | writer:4 | manifest_id:32 | size:8) * count
//! ```
//!
//! Entries are in name order, one per object of the bucket that was not
//! deleted at the cut. A tombstone is a version manifest of size 0 (one
//! empty chunk, never stored) and the all-zero object hash ([`TOMBSTONE_HASH`]; a real
//! empty object has BLAKE3("") there).

use crate::manifest::{MAX_NAME, Manifest};
use subcast_proto::DecodeError;
use subcast_proto::replicast::Hash32;
use subcast_proto::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"SCSN";
/// The object hash of a tombstone version.
pub const TOMBSTONE_HASH: Hash32 = [0; 32];
/// The reserved bucket that holds snapshot records.
pub const SNAPSHOT_BUCKET: &str = ".snapshots";

/// Whether a version manifest is a tombstone (the object was deleted).
pub fn is_tombstone(m: &Manifest) -> bool {
    m.size == 0 && m.object_hash == TOMBSTONE_HASH
}

/// A tombstone version of `name`.
pub fn tombstone(name: &str, version: u64, writer: u32) -> Manifest {
    Manifest {
        name: name.to_owned(),
        version,
        writer,
        size: 0,
        chunk_size: 1,
        object_hash: TOMBSTONE_HASH,
        created_us: subcast_proto::now_us(),
        // An object of size 0 has one (empty) chunk; a tombstone's is
        // never stored or fetched.
        chunks: vec![*blake3::hash(b"").as_bytes()],
        inline: None,
    }
}

/// The object name a snapshot record is stored under.
pub fn record_name(bucket: &str, snapshot: &str) -> String {
    format!("{SNAPSHOT_BUCKET}/{bucket}/{snapshot}")
}

/// One object of a snapshot: the version it had at the cut.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapEntry {
    pub name: String,
    pub version: u64,
    pub writer: u32,
    #[serde(serialize_with = "hex_id")]
    pub manifest_id: Hash32,
    pub size: u64,
}

fn hex_id<S: serde::Serializer>(id: &Hash32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(id))
}

/// A snapshot of a bucket: (object name -> version) as of `cut_us`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotRecord {
    pub bucket: String,
    pub name: String,
    /// The cut, us since the epoch (see the crate README, "Snapshots").
    pub cut_us: u64,
    pub entries: Vec<SnapEntry>,
}

impl SnapshotRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(MAGIC);
        w.u8(1);
        for s in [&self.bucket, &self.name] {
            w.u16(s.len() as u16);
            w.bytes(s.as_bytes());
        }
        w.u64(self.cut_us);
        w.u32(self.entries.len() as u32);
        for e in &self.entries {
            w.u16(e.name.len() as u16);
            w.bytes(e.name.as_bytes());
            w.u64(e.version);
            w.u32(e.writer);
            w.bytes(&e.manifest_id);
            w.u64(e.size);
        }
        w.buf
    }

    /// Decodes a record; total, allocates only for bytes present.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        if r.bytes(4, "snapshot magic")? != MAGIC {
            return Err(DecodeError::Invalid {
                field: "snapshot magic",
                why: "not a snapshot record",
            });
        }
        if r.u8("snapshot format")? != 1 {
            return Err(DecodeError::Invalid {
                field: "snapshot format",
                why: "unsupported snapshot format (1)",
            });
        }
        let bucket = string(&mut r)?;
        let name = string(&mut r)?;
        let cut_us = r.u64("cut")?;
        let n = r.u32("entry count")? as usize;
        r.check_count(n, 2 + 8 + 4 + 32 + 8, "entries")?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(SnapEntry {
                name: string(&mut r)?,
                version: r.u64("version")?,
                writer: r.u32("writer")?,
                manifest_id: r.array("manifest id")?,
                size: r.u64("size")?,
            });
        }
        r.finish()?;
        Ok(SnapshotRecord {
            bucket,
            name,
            cut_us,
            entries,
        })
    }

    /// The entry of object `name`.
    pub fn entry(&self, name: &str) -> Option<&SnapEntry> {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

fn string(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let n = usize::from(r.u16("name length")?);
    if n > MAX_NAME {
        return Err(DecodeError::Invalid {
            field: "name length",
            why: "longer than 1024 bytes",
        });
    }
    std::str::from_utf8(r.bytes(n, "name")?)
        .map(str::to_owned)
        .map_err(|_| DecodeError::Invalid {
            field: "name",
            why: "not UTF-8",
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(names: &[&str]) -> SnapshotRecord {
        SnapshotRecord {
            bucket: "b".into(),
            name: "s1".into(),
            cut_us: 42,
            entries: names
                .iter()
                .enumerate()
                .map(|(i, n)| SnapEntry {
                    name: (*n).into(),
                    version: i as u64 + 1,
                    writer: 7,
                    manifest_id: [i as u8; 32],
                    size: 100,
                })
                .collect(),
        }
    }

    #[test]
    fn round_trip_lookup_and_truncation() {
        let r = rec(&["b/a", "b/b", "b/c"]);
        let b = r.encode();
        assert_eq!(SnapshotRecord::decode(&b).unwrap(), r);
        assert_eq!(r.entry("b/b").unwrap().version, 2);
        assert!(r.entry("b/zz").is_none());
        for n in 0..b.len() {
            assert!(SnapshotRecord::decode(&b[..n]).is_err());
        }
        let t = tombstone("b/a", 3, 1);
        assert!(is_tombstone(&t));
        assert!(is_tombstone(&Manifest::decode(&t.encode()).unwrap()));
        let empty = Manifest {
            object_hash: *blake3::hash(b"").as_bytes(),
            ..t
        };
        assert!(!is_tombstone(&empty));
    }

    proptest! {
        /// Decoding any bytes never panics, and mutated records either
        /// decode to something that encodes back to the same bytes or fail.
        #[test]
        fn decode_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..300), flip in 0usize..200) {
            let _ = SnapshotRecord::decode(&bytes);
            let mut b = rec(&["b/x", "b/y"]).encode();
            let i = flip % b.len();
            b[i] ^= 0x5a;
            if let Ok(r) = SnapshotRecord::decode(&b) {
                prop_assert_eq!(r.encode(), b);
            }
        }
    }
}
