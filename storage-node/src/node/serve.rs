//! Gets at a node: offers (after a verifying read), fetches served within
//! the limits, manifest queries.

use super::scrub::Lost;
use super::{Job, NodeAction, NodeCore};
use crate::outgoing::Outgoing;
use crate::store::StoreError;
use std::net::SocketAddr;
use std::sync::Arc;
use subcast_proto::replicast::{
    GetFetch, GetOffer, GetRequest, MAX_OFFERED_VERSIONS, ManifestOffer, ManifestQuery,
    OfferStatus, ReplicastMessage,
};

impl NodeCore {
    /// A disk read is queued only while fewer than `max_reads` are in
    /// flight; beyond, the request goes unanswered (counted).
    fn read(&mut self, job: Job, id: [u8; 32]) {
        if self.reads_in_flight() >= self.p.limits.max_reads {
            self.refuse("busy-reading");
            return;
        }
        let job = self.job(job);
        self.actions.push_back(NodeAction::Read { job, id });
    }

    pub(super) fn on_get_request(&mut self, from: SocketAddr, sender: u32, g: &GetRequest) {
        // Offered once read and verified (a corrupt copy is reported, never
        // offered); the fetch reuses the read.
        if !self.index.has_file(&g.chunk_id) {
            return;
        }
        self.read(
            Job::Offer {
                from,
                node: sender,
                txid: g.txid,
                id: g.chunk_id,
            },
            g.chunk_id,
        );
    }

    pub(super) fn on_fetch(&mut self, from: SocketAddr, sender: u32, f: GetFetch) {
        let key = (sender, f.txid);
        if let Some(o) = self.serving.get_mut(&key) {
            if f.ranges.is_empty() {
                o.request_all(from);
            } else {
                o.request(from, &f.ranges);
            }
            return;
        }
        let Some(size) = self.index.size_of(&f.chunk_id) else {
            return;
        };
        let serves_of_peer = self.serving.keys().filter(|k| k.0 == sender).count()
            + self
                .jobs
                .values()
                .filter(|j| matches!(j, Job::Serve { node, .. } if *node == sender))
                .count();
        if let Err(reason) = self.p.limits.admit_fetch(
            size as usize,
            usize::from(f.datagram_payload),
            self.serving.len(),
            serves_of_peer,
        ) {
            self.refuse(reason);
            tracing::debug!(sender, txid = f.txid, reason, "GET_FETCH refused");
            return;
        }
        if let Some((id, bytes)) = &self.last_read
            && *id == f.chunk_id
        {
            let bytes = bytes.clone();
            self.serve(from, sender, &f, bytes);
            return;
        }
        if self.jobs.values().any(
            |j| matches!(j, Job::Serve { node, f: g, .. } if *node == sender && g.txid == f.txid),
        ) {
            return;
        }
        let id = f.chunk_id;
        self.read(
            Job::Serve {
                from,
                node: sender,
                f,
            },
            id,
        );
    }

    pub(super) fn on_manifest_query(&mut self, from: SocketAddr, sender: u32, q: &ManifestQuery) {
        let versions = self
            .index
            .versions(&q.name_hash, q.version, MAX_OFFERED_VERSIONS);
        // Every member answers, with no versions if it holds none: the
        // asker's round ends when all members answered.
        self.counters.manifest_offers += 1;
        self.send(
            from,
            sender,
            ReplicastMessage::ManifestOffer(ManifestOffer {
                txid: q.txid,
                name_hash: q.name_hash,
                versions,
            }),
        );
    }

    /// The owner finished [`NodeAction::Read`] `job`.
    pub fn on_read(&mut self, job: u64, result: Result<Vec<u8>, StoreError>) {
        let (from, node, txid, id, fetch) = match self.jobs.remove(&job) {
            Some(Job::Serve { from, node, f }) => (from, node, f.txid, f.chunk_id, Some(f)),
            Some(Job::Offer {
                from,
                node,
                txid,
                id,
            }) => (from, node, txid, id, None),
            Some(Job::Scrub { id }) => {
                let r = match result {
                    Ok(b) => Ok(b.len()),
                    Err(StoreError::Corrupt { .. }) => Err(Lost::Corrupt),
                    Err(StoreError::NotFound(_)) => Err(Lost::Missing),
                    Err(e) => {
                        tracing::warn!(error = %e, "scrub read failed");
                        Ok(0)
                    }
                };
                self.on_scrubbed(id, r);
                return;
            }
            Some(Job::BidAfterVerify {
                from,
                node,
                p,
                now_us,
            }) => {
                match result {
                    Ok(_) => self.index.mark_verified(&p.chunk_id),
                    Err(StoreError::Corrupt { .. } | StoreError::NotFound(_)) => {
                        self.lost(&p.chunk_id)
                    }
                    Err(e) => tracing::warn!(error = %e, "verifying a chunk for a bid failed"),
                }
                let now = self.now;
                self.answer_bid(from, node, &p, now, now_us);
                return;
            }
            _ => return,
        };
        match result {
            Ok(bytes) => {
                self.index.mark_verified(&id);
                let bytes = Arc::new(bytes);
                self.last_read = Some((id, bytes.clone()));
                match fetch {
                    Some(f) => self.serve(from, node, &f, bytes),
                    None => {
                        self.counters.offers += 1;
                        self.send(
                            from,
                            node,
                            ReplicastMessage::GetOffer(GetOffer {
                                txid,
                                chunk_id: id,
                                status: OfferStatus::Have,
                                size: bytes.len() as u32,
                            }),
                        );
                    }
                }
            }
            Err(StoreError::Corrupt { .. }) => {
                self.lost(&id);
                self.counters.corrupt_reported += 1;
                self.send(
                    from,
                    node,
                    ReplicastMessage::GetOffer(GetOffer {
                        txid,
                        chunk_id: id,
                        status: OfferStatus::Corrupt,
                        size: 0,
                    }),
                );
            }
            Err(StoreError::NotFound(_)) => self.lost(&id),
            Err(e) => tracing::warn!(error = %e, "reading a chunk to serve failed"),
        }
    }

    fn serve(&mut self, from: SocketAddr, node: u32, f: &GetFetch, bytes: Arc<Vec<u8>>) {
        self.counters.fetches_served += 1;
        let mut o = Outgoing::new(
            f.txid,
            bytes,
            usize::from(f.datagram_payload),
            if f.ranges.is_empty() {
                vec![from]
            } else {
                vec![]
            },
        )
        .with_receivers(from, vec![node]);
        if !f.ranges.is_empty() {
            o.request(from, &f.ranges);
        }
        let key = (node, f.txid);
        self.serving.insert(key, o);
        self.serve_order.push_back(key);
    }
}
