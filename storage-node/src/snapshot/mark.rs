//! The client side of `gc`: the mark (see [`crate::gc`] for the rules)
//! and handing it to the nodes' stores.

use super::list::{by_name, fetch_object, list_and_fetch};
use super::record::{SNAPSHOT_BUCKET, SnapshotRecord, is_tombstone};
use super::rules;
use crate::client::Client;
use crate::gc::{Mark, SweepReport, done_path, write_mark};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a mark found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MarkReport {
    pub mark_us: u64,
    pub grace_s: f64,
    pub manifests_listed: usize,
    pub live_manifests: usize,
    pub snapshots: usize,
    /// Manifests a snapshot names that no node listed (already lost).
    pub pinned_missing: usize,
    pub referenced_chunks: usize,
}

/// Lists the cluster and decides what is referenced.
pub async fn mark(client: &mut Client, grace: Duration) -> anyhow::Result<(Mark, MarkReport)> {
    let mark_us = subcast_proto::now_us();
    let grace_us = grace.as_micros() as u64;
    let (listed, ms) = list_and_fetch(client, "").await?;
    let all: HashMap<_, _> = ms.iter().map(|(id, m)| (*id, m.clone())).collect();
    let objects = by_name(ms);
    let mut live = rules::live_versions(&objects, mark_us.saturating_sub(grace_us));
    let mut report = MarkReport {
        mark_us,
        grace_s: grace.as_secs_f64(),
        manifests_listed: listed,
        ..MarkReport::default()
    };
    // Snapshots pin what they name.
    let prefix = format!("{SNAPSHOT_BUCKET}/");
    let records: Vec<_> = objects
        .iter()
        .filter(|(n, _)| n.starts_with(&prefix))
        .flat_map(|(_, vs)| vs.iter())
        .filter(|(id, m)| live.contains(id) && !is_tombstone(m))
        .map(|(_, m)| m.clone())
        .collect();
    for m in records {
        let bytes = fetch_object(client, &m).await?;
        let rec = SnapshotRecord::decode(&bytes)
            .map_err(|e| anyhow::anyhow!("snapshot record {:?} does not decode: {e}", m.name))?;
        report.snapshots += 1;
        for e in rec.entries {
            if all.contains_key(&e.manifest_id) {
                live.insert(e.manifest_id);
            } else {
                report.pinned_missing += 1;
                tracing::warn!(object = %e.name, version = e.version, snapshot = %m.name, "a version a snapshot names was not listed by any node");
            }
        }
    }
    let mut refs: HashSet<_> = live.clone();
    for id in &live {
        if let Some(m) = all.get(id) {
            refs.extend(m.chunks.iter().copied());
        }
    }
    report.live_manifests = live.len();
    report.referenced_chunks = refs.len();
    Ok((
        Mark {
            mark_us,
            cutoff_us: mark_us.saturating_sub(grace_us),
            refs,
        },
        report,
    ))
}

/// What one `gc` pass did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GcReport {
    pub mark: MarkReport,
    pub sweeps: Vec<SweepReport>,
}

/// One pass: mark, hand the mark to each store's node, wait for the sweeps.
pub async fn gc_pass(
    client: &mut Client,
    stores: &[PathBuf],
    grace: Duration,
    dry_run: bool,
) -> anyhow::Result<GcReport> {
    let (m, report) = mark(client, grace).await?;
    let mut sweeps = Vec::new();
    if dry_run {
        return Ok(GcReport {
            mark: report,
            sweeps,
        });
    }
    for s in stores {
        write_mark(s, &m)
            .map_err(|e| anyhow::anyhow!("cannot write the gc mark into {}: {e}", s.display()))?;
    }
    // The serve loop takes a mark within a second.
    let deadline = Instant::now() + Duration::from_secs(30);
    for s in stores {
        loop {
            if let Ok(t) = std::fs::read_to_string(done_path(s))
                && let Ok(r) = serde_json::from_str::<SweepReport>(&t)
                && r.mark_us == m.mark_us
            {
                sweeps.push(r);
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the node serving {} did not sweep within 30 s: is `subcast-node serve` running with this store?",
                s.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(GcReport {
        mark: report,
        sweeps,
    })
}
