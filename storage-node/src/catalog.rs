//! A node's catalog of the version manifests it holds, by bucket, and the
//! times its chunks were last stored or claimed (what `gc` waits on).
//!
//! Listing a bucket is a form of MANIFEST_QUERY: its `name_hash` is
//! [`catalog_hash`] of the bucket (`""` = every bucket) and its `version`
//! is a cursor: the node answers the first [`subcast_proto::replicast::MAX_OFFERED_VERSIONS`]
//! manifests it holds of that bucket whose [`cursor_of`] (the first 8
//! octets of the manifest id, big-endian) is at least the cursor, in
//! cursor order. A page with fewer entries is the node's last.
//!
//! The bucket of a name is the part before its first `/` (the whole name
//! if it has none).

use crate::manifest::Manifest;
use std::collections::{BTreeMap, HashMap};
use subcast_proto::replicast::{Hash32, VersionEntry};

/// The `name_hash` of a listing of `bucket` (`""`: every bucket).
pub fn catalog_hash(bucket: &str) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(b"subcast catalog v1\0");
    h.update(bucket.as_bytes());
    *h.finalize().as_bytes()
}

/// The bucket of an object name: the part before the first `/`.
pub fn bucket_of(name: &str) -> &str {
    name.split_once('/').map_or(name, |(b, _)| b)
}

/// Where a manifest sorts in a listing.
pub fn cursor_of(id: &Hash32) -> u64 {
    u64::from_be_bytes(id[..8].try_into().unwrap_or([0; 8]))
}

/// Manifests by listing hash, and chunk touch times.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    lists: HashMap<Hash32, BTreeMap<(u64, Hash32), VersionEntry>>,
    /// Listing hashes each manifest is in.
    of_manifest: HashMap<Hash32, [Hash32; 2]>,
    /// Chunk id -> when it was last stored, found at start, or answered
    /// "already stored" (us since the epoch).
    touched: HashMap<Hash32, u64>,
}

impl Catalog {
    /// A chunk was stored or indexed (a manifest is listed).
    pub fn on_insert(&mut self, id: Hash32, size: u32, manifest: Option<&Manifest>) {
        self.touched.insert(id, subcast_proto::now_us());
        let Some(m) = manifest else { return };
        let e = VersionEntry {
            version: m.version,
            writer: m.writer,
            manifest_id: id,
            size,
        };
        let keys = [catalog_hash(bucket_of(&m.name)), catalog_hash("")];
        for k in keys {
            self.lists
                .entry(k)
                .or_default()
                .insert((cursor_of(&id), id), e);
        }
        self.of_manifest.insert(id, keys);
    }

    /// A chunk is gone.
    pub fn on_remove(&mut self, id: &Hash32) {
        self.touched.remove(id);
        if let Some(keys) = self.of_manifest.remove(id) {
            for k in keys {
                if let Some(l) = self.lists.get_mut(&k) {
                    l.remove(&(cursor_of(id), *id));
                    if l.is_empty() {
                        self.lists.remove(&k);
                    }
                }
            }
        }
    }

    /// A put was told "already stored": the chunk counts as new for `gc`.
    pub fn touch(&mut self, id: &Hash32) {
        if let Some(t) = self.touched.get_mut(id) {
            *t = subcast_proto::now_us();
        }
    }

    /// When the chunk was last stored or claimed.
    pub fn touched(&self, id: &Hash32) -> Option<u64> {
        self.touched.get(id).copied()
    }

    /// Every chunk with its touch time.
    pub fn chunks(&self) -> impl Iterator<Item = (&Hash32, &u64)> {
        self.touched.iter()
    }

    /// A listing page, if `hash` is a listing this node has entries for.
    pub fn page(&self, hash: &Hash32, cursor: u64, max: usize) -> Option<Vec<VersionEntry>> {
        let l = self.lists.get(hash)?;
        Some(
            l.range((cursor, [0u8; 32])..)
                .take(max)
                .map(|(_, e)| *e)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, version: u64) -> Manifest {
        Manifest {
            name: name.into(),
            version,
            writer: 1,
            size: 0,
            chunk_size: 1,
            object_hash: [0; 32],
            created_us: 0,
            chunks: vec![],
            inline: None,
        }
    }

    #[test]
    fn pages_by_bucket_and_cursor() {
        let mut c = Catalog::default();
        let mut ids = Vec::new();
        for i in 0..40u8 {
            let id = *blake3::hash(&[i]).as_bytes();
            let name = if i % 2 == 0 {
                format!("a/{i}")
            } else {
                format!("b/{i}")
            };
            c.on_insert(id, 10, Some(&m(&name, 1)));
            ids.push(id);
        }
        c.on_insert([9; 32], 5, None);
        assert_eq!(bucket_of("a/x/y"), "a");
        assert_eq!(bucket_of("plain"), "plain");
        // Paging through bucket a with the cursor visits each of its 20 once.
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            let p = c.page(&catalog_hash("a"), cursor, 16).unwrap();
            seen.extend(p.iter().map(|e| e.manifest_id));
            if p.len() < 16 {
                break;
            }
            cursor = cursor_of(&p.last().unwrap().manifest_id) + 1;
        }
        assert_eq!(seen.len(), 20);
        assert_eq!(c.page(&catalog_hash(""), 0, 100).unwrap().len(), 40);
        assert!(c.page(&catalog_hash("zz"), 0, 16).is_none());
        c.on_remove(&ids[0]);
        assert_eq!(c.page(&catalog_hash("a"), 0, 100).unwrap().len(), 19);
        assert!(c.touched(&ids[0]).is_none());
        assert!(c.touched(&[9; 32]).is_some());
    }
}
