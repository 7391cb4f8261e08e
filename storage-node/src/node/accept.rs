//! The target side of a put: the bid, the PUT_ACCEPT (admitted within the
//! limits, or refused with a PUT_ACK saying why), DATA, and the PUT_ACK
//! once the disk reported the chunk written.

use super::limits::Load;
use super::{Job, NodeAction, NodeCore, RECENT};
use crate::bids::BidState;
use crate::manifest::Manifest;
use crate::receive::{Receive, ReceiveEvent};
use crate::store::StoreError;
use std::net::SocketAddr;
use std::time::Instant;
use subcast_proto::replicast::{
    AckStatus, BidStatus, ChunkKind, KeyedData, Nack, PutAccept, PutAck, PutProposal, PutReady,
    ReplicastMessage, TransferKey,
};

impl NodeCore {
    pub(super) fn on_proposal(
        &mut self,
        from: SocketAddr,
        sender: u32,
        p: &PutProposal,
        now: Instant,
        now_us: u64,
    ) {
        self.counters.proposals += 1;
        // A copy on disk not verified yet: "already stored" only after a
        // read has checked it (answered from on_read).
        if self.index.has_file(&p.chunk_id)
            && !self.index.contains(&p.chunk_id)
            && self.reads_in_flight() < self.p.limits.max_reads
        {
            let job = self.job(Job::BidAfterVerify {
                from,
                node: sender,
                p: p.clone(),
                now_us,
            });
            self.actions.push_back(NodeAction::Read {
                job,
                id: p.chunk_id,
            });
            return;
        }
        self.answer_bid(from, sender, p, now, now_us);
    }

    /// Answers a proposal from what the index says now.
    pub(super) fn answer_bid(
        &mut self,
        from: SocketAddr,
        sender: u32,
        p: &PutProposal,
        now: Instant,
        now_us: u64,
    ) {
        let state = BidState {
            already_stored: self.index.claim(&p.chunk_id),
            free_bytes: self
                .index
                .free_bytes
                .saturating_sub(self.receive_bytes + self.storing_bytes),
            receiving: self.receives.len(),
            receiving_bytes: self
                .receives
                .values()
                .map(|r| u64::from(r.data.total() - r.data.received()) * 1400)
                .sum(),
        };
        let bid = self
            .bids
            .answer(sender, p, &self.p.bid_limits(), &state, now, now_us);
        match bid.status {
            BidStatus::Bid => self.counters.bids += 1,
            BidStatus::NotNow => self.counters.not_now += 1,
            BidStatus::AlreadyStored => self.counters.already_stored += 1,
        }
        self.send(from, sender, ReplicastMessage::PutBid(bid));
    }

    pub(super) fn end_receive(&mut self, key: (u32, u64)) -> Option<Receive> {
        let rx = self.receives.remove(&key)?;
        self.receive_bytes = self.receive_bytes.saturating_sub(rx.data.size() as u64);
        if let Some(g) = rx.group {
            self.leave(g);
        }
        remember(&mut self.recent, key);
        Some(rx)
    }

    /// A DATA datagram (authenticated) from `sender` at `from`, seen in
    /// place.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_data(
        &mut self,
        from: SocketAddr,
        sender: u32,
        txid: u64,
        index: u32,
        total: u32,
        payload: &[u8],
        now: Instant,
    ) {
        self.now = now;
        if !self.source_ok(sender, from) {
            return;
        }
        if self.is_repair(txid) {
            let m = super::repair::data_message(txid, index, total, payload);
            self.repair_message(from, sender, &m, now);
            return;
        }
        self.counters.datagrams_in += 1;
        let key = (sender, txid);
        let Some(rx) = self.receives.get_mut(&key) else {
            if self.recent.contains(&key) {
                self.counters.duplicates += 1;
            } else {
                self.counters.data_datagrams_not_for_us += 1;
                self.counters.data_bytes_not_for_us += payload.len() as u64;
            }
            return;
        };
        self.counters.data_datagrams_as_target += 1;
        self.counters.data_bytes_as_target += payload.len() as u64;
        match rx.on_data_parts(index, total, payload, now) {
            Ok(Some(ReceiveEvent::Complete)) => self.complete(key),
            Ok(Some(ReceiveEvent::Nack(ranges))) => {
                let to = rx.sender;
                self.counters.nacks_sent += 1;
                self.send(to, sender, ReplicastMessage::Nack(Nack { txid, ranges }));
            }
            Ok(_) => {}
            Err(_) => self.counters.bad_data += 1,
        }
    }

    fn ack(&mut self, to: SocketAddr, node: u32, a: &PutAccept, status: AckStatus) {
        self.counters.acks_sent += 1;
        self.send(
            to,
            node,
            ReplicastMessage::PutAck(PutAck {
                txid: a.txid,
                chunk_id: a.chunk_id,
                status,
            }),
        );
    }

    pub(super) fn on_accept(&mut self, from: SocketAddr, sender: u32, a: PutAccept, now: Instant) {
        let key = (sender, a.txid);
        self.bids.settle(sender, a.txid);
        if !a.targets.contains(&self.p.node_id) {
            // Not (or no longer) a target.
            self.end_receive(key);
            return;
        }
        if self.index.contains(&a.chunk_id) {
            self.end_receive(key);
            self.ack(from, sender, &a, AckStatus::Stored);
            return;
        }
        if self.storing.contains_key(&a.chunk_id) {
            // Complete and being written: the ACK follows the fsync. Say
            // PUT_READY so the sender knows we are alive and does not
            // replace us (which would leave an extra copy).
            self.send(
                from,
                sender,
                ReplicastMessage::PutReady(PutReady {
                    txid: a.txid,
                    chunk_id: a.chunk_id,
                }),
            );
            return;
        }
        if let Some(rx) = self.receives.get_mut(&key) {
            if rx.data.received() == 0 {
                // Nothing arrived: say PUT_READY again (ours may have been
                // lost). Not a NACK: this ACCEPT may have crossed the first
                // DATA, and asking for everything would repeat the pass. If
                // the whole pass was lost, the NACK timer asks for it.
                self.send(
                    from,
                    sender,
                    ReplicastMessage::PutReady(PutReady {
                        txid: a.txid,
                        chunk_id: a.chunk_id,
                    }),
                );
                return;
            }
            match rx.on_poll(now) {
                Some(ReceiveEvent::Nack(ranges)) => {
                    self.counters.nacks_sent += 1;
                    self.send(
                        from,
                        sender,
                        ReplicastMessage::Nack(Nack {
                            txid: a.txid,
                            ranges,
                        }),
                    );
                }
                Some(ReceiveEvent::Complete) => self.complete(key),
                _ => {}
            }
            return;
        }
        // A new transfer: within the limits, or refused before any buffer
        // is allocated, with the reason.
        let load = Load {
            receives: self.receives.len(),
            receives_of_sender: self.receives.keys().filter(|k| k.0 == sender).count(),
            receive_bytes: self.receive_bytes,
            storing_bytes: self.storing_bytes,
            free_bytes: self.index.free_bytes,
        };
        if let Err(status) = self.p.limits.admit_receive(u64::from(a.size), &load) {
            let reason = match status {
                AckStatus::Full => "full",
                AckStatus::TooLarge => "too-large",
                _ => "busy",
            };
            self.refuse(reason);
            tracing::debug!(
                sender,
                txid = a.txid,
                size = a.size,
                reason,
                "PUT_ACCEPT refused"
            );
            self.ack(from, sender, &a, status);
            return;
        }
        let group = crate::transport::is_group(&a.group).then_some(a.group);
        if let Some(g) = group {
            self.join(g);
        }
        // Tell the sender we know the transfer (and joined its group: the
        // owner applies the join before sending this).
        self.send(
            from,
            sender,
            ReplicastMessage::PutReady(PutReady {
                txid: a.txid,
                chunk_id: a.chunk_id,
            }),
        );
        self.counters.receives_started += 1;
        let mut rx = Receive::new(
            a.txid,
            a.chunk_id,
            a.kind,
            self.pool.take(a.size as usize),
            usize::from(a.datagram_payload),
            from,
            sender,
            group,
            self.p.timers,
            now,
        );
        rx.key = self.transfer_key(sender, &a);
        rx.verify_all = self.mismatched.contains(&key);
        self.receive_bytes += u64::from(a.size);
        self.receives.insert(key, rx);
    }

    /// This node's transfer key from `a`'s wrapped keys (none: DATA comes
    /// as 0x43).
    fn transfer_key(&self, sender: u32, a: &PutAccept) -> Option<TransferKey> {
        let me = self.p.node_id;
        let i = a.targets.iter().position(|t| *t == me)?;
        let wrapped = a.keys.get(i)?;
        let keys = self.keys.as_ref()?;
        TransferKey::unwrap(keys, sender, a.txid, me, wrapped)
    }

    /// A keyed DATA datagram (0x47) or untagged DATA (0x4e), split but not
    /// verified: it belongs to the transfer with its txid whose key
    /// verifies its tag.
    ///
    /// Where the tag is checked: the chunk's hash is checked before the
    /// chunk is stored and proves every octet, so a datagram of the right
    /// length that fills an empty slot of a transfer that already took one
    /// verified datagram is taken as it is (a keyed BLAKE3 of a datagram
    /// costs 1.8 µs on one SIMD lane, 1.3 ms of CPU per MiB); the writer
    /// sends most of its first pass untagged for that reason. The first
    /// datagram (it proves the key) and every repeat are verified, so an
    /// untagged one there is refused (`untagged`; the NACK asks for it
    /// again and the repeat comes tagged). A forgery that got into an
    /// empty slot fails the chunk's hash: the ACK says so, the writer sends
    /// the chunk again, and that repeat verifies every datagram
    /// (`mismatched`), so a forger costs a transfer one more pass at most.
    pub fn handle_keyed_data(&mut self, from: SocketAddr, d: &KeyedData<'_>, now: Instant) {
        let mut known = false;
        let found = self.receives.iter().find_map(|(k, rx)| {
            let key = rx.key.as_ref().filter(|_| k.1 == d.txid)?;
            known = true;
            let unverified_ok =
                !rx.verify_all && rx.data.received() > 0 && rx.data.wants(d.index, d.payload.len());
            (unverified_ok || d.verify(key)).then_some((k.0, rx.data.total()))
        });
        match found {
            Some((sender, total)) => {
                self.handle_data(from, sender, d.txid, d.index, total, d.payload, now);
            }
            None if known && !d.is_tagged() => {
                self.counters.datagrams_in += 1;
                self.refuse("untagged");
            }
            None if known => {
                self.counters.datagrams_in += 1;
                self.refuse("bad-mac");
            }
            None => {
                self.counters.datagrams_in += 1;
                if self.recent.iter().any(|k| k.1 == d.txid) {
                    // The transfer is over and its key gone: a copy another
                    // target asked for, or a replay. Dropped either way.
                    self.refuse("transfer-over");
                } else {
                    self.counters.data_datagrams_not_for_us += 1;
                    self.counters.data_bytes_not_for_us += d.payload.len() as u64;
                }
            }
        }
    }

    /// Every datagram is in: hand the chunk to the disk; the ACK follows
    /// [`Self::on_stored`].
    pub(super) fn complete(&mut self, key: (u32, u64)) {
        let Some(rx) = self.end_receive(key) else {
            return;
        };
        if rx.kind == ChunkKind::Data {
            self.counters
                .receive_latency
                .record(self.now.saturating_duration_since(rx.started));
        }
        let (txid, id, kind, to, node) = (rx.txid, rx.chunk_id, rx.kind, rx.sender, rx.sender_id);
        let payload = rx.data.into_payload();
        let manifest = match kind {
            ChunkKind::Manifest => Manifest::decode_head(&payload).ok().map(Box::new),
            ChunkKind::Data => None,
        };
        let job = self.job(Job::Ack {
            to,
            node,
            txid,
            id,
            len: payload.len(),
            manifest,
        });
        *self.storing.entry(id).or_insert(0) += 1;
        self.storing_bytes += payload.len() as u64;
        self.counters.stores_in_flight += 1;
        self.actions.push_back(NodeAction::Store {
            job,
            kind,
            id,
            payload,
        });
    }

    /// The owner finished [`NodeAction::Store`] `job`.
    pub fn on_stored(&mut self, job: u64, result: Result<(), StoreError>) {
        if let Some(Job::Repaired { .. }) = self.jobs.get(&job) {
            let Some(Job::Repaired { id, len, manifest }) = self.jobs.remove(&job) else {
                return;
            };
            if let Err(e) = &result {
                tracing::error!(chunk = %hex::encode(id), error = %e, "writing a re-fetched copy failed");
            }
            self.on_repaired(id, len, manifest, result.is_ok());
            return;
        }
        let Some(Job::Ack {
            to,
            node,
            txid,
            id,
            len,
            manifest,
        }) = self.jobs.remove(&job)
        else {
            return;
        };
        self.counters.stores_in_flight = self.counters.stores_in_flight.saturating_sub(1);
        self.storing_bytes = self.storing_bytes.saturating_sub(len as u64);
        if let Some(n) = self.storing.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.storing.remove(&id);
            }
        }
        let status = match result {
            Ok(()) => {
                self.index.insert(id, len, manifest.as_deref());
                self.index.free_bytes = self.index.free_bytes.saturating_sub(len as u64);
                AckStatus::Stored
            }
            Err(StoreError::HashMismatch(_)) => {
                self.counters.hash_mismatches += 1;
                // The writer sends it again: every datagram of that repeat
                // is verified (see `handle_keyed_data`).
                remember(&mut self.mismatched, (node, txid));
                AckStatus::HashMismatch
            }
            Err(e) if e.is_no_space() => {
                tracing::warn!(error = %e, "storing a received chunk failed: the disk is full");
                self.counters.store_failures += 1;
                self.refuse("full");
                AckStatus::Full
            }
            Err(e) => {
                tracing::error!(error = %e, "storing a received chunk failed");
                self.counters.store_failures += 1;
                AckStatus::StoreFailed
            }
        };
        self.counters.acks_sent += 1;
        self.send(
            to,
            node,
            ReplicastMessage::PutAck(PutAck {
                txid,
                chunk_id: id,
                status,
            }),
        );
    }
}

/// Appends `key` to a list of the last [`RECENT`] transfers.
fn remember(list: &mut std::collections::VecDeque<(u32, u64)>, key: (u32, u64)) {
    if list.len() >= RECENT {
        list.pop_front();
    }
    list.push_back(key);
}
