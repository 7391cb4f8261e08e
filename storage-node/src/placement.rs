//! Which negotiating group a chunk id (or name hash) belongs to.
//!
//! Stable rule, part of the protocol: with `N` negotiating groups listed
//! in the cluster configuration (same order on every node and client),
//! the id `h` (32 octets) belongs to group number
//! `u64::from_be_bytes(h[0..8]) mod N`.
//! Data chunks are placed by their id; version manifests by BLAKE3 of the
//! object name.

use subcast_proto::replicast::Hash32;

/// Index of the negotiating group of `id` among `groups` groups.
pub fn ng_index(id: &Hash32, groups: usize) -> usize {
    if groups == 0 {
        return 0;
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&id[..8]);
    (u64::from_be_bytes(first) % groups as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        let mut id = [0u8; 32];
        id[7] = 5;
        assert_eq!(ng_index(&id, 4), 1);
        assert_eq!(ng_index(&id, 1), 0);
        assert_eq!(ng_index(&id, 0), 0);
        // Known vector: BLAKE3("") starts af1349b9f5f9a1a6.
        let e = *blake3::hash(b"").as_bytes();
        assert_eq!(ng_index(&e, 7), (0xaf1349b9f5f9a1a6u64 % 7) as usize);
        let mut counts = [0usize; 4];
        for i in 0u32..4000 {
            counts[ng_index(blake3::hash(&i.to_be_bytes()).as_bytes(), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 850), "{counts:?}");
    }
}
