//! What a node holds, in memory: the core answers proposals, gets and
//! manifest queries from this index and never touches the disk; the
//! daemon fills it from the store at start and the core updates it as the
//! daemon reports writes, reads and scrubs.
//!
//! A chunk is *verified* when this process checked its content: it wrote
//! it after the hash check, or read it back and the hash matched (a get, a
//! scrub). Only verified chunks count as held for "already stored" and
//! "stored"; chunks found on disk at start are unverified until the
//! scrubber (or a read) has checked them.

use crate::manifest::Manifest;
use std::collections::{BTreeMap, HashMap};
use subcast_proto::replicast::{ChunkKind, Hash32, VersionEntry};

/// One chunk the node has a file for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub size: u32,
    pub kind: ChunkKind,
    pub verified: bool,
}

/// Chunks held (id -> entry), version manifests by name, free space.
#[derive(Debug, Clone, Default)]
pub struct StoreIndex {
    held: HashMap<Hash32, Entry>,
    /// name hash -> (version, writer, manifest id) -> manifest size. Two
    /// writers of the same version number are both kept.
    manifests: HashMap<Hash32, BTreeMap<(u64, u32, Hash32), u32>>,
    /// Free bytes of the store's file system (refreshed by the owner).
    pub free_bytes: u64,
    /// Listings by bucket and touch times (snapshots, `ls`, `gc`).
    pub catalog: crate::catalog::Catalog,
}

impl StoreIndex {
    /// Whether a verified copy is held (what "already stored" and "stored"
    /// rest on).
    pub fn contains(&self, id: &Hash32) -> bool {
        self.held.get(id).is_some_and(|e| e.verified)
    }

    /// [`Self::contains`], and if so the chunk counts as just stored for
    /// `gc` (a put that is told "already stored" will reference it).
    pub fn claim(&mut self, id: &Hash32) -> bool {
        let held = self.contains(id);
        if held {
            self.catalog.touch(id);
        }
        held
    }

    /// Whether a file is there, verified or not.
    pub fn has_file(&self, id: &Hash32) -> bool {
        self.held.contains_key(id)
    }

    pub fn entry(&self, id: &Hash32) -> Option<Entry> {
        self.held.get(id).copied()
    }

    pub fn size_of(&self, id: &Hash32) -> Option<u32> {
        self.held.get(id).map(|e| e.size)
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// A chunk was written after its hash check (verified).
    pub fn insert(&mut self, id: Hash32, payload_len: usize, manifest: Option<&Manifest>) {
        self.insert_as(id, payload_len, manifest, true);
    }

    /// A chunk file found on disk, `verified` if its content was checked.
    pub fn insert_as(
        &mut self,
        id: Hash32,
        payload_len: usize,
        manifest: Option<&Manifest>,
        verified: bool,
    ) {
        self.catalog.on_insert(id, payload_len as u32, manifest);
        let kind = if manifest.is_some() {
            ChunkKind::Manifest
        } else {
            ChunkKind::Data
        };
        self.held.insert(
            id,
            Entry {
                size: payload_len as u32,
                kind,
                verified,
            },
        );
        if let Some(m) = manifest {
            let nh = crate::chunking::name_hash(&m.name);
            self.manifests
                .entry(nh)
                .or_default()
                .insert((m.version, m.writer, id), payload_len as u32);
        }
    }

    /// A read or scrub found the chunk's content right.
    pub fn mark_verified(&mut self, id: &Hash32) {
        if let Some(e) = self.held.get_mut(id) {
            e.verified = true;
        }
    }

    /// Ids of the chunks held, unverified ones first.
    pub fn scrub_order(&self) -> Vec<Hash32> {
        let mut v: Vec<(bool, Hash32)> = self.held.iter().map(|(k, e)| (e.verified, *k)).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, k)| k).collect()
    }

    /// Chunks not verified yet.
    pub fn unverified(&self) -> usize {
        self.held.values().filter(|e| !e.verified).count()
    }

    /// The name hash a held manifest is placed by.
    pub fn manifest_name_hash(&self, id: &Hash32) -> Option<Hash32> {
        self.manifests
            .iter()
            .find(|(_, vs)| vs.keys().any(|k| k.2 == *id))
            .map(|(nh, _)| *nh)
    }

    /// A chunk is gone (found corrupt and quarantined, or missing).
    pub fn remove(&mut self, id: &Hash32) {
        self.catalog.on_remove(id);
        self.held.remove(id);
        for v in self.manifests.values_mut() {
            v.retain(|k, _| k.2 != *id);
        }
    }

    /// Versions of a name held here, newest first (by version, writer,
    /// manifest id); `version` 0 = the newest `max`, otherwise the entries
    /// of that version number (every writer's), at most `max`.
    pub fn versions(&self, name_hash: &Hash32, version: u64, max: usize) -> Vec<VersionEntry> {
        if let Some(page) = self.catalog.page(name_hash, version, max) {
            return page;
        }
        let Some(vs) = self.manifests.get(name_hash) else {
            return Vec::new();
        };
        vs.iter()
            .rev()
            .filter(|((v, _, _), _)| version == 0 || *v == version)
            .take(max)
            .map(|((v, w, id), size)| VersionEntry {
                version: *v,
                writer: *w,
                manifest_id: *id,
                size: *size,
            })
            .collect()
    }
}
