//! Splitting objects into chunks; a chunk's id is BLAKE3 of its payload.

use subcast_proto::replicast::Hash32;

/// Default chunk size: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;
/// Objects up to this size go inside their manifest by default
/// (`inline_max` in the config).
pub const DEFAULT_INLINE_MAX: usize = 256 << 10;
/// The largest `inline_max`: a manifest is read whole by listings and
/// version lookups' fetches.
pub const MAX_INLINE: usize = 1 << 20;

/// The id of a chunk: BLAKE3 of its payload.
pub fn chunk_id(payload: &[u8]) -> Hash32 {
    *blake3::hash(payload).as_bytes()
}

/// The hash locating an object's version manifests: BLAKE3 of its name.
pub fn name_hash(name: &str) -> Hash32 {
    *blake3::hash(name.as_bytes()).as_bytes()
}

/// Number of chunks an object of `size` bytes has (an empty object has
/// one empty chunk).
pub fn chunk_count(size: u64, chunk_size: usize) -> u64 {
    size.div_ceil(chunk_size as u64).max(1)
}

/// Number of datagrams a chunk of `size` bytes needs with `per` payload
/// octets per datagram (an empty chunk still takes one).
pub fn datagram_count(size: usize, per: usize) -> u32 {
    size.div_ceil(per.max(1)).max(1) as u32
}

/// The byte range of datagram `index` in a chunk of `size` bytes.
pub fn datagram_range(size: usize, per: usize, index: u32) -> std::ops::Range<usize> {
    let start = (index as usize).saturating_mul(per).min(size);
    let end = start.saturating_add(per).min(size);
    start..end
}

/// Short hex form of an id for logs and messages.
pub fn short(id: &Hash32) -> String {
    hex::encode(&id[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ranges() {
        assert_eq!(chunk_count(0, 10), 1);
        assert_eq!(chunk_count(10, 10), 1);
        assert_eq!(chunk_count(11, 10), 2);
        assert_eq!(datagram_count(0, 100), 1);
        assert_eq!(datagram_count(250, 100), 3);
        assert_eq!(datagram_range(250, 100, 2), 200..250);
        assert_eq!(datagram_range(0, 100, 0), 0..0);
        assert_eq!(datagram_range(250, 100, 9), 250..250);
        assert_ne!(chunk_id(b"a"), chunk_id(b"b"));
        assert_eq!(chunk_id(b""), *blake3::hash(b"").as_bytes());
    }
}
