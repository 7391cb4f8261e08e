//! The store's journal: a chunk is durable once its record is in a
//! prewritten ring file and that file is fdatasynced; the chunk's own file
//! is written at the same time and fsynced later, many at once, by a
//! checkpoint.
//!
//! Why: on ext4 a new file (written, renamed into place, file and directory
//! fsynced) costs a journal commit of its own; an overwrite of octets the
//! file already has costs only the data write and a cache flush. Measured
//! on the project machine, 256 KiB: new file 2.1-2.6 ms p50 alone and
//! 2.8-3.5 ms with three writers at once; prewritten ring 0.43 ms alone and
//! 1.1-1.2 ms with three (labs/RESULTS.md). Ceph's FileStore journal and
//! BlueStore's deferred writes do the same for small writes.
//!
//! Rules:
//! - A record is written (header, payload, zero padding: whole pages, so
//!   no read-before-write) only into octets the ring says are free, then
//!   fdatasynced before the put returns. Records whose payload exceeds a
//!   quarter of the ring, and puts that find no room, take the direct path
//!   (file and directory fsynced before the put returns).
//! - A checkpoint (every `checkpoint_every`, or at once when half the ring
//!   is live) makes the store's file system durable with one `syncfs`
//!   (one journal commit and one cache flush for every file written since
//!   the last: an fsync per file costs a flush each, 2-8 ms apiece on the
//!   project machine, and they crowd out the puts' own), persists the
//!   highest sequence number below every record still being written, and
//!   frees those records' space. The store's directories must therefore be
//!   on one file system (the store root's).
//! - At open, every record after the persisted checkpoint whose header
//!   checks and whose payload hashes to its id is stored again by the
//!   direct path if its file is missing or wrong (idempotent: chunks are
//!   content-addressed). A torn record was never acknowledged and is
//!   skipped. A chunk deleted (by GC) after its put but before the next
//!   checkpoint can come back after a crash; the next GC pass removes it.
//!   A chunk's payload can hold a well-formed header on a 4 KiB boundary
//!   (anyone can put one): a number beyond what the ring can have held
//!   since the checkpoint is ignored, and one within it only stores a
//!   chunk that verifies by its hash, which its author could put anyway.
//! - The ring file is prewritten by the checkpoint thread in steps after
//!   the first start, so a node starts at once; puts take the direct path
//!   until the first step is ready.

pub mod record;
pub mod ring;
#[cfg(test)]
mod tests;

use record::{ALIGN, HEADER, Header, span_of};
use ring::Ring;
use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use subcast_proto::replicast::{ChunkKind, Hash32};

/// Octets prewritten per step (then fdatasynced) until the ring has its size.
const PREWRITE_STEP: u64 = 4 << 20;

/// The journal's settings.
#[derive(Debug, Clone, Copy)]
pub struct JournalConfig {
    /// Octets of the ring file (rounded down to 4 KiB).
    pub size: u64,
    /// Checkpoint at least this often while records are live.
    pub checkpoint_every: Duration,
    /// Largest payload a record carries (0: a quarter of the ring, the
    /// most); larger chunks take the direct path.
    pub max_record: usize,
}

/// What an open found in the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// The checkpoint the file recorded.
    pub checkpoint: u64,
    /// Records after it whose header and payload checked.
    pub records: u64,
    /// Of those, chunks whose file was missing or wrong and was written.
    pub restored: u64,
    /// Headers after the checkpoint whose payload did not hash to its id
    /// (torn writes, never acknowledged).
    pub torn: u64,
}

/// Counters shared by every handle of a store.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JournalStats {
    pub checkpoints: u64,
    pub checkpoint_failures: u64,
    /// Octets of the ring prewritten so far.
    pub ready_bytes: u64,
    /// Octets held by live records now.
    pub live_bytes: u64,
    /// Chunks the last open restored from the journal.
    pub restored: u64,
}

/// A place in the ring for one record. Dropped without
/// [`Journal::complete`], the put failed: the record's space is freed by
/// the next checkpoint.
#[derive(Debug)]
pub struct Ticket {
    seq: u64,
    off: u64,
    shared: Arc<Shared>,
    done: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.shared.state).in_flight.remove(&self.seq);
        }
    }
}

#[derive(Debug)]
struct State {
    ring: Ring,
    next_seq: u64,
    /// Records reserved and not yet completed or abandoned.
    in_flight: BTreeSet<u64>,
    /// Records completed since the last checkpoint.
    pending: u64,
    /// The last checkpoint persisted.
    checkpointed: u64,
    shutdown: bool,
    stats: JournalStats,
}

impl State {
    /// The highest sequence number every record up to which is complete.
    fn complete_through(&self) -> u64 {
        match self.in_flight.first() {
            Some(s) => s - 1,
            None => self.next_seq - 1,
        }
    }

    /// Half the ring is live and a checkpoint would free some of it (the
    /// oldest live record is complete).
    fn urgent(&self) -> bool {
        self.ring.used() * 2 > self.ring.ready()
            && self
                .ring
                .oldest()
                .is_some_and(|seq| seq <= self.complete_through())
    }
}

#[derive(Debug)]
struct Shared {
    /// The store root, for `syncfs`.
    root: File,
    log: File,
    checkpoint: File,
    size: u64,
    cfg: JournalConfig,
    state: Mutex<State>,
    /// Wakes the checkpoint thread (only it waits here).
    wake: Condvar,
    /// Tells waiters the ring grew or a checkpoint freed space.
    progress: Condvar,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The journal of one store, shared by its handles (one per disk thread).
#[derive(Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, hands every record
    /// after the last checkpoint to `replay` (which must store it durably
    /// and say whether it had to write it), and starts the checkpoint
    /// thread.
    pub fn open(
        root: &Path,
        dir: &Path,
        cfg: JournalConfig,
        mut replay: impl FnMut(&Header, &[u8]) -> io::Result<bool>,
    ) -> io::Result<(Journal, ReplayReport)> {
        let size = cfg.size / ALIGN * ALIGN;
        fs::create_dir_all(dir)?;
        let opts = || {
            let mut o = OpenOptions::new();
            o.read(true).write(true).create(true).truncate(false);
            o
        };
        let log = opts().open(dir.join("ring"))?;
        let checkpoint = opts().open(dir.join("checkpoint"))?;
        let mut cbuf = [0u8; record::CHECKPOINT_LEN];
        let n = read_at_most(&checkpoint, &mut cbuf, 0)?;
        let mut report = ReplayReport {
            checkpoint: record::decode_checkpoint(&cbuf[..n]),
            ..Default::default()
        };
        let len = log.metadata()?.len();
        // Every record written since the checkpoint still fits the ring
        // (space is only reused after a checkpoint): a higher number is a
        // header inside some chunk's payload (anyone can put one), not ours.
        let plausible = report.checkpoint.saturating_add(len.max(size) / ALIGN);
        let mut max_seq = report.checkpoint;
        let mut seen = HashSet::new();
        let mut hdr = [0u8; HEADER];
        let mut off = 0;
        while off + HEADER as u64 <= len {
            let at = off;
            off += ALIGN;
            if read_at_most(&log, &mut hdr, at)? < HEADER {
                break;
            }
            let Some(h) = Header::decode(&hdr).filter(|h| h.seq <= plausible) else {
                continue;
            };
            max_seq = max_seq.max(h.seq);
            if h.seq <= report.checkpoint || at + HEADER as u64 + u64::from(h.len) > len {
                continue;
            }
            let mut payload = vec![0u8; h.len as usize];
            log.read_exact_at(&mut payload, at + HEADER as u64)?;
            if crate::chunking::chunk_id(&payload) != h.id {
                report.torn += 1;
                continue;
            }
            report.records += 1;
            if seen.insert(h.id) && replay(&h, &payload)? {
                report.restored += 1;
            }
        }
        if max_seq > report.checkpoint || len > size {
            // Everything replayed is on disk as files now.
            if len > size {
                log.set_len(size)?;
            }
            persist_checkpoint(&checkpoint, max_seq)?;
        }
        let ready = len.min(size) / ALIGN * ALIGN;
        let shared = Arc::new(Shared {
            root: File::open(root)?,
            log,
            checkpoint,
            size,
            cfg,
            state: Mutex::new(State {
                ring: Ring::new(ready),
                next_seq: max_seq + 1,
                in_flight: BTreeSet::new(),
                pending: 0,
                checkpointed: max_seq,
                shutdown: false,
                stats: JournalStats {
                    restored: report.restored,
                    ..Default::default()
                },
            }),
            wake: Condvar::new(),
            progress: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("subcast-journal".into())
            .spawn(move || run(s))?;
        Ok((
            Journal {
                shared,
                thread: Mutex::new(Some(thread)),
            },
            report,
        ))
    }

    /// Largest payload a record may carry (larger chunks take the direct
    /// path: one big write gains little from the journal and would crowd
    /// out the small ones).
    pub fn max_payload(&self) -> usize {
        let quarter = (self.shared.size / 4).saturating_sub(HEADER as u64) as usize;
        match self.shared.cfg.max_record {
            0 => quarter,
            m => m.min(quarter),
        }
    }

    /// A place for a record of `len` payload octets, if the ring has room.
    pub fn reserve(&self, len: usize) -> Option<Ticket> {
        if len > self.max_payload() {
            return None;
        }
        let mut st = lock(&self.shared.state);
        let seq = st.next_seq;
        let Some(off) = st.ring.reserve(seq, span_of(len)) else {
            drop(st);
            self.shared.wake.notify_one();
            return None;
        };
        st.next_seq += 1;
        st.in_flight.insert(seq);
        if st.urgent() {
            self.shared.wake.notify_one();
        }
        Some(Ticket {
            seq,
            off,
            shared: self.shared.clone(),
            done: false,
        })
    }

    /// Writes the record (whole pages) at its place; not yet synced.
    pub fn write(
        &self,
        t: &Ticket,
        kind: ChunkKind,
        id: &Hash32,
        payload: &[u8],
    ) -> io::Result<()> {
        let h = Header {
            seq: t.seq,
            kind,
            len: u32::try_from(payload.len()).map_err(io::Error::other)?,
            id: *id,
        };
        let pad = (span_of(payload.len()) as usize) - HEADER - payload.len();
        static ZEROS: [u8; ALIGN as usize] = [0; ALIGN as usize];
        write_all_vectored_at(
            &self.shared.log,
            &[&h.encode(), payload, &ZEROS[..pad]],
            t.off,
        )
    }

    /// Makes every record written so far durable.
    pub fn sync(&self) -> io::Result<()> {
        self.shared.log.sync_data()
    }

    /// The record is durable and its chunk file is in place: a checkpoint
    /// will make the file durable and free the record.
    pub fn complete(&self, mut t: Ticket) {
        let mut st = lock(&self.shared.state);
        st.in_flight.remove(&t.seq);
        st.pending += 1;
        t.done = true;
        if st.urgent() {
            drop(st);
            self.shared.wake.notify_one();
        }
    }

    /// Fsyncs every completed record's file now and frees their space.
    pub fn checkpoint(&self) -> io::Result<()> {
        checkpoint(&self.shared)
    }

    /// Checkpoints done so far.
    pub fn checkpoints(&self) -> u64 {
        lock(&self.shared.state).stats.checkpoints
    }

    pub fn stats(&self) -> JournalStats {
        let st = lock(&self.shared.state);
        JournalStats {
            ready_bytes: st.ring.ready(),
            live_bytes: st.ring.used(),
            ..st.stats.clone()
        }
    }

    /// Waits (at most `limit`) until the whole ring is prewritten; whether
    /// it is.
    pub fn wait_ready(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut st = lock(&self.shared.state);
        while st.ring.ready() < self.shared.size {
            let now = Instant::now();
            if now >= end || st.shutdown {
                return false;
            }
            st = self
                .shared
                .progress
                .wait_timeout(st, end - now)
                .map(|r| r.0)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }
}

impl Drop for Journal {
    /// A last checkpoint, so that a clean stop replays nothing.
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.wake.notify_all();
        self.shared.progress.notify_all();
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

fn run(sh: Arc<Shared>) {
    let mut prewritten = lock(&sh.state).ring.ready();
    loop {
        let shutdown = {
            let mut st = lock(&sh.state);
            let deadline = Instant::now() + sh.cfg.checkpoint_every;
            // While prewriting, checkpoint between steps without waiting.
            while !st.shutdown && !st.urgent() && prewritten >= sh.size {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = sh
                    .wake
                    .wait_timeout(st, deadline - now)
                    .map(|r| r.0)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            st.shutdown
        };
        if let Err(e) = checkpoint(&sh) {
            lock(&sh.state).stats.checkpoint_failures += 1;
            tracing::warn!(error = %e, "journal checkpoint failed; its records stay live and the next one retries (puts take the direct path when the ring is full)");
            if !shutdown {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if shutdown {
            return;
        }
        if prewritten < sh.size {
            match prewrite(&sh, prewritten) {
                Ok(to) => {
                    prewritten = to;
                    lock(&sh.state).ring.grow(to);
                    sh.progress.notify_all();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "journal: cannot prewrite its ring file; puts take the direct path beyond {prewritten} octets");
                    prewritten = sh.size;
                }
            }
        }
    }
}

/// Writes zeros from `from` for one step and makes them durable.
fn prewrite(sh: &Shared, from: u64) -> io::Result<u64> {
    let to = (from + PREWRITE_STEP).min(sh.size);
    let zeros = vec![0u8; (to - from) as usize];
    sh.log.write_all_at(&zeros, from)?;
    sh.log.sync_all()?;
    Ok(to)
}

fn checkpoint(sh: &Shared) -> io::Result<()> {
    let (pending, upto) = {
        let mut st = lock(&sh.state);
        let upto = st.complete_through();
        if st.pending == 0 && upto <= st.checkpointed {
            return Ok(());
        }
        (std::mem::take(&mut st.pending), upto)
    };
    // Every chunk file completed before this point, with its directory
    // entry, is on disk when syncfs returns.
    let synced = rustix::fs::syncfs(&sh.root)
        .map_err(io::Error::from)
        .and_then(|()| persist_checkpoint(&sh.checkpoint, upto));
    let mut st = lock(&sh.state);
    match synced {
        Ok(()) => {
            st.ring.release_through(upto);
            st.checkpointed = upto;
            st.stats.checkpoints += 1;
            drop(st);
            sh.progress.notify_all();
            Ok(())
        }
        Err(e) => {
            st.pending += pending;
            Err(e)
        }
    }
}

fn persist_checkpoint(f: &File, seq: u64) -> io::Result<()> {
    f.write_all_at(&record::encode_checkpoint(seq), 0)?;
    f.sync_data()
}

/// Reads up to `buf.len()` octets at `off`; fewer at the end of the file.
fn read_at_most(f: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], off + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// One `pwritev` for the common case; a short write finishes piece by piece.
fn write_all_vectored_at(f: &File, bufs: &[&[u8]], off: u64) -> io::Result<()> {
    let slices: Vec<io::IoSlice<'_>> = bufs.iter().map(|b| io::IoSlice::new(b)).collect();
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut done = match rustix::io::pwritev(f, &slices, off) {
        Ok(n) => n,
        Err(e) if e == rustix::io::Errno::INTR => 0,
        Err(e) => return Err(e.into()),
    };
    if done == total {
        return Ok(());
    }
    let mut at = 0;
    for b in bufs {
        let end = at + b.len();
        if done < end {
            let skip = done.saturating_sub(at);
            f.write_all_at(&b[skip..], off + (at + skip) as u64)?;
            done = end;
        }
        at = end;
    }
    Ok(())
}
