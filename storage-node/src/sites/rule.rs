//! The forwarding rule, without I/O.
//!
//! On receipt of a chunk on one inter-site link: if it is already known
//! here, do nothing (counted as refused); else verify it by hash, store it
//! in the local cluster and, once stored, queue it on every other link.
//! A chunk stored in the site by a local client is queued on every link.
//! A manifest is queued on a link only after every chunk it names (a
//! chunk the peer is not known to hold is queued first), and one that
//! arrives before its chunks are stored here is held until they are.
//!
//! Each link remembers what its peer holds (what it sent or received on
//! the link, and the peer's inventory in a catch-up), so a chunk crosses a
//! link at most once per direction. A link that comes up exchanges
//! inventories (ids of every chunk stored here, in batches) and then
//! queues only what the peer lacks: data chunks first, then manifests.
//! While the session lasts, every chunk newly stored here is announced on
//! each link (HAVE, 32 octets per chunk; [`Router::take_adverts`]), so a
//! peer that got it over another path first does not send it here too.

use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use subcast_proto::replicast::Hash32;

/// Index of a link in [`Router::links`].
pub type LinkId = usize;

/// Per-link counters (`sites` status and `/metrics`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkCounters {
    pub chunks_sent: u64,
    pub bytes_sent: u64,
    pub chunks_received: u64,
    pub bytes_received: u64,
    /// Chunks received that were already known here (not stored again,
    /// not forwarded).
    pub refused_known: u64,
    /// Chunks whose payload did not hash to their id (dropped).
    pub refused_bad_hash: u64,
    /// Chunks queued by catch-ups (what the peer's inventory lacked).
    pub catchup_queued: u64,
    /// Ids sent and received in inventories.
    pub have_ids_sent: u64,
    pub have_ids_received: u64,
    /// Sessions established.
    pub sessions: u64,
    /// Catch-ups completed (the peer's whole inventory received).
    pub catchups: u64,
}

/// One inter-site link.
#[derive(Debug, Default)]
pub struct Link {
    /// The site at the other end.
    pub peer: String,
    pub up: bool,
    queue: VecDeque<Hash32>,
    queued: HashSet<Hash32>,
    /// Chunks the peer holds as far as this side knows.
    peer_has: HashSet<Hash32>,
    /// Ids stored here since the session began, to announce to the peer
    /// (HAVE) so that it does not send them.
    adverts: Vec<Hash32>,
    /// The peer's inventory has been received in this session.
    pub synced: bool,
    pub counters: LinkCounters,
}

impl Link {
    /// Chunks waiting to be sent.
    pub fn backlog(&self) -> usize {
        self.queue.len()
    }
}

/// What a chunk received on a link asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Already known here: nothing to do.
    Known,
    /// The payload does not hash to the id.
    BadHash,
    /// New: store it in the local cluster, then call [`Router::on_stored`].
    Store,
    /// A new manifest whose chunks are not all stored here yet: held.
    Held,
}

/// The gateway's state: what the site holds and what each link needs.
#[derive(Debug, Default)]
pub struct Router {
    /// Known here: stored in the site, or being stored.
    known: HashSet<Hash32>,
    /// Stored in the local cluster.
    local: HashSet<Hash32>,
    /// Manifests -> the chunks they name (known manifests only).
    manifests: HashMap<Hash32, Vec<Hash32>>,
    /// Manifests received before their chunks were stored here, with the
    /// link they came on.
    held: HashMap<Hash32, LinkId>,
    pub links: Vec<Link>,
}

impl Router {
    pub fn new(peers: impl IntoIterator<Item = String>) -> Router {
        Router {
            links: peers
                .into_iter()
                .map(|peer| Link {
                    peer,
                    ..Link::default()
                })
                .collect(),
            ..Router::default()
        }
    }

    pub fn is_known(&self, id: &Hash32) -> bool {
        self.known.contains(id)
    }

    pub fn is_local(&self, id: &Hash32) -> bool {
        self.local.contains(id)
    }

    /// Chunks and manifests stored in the site.
    pub fn local_count(&self) -> usize {
        self.local.len()
    }

    /// Manifests held back for missing chunks.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    /// A node of the site stored `id` (a local put, or the gateway's own
    /// store of a chunk from a link). `chunks`: the manifest's chunk list
    /// when `id` is a manifest (its chunks are in the site: a put stores
    /// a manifest only after its chunks).
    pub fn on_local(&mut self, id: Hash32, chunks: Option<Vec<Hash32>>) {
        if let Some(cs) = chunks {
            for c in &cs {
                self.on_local(*c, None);
            }
            self.manifests.insert(id, cs);
        }
        self.known.insert(id);
        if self.local.insert(id) {
            self.forward(id, None);
        }
    }

    /// A chunk arrived on `link`. `chunks`: the manifest's chunk list if
    /// it is a manifest (decoded by the caller).
    pub fn on_link_chunk(
        &mut self,
        link: LinkId,
        id: Hash32,
        payload: &[u8],
        chunks: Option<Vec<Hash32>>,
    ) -> Received {
        let l = &mut self.links[link];
        l.counters.chunks_received += 1;
        l.counters.bytes_received += payload.len() as u64;
        if crate::chunking::chunk_id(payload) != id {
            l.counters.refused_bad_hash += 1;
            return Received::BadHash;
        }
        l.peer_has.insert(id);
        if self.known.contains(&id) {
            l.counters.refused_known += 1;
            return Received::Known;
        }
        self.known.insert(id);
        match chunks {
            Some(cs) => {
                let ready = cs.iter().all(|c| self.local.contains(c));
                self.manifests.insert(id, cs);
                if ready {
                    Received::Store
                } else {
                    self.held.insert(id, link);
                    Received::Held
                }
            }
            None => Received::Store,
        }
    }

    /// `id`, received on `from`, is now stored in the local cluster: it is
    /// queued on every other link. Returns held manifests that may now be
    /// stored (their chunks all are), with the link each came on.
    pub fn on_stored(&mut self, id: Hash32, from: Option<LinkId>) -> Vec<(Hash32, LinkId)> {
        self.known.insert(id);
        if self.local.insert(id) {
            self.forward(id, from);
        }
        let ready: Vec<(Hash32, LinkId)> = self
            .held
            .iter()
            .filter(|(m, _)| {
                self.manifests
                    .get(*m)
                    .is_some_and(|cs| cs.iter().all(|c| self.local.contains(c)))
            })
            .map(|(m, l)| (*m, *l))
            .collect();
        for (m, _) in &ready {
            self.held.remove(m);
        }
        ready
    }

    /// Storing `id` failed: forget it, so that a later copy is taken.
    pub fn on_store_failed(&mut self, id: &Hash32) {
        if !self.local.contains(id) {
            self.known.remove(id);
            self.held.remove(id);
        }
    }

    fn forward(&mut self, id: Hash32, except: Option<LinkId>) {
        for l in 0..self.links.len() {
            if !self.links[l].up {
                continue;
            }
            if !self.links[l].peer_has.contains(&id) {
                self.links[l].adverts.push(id);
            }
            if Some(l) != except {
                self.enqueue(l, id);
            }
        }
    }

    /// Ids to announce on `link` now (sent as HAVE before the next chunk):
    /// a peer that learns that this site holds a chunk does not send it
    /// here, even if it got it over another link first.
    pub fn take_adverts(&mut self, link: LinkId) -> Vec<Hash32> {
        let l = &mut self.links[link];
        let peer_has = &l.peer_has;
        let mut v = std::mem::take(&mut l.adverts);
        v.retain(|id| !peer_has.contains(id));
        l.counters.have_ids_sent += v.len() as u64;
        v
    }

    /// Queues `id` on `link` unless its peer holds it or it is queued; a
    /// manifest's chunks go first.
    fn enqueue(&mut self, link: LinkId, id: Hash32) -> bool {
        if self.links[link].peer_has.contains(&id) || self.links[link].queued.contains(&id) {
            return false;
        }
        if let Some(cs) = self.manifests.get(&id).cloned() {
            for c in cs {
                if self.local.contains(&c) {
                    self.enqueue(link, c);
                }
            }
        }
        let l = &mut self.links[link];
        l.queued.insert(id);
        l.queue.push_back(id);
        true
    }

    /// The next chunk to send on `link` (call [`Router::on_sent`] once
    /// written).
    pub fn next_to_send(&mut self, link: LinkId) -> Option<Hash32> {
        let l = &mut self.links[link];
        while let Some(id) = l.queue.pop_front() {
            l.queued.remove(&id);
            if !l.peer_has.contains(&id) {
                return Some(id);
            }
        }
        None
    }

    /// `id` was written on `link` (`bytes` on the wire).
    pub fn on_sent(&mut self, link: LinkId, id: Hash32, bytes: usize) {
        let l = &mut self.links[link];
        l.peer_has.insert(id);
        l.counters.chunks_sent += 1;
        l.counters.bytes_sent += bytes as u64;
    }

    /// Whether `id` is a manifest known here.
    pub fn is_manifest(&self, id: &Hash32) -> bool {
        self.manifests.contains_key(id)
    }

    /// A session on `link` began: returns the inventory to send (every
    /// chunk stored here, data chunks first).
    pub fn link_up(&mut self, link: LinkId) -> Vec<Hash32> {
        let l = &mut self.links[link];
        l.up = true;
        l.synced = false;
        l.counters.sessions += 1;
        l.queue.clear();
        l.queued.clear();
        l.adverts.clear();
        self.inventory()
    }

    /// Every chunk stored here, data chunks first, then manifests.
    pub fn inventory(&self) -> Vec<Hash32> {
        let (m, d): (BTreeSet<Hash32>, BTreeSet<Hash32>) = self
            .local
            .iter()
            .partition(|id| self.manifests.contains_key(*id));
        d.into_iter().chain(m).collect()
    }

    /// The session on `link` ended: nothing is queued on it until the
    /// next session's catch-up.
    pub fn link_down(&mut self, link: LinkId) {
        let l = &mut self.links[link];
        l.up = false;
        l.synced = false;
        l.queue.clear();
        l.queued.clear();
        l.adverts.clear();
    }

    /// A batch of the peer's inventory.
    pub fn on_have(&mut self, link: LinkId, ids: &[Hash32]) {
        let l = &mut self.links[link];
        l.counters.have_ids_received += ids.len() as u64;
        l.peer_has.extend(ids.iter().copied());
    }

    /// The peer's inventory is complete: queue what it lacks. Returns how
    /// many chunks were queued.
    pub fn on_have_end(&mut self, link: LinkId) -> usize {
        let mut n = 0;
        for id in self.inventory() {
            if self.enqueue(link, id) {
                n += 1;
            }
        }
        let l = &mut self.links[link];
        l.synced = true;
        l.counters.catchups += 1;
        l.counters.catchup_queued += n as u64;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunking::chunk_id;

    fn chunk(n: u8) -> (Hash32, Vec<u8>) {
        let p = vec![n; 100];
        (chunk_id(&p), p)
    }

    fn drain(r: &mut Router, l: LinkId) -> Vec<Hash32> {
        let mut v = Vec::new();
        while let Some(id) = r.next_to_send(l) {
            r.on_sent(l, id, 100);
            v.push(id);
        }
        v
    }

    fn up(peers: &[&str]) -> Router {
        let mut r = Router::new(peers.iter().map(|s| s.to_string()));
        for l in 0..peers.len() {
            r.link_up(l);
            r.on_have_end(l);
        }
        r
    }

    #[test]
    fn local_chunks_go_on_every_link_once() {
        let mut r = up(&["B", "C"]);
        let (a, _) = chunk(1);
        r.on_local(a, None);
        r.on_local(a, None);
        assert_eq!(drain(&mut r, 0), vec![a]);
        assert_eq!(drain(&mut r, 1), vec![a]);
        r.on_local(a, None);
        assert!(drain(&mut r, 0).is_empty());
    }

    #[test]
    fn a_new_chunk_is_stored_then_forwarded_on_the_other_links_only() {
        let mut r = up(&["A", "C", "D"]);
        let (x, p) = chunk(2);
        assert_eq!(r.on_link_chunk(0, x, &p, None), Received::Store);
        // Not forwarded before it is stored here.
        assert!(drain(&mut r, 1).is_empty());
        assert!(r.on_stored(x, Some(0)).is_empty());
        assert!(drain(&mut r, 0).is_empty());
        assert_eq!(drain(&mut r, 1), vec![x]);
        assert_eq!(drain(&mut r, 2), vec![x]);
        // The same chunk again, on another link: known, refused.
        assert_eq!(r.on_link_chunk(1, x, &p, None), Received::Known);
        assert_eq!(r.links[1].counters.refused_known, 1);
        assert!(drain(&mut r, 0).is_empty());
    }

    #[test]
    fn bad_hash_is_refused_and_not_remembered() {
        let mut r = up(&["A", "C"]);
        let (x, _) = chunk(3);
        assert_eq!(r.on_link_chunk(0, x, b"other", None), Received::BadHash);
        assert!(!r.is_known(&x));
    }

    #[test]
    fn a_triangle_sends_each_chunk_at_most_once_per_direction() {
        // Three routers; deliver everything until quiet and count.
        let names = ["A", "B", "C"];
        let peers = |i: usize| -> Vec<&str> {
            names
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, n)| *n)
                .collect()
        };
        let mut rs: Vec<Router> = (0..3).map(|i| up(&peers(i))).collect();
        let link_to = |from: usize, to: usize| -> LinkId { if to < from { to } else { to - 1 } };
        let ids: Vec<(Hash32, Vec<u8>)> = (0..20).map(chunk).collect();
        for (id, _) in &ids {
            rs[0].on_local(*id, None);
        }
        let payload: HashMap<Hash32, Vec<u8>> = ids.iter().cloned().collect();
        let mut crossings: HashMap<(usize, usize, Hash32), u32> = HashMap::new();
        loop {
            let mut moved = false;
            for from in 0..3 {
                for to in 0..3 {
                    if from == to {
                        continue;
                    }
                    let l = link_to(from, to);
                    let ads = rs[from].take_adverts(l);
                    rs[to].on_have(link_to(to, from), &ads);
                    while let Some(id) = rs[from].next_to_send(l) {
                        rs[from].on_sent(l, id, 100);
                        *crossings.entry((from, to, id)).or_default() += 1;
                        moved = true;
                        let back = link_to(to, from);
                        if rs[to].on_link_chunk(back, id, &payload[&id], None) == Received::Store {
                            rs[to].on_stored(id, Some(back));
                        }
                    }
                }
            }
            if !moved {
                break;
            }
        }
        assert!(crossings.values().all(|n| *n == 1), "{crossings:?}");
        // With the HAVE announcements, C does not send back to B what B
        // announced: A to B, A to C and B to C only (80 without them).
        assert_eq!(crossings.len(), 60, "{crossings:?}");
        for r in &rs {
            assert_eq!(r.local_count(), 20);
        }
    }

    #[test]
    fn a_manifest_is_held_until_its_chunks_are_stored_and_sent_after_them() {
        let mut r = up(&["A", "C"]);
        let (x, px) = chunk(4);
        let (y, py) = chunk(5);
        let (m, pm) = chunk(6);
        assert_eq!(r.on_link_chunk(0, m, &pm, Some(vec![x, y])), Received::Held);
        assert_eq!(r.on_link_chunk(0, x, &px, None), Received::Store);
        assert!(r.on_stored(x, Some(0)).is_empty());
        assert_eq!(r.on_link_chunk(0, y, &py, None), Received::Store);
        assert_eq!(r.on_stored(y, Some(0)), vec![(m, 0)]);
        assert!(r.on_stored(m, Some(0)).is_empty());
        assert_eq!(drain(&mut r, 1), vec![x, y, m]);
    }

    #[test]
    fn a_local_manifest_queues_its_missing_chunks_first() {
        let mut r = up(&["B"]);
        let (x, _) = chunk(7);
        let (m, _) = chunk(8);
        r.on_local(m, Some(vec![x]));
        assert_eq!(drain(&mut r, 0), vec![x, m]);
    }

    #[test]
    fn catch_up_queues_only_what_the_peer_lacks() {
        let mut r = Router::new(["B".to_string()]);
        let ids: Vec<Hash32> = (0..10).map(|i| chunk(i).0).collect();
        let (m, _) = chunk(50);
        // Stored while the link is down: nothing queued.
        r.on_local(m, Some(ids.clone()));
        assert_eq!(r.next_to_send(0), None);
        let inv = r.link_up(0);
        assert_eq!(inv.len(), 11);
        assert_eq!(*inv.last().unwrap(), m);
        // The peer has the first six data chunks (in two batches).
        r.on_have(0, &ids[..3]);
        r.on_have(0, &ids[3..6]);
        assert_eq!(r.on_have_end(0), 5);
        let sent = drain(&mut r, 0);
        assert_eq!(sent.last(), Some(&m));
        let mut data = sent[..4].to_vec();
        data.sort_unstable();
        let mut want = ids[6..].to_vec();
        want.sort_unstable();
        assert_eq!(data, want);
        assert_eq!(r.links[0].counters.catchup_queued, 5);
        // A second session: the peer has everything now.
        r.link_down(0);
        r.link_up(0);
        r.on_have(0, &inv);
        assert_eq!(r.on_have_end(0), 0);
        assert!(drain(&mut r, 0).is_empty());
    }
}
