//! Where a node restores its own lost copies: a chunk found corrupt or
//! missing (scrub, get, write) is fetched back from another holder with
//! the client's get machine, verified by hash, and written again, so the
//! chunk has R copies again. At most `max_repairs` run at once; the rest
//! wait in a queue (deduplicated).

use super::{Job, NodeAction, NodeCore};
use crate::chunk_buf::ChunkBuf;
use crate::get::{GetEvent, GetMachine, GetTimers};
use crate::index::Entry;
use std::net::SocketAddr;
use std::time::Instant;
use subcast_proto::replicast::{ChunkKind, Hash32, ReplicastMessage};

/// One repair in progress.
#[derive(Debug)]
pub(super) struct Repair {
    pub id: Hash32,
    pub entry: Entry,
    pub machine: GetMachine,
}

/// A repair waiting for its turn: (id, entry, placement hash).
pub(super) type Pending = (Hash32, Entry, Hash32);

impl NodeCore {
    /// Queues a repair of `id`, placed by `place` (its id, or its name
    /// hash for a manifest).
    pub(super) fn want_repair(&mut self, id: Hash32, entry: Entry, place: Hash32) {
        if self.repairs.values().any(|r| r.id == id) || self.repair_queue.iter().any(|p| p.0 == id)
        {
            return;
        }
        if self.repair_queue.len() >= 4096 {
            tracing::error!(chunk = %hex::encode(id), "repair queue full: copy not re-fetched");
            self.counters.repairs_failed += 1;
            return;
        }
        self.counters.repairs_queued += 1;
        self.repair_queue.push_back((id, entry, place));
        self.start_repairs(self.now);
    }

    pub(super) fn start_repairs(&mut self, now: Instant) {
        let groups = &self.p.cluster_groups;
        if groups.is_empty() {
            return;
        }
        while self.repairs.len() < self.p.max_repairs {
            let Some((id, entry, place)) = self.repair_queue.pop_front() else {
                return;
            };
            let g = groups[crate::placement::ng_index(&place, groups.len())];
            self.next_repair_txid = self.next_repair_txid.wrapping_add(1);
            let txid = self.next_repair_txid;
            let machine = GetMachine::new(
                txid,
                id,
                g,
                self.p.port,
                self.p.fetch_payload,
                self.p.limits.max_chunk_size,
                Some(entry.size as usize),
                GetTimers::default(),
                now,
            );
            tracing::info!(chunk = %hex::encode(id), txid, group = %g, "re-fetching a lost copy");
            self.repairs.insert(txid, Repair { id, entry, machine });
        }
    }

    /// Whether `txid` is one of this node's repairs.
    pub(super) fn is_repair(&self, txid: u64) -> bool {
        self.repairs.contains_key(&txid)
    }

    /// A message (offer, DATA) for repair `txid`.
    pub(super) fn repair_message(
        &mut self,
        from: SocketAddr,
        sender: u32,
        msg: &ReplicastMessage,
        now: Instant,
    ) {
        if let Some(r) = self.repairs.get_mut(&msg.txid()) {
            r.machine.handle(from, sender, msg, now);
        }
        self.drive_repairs(now);
    }

    /// Runs the repairs' timers and collects what they send and finish.
    pub(super) fn drive_repairs(&mut self, now: Instant) {
        let mut done = Vec::new();
        for (txid, r) in self.repairs.iter_mut() {
            if r.machine.poll_timeout().is_some_and(|t| t <= now) {
                r.machine.handle_timeout(now);
            }
            while let Some(t) = r.machine.poll_transmit() {
                if self.control.len() < self.p.limits.max_queue {
                    self.control.push_back(t);
                }
            }
            while let Some(e) = r.machine.poll_event() {
                match e {
                    GetEvent::Corrupt { .. } => {}
                    GetEvent::Done(bytes) => done.push((*txid, Some(bytes))),
                    GetEvent::Failed(err) => {
                        tracing::error!(chunk = %hex::encode(r.id), error = %err, "lost copy could not be re-fetched: no other holder served it");
                        done.push((*txid, None));
                    }
                }
            }
        }
        for (txid, bytes) in done {
            let Some(r) = self.repairs.remove(&txid) else {
                continue;
            };
            match bytes {
                Some(payload) => {
                    let manifest = match r.entry.kind {
                        ChunkKind::Manifest => crate::manifest::Manifest::decode_head(&payload)
                            .ok()
                            .map(Box::new),
                        ChunkKind::Data => None,
                    };
                    let job = self.job(Job::Repaired {
                        id: r.id,
                        len: payload.len(),
                        manifest,
                    });
                    self.storing_bytes += payload.len() as u64;
                    self.actions.push_back(NodeAction::Store {
                        job,
                        kind: r.entry.kind,
                        id: r.id,
                        payload: ChunkBuf::from_vec(payload),
                    });
                }
                None => self.counters.repairs_failed += 1,
            }
        }
        self.start_repairs(now);
    }

    pub(super) fn repair_timeout(&self) -> Option<Instant> {
        self.repairs
            .values()
            .filter_map(|r| r.machine.poll_timeout())
            .min()
    }

    /// The store reported a repaired copy written (or not).
    pub(super) fn on_repaired(
        &mut self,
        id: Hash32,
        len: usize,
        manifest: Option<Box<crate::manifest::Manifest>>,
        ok: bool,
    ) {
        self.storing_bytes = self.storing_bytes.saturating_sub(len as u64);
        if ok {
            self.index.insert(id, len, manifest.as_deref());
            self.counters.repairs_done += 1;
            tracing::info!(chunk = %hex::encode(id), "lost copy restored");
        } else {
            self.counters.repairs_failed += 1;
        }
    }
}

/// DATA for a repair, as a message the get machine takes.
pub(super) fn data_message(txid: u64, index: u32, total: u32, payload: &[u8]) -> ReplicastMessage {
    ReplicastMessage::Data(subcast_proto::replicast::Data {
        txid,
        index,
        total,
        payload: payload.to_vec(),
    })
}
