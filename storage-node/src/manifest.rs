//! Version manifests: what an object version is made of.
//!
//! A manifest is stored as a chunk (its id is BLAKE3 of its encoding) but
//! placed in the negotiating group of BLAKE3(name). Encoding (big-endian):
//!
//! ```text
//! magic "SCMF" | format 2:1 | name_len:2 name | version:8 | writer:4 | size:8
//! | chunk_size:4 | object_hash:32 | created_us:8 | count:4 | chunk id:32 * count
//! [format 3 only: | inline_len:4 | object bytes:inline_len]
//! ```
//!
//! Format 1 (written before versions had writers) has no `writer` field
//! and decodes with writer 0. Format 3 carries a small object's bytes in
//! the manifest itself (count 0, inline_len = size): one durable step
//! instead of two (see `inline_max` in the storage node's README); a
//! manifest without inline bytes is still written as format 2. How versions are numbered and ordered:
//! [`crate::versions`].

use subcast_proto::DecodeError;
use subcast_proto::replicast::Hash32;
use subcast_proto::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"SCMF";
const FORMAT: u8 = 2;
/// The format of a manifest that carries its object's bytes.
const FORMAT_INLINE: u8 = 3;
/// Longest object name, in bytes.
pub const MAX_NAME: usize = 1024;

/// One version of a named object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: u64,
    /// Node id of the client that wrote this version (ties of `version`
    /// are broken by it).
    pub writer: u32,
    pub size: u64,
    pub chunk_size: u32,
    /// BLAKE3 of the whole object.
    pub object_hash: Hash32,
    pub created_us: u64,
    pub chunks: Vec<Hash32>,
    /// The object's bytes, for an object stored inside its manifest
    /// (then `chunks` is empty); BLAKE3 of them is `object_hash`.
    pub inline: Option<Vec<u8>>,
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(MAGIC);
        w.u8(if self.inline.is_some() {
            FORMAT_INLINE
        } else {
            FORMAT
        });
        let name = &self.name.as_bytes()[..self.name.len().min(MAX_NAME)];
        w.u16(name.len() as u16);
        w.bytes(name);
        w.u64(self.version);
        w.u32(self.writer);
        w.u64(self.size);
        w.u32(self.chunk_size);
        w.bytes(&self.object_hash);
        w.u64(self.created_us);
        w.u32(self.chunks.len() as u32);
        for c in &self.chunks {
            w.bytes(c);
        }
        if let Some(b) = &self.inline {
            w.u32(b.len() as u32);
            w.bytes(b);
        }
        w.buf
    }

    /// Whether the object's bytes are in this manifest.
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }

    /// Decodes a manifest; total, never allocates beyond the input.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut m, inline) = Self::parse(bytes)?;
        m.inline = inline.map(<[u8]>::to_vec);
        Ok(m)
    }

    /// [`Self::decode`] without copying an inline object's bytes
    /// (`inline` stays `None`): the same checks, for a validity check or
    /// the node's index (name, version, writer).
    pub fn decode_head(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self::parse(bytes)?.0)
    }

    /// The manifest without its inline bytes, and those bytes.
    fn parse(bytes: &[u8]) -> Result<(Self, Option<&[u8]>), DecodeError> {
        let mut r = Reader::new(bytes);
        if r.bytes(4, "manifest magic")? != MAGIC {
            return Err(DecodeError::Invalid {
                field: "manifest magic",
                why: "not a version manifest",
            });
        }
        let format = r.u8("manifest format")?;
        if !(1..=FORMAT_INLINE).contains(&format) {
            return Err(DecodeError::Invalid {
                field: "manifest format",
                why: "unsupported manifest format (1, 2 or 3)",
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
        let writer = if format >= 2 { r.u32("writer")? } else { 0 };
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
        let inline = if format == FORMAT_INLINE {
            let len = r.u32("inline length")? as usize;
            if n != 0 || len as u64 != size || len == 0 {
                return Err(DecodeError::Invalid {
                    field: "inline length",
                    why: "an inline object has no chunk ids and 1 or more bytes, as many as its size",
                });
            }
            Some(r.bytes(len, "inline bytes")?)
        } else {
            None
        };
        r.finish()?;
        if chunk_size == 0 {
            return Err(DecodeError::Invalid {
                field: "chunk size",
                why: "must not be zero",
            });
        }
        let expect = crate::chunking::chunk_count(size, chunk_size as usize);
        if inline.is_none() && expect != n as u64 {
            return Err(DecodeError::Invalid {
                field: "chunk count",
                why: "does not match size / chunk size",
            });
        }
        let head = Manifest {
            name,
            version,
            writer,
            size,
            chunk_size,
            object_hash,
            created_us,
            chunks,
            inline: None,
        };
        Ok((head, inline))
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
            writer: 100,
            size: 25,
            chunk_size: 10,
            object_hash: [7; 32],
            created_us: 99,
            chunks: vec![[1; 32], [2; 32], [3; 32]],
            inline: None,
        }
    }

    fn inline_sample() -> Manifest {
        let data = b"small object".to_vec();
        Manifest {
            size: data.len() as u64,
            chunk_size: 1 << 20,
            object_hash: *blake3::hash(&data).as_bytes(),
            chunks: Vec::new(),
            inline: Some(data),
            ..sample()
        }
    }

    /// An inline manifest round-trips as format 3; a chunked one stays
    /// format 2; every truncation and every inconsistent inline length is
    /// refused.
    #[test]
    fn inline_round_trip_and_consistency() {
        let m = inline_sample();
        let b = m.encode();
        assert_eq!(b[4], 3);
        assert_eq!(sample().encode()[4], 2);
        assert_eq!(Manifest::decode(&b).unwrap(), m);
        assert!(m.is_inline() && !sample().is_inline());
        let head = Manifest::decode_head(&b).unwrap();
        assert_eq!(
            head,
            Manifest {
                inline: None,
                ..m.clone()
            }
        );
        for n in 0..b.len() {
            assert!(Manifest::decode(&b[..n]).is_err());
        }
        // Size and inline length disagree.
        let short = Manifest {
            size: 5,
            ..inline_sample()
        };
        assert!(Manifest::decode(&short.encode()).is_err());
        // Chunk ids beside inline bytes.
        let both = Manifest {
            chunks: vec![[1; 32]],
            ..inline_sample()
        };
        assert!(Manifest::decode(&both.encode()).is_err());
        // No bytes inline: an empty object is written with its one chunk.
        let empty = Manifest {
            size: 0,
            inline: Some(Vec::new()),
            ..inline_sample()
        };
        assert!(Manifest::decode(&empty.encode()).is_err());
        // A format 2 manifest with bytes after its chunk list is refused.
        let mut two = sample().encode();
        two.extend_from_slice(&[0, 0, 0, 1, 9]);
        assert!(Manifest::decode(&two).is_err());
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

    /// A manifest written before writers (format 1) still reads, as writer 0.
    #[test]
    fn format_1_decodes_with_writer_0() {
        let m = sample();
        let mut b = m.encode();
        b[4] = 1;
        let name_end = 4 + 1 + 2 + m.name.len();
        b.drain(name_end + 8..name_end + 12);
        let old = Manifest::decode(&b).unwrap();
        assert_eq!(old, Manifest { writer: 0, ..m });
    }
}
