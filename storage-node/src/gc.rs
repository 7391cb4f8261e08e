//! Garbage collection of chunks nothing references.
//!
//! `subcast-node gc` (a client) marks: it lists every manifest of the
//! cluster (the catalog form of MANIFEST_QUERY, answered by enough members
//! of every negotiating group that a holder of each manifest answered),
//! decides which versions are live, reads every snapshot record, and
//! collects the ids of the live manifests and of the chunks they name.
//! It writes that set to each node store it was given (`STORE/gc/mark`);
//! the node's serve loop takes the file within a second and sweeps
//! ([`crate::node::NodeCore::sweep`]): it removes from its index, then
//! deletes, every chunk that is not in the set, was last stored or
//! claimed before `mark_us - grace`, and is not being written; it
//! answers in `STORE/gc/done.json`.
//!
//! Live: every version of a name newer than its newest tombstone, that
//! tombstone, every version a snapshot record names, and every version
//! older than a tombstone made less than `grace` before the mark.
//!
//! The race of a put whose chunks land before its manifest is covered by
//! the grace period and one rule: **a put must store its manifest within
//! `grace` of its data chunks' acknowledgements** (a put's chunks are
//! acknowledged, or claimed "already stored", at some `t`; a chunk is
//! removed only if `t < mark_us - grace`, so its manifest was stored
//! before the mark listed the manifests, and the chunk is referenced).
//! Likewise a snapshot record must be stored within `grace` of its cut
//! (a version it names stays live for `grace` after its tombstone). The
//! default grace is an hour; puts and snapshots take seconds.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use subcast_proto::DecodeError;
use subcast_proto::replicast::{ChunkKind, Hash32};
use subcast_proto::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"SCGC";

/// What a mark found referenced, and from when on chunks are safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// When the mark started listing (us since the epoch).
    pub mark_us: u64,
    /// Chunks last stored or claimed before this may be removed.
    pub cutoff_us: u64,
    pub refs: HashSet<Hash32>,
}

impl Mark {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(MAGIC);
        w.u8(1);
        w.u64(self.mark_us);
        w.u64(self.cutoff_us);
        w.u32(self.refs.len() as u32);
        let mut ids: Vec<&Hash32> = self.refs.iter().collect();
        ids.sort_unstable();
        for id in ids {
            w.bytes(id);
        }
        w.buf
    }

    pub fn decode(b: &[u8]) -> Result<Mark, DecodeError> {
        let mut r = Reader::new(b);
        if r.bytes(4, "gc mark magic")? != MAGIC || r.u8("gc mark format")? != 1 {
            return Err(DecodeError::Invalid {
                field: "gc mark magic",
                why: "not a gc mark of format 1",
            });
        }
        let mark_us = r.u64("mark time")?;
        let cutoff_us = r.u64("cutoff")?;
        let n = r.u32("count")? as usize;
        r.check_count(n, 32, "refs")?;
        let mut refs = HashSet::with_capacity(n);
        for _ in 0..n {
            refs.insert(r.array("chunk id")?);
        }
        r.finish()?;
        Ok(Mark {
            mark_us,
            cutoff_us,
            refs,
        })
    }
}

/// What a node's sweep did (`STORE/gc/done.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SweepReport {
    pub node: u32,
    pub mark_us: u64,
    pub removed_chunks: u64,
    pub removed_bytes: u64,
    /// Chunks held after the sweep.
    pub held_chunks: u64,
}

pub fn mark_path(store: &Path) -> PathBuf {
    store.join("gc").join("mark")
}

pub fn done_path(store: &Path) -> PathBuf {
    store.join("gc").join("done.json")
}

/// Writes `mark` for the node serving `store` (atomically).
pub fn write_mark(store: &Path, mark: &Mark) -> std::io::Result<()> {
    let dir = store.join("gc");
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!("mark.{}.tmp", std::process::id()));
    std::fs::write(&tmp, mark.encode())?;
    std::fs::rename(&tmp, mark_path(store))
}

/// Where a chunk file lives in a store (see [`crate::store`]).
fn chunk_path(store: &Path, kind: ChunkKind, id: &Hash32) -> PathBuf {
    let h = hex::encode(id);
    match kind {
        ChunkKind::Data => store.join("data").join(&h[..2]).join(h),
        ChunkKind::Manifest => store.join("manifests").join(h),
    }
}

/// The serve loop's part, once a second: if a mark is waiting in
/// `store`, sweep and delete, and answer in `done.json`.
pub fn daemon_tick(core: &mut crate::node::NodeCore, store: &Path) {
    let p = mark_path(store);
    let Ok(bytes) = std::fs::read(&p) else { return };
    let _ = std::fs::remove_file(&p);
    let mark = match Mark::decode(&bytes) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, file = %p.display(), "gc mark ignored");
            return;
        }
    };
    let gone = core.sweep(&mark.refs, mark.cutoff_us);
    let mut report = SweepReport {
        node: core.node_id(),
        mark_us: mark.mark_us,
        ..SweepReport::default()
    };
    for (id, kind, size) in gone {
        let f = chunk_path(store, kind, &id);
        match std::fs::remove_file(&f) {
            Ok(()) => {
                report.removed_chunks += 1;
                report.removed_bytes += u64::from(size);
            }
            Err(e) => tracing::warn!(file = %f.display(), error = %e, "gc could not delete"),
        }
    }
    report.held_chunks = core.index.len() as u64;
    tracing::info!(
        removed = report.removed_chunks,
        bytes = report.removed_bytes,
        "gc sweep"
    );
    let d = done_path(store);
    let tmp = d.with_extension("tmp");
    if let Ok(text) = serde_json::to_string(&report)
        && std::fs::write(&tmp, text).is_ok()
    {
        let _ = std::fs::rename(&tmp, &d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_round_trip() {
        let m = Mark {
            mark_us: 5,
            cutoff_us: 3,
            refs: [[1; 32], [2; 32]].into_iter().collect(),
        };
        let b = m.encode();
        assert_eq!(Mark::decode(&b).unwrap(), m);
        for n in 0..b.len() {
            assert!(Mark::decode(&b[..n]).is_err());
        }
    }
}
