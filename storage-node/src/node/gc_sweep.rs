//! The node's half of `gc`: removing from the index the chunks a mark
//! found unreferenced (see [`crate::gc`]).

use super::NodeCore;
use std::collections::HashSet;
use subcast_proto::replicast::{ChunkKind, Hash32};

impl NodeCore {
    /// Drops from the index every chunk that is not in `refs`, was last
    /// stored or claimed ("already stored") before `cutoff_us`, and is not
    /// being written; returns them (with their sizes) for the owner to
    /// delete. From here on a proposal of such a chunk gets a bid (the
    /// chunk is sent and stored again), never "already stored".
    pub fn sweep(
        &mut self,
        refs: &HashSet<Hash32>,
        cutoff_us: u64,
    ) -> Vec<(Hash32, ChunkKind, u32)> {
        let doomed: Vec<Hash32> = self
            .index
            .catalog
            .chunks()
            .filter(|(id, t)| **t < cutoff_us && !refs.contains(*id))
            .map(|(id, _)| *id)
            .filter(|id| !self.storing.contains_key(id))
            .collect();
        let mut out = Vec::with_capacity(doomed.len());
        for id in doomed {
            if let Some(e) = self.index.entry(&id) {
                out.push((id, e.kind, e.size));
            }
            self.index.remove(&id);
        }
        out
    }
}
