//! The chunk store: content-addressed files on local disk.
//!
//! Layout under the store root:
//! - `data/ab/<hex id>`: data chunks (`ab` = first octet of the id);
//! - `manifests/<hex id>`: version manifest chunks (indexed by name at open);
//! - `tmp/`: writes in progress (emptied at open);
//! - `quarantine/`: chunks that failed verification, never served.
//!
//! A chunk is written to `tmp/`, fsynced, renamed into place and its
//! directory fsynced before [`Store::put`] returns (and so before any ACK).
//! Every [`Store::get`] verifies BLAKE3(payload) == id.

use crate::chunking::chunk_id;
use crate::manifest::Manifest;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use subcast_proto::replicast::{ChunkKind, Hash32, VersionEntry};

/// Errors of the chunk store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "chunk store {path}: {source} (check the `store` path in the config and its permissions)"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("payload does not hash to chunk id {0}: refused")]
    HashMismatch(String),
    #[error("chunk {0} is not stored here")]
    NotFound(String),
    #[error("chunk {id} failed verification on read and was moved to {quarantined}")]
    Corrupt { id: String, quarantined: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Counters a node reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StoreCounters {
    pub chunks_written: u64,
    pub bytes_written: u64,
    pub chunks_read: u64,
    pub corrupt_detected: u64,
}

/// A content-addressed chunk store in one directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// name hash -> version -> (manifest id, manifest size).
    manifests: HashMap<Hash32, BTreeMap<u64, (Hash32, u32)>>,
    tmp_counter: u64,
    pub counters: StoreCounters,
}

impl Store {
    /// Opens (creating if needed) a store and indexes its manifests.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        for d in ["data", "manifests", "tmp", "quarantine"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let tmp = root.join("tmp");
        for e in fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let _ = fs::remove_file(e.path());
        }
        let mut s = Store {
            root,
            manifests: HashMap::new(),
            tmp_counter: 0,
            counters: StoreCounters::default(),
        };
        let mdir = s.root.join("manifests");
        let ids: Vec<Hash32> = fs::read_dir(&mdir)
            .map_err(io_err(&mdir))?
            .flatten()
            .filter_map(|e| parse_hex_id(&e.file_name().to_string_lossy()))
            .collect();
        for id in ids {
            match s.get(&id) {
                Ok(bytes) => s.index_manifest(&id, &bytes),
                Err(e) => tracing::warn!(error = %e, "manifest not indexed"),
            }
        }
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a chunk of `kind` lives.
    pub fn path_of(&self, kind: ChunkKind, id: &Hash32) -> PathBuf {
        let h = hex::encode(id);
        match kind {
            ChunkKind::Data => self.root.join("data").join(&h[..2]).join(h),
            ChunkKind::Manifest => self.root.join("manifests").join(h),
        }
    }

    fn find(&self, id: &Hash32) -> Option<PathBuf> {
        [ChunkKind::Data, ChunkKind::Manifest]
            .into_iter()
            .map(|k| self.path_of(k, id))
            .find(|p| p.is_file())
    }

    /// Whether a chunk file is present (not verified: see [`Store::get`]).
    pub fn contains(&self, id: &Hash32) -> bool {
        self.find(id).is_some()
    }

    /// Verifies and durably stores a chunk. Idempotent.
    pub fn put(&mut self, kind: ChunkKind, id: &Hash32, payload: &[u8]) -> Result<(), StoreError> {
        if chunk_id(payload) != *id {
            return Err(StoreError::HashMismatch(hex::encode(id)));
        }
        let manifest = if kind == ChunkKind::Manifest {
            match Manifest::decode(payload) {
                Ok(m) => Some(m),
                Err(_) => {
                    return Err(StoreError::Io {
                        path: self.path_of(kind, id),
                        source: io::Error::new(
                            io::ErrorKind::InvalidData,
                            "chunk proposed as a manifest does not decode as one",
                        ),
                    });
                }
            }
        } else {
            None
        };
        let dest = self.path_of(kind, id);
        if !dest.is_file() {
            let dir = dest.parent().unwrap_or(&self.root).to_owned();
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            self.tmp_counter += 1;
            let tmp = self.root.join("tmp").join(format!(
                "{}.{}.{}",
                hex::encode(&id[..8]),
                std::process::id(),
                self.tmp_counter
            ));
            let write = |tmp: &Path| -> io::Result<()> {
                let mut f = File::create(tmp)?;
                f.write_all(payload)?;
                f.sync_all()?;
                Ok(())
            };
            if let Err(e) = write(&tmp) {
                let _ = fs::remove_file(&tmp);
                return Err(io_err(&tmp)(e));
            }
            fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(&dir))?;
            self.counters.chunks_written += 1;
            self.counters.bytes_written += payload.len() as u64;
        }
        if let Some(m) = manifest {
            self.insert_manifest(&m, id, payload.len());
        }
        Ok(())
    }

    /// Reads and verifies a chunk. A chunk that fails verification is moved
    /// to `quarantine/`, counted, and never returned.
    pub fn get(&mut self, id: &Hash32) -> Result<Vec<u8>, StoreError> {
        let path = self
            .find(id)
            .ok_or_else(|| StoreError::NotFound(hex::encode(id)))?;
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        if chunk_id(&bytes) != *id {
            self.counters.corrupt_detected += 1;
            let q = self.root.join("quarantine").join(hex::encode(id));
            let _ = fs::rename(&path, &q);
            for v in self.manifests.values_mut() {
                v.retain(|_, (m, _)| m != id);
            }
            tracing::error!(chunk = %hex::encode(id), file = %q.display(), "corrupt chunk detected on read; quarantined");
            return Err(StoreError::Corrupt {
                id: hex::encode(id),
                quarantined: q,
            });
        }
        self.counters.chunks_read += 1;
        Ok(bytes)
    }

    fn index_manifest(&mut self, id: &Hash32, bytes: &[u8]) {
        if let Ok(m) = Manifest::decode(bytes) {
            self.insert_manifest(&m, id, bytes.len());
        }
    }

    fn insert_manifest(&mut self, m: &Manifest, id: &Hash32, len: usize) {
        let nh = crate::chunking::name_hash(&m.name);
        self.manifests
            .entry(nh)
            .or_default()
            .insert(m.version, (*id, len as u32));
    }

    /// Versions of a name held here, newest first; `version` 0 = the newest
    /// `max`, otherwise just that version.
    pub fn versions(&self, name_hash: &Hash32, version: u64, max: usize) -> Vec<VersionEntry> {
        let Some(vs) = self.manifests.get(name_hash) else {
            return Vec::new();
        };
        let e = |(v, (id, size)): (&u64, &(Hash32, u32))| VersionEntry {
            version: *v,
            manifest_id: *id,
            size: *size,
        };
        if version == 0 {
            vs.iter().rev().take(max).map(e).collect()
        } else {
            vs.get_key_value(&version).map(e).into_iter().collect()
        }
    }

    /// Ids of all data chunks present (not verified).
    pub fn list_data(&self) -> Vec<Hash32> {
        let mut out = Vec::new();
        let data = self.root.join("data");
        for d in fs::read_dir(data).into_iter().flatten().flatten() {
            for f in fs::read_dir(d.path()).into_iter().flatten().flatten() {
                if let Some(id) = parse_hex_id(&f.file_name().to_string_lossy()) {
                    out.push(id);
                }
            }
        }
        out
    }

    /// Free bytes of the file system holding the store.
    pub fn free_bytes(&self) -> u64 {
        rustix::fs::statvfs(&self.root)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .unwrap_or(0)
    }
}

/// Parses a 64-hex-digit file name.
pub fn parse_hex_id(s: &str) -> Option<Hash32> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_atomic_layout() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let payload = b"hello chunk".to_vec();
        let id = chunk_id(&payload);
        assert!(!s.contains(&id));
        s.put(ChunkKind::Data, &id, &payload).unwrap();
        assert!(s.contains(&id));
        assert_eq!(s.get(&id).unwrap(), payload);
        // Nothing left behind in tmp/, the file has its final name.
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(s.path_of(ChunkKind::Data, &id).is_file());
        assert_eq!(s.list_data(), vec![id]);
        // Idempotent.
        s.put(ChunkKind::Data, &id, &payload).unwrap();
        assert_eq!(s.counters.chunks_written, 1);
        assert!(s.free_bytes() > 0);
    }

    #[test]
    fn wrong_hash_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let id = chunk_id(b"one");
        assert!(matches!(
            s.put(ChunkKind::Data, &id, b"two"),
            Err(StoreError::HashMismatch(_))
        ));
        assert!(!s.contains(&id));
    }

    #[test]
    fn corrupt_chunk_detected_and_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let payload = vec![42u8; 4096];
        let id = chunk_id(&payload);
        s.put(ChunkKind::Data, &id, &payload).unwrap();
        let path = s.path_of(ChunkKind::Data, &id);
        let mut bytes = fs::read(&path).unwrap();
        bytes[100] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(s.get(&id), Err(StoreError::Corrupt { .. })));
        assert_eq!(s.counters.corrupt_detected, 1);
        // Never served afterwards, and not claimed as held.
        assert!(matches!(s.get(&id), Err(StoreError::NotFound(_))));
        assert!(!s.contains(&id));
        assert!(
            dir.path()
                .join("quarantine")
                .join(hex::encode(id))
                .is_file()
        );
        // A new put repairs it.
        s.put(ChunkKind::Data, &id, &payload).unwrap();
        assert_eq!(s.get(&id).unwrap(), payload);
    }

    #[test]
    fn leftover_tmp_cleaned_and_manifests_reindexed() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest {
            name: "b/o".into(),
            version: 2,
            size: 0,
            chunk_size: 1024,
            object_hash: chunk_id(b""),
            created_us: 1,
            chunks: vec![chunk_id(b"")],
        };
        let enc = m.encode();
        let mid = chunk_id(&enc);
        {
            let mut s = Store::open(dir.path()).unwrap();
            s.put(ChunkKind::Manifest, &mid, &enc).unwrap();
            // Not a manifest: refused as one.
            let junk = b"junk".to_vec();
            assert!(s.put(ChunkKind::Manifest, &chunk_id(&junk), &junk).is_err());
        }
        fs::write(dir.path().join("tmp").join("partial"), b"x").unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        let nh = crate::chunking::name_hash("b/o");
        let v = s.versions(&nh, 0, 16);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].version, 2);
        assert_eq!(v[0].manifest_id, mid);
        assert!(s.versions(&nh, 3, 16).is_empty());
    }
}
