//! The daemon's disk workers: threads that perform the core's store writes
//! (hash check, write, rename, fsync) and reads (read, verify) so the
//! receive loop never waits for the disk.
//!
//! Jobs are shared out by chunk id, so the jobs of one chunk run one after
//! the other on one thread, and the fsyncs of different chunks overlap (a
//! journaling file system commits them together) instead of queueing
//! behind each other.

use crate::node::NodeAction;
use crate::store::{Store, StoreCounters, StoreError};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// Disk threads of a node.
pub const DISK_THREADS: usize = 4;

/// A finished job, to hand back to the core.
#[derive(Debug)]
pub enum DiskDone {
    Stored {
        job: u64,
        result: Result<(), StoreError>,
        free_bytes: u64,
    },
    Read {
        job: u64,
        result: Result<Vec<u8>, StoreError>,
    },
}

/// Handle to the disk threads.
#[derive(Debug)]
pub struct Disk {
    jobs: Vec<std::sync::mpsc::Sender<(Instant, NodeAction)>>,
    /// Each thread's store counters, refreshed after every job.
    counters: Vec<Arc<Mutex<StoreCounters>>>,
}

impl Disk {
    /// Opens [`DISK_THREADS`] handles on `store`, each on its own thread;
    /// results arrive on the receiver.
    pub fn spawn(store: Store) -> (Disk, mpsc::UnboundedReceiver<DiskDone>) {
        Self::spawn_n(store, DISK_THREADS)
    }

    /// As [`Self::spawn`], with `n` threads (at least one).
    pub fn spawn_n(store: Store, n: usize) -> (Disk, mpsc::UnboundedReceiver<DiskDone>) {
        let (done, out) = mpsc::unbounded_channel();
        let mut jobs = Vec::new();
        let mut counters = Vec::new();
        let others: Vec<Store> = (1..n.max(1)).map(|i| store.handle(i)).collect();
        for (i, store) in std::iter::once(store).chain(others).enumerate() {
            let (tx, rx) = std::sync::mpsc::channel::<(Instant, NodeAction)>();
            let c = Arc::new(Mutex::new(store.counters.clone()));
            let shared = c.clone();
            let done = done.clone();
            std::thread::Builder::new()
                .name(format!("subcast-disk{i}"))
                .spawn(move || work(store, rx, shared, done))
                .expect("spawning a disk thread");
            jobs.push(tx);
            counters.push(c);
        }
        (Disk { jobs, counters }, out)
    }

    /// Queues a store or read action on the thread of its chunk.
    pub fn submit(&self, a: NodeAction) {
        let shard = match &a {
            NodeAction::Store { id, .. } | NodeAction::Read { id, .. } => {
                usize::from(id[31]) % self.jobs.len()
            }
            NodeAction::Join(_) | NodeAction::Leave(_) => return,
        };
        if self.jobs[shard].send((Instant::now(), a)).is_err() {
            tracing::error!("a disk thread is gone");
        }
    }

    /// The store's counters, summed over the threads.
    pub fn counters(&self) -> StoreCounters {
        let mut sum = StoreCounters::default();
        for c in &self.counters {
            if let Ok(c) = c.lock() {
                sum.merge(&c);
            }
        }
        sum
    }
}

fn work(
    mut store: Store,
    rx: std::sync::mpsc::Receiver<(Instant, NodeAction)>,
    shared: Arc<Mutex<StoreCounters>>,
    done: mpsc::UnboundedSender<DiskDone>,
) {
    for (queued, a) in rx {
        store.counters.queue_latency.record(queued.elapsed());
        let d = match a {
            NodeAction::Store {
                job,
                kind,
                id,
                payload,
            } => DiskDone::Stored {
                job,
                result: store.put_chunk(kind, &id, &payload),
                free_bytes: store.free_bytes(),
            },
            NodeAction::Read { job, id } => DiskDone::Read {
                job,
                result: store.get(&id),
            },
            NodeAction::Join(_) | NodeAction::Leave(_) => continue,
        };
        if let Ok(mut g) = shared.lock() {
            *g = store.counters.clone();
        }
        if done.send(d).is_err() {
            break;
        }
    }
}
