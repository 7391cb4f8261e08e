//! Version manifests: what an object version is made of.
//!
//! A manifest is stored as a chunk (its id is BLAKE3 of its encoding) but
//! placed in the negotiating group of BLAKE3(name). Encoding (big-endian):
//!
//! ```text
//! magic "SCMF" | format 1:1 | name_len:2 name | version:8 | size:8
//! | chunk_size:4 | object_hash:32 | created_us:8 | count:4 | chunk id:32 * count
//! ```

use subcast_proto::DecodeError;
use subcast_proto::replicast::Hash32;
use subcast_proto::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"SCMF";
const FORMAT: u8 = 1;
/// Longest object name, in bytes.
pub const MAX_NAME: usize = 1024;

/// One version of a named object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: u64,
    pub size: u64,
    pub chunk_size: u32,
    /// BLAKE3 of the whole object.
    pub object_hash: Hash32,
    pub created_us: u64,
    pub chunks: Vec<Hash32>,
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(MAGIC);
        w.u8(FORMAT);
        let name = &self.name.as_bytes()[..self.name.len().min(MAX_NAME)];
        w.u16(name.len() as u16);
        w.bytes(name);
        w.u64(self.version);
        w.u64(self.size);
        w.u32(self.chunk_size);
        w.bytes(&self.object_hash);
        w.u64(self.created_us);
        w.u32(self.chunks.len() as u32);
        for c in &self.chunks {
            w.bytes(c);
        }
        w.buf
    }

    /// Decodes a manifest; total, never allocates beyond the input.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.bytes(4, "manifest magic")? != MAGIC {
            return Err(DecodeError::Invalid {
                field: "manifest magic",
                why: "not a version manifest",
            });
        }
        if r.u8("manifest format")? != FORMAT {
            return Err(DecodeError::Invalid {
                field: "manifest format",
                why: "unsupported manifest format",
            });
        }
        let name_len = usize::from(r.u16("name length")?);
        if name_len > MAX_NAME {
            return Err(DecodeError::Invalid {
                field: "name length",
                why: "longer than 1024 bytes",
            });
        }
        let name = std::str::from_utf8(r.bytes(name_len, "name")?)
            .map_err(|_| DecodeError::Invalid {
                field: "name",
                why: "not UTF-8",
            })?
            .to_owned();
        let version = r.u64("version")?;
        let size = r.u64("size")?;
        let chunk_size = r.u32("chunk size")?;
        let object_hash = r.array("object hash")?;
        let created_us = r.u64("created")?;
        let n = r.u32("chunk count")? as usize;
        r.check_count(n, 32, "chunk list")?;
        let mut chunks = Vec::with_capacity(n);
        for _ in 0..n {
            chunks.push(r.array("chunk id")?);
        }
        r.finish()?;
        if chunk_size == 0 {
            return Err(DecodeError::Invalid {
                field: "chunk size",
                why: "must not be zero",
            });
        }
        let expect = crate::chunking::chunk_count(size, chunk_size as usize);
        if expect != n as u64 {
            return Err(DecodeError::Invalid {
                field: "chunk count",
                why: "does not match size / chunk size",
            });
        }
        Ok(Manifest {
            name,
            version,
            size,
            chunk_size,
            object_hash,
            created_us,
            chunks,
        })
    }

    /// Size in bytes of chunk `i`.
    pub fn chunk_len(&self, i: usize) -> u64 {
        let cs = u64::from(self.chunk_size);
        let start = i as u64 * cs;
        self.size.saturating_sub(start).min(cs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            name: "bucket/obj".into(),
            version: 3,
            size: 25,
            chunk_size: 10,
            object_hash: [7; 32],
            created_us: 99,
            chunks: vec![[1; 32], [2; 32], [3; 32]],
        }
    }

    #[test]
    fn round_trip_and_truncation() {
        let m = sample();
        let b = m.encode();
        assert_eq!(Manifest::decode(&b).unwrap(), m);
        assert_eq!(m.chunk_len(2), 5);
        for n in 0..b.len() {
            assert!(Manifest::decode(&b[..n]).is_err());
        }
        let mut bad = b.clone();
        bad.push(0);
        assert!(Manifest::decode(&bad).is_err());
        let mut wrong = sample();
        wrong.chunks.pop();
        assert!(Manifest::decode(&wrong.encode()).is_err());
    }
}
