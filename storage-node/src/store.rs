//! The chunk store: content-addressed files on local disk.
//!
//! Layout under the store root:
//! - `data/ab/<hex id>`: data chunks (`ab` = first octet of the id);
//! - `manifests/<hex id>`: version manifest chunks (indexed by name at open);
//! - `tmp/`: writes in progress (emptied at open);
//! - `quarantine/`: chunks that failed verification, never served.
//!
//! A chunk is written to `tmp/`, renamed into place, and then the file and
//! its directory are fsynced (at the same time) before [`Store::put`]
//! returns (and so before any ACK). A crash before that may leave a torn
//! file under a chunk's name; files are held only once verified.
//! Every [`Store::get`] verifies BLAKE3(payload) == id. Chunks of 512 KiB
//! or more are written and read with `O_DIRECT` ([`crate::direct_io`]).
//!
//! With a journal ([`Store::enable_journal`], `journal/` under the root;
//! the daemon turns it on), a put of a chunk that fits is durable once its
//! record in the journal's prewritten ring is fdatasynced; the chunk's file
//! is written and renamed at the same time and fsynced by the journal's
//! next checkpoint (`crate::journal` has the rules and the figures).

use crate::chunk_buf::ChunkBuf;
use crate::chunking::chunk_id;
use crate::dir_sync::DirSync;
use crate::direct_io::{DEFAULT_MIN_DIRECT, DirectIo};
use crate::journal::{Journal, JournalConfig, ReplayReport};
use crate::manifest::Manifest;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use subcast_proto::replicast::{ChunkKind, Hash32};

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

impl StoreError {
    /// Whether the file system is out of space (ENOSPC, EDQUOT).
    pub fn is_no_space(&self) -> bool {
        match self {
            // ENOSPC 28, EDQUOT 122.
            StoreError::Io { source, .. } => {
                matches!(source.raw_os_error(), Some(28 | 122))
                    || source.kind() == io::ErrorKind::StorageFull
            }
            _ => false,
        }
    }
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
    /// Chunk files written / read around the page cache (`O_DIRECT`).
    pub direct_writes: u64,
    /// Of those, written from the received chunk's own aligned buffer
    /// (no copy: [`crate::chunk_buf`]).
    pub direct_writes_in_place: u64,
    pub direct_reads: u64,
    pub chunks_read: u64,
    pub corrupt_detected: u64,
    /// Corrupt files found where a verified chunk was being written.
    pub corrupt_replaced: u64,
    /// Corrupt chunks that could not be moved to quarantine/.
    pub quarantine_failures: u64,
    /// Puts made durable by a journal record.
    pub journaled: u64,
    /// Puts that fit a journal record but found the ring full (direct
    /// path instead).
    pub journal_full: u64,
    /// Journal checkpoints done (one journal per store: merged by max).
    pub journal_checkpoints: u64,
    /// A chunk's store: verify, write, rename, fsync.
    pub write_latency: crate::latency::Histogram,
    /// A disk job's wait in the queue before a disk thread took it.
    pub queue_latency: crate::latency::Histogram,
}

impl StoreCounters {
    /// Adds `o` (another disk thread's counters) to these.
    pub fn merge(&mut self, o: &StoreCounters) {
        self.chunks_written += o.chunks_written;
        self.bytes_written += o.bytes_written;
        self.direct_writes += o.direct_writes;
        self.direct_writes_in_place += o.direct_writes_in_place;
        self.direct_reads += o.direct_reads;
        self.chunks_read += o.chunks_read;
        self.corrupt_detected += o.corrupt_detected;
        self.corrupt_replaced += o.corrupt_replaced;
        self.quarantine_failures += o.quarantine_failures;
        self.journaled += o.journaled;
        self.journal_full += o.journal_full;
        self.journal_checkpoints = self.journal_checkpoints.max(o.journal_checkpoints);
        self.write_latency.merge(&o.write_latency);
        self.queue_latency.merge(&o.queue_latency);
    }
}

/// A content-addressed chunk store in one directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// Tells this handle's temporary files from other handles' (disk
    /// threads each have one).
    tmp_tag: usize,
    tmp_counter: u64,
    /// Corrupt chunks that could be neither quarantined nor deleted
    /// (shared by every handle of the store).
    bad: Arc<Mutex<HashSet<Hash32>>>,
    /// Shared by every handle.
    journal: Option<Arc<Journal>>,
    /// Writes and reads chunk files around the page cache where it can.
    io: DirectIo,
    /// This handle's companion for directory fsyncs.
    dir_sync: DirSync,
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
        // Every data chunk's directory (`data/00` .. `data/ff`), made now
        // rather than by the first chunk each receives: a directory made
        // during a put costs an inode allocation on its disk thread.
        for b in 0..=255u8 {
            let p = root.join("data").join(hex::encode([b]));
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let tmp = root.join("tmp");
        for e in fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let _ = fs::remove_file(e.path());
        }
        Ok(Store {
            root,
            tmp_tag: 0,
            tmp_counter: 0,
            bad: Default::default(),
            journal: None,
            io: DirectIo::new(true, DEFAULT_MIN_DIRECT),
            dir_sync: DirSync::default(),
            counters: StoreCounters::default(),
        })
    }

    /// Turns the journal on (handles made afterwards share it): first
    /// every record the last run left after its last checkpoint is stored
    /// again where its file is missing or wrong.
    pub fn enable_journal(&mut self, cfg: JournalConfig) -> Result<ReplayReport, StoreError> {
        let dir = self.root.join("journal");
        let root = self.root.clone();
        let (j, report) = Journal::open(&root, &dir, cfg, |h, payload| {
            let before = self.counters.chunks_written;
            self.put_direct(h.kind, &h.id, payload)
                .map_err(io::Error::other)?;
            Ok(self.counters.chunks_written > before)
        })
        .map_err(io_err(&dir))?;
        if report.restored > 0 || report.torn > 0 {
            tracing::info!(
                restored = report.restored,
                records = report.records,
                torn = report.torn,
                "journal replayed: chunks acknowledged before the last stop are on disk"
            );
        }
        self.journal = Some(Arc::new(j));
        Ok(report)
    }

    fn journal_err(&self, source: io::Error) -> StoreError {
        io_err(&self.root.join("journal"))(source)
    }

    /// The journal, if on.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_deref()
    }

    /// With the journal off: replays a journal an earlier run left (it may
    /// hold acknowledged chunks whose files never reached the disk), then
    /// closes it. `None` when there is none.
    pub fn replay_left_journal(&mut self) -> Result<Option<ReplayReport>, StoreError> {
        let ring = self.root.join("journal").join("ring");
        let Ok(m) = fs::metadata(&ring) else {
            return Ok(None);
        };
        let report = self.enable_journal(JournalConfig {
            size: m.len(),
            checkpoint_every: std::time::Duration::from_secs(1),
            max_record: 0,
        })?;
        // Dropping the only handle runs a last checkpoint.
        self.journal = None;
        Ok(Some(report))
    }

    /// Another handle on the same store, for disk thread `n` (its own
    /// temporary names and counters). Two handles must not work on the
    /// same chunk at once: the disk threads share chunks out by id.
    pub fn handle(&self, n: usize) -> Store {
        Store {
            root: self.root.clone(),
            tmp_tag: n,
            tmp_counter: 0,
            bad: self.bad.clone(),
            journal: self.journal.clone(),
            io: DirectIo::new(self.io.is_direct(), self.io.min_direct()),
            dir_sync: DirSync::default(),
            counters: StoreCounters::default(),
        }
    }

    /// Chunk files written and read around the page cache (`O_DIRECT`,
    /// the default) or through it; handles made afterwards take the
    /// setting. Payloads shorter than `min_octets` always go through the
    /// cache. [`crate::direct_io`] says why.
    pub fn set_direct_io(&mut self, direct: bool, min_octets: usize) {
        self.io = DirectIo::new(direct, min_octets);
    }

    fn is_bad(&self, id: &Hash32) -> bool {
        self.bad.lock().is_ok_and(|b| b.contains(id))
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
        if self.is_bad(id) {
            return None;
        }
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
        self.put_from(kind, id, payload, None)
    }

    /// As [`Store::put`] with a received chunk's buffer: an aligned one is
    /// written direct as it is ([`DirectIo::create_buf`]).
    pub fn put_chunk(
        &mut self,
        kind: ChunkKind,
        id: &Hash32,
        payload: &ChunkBuf,
    ) -> Result<(), StoreError> {
        self.put_from(kind, id, payload, Some(payload))
    }

    fn put_from(
        &mut self,
        kind: ChunkKind,
        id: &Hash32,
        payload: &[u8],
        buf: Option<&ChunkBuf>,
    ) -> Result<(), StoreError> {
        let t0 = std::time::Instant::now();
        let journal = self.journal.clone();
        let r = self.put_timed(kind, id, payload, buf, journal.as_deref());
        self.counters.write_latency.record(t0.elapsed());
        if let Some(j) = &journal {
            self.counters.journal_checkpoints = j.checkpoints();
        }
        r
    }

    /// As [`Store::put`], never through the journal.
    fn put_direct(
        &mut self,
        kind: ChunkKind,
        id: &Hash32,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        self.put_timed(kind, id, payload, None, None)
    }

    /// `buf`, if given, holds `payload` (written from it as it is where it
    /// can be).
    fn put_timed(
        &mut self,
        kind: ChunkKind,
        id: &Hash32,
        payload: &[u8],
        buf: Option<&ChunkBuf>,
        journal: Option<&Journal>,
    ) -> Result<(), StoreError> {
        if chunk_id(payload) != *id {
            return Err(StoreError::HashMismatch(hex::encode(id)));
        }
        if kind == ChunkKind::Manifest && Manifest::decode_head(payload).is_err() {
            return Err(StoreError::Io {
                path: self.path_of(kind, id),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk proposed as a manifest does not decode as one",
                ),
            });
        }
        let dest = self.path_of(kind, id);
        // A file already there counts only if its content is right: a
        // corrupt or truncated copy is replaced (atomically, by rename).
        let present_and_good = dest.is_file()
            && fs::read(&dest).is_ok_and(|b| {
                let good = chunk_id(&b) == *id;
                if !good {
                    self.counters.corrupt_replaced += 1;
                    tracing::warn!(chunk = %hex::encode(id), "a corrupt copy was on disk; replacing it with the verified payload");
                }
                good
            });
        let dir = dest.parent().unwrap_or(&self.root).to_owned();
        if present_and_good {
            // Right, but perhaps not yet on disk (a process that died
            // between its rename and its fsync left it): make sure.
            let f = File::open(&dest).map_err(io_err(&dest))?;
            self.sync_file_and_dir(&f, &dest, &dir)?;
        } else {
            // A journal record when it fits and the ring has room.
            let ticket = journal.and_then(|j| {
                let t = j.reserve(payload.len());
                if t.is_none() && payload.len() <= j.max_payload() {
                    self.counters.journal_full += 1;
                }
                t.map(|t| (j, t))
            });
            if let Some((j, t)) = &ticket {
                j.write(t, kind, id, payload)
                    .map_err(|e| self.journal_err(e))?;
            }
            self.tmp_counter += 1;
            let tmp = self.root.join("tmp").join(format!(
                "{}.{}.{}.{}",
                hex::encode(&id[..8]),
                std::process::id(),
                self.tmp_tag,
                self.tmp_counter
            ));
            // Written whole under a temporary name, renamed into place,
            // then the file and its directory fsynced at the same time:
            // on a journaling file system one commit carries the data and
            // the rename (an fsync before the rename, or the directory's
            // after the file's, would each cost a commit or a cache flush
            // of their own). Until the ACK nothing is promised: a crash
            // before the fsyncs may leave a torn file under the final
            // name, which is never counted as held before a read verified
            // it.
            let created = match buf {
                Some(b) => self.io.create_buf(&tmp, b),
                None => self.io.create(&tmp, payload),
            };
            let f = match created {
                Ok(f) => f,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(io_err(&tmp)(e));
                }
            };
            // The chunk's directory was made at open; made again here only
            // if it went since (not checked for every chunk: a `mkdir` each).
            let renamed = fs::rename(&tmp, &dest).or_else(|e| {
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(e);
                }
                fs::create_dir_all(&dir)?;
                fs::rename(&tmp, &dest)
            });
            if let Err(e) = renamed {
                let _ = fs::remove_file(&tmp);
                return Err(io_err(&dest)(e));
            }
            match ticket {
                Some((j, t)) => {
                    j.sync().map_err(|e| self.journal_err(e))?;
                    j.complete(t);
                    self.counters.journaled += 1;
                }
                None => self.sync_file_and_dir(&f, &dest, &dir)?,
            }
            self.counters.chunks_written += 1;
            self.counters.bytes_written += payload.len() as u64;
            self.counters.direct_writes = self.io.direct_writes;
            self.counters.direct_writes_in_place = self.io.in_place_writes;
        }
        Ok(())
    }

    /// Makes `file` (at `path`) and its entry in `dir` durable: both fsyncs
    /// at once (the directory's on this handle's [`DirSync`] thread),
    /// returning when both are done. Each guarantees what was done before
    /// it was called, and the rename was; so both returning means data and
    /// name are on disk.
    fn sync_file_and_dir(
        &mut self,
        file: &File,
        path: &Path,
        dir: &Path,
    ) -> Result<(), StoreError> {
        let (f, d) = self.dir_sync.sync_both(file, dir);
        f.map_err(io_err(path))?;
        d.map_err(io_err(dir))
    }

    /// Reads and verifies a chunk. A chunk that fails verification is moved
    /// to `quarantine/`, counted, and never returned.
    pub fn get(&mut self, id: &Hash32) -> Result<Vec<u8>, StoreError> {
        let path = self
            .find(id)
            .ok_or_else(|| StoreError::NotFound(hex::encode(id)))?;
        let bytes = self.io.read(&path).map_err(io_err(&path))?;
        self.counters.direct_reads = self.io.direct_reads;
        if chunk_id(&bytes) != *id {
            self.counters.corrupt_detected += 1;
            let q = self.quarantine(id, &path);
            return Err(StoreError::Corrupt {
                id: hex::encode(id),
                quarantined: q,
            });
        }
        self.counters.chunks_read += 1;
        Ok(bytes)
    }

    /// Moves a corrupt chunk file out of the store: to `quarantine/`, or,
    /// if that fails, deletes it; if both fail the id is remembered as bad
    /// (never found, listed or served by this process) and the failure
    /// logged: a corrupt copy is never counted as held. Returns where it
    /// went.
    fn quarantine(&mut self, id: &Hash32, path: &Path) -> PathBuf {
        let q = self.root.join("quarantine").join(hex::encode(id));
        match fs::rename(path, &q) {
            Ok(()) => {
                tracing::error!(chunk = %hex::encode(id), file = %q.display(), "corrupt chunk detected; quarantined");
                q
            }
            Err(e) => {
                self.counters.quarantine_failures += 1;
                match fs::remove_file(path) {
                    Ok(()) => {
                        tracing::error!(chunk = %hex::encode(id), error = %e, "corrupt chunk detected; quarantine failed, deleted it");
                    }
                    Err(e2) => {
                        tracing::error!(chunk = %hex::encode(id), error = %e, delete_error = %e2, "corrupt chunk detected; could neither quarantine nor delete it: ignored by this process, remove {} by hand", path.display());
                        if let Ok(mut b) = self.bad.lock() {
                            b.insert(*id);
                        }
                    }
                }
                path.to_owned()
            }
        }
    }

    /// Ids of all data chunks present (not verified).
    pub fn list_data(&self) -> Vec<Hash32> {
        let mut v = self.list_data_files();
        v.retain(|id| !self.is_bad(id));
        v
    }

    fn list_data_files(&self) -> Vec<Hash32> {
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

    /// Ids of all manifests present (not read).
    pub fn list_manifests(&self) -> Vec<Hash32> {
        fs::read_dir(self.root.join("manifests"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| parse_hex_id(&e.file_name().to_string_lossy()))
            .collect()
    }

    /// What the store holds, for the core's in-memory index (manifests
    /// are read and decoded; data chunks are listed, not verified).
    pub fn index(&mut self) -> crate::index::StoreIndex {
        let mut ix = crate::index::StoreIndex::default();
        // Data chunks are listed, not read: unverified until scrubbed.
        for id in self.list_data() {
            let p = self.path_of(ChunkKind::Data, &id);
            if let Ok(m) = fs::metadata(&p) {
                ix.insert_as(id, m.len() as usize, None, false);
            }
        }
        for id in self.list_manifests() {
            match self.get(&id) {
                Ok(bytes) => {
                    ix.insert(id, bytes.len(), Manifest::decode_head(&bytes).ok().as_ref())
                }
                Err(e) => tracing::warn!(error = %e, "manifest not indexed"),
            }
        }
        ix.free_bytes = self.free_bytes();
        ix
    }

    /// Free bytes of the file system holding the store.
    pub fn free_bytes(&self) -> u64 {
        free_bytes_of(&self.root)
    }
}

/// Free bytes (for unprivileged users) of the file system holding `path`;
/// 0 if it cannot be read.
pub fn free_bytes_of(path: &Path) -> u64 {
    rustix::fs::statvfs(path)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
        .unwrap_or(0)
}

/// Parses a 64-hex-digit file name.
pub fn parse_hex_id(s: &str) -> Option<Hash32> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// A put over a corrupt file of the same id replaces it; before, the
    /// file's existence alone made the put succeed.
    #[test]
    fn put_replaces_a_corrupt_file_of_the_same_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let payload = vec![9u8; 5000];
        let id = chunk_id(&payload);
        s.put(ChunkKind::Data, &id, &payload).unwrap();
        let path = s.path_of(ChunkKind::Data, &id);
        fs::write(&path, b"truncated").unwrap();
        s.put(ChunkKind::Data, &id, &payload).unwrap();
        assert_eq!(fs::read(&path).unwrap(), payload);
        assert_eq!(s.counters.corrupt_replaced, 1);
        // A good copy is left alone (not written again).
        s.put(ChunkKind::Data, &id, &payload).unwrap();
        assert_eq!(s.counters.chunks_written, 2);
    }

    /// A corrupt copy whose quarantine fails is deleted, so that neither
    /// this process nor the next start counts it.
    #[test]
    fn failed_quarantine_leaves_no_corrupt_copy_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let payload = vec![3u8; 4096];
        let id = chunk_id(&payload);
        s.put(ChunkKind::Data, &id, &payload).unwrap();
        let path = s.path_of(ChunkKind::Data, &id);
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] ^= 1;
        fs::write(&path, &bytes).unwrap();
        // quarantine/ is not a directory: the rename into it fails.
        let q = dir.path().join("quarantine");
        fs::remove_dir(&q).unwrap();
        fs::write(&q, b"in the way").unwrap();
        assert!(matches!(s.get(&id), Err(StoreError::Corrupt { .. })));
        assert_eq!(s.counters.quarantine_failures, 1);
        assert!(!s.contains(&id));
        assert!(!path.exists(), "deleted instead");
        fs::remove_file(&q).unwrap();
        let mut again = Store::open(dir.path()).unwrap();
        assert!(!again.index().has_file(&id));
    }

    /// The manifest of an empty object "b/o" at `version`, encoded.
    pub(crate) fn empty_manifest(version: u64) -> Vec<u8> {
        Manifest {
            name: "b/o".into(),
            version,
            writer: 7,
            size: 0,
            chunk_size: 1024,
            object_hash: chunk_id(b""),
            created_us: 1,
            chunks: vec![chunk_id(b"")],
            inline: None,
        }
        .encode()
    }

    #[test]
    fn leftover_tmp_cleaned_and_manifests_reindexed() {
        let dir = tempfile::tempdir().unwrap();
        let enc = empty_manifest(2);
        let mid = chunk_id(&enc);
        {
            let mut s = Store::open(dir.path()).unwrap();
            s.put(ChunkKind::Manifest, &mid, &enc).unwrap();
            // Not a manifest: refused as one.
            let junk = b"junk".to_vec();
            assert!(s.put(ChunkKind::Manifest, &chunk_id(&junk), &junk).is_err());
        }
        fs::write(dir.path().join("tmp").join("partial"), b"x").unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        let nh = crate::chunking::name_hash("b/o");
        let ix = s.index();
        let v = ix.versions(&nh, 0, 16);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].version, 2);
        assert_eq!(v[0].manifest_id, mid);
        assert!(ix.versions(&nh, 3, 16).is_empty());
    }
}
