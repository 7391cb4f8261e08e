//! The journal under a store: what survives a crash, what a checkpoint
//! ends, torn records, a full ring. A crash is played by keeping the
//! journal's files as they were when the put returned (they were synced)
//! and losing the chunk files (they were not).

use super::*;
use crate::chunking::chunk_id;
use crate::store::{Store, StoreError};
use std::path::PathBuf;

const HOUR: Duration = Duration::from_secs(3600);

fn open(root: &Path, size: u64) -> (Store, ReplayReport) {
    open_max(root, size, 0)
}

fn open_max(root: &Path, size: u64, max_record: usize) -> (Store, ReplayReport) {
    let mut s = Store::open(root).unwrap();
    let r = s
        .enable_journal(JournalConfig {
            size,
            checkpoint_every: HOUR,
            max_record,
        })
        .unwrap();
    assert!(s.journal().unwrap().wait_ready(Duration::from_secs(60)));
    (s, r)
}

/// The journal's files as they are now.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    ["ring", "checkpoint"]
        .iter()
        .map(|f| {
            let p = root.join("journal").join(f);
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn restore(snap: &[(PathBuf, Vec<u8>)]) {
    for (p, b) in snap {
        fs::write(p, b).unwrap();
    }
}

#[test]
fn acknowledged_chunks_come_back_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let man = crate::store::tests::empty_manifest(1);
    let (did, mid) = (chunk_id(&data), chunk_id(&man));
    let (snap, dpath, mpath) = {
        let (mut s, r) = open(dir.path(), 1 << 20);
        assert_eq!(r, ReplayReport::default());
        s.put(ChunkKind::Data, &did, &data).unwrap();
        s.put(ChunkKind::Manifest, &mid, &man).unwrap();
        assert_eq!(s.counters.journaled, 2);
        assert_eq!(s.journal().unwrap().stats().checkpoints, 0);
        let snap = snapshot(dir.path());
        (
            snap,
            s.path_of(ChunkKind::Data, &did),
            s.path_of(ChunkKind::Manifest, &mid),
        )
    };
    // The crash: the journal as synced, the data file gone, the manifest
    // torn.
    restore(&snap);
    fs::remove_file(&dpath).unwrap();
    fs::write(&mpath, b"torn").unwrap();
    let (mut s, r) = open(dir.path(), 1 << 20);
    assert_eq!(r.records, 2);
    assert_eq!(r.restored, 2);
    assert_eq!(r.torn, 0);
    assert_eq!(s.get(&did).unwrap(), data);
    assert_eq!(s.get(&mid).unwrap(), man);
    let nh = crate::chunking::name_hash("b/o");
    assert_eq!(s.index().versions(&nh, 0, 4).len(), 1);
    drop(s);
    // Replayed once: the next open finds nothing to do.
    let (_s, r) = open(dir.path(), 1 << 20);
    assert_eq!((r.records, r.restored), (0, 0));
}

#[test]
fn a_checkpoint_ends_replay() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![5u8; 9000];
    let id = chunk_id(&data);
    let (snap, path) = {
        let (mut s, _) = open(dir.path(), 1 << 20);
        s.put(ChunkKind::Data, &id, &data).unwrap();
        let j = s.journal().unwrap();
        assert!(j.stats().live_bytes > 0);
        j.checkpoint().unwrap();
        assert_eq!(j.stats().live_bytes, 0);
        assert_eq!(j.stats().checkpoints, 1);
        (snapshot(dir.path()), s.path_of(ChunkKind::Data, &id))
    };
    restore(&snap);
    // Gone after its checkpoint (as GC would delete it): not brought back.
    fs::remove_file(&path).unwrap();
    let (mut s, r) = open(dir.path(), 1 << 20);
    assert!(r.checkpoint >= 1);
    assert_eq!((r.records, r.restored), (0, 0));
    assert!(matches!(s.get(&id), Err(StoreError::NotFound(_))));
}

#[test]
fn a_torn_record_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![6u8; 20_000];
    let id = chunk_id(&data);
    let (mut snap, path) = {
        let (mut s, _) = open(dir.path(), 1 << 20);
        s.put(ChunkKind::Data, &id, &data).unwrap();
        (snapshot(dir.path()), s.path_of(ChunkKind::Data, &id))
    };
    // A payload octet of the record at offset 0.
    snap[0].1[HEADER + 1000] ^= 0x40;
    restore(&snap);
    fs::remove_file(&path).unwrap();
    let (s, r) = open(dir.path(), 1 << 20);
    assert_eq!((r.records, r.restored, r.torn), (0, 0, 1));
    assert!(!s.contains(&id));
}

#[test]
fn a_full_ring_takes_the_direct_path_until_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // 64 KiB ring: records of at most 16 KiB - 60; a 12 KiB chunk takes 16 KiB.
    let (mut s, _) = open(dir.path(), 64 << 10);
    // A put still being written (4 KiB) holds every later record: no
    // checkpoint can free them while it is in flight.
    let held = s.journal().unwrap().reserve(100).unwrap();
    let chunks: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 12 << 10]).collect();
    for c in &chunks {
        s.put(ChunkKind::Data, &chunk_id(c), c).unwrap();
    }
    // 60 KiB left after it: three records, then the direct path.
    assert_eq!((s.counters.journaled, s.counters.journal_full), (3, 7));
    // Too large for a record: direct, not counted as "full".
    let big = vec![1u8; 20 << 10];
    s.put(ChunkKind::Data, &chunk_id(&big), &big).unwrap();
    assert_eq!((s.counters.journaled, s.counters.journal_full), (3, 7));
    drop(held);
    let j = s.journal().unwrap();
    j.checkpoint().unwrap();
    assert_eq!(j.stats().live_bytes, 0);
    let more = vec![77u8; 12 << 10];
    s.put(ChunkKind::Data, &chunk_id(&more), &more).unwrap();
    assert_eq!(s.counters.journaled, 4);
    for c in chunks.iter().chain([&big, &more]) {
        assert_eq!(&s.get(&chunk_id(c)).unwrap(), c);
    }
}

#[test]
fn the_thread_checkpoints_when_half_the_ring_is_live() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = open(dir.path(), 64 << 10);
    // Three 16 KiB records: more than half of 64 KiB live.
    for i in 0..3u8 {
        let c = vec![i; 12 << 10];
        s.put(ChunkKind::Data, &chunk_id(&c), &c).unwrap();
    }
    let j = s.journal().unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    while j.stats().checkpoints == 0 && Instant::now() < end {
        let st = lock(&j.shared.state);
        let _ = j
            .shared
            .progress
            .wait_timeout(st, Duration::from_millis(100));
    }
    assert!(
        j.stats().checkpoints >= 1,
        "no checkpoint with the ring 75 % live"
    );
}

#[test]
fn an_abandoned_put_does_not_hold_checkpoints_back() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(dir.path(), 1 << 20);
    let j = s.journal().unwrap();
    let t = j.reserve(100).unwrap();
    assert_eq!(lock(&j.shared.state).complete_through(), 0);
    drop(t);
    let t2 = j.reserve(100).unwrap();
    j.complete(t2);
    j.checkpoint().unwrap();
    assert_eq!(lock(&j.shared.state).checkpointed, 2);
    assert_eq!(j.stats().live_bytes, 0);
}

#[test]
fn a_journal_left_by_an_earlier_run_is_replayed_with_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![8u8; 30_000];
    let id = chunk_id(&data);
    let (snap, path) = {
        let (mut s, _) = open(dir.path(), 1 << 20);
        s.put(ChunkKind::Data, &id, &data).unwrap();
        (snapshot(dir.path()), s.path_of(ChunkKind::Data, &id))
    };
    restore(&snap);
    fs::remove_file(&path).unwrap();
    // The next start has `journal_mib: 0`.
    let mut s = Store::open(dir.path()).unwrap();
    let r = s.replay_left_journal().unwrap().unwrap();
    assert_eq!((r.records, r.restored), (1, 1));
    assert!(s.journal().is_none());
    assert_eq!(s.get(&id).unwrap(), data);
    // Replayed once: nothing the time after.
    let r = s.replay_left_journal().unwrap().unwrap();
    assert_eq!((r.records, r.restored), (0, 0));
    // A store that never had one.
    let fresh = tempfile::tempdir().unwrap();
    let mut s = Store::open(fresh.path()).unwrap();
    assert_eq!(s.replay_left_journal().unwrap(), None);
}

/// A chunk whose payload holds a well-formed record header (anyone can put
/// one) on a 4 KiB boundary of the ring, numbered u64::MAX: replay neither
/// trusts its number nor overflows, and the journal goes on.
#[test]
fn a_record_header_inside_a_payload_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let inner = b"inner chunk".to_vec();
    let fake = Header {
        seq: u64::MAX,
        kind: ChunkKind::Data,
        len: inner.len() as u32,
        id: chunk_id(&inner),
    };
    // The outer record's payload starts 60 octets into the ring: octet
    // 4096 - 60 of the payload is on the next 4 KiB boundary.
    let mut outer = vec![0u8; 4096 - HEADER];
    outer.extend_from_slice(&fake.encode());
    outer.extend_from_slice(&inner);
    outer.resize(10_000, 1);
    let oid = chunk_id(&outer);
    let snap = {
        let (mut s, _) = open(dir.path(), 1 << 20);
        s.put(ChunkKind::Data, &oid, &outer).unwrap();
        snapshot(dir.path())
    };
    restore(&snap);
    let (mut s, r) = open(dir.path(), 1 << 20);
    assert_eq!(r.records, 1, "only the outer record: {r:?}");
    let more = vec![2u8; 5000];
    s.put(ChunkKind::Data, &chunk_id(&more), &more).unwrap();
    assert_eq!(s.counters.journaled, 1);
    assert!(!s.contains(&chunk_id(&inner)));
}

/// With `max_record`, larger chunks take the direct path (their files are
/// durable at once, the ring stays free) and smaller ones the journal;
/// both come back after a crash.
#[test]
fn only_records_up_to_the_bound_are_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![8u8; 100_000];
    let man = crate::store::tests::empty_manifest(1);
    let (did, mid) = (chunk_id(&data), chunk_id(&man));
    let (snap, mpath) = {
        let (mut s, _) = open_max(dir.path(), 1 << 20, 64 << 10);
        assert_eq!(s.journal().unwrap().max_payload(), 64 << 10);
        s.put(ChunkKind::Data, &did, &data).unwrap();
        assert_eq!(s.counters.journaled, 0, "100 KB is over the bound");
        assert_eq!(s.journal().unwrap().stats().live_bytes, 0);
        s.put(ChunkKind::Manifest, &mid, &man).unwrap();
        assert_eq!(s.counters.journaled, 1);
        assert_eq!(s.counters.journal_full, 0);
        (snapshot(dir.path()), s.path_of(ChunkKind::Manifest, &mid))
    };
    restore(&snap);
    fs::remove_file(&mpath).unwrap();
    let (mut s, r) = open_max(dir.path(), 1 << 20, 64 << 10);
    assert_eq!((r.records, r.restored), (1, 1));
    assert_eq!(s.get(&mid).unwrap(), man);
    assert_eq!(s.get(&did).unwrap(), data);
    // A bound above a quarter of the ring is cut to it.
    drop(s);
    let (s, _) = open_max(dir.path(), 1 << 20, 10 << 20);
    assert!(s.journal().unwrap().max_payload() < 256 << 10);
}
