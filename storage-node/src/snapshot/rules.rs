//! The rules, without I/O: which version a snapshot takes of each object
//! (the cut) and which versions are live for `gc`.

use super::record::{SnapEntry, is_tombstone};
use crate::manifest::Manifest;
use std::collections::{BTreeMap, HashSet};
use subcast_proto::replicast::Hash32;

/// Manifests by object name, each name's oldest first.
pub type ByName = BTreeMap<String, Vec<(Hash32, Manifest)>>;

/// The entries of a snapshot cut at `cut_us`: for each name, the newest
/// version (by version, writer, manifest id) stamped at or before the cut;
/// names whose version at the cut is a tombstone (or that had none) are
/// left out.
pub fn cut(objects: &ByName, cut_us: u64) -> Vec<SnapEntry> {
    objects
        .iter()
        .filter_map(|(name, vs)| {
            let (id, m) = vs.iter().rev().find(|(_, m)| m.created_us <= cut_us)?;
            (!is_tombstone(m)).then(|| SnapEntry {
                name: name.clone(),
                version: m.version,
                writer: m.writer,
                manifest_id: *id,
                size: m.size,
            })
        })
        .collect()
}

/// The manifests `gc` keeps, before snapshots are added: of each name,
/// every version newer than its newest tombstone and that tombstone, and
/// the versions a tombstone made after `grace_from_us` superseded (a
/// snapshot cut before that tombstone may still be being stored).
pub fn live_versions(objects: &ByName, grace_from_us: u64) -> HashSet<Hash32> {
    let mut live = HashSet::new();
    for vs in objects.values() {
        let last_tomb = vs.iter().rposition(|(_, m)| is_tombstone(m));
        let from = match last_tomb {
            None => 0,
            Some(t) => {
                // Keep what recent tombstones superseded, back to the
                // newest tombstone older than the grace period.
                let mut i = t;
                loop {
                    if vs[i].1.created_us < grace_from_us {
                        break i;
                    }
                    match vs[..i].iter().rposition(|(_, m)| is_tombstone(m)) {
                        Some(j) => i = j,
                        None => break 0,
                    }
                }
            }
        };
        live.extend(vs[from..].iter().map(|(id, _)| *id));
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::record::tombstone;

    fn v(name: &str, version: u64, created_us: u64, tomb: bool) -> (Hash32, Manifest) {
        let mut m = if tomb {
            tombstone(name, version, 1)
        } else {
            Manifest {
                name: name.into(),
                version,
                writer: 1,
                size: 3,
                chunk_size: 4,
                object_hash: [9; 32],
                created_us,
                chunks: vec![[version as u8; 32]],
                inline: None,
            }
        };
        m.created_us = created_us;
        (*blake3::hash(&m.encode()).as_bytes(), m)
    }

    fn objects() -> ByName {
        let mut o = ByName::new();
        o.insert(
            "b/x".into(),
            vec![
                v("b/x", 1, 10, false),
                v("b/x", 2, 20, false),
                v("b/x", 3, 30, true),
            ],
        );
        o.insert("b/y".into(), vec![v("b/y", 1, 15, false)]);
        o
    }

    #[test]
    fn cut_takes_the_version_at_the_instant() {
        let o = objects();
        let at = |t| {
            cut(&o, t)
                .into_iter()
                .map(|e| (e.name, e.version))
                .collect::<Vec<_>>()
        };
        assert_eq!(at(5), vec![]);
        assert_eq!(at(12), vec![("b/x".into(), 1)]);
        assert_eq!(at(25), vec![("b/x".into(), 2), ("b/y".into(), 1)]);
        // Deleted at 30: gone from later snapshots.
        assert_eq!(at(35), vec![("b/y".into(), 1)]);
    }

    #[test]
    fn tombstones_free_older_versions_after_the_grace() {
        let o = objects();
        let x = &o["b/x"];
        // Tombstone at 30 older than the grace start (40): v1, v2 dead.
        let live = live_versions(&o, 40);
        assert!(!live.contains(&x[0].0) && !live.contains(&x[1].0));
        assert!(live.contains(&x[2].0) && live.contains(&o["b/y"][0].0));
        // Within the grace: everything stays.
        let live = live_versions(&o, 25);
        assert!(x.iter().all(|(id, _)| live.contains(id)));
    }
}
