//! Deletes, snapshots, clones and listings, on top of puts and gets.

use super::list::{by_name, fetch_manifest, fetch_object, group_of_name, list_and_fetch};
use super::record::{SNAPSHOT_BUCKET, SnapshotRecord, is_tombstone, record_name, tombstone};
use super::rules;
use crate::catalog::bucket_of;
use crate::client::{Client, Finished, Task, new_txid};
use crate::manifest::Manifest;
use crate::objects::{self, GetReport, PutOptions};
use crate::put::{PutMachine, PutParams, PutTimers};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use subcast_proto::replicast::{ChunkKind, Hash32};

/// Stores a version manifest (no data: its chunks must be stored).
pub async fn put_manifest(
    client: &mut Client,
    m: &Manifest,
    o: &PutOptions,
) -> anyhow::Result<Hash32> {
    if o.mode == crate::transport::Mode::Rendezvous && !client.has_controller() {
        anyhow::bail!(
            "--transport rendezvous needs a `controller:` section in the config (or use --transport ng-multicast)"
        );
    }
    let cfg = client.cfg.clone();
    let p = PutParams {
        replicas: o.replicas,
        mode: o.mode,
        group: group_of_name(client, &m.name),
        port: cfg.port,
        datagram_payload: cfg.put_datagram_payload(),
        kind: ChunkKind::Manifest,
        timers: PutTimers::default(),
        fallback: cfg.fallback_transport,
    };
    let mut task = Some(Task::Put(Box::new(PutMachine::new(
        new_txid(),
        Arc::new(m.encode()),
        p,
        Instant::now(),
    ))));
    let mut id = None;
    client
        .run(
            1,
            |_| task.take(),
            |_, f| {
                if let Finished::Put(r) = f {
                    id = Some(r?.chunk_id);
                }
                Ok(())
            },
        )
        .await?;
    id.ok_or_else(|| anyhow::anyhow!("manifest of {:?} was not stored", m.name))
}

/// The version number a new version of `name` gets.
async fn next_version(client: &mut Client, name: &str, replicas: usize) -> anyhow::Result<u64> {
    let (found, answered, known) = objects::lookup_answers(client, name, 0).await?;
    crate::versions::next_version(&found, answered, known, replicas)
        .map_err(|e| anyhow::anyhow!("{name:?}: {e}"))
}

/// `delete NAME`: writes a tombstone version. Returns its version.
pub async fn delete(client: &mut Client, name: &str, o: &PutOptions) -> anyhow::Result<u64> {
    let found = objects::lookup(client, name, 0).await?;
    anyhow::ensure!(
        !found.is_empty(),
        "object {name:?} not found: nothing to delete"
    );
    let v = next_version(client, name, o.replicas).await?;
    put_manifest(client, &tombstone(name, v, client.node_id()), o).await?;
    Ok(v)
}

/// What `snapshot create` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotReport {
    pub bucket: String,
    pub name: String,
    pub cut_us: u64,
    pub objects: usize,
    /// Bytes of the record (the object `.snapshots/BUCKET/NAME`).
    pub record_bytes: usize,
    pub record_chunks: usize,
    pub manifests_listed: usize,
    pub seconds: f64,
}

fn check_names(bucket: &str, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !bucket.is_empty() && !bucket.contains('/') && bucket != SNAPSHOT_BUCKET,
        "bucket {bucket:?}: a bucket name is not empty, has no '/' and is not {SNAPSHOT_BUCKET}"
    );
    anyhow::ensure!(
        !name.is_empty() && !name.contains('/') && !name.contains('@'),
        "snapshot name {name:?}: not empty, no '/' or '@'"
    );
    Ok(())
}

/// `snapshot create BUCKET NAME`: the version of every object of the
/// bucket as of now (see the README's "Snapshots" for the instant).
pub async fn snapshot_create(
    client: &mut Client,
    bucket: &str,
    name: &str,
    o: &PutOptions,
) -> anyhow::Result<SnapshotReport> {
    check_names(bucket, name)?;
    let start = Instant::now();
    let rname = record_name(bucket, name);
    if let Some(m) = newest(client, &rname).await?
        && !is_tombstone(&m)
    {
        anyhow::bail!(
            "snapshot {name:?} of bucket {bucket:?} exists (snapshots are immutable; delete it first)"
        );
    }
    let cut_us = subcast_proto::now_us();
    let (listed, ms) = list_and_fetch(client, bucket).await?;
    let entries = rules::cut(&by_name(ms), cut_us);
    let rec = SnapshotRecord {
        bucket: bucket.to_owned(),
        name: name.to_owned(),
        cut_us,
        entries,
    };
    let bytes = rec.encode();
    let len = bytes.len();
    let r = objects::put_reader(client, std::io::Cursor::new(bytes), len as u64, &rname, o).await?;
    // The record pins its versions from now on. A version a tombstone
    // superseded after the cut is kept by gc only for its grace period:
    // if this took longer, gc may have collected one; then the record
    // is withdrawn (a tombstone) rather than left naming a lost version.
    let still: std::collections::HashSet<Hash32> = super::list::list_bucket(client, bucket)
        .await?
        .into_iter()
        .map(|l| l.id)
        .collect();
    let lost = rec
        .entries
        .iter()
        .filter(|e| !still.contains(&e.manifest_id))
        .count();
    // A gc mark taken before the record was stored, swept after the list
    // above, can still take a version the record names, but only if the
    // record was stored more than the grace period after the cut; gc's
    // grace is at least twice `put_max_s`, so a record stored within that
    // of its cut is safe.
    let cut_age_s = subcast_proto::now_us().saturating_sub(cut_us) as f64 / 1e6;
    let too_slow = cut_age_s > 2.0 * client.cfg.put_max_s;
    if lost > 0 || too_slow {
        let v = next_version(client, &rname, o.replicas).await?;
        put_manifest(client, &tombstone(&rname, v, client.node_id()), o).await?;
        if lost > 0 {
            anyhow::bail!(
                "snapshot {name:?} of {bucket:?}: {lost} versions it names were collected by gc while it was being made (it took {:.1} s, longer than the gc grace period): withdrawn, retry",
                start.elapsed().as_secs_f64()
            );
        }
        anyhow::bail!(
            "snapshot {name:?} of {bucket:?}: its record was stored {cut_age_s:.1} s after its cut, more than twice put_max_s ({} s), so gc may collect what it names: withdrawn, retry",
            client.cfg.put_max_s
        );
    }
    Ok(SnapshotReport {
        bucket: bucket.to_owned(),
        name: name.to_owned(),
        cut_us,
        objects: rec.entries.len(),
        record_bytes: len,
        record_chunks: r.chunks,
        manifests_listed: listed,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The newest manifest of `name`, if any.
async fn newest(client: &mut Client, name: &str) -> anyhow::Result<Option<Manifest>> {
    let found = objects::lookup(client, name, 0).await?;
    match crate::versions::newest(&found, None) {
        None => Ok(None),
        Some((k, _)) => Ok(Some(fetch_manifest(client, name, k.manifest_id).await?)),
    }
}

/// `snapshot show BUCKET NAME`.
pub async fn snapshot_show(
    client: &mut Client,
    bucket: &str,
    name: &str,
) -> anyhow::Result<SnapshotRecord> {
    let rname = record_name(bucket, name);
    let m = newest(client, &rname)
        .await?
        .ok_or_else(|| anyhow::anyhow!("bucket {bucket:?} has no snapshot {name:?}"))?;
    anyhow::ensure!(
        !is_tombstone(&m),
        "snapshot {name:?} of bucket {bucket:?} was deleted"
    );
    let bytes = fetch_object(client, &m).await?;
    let rec = SnapshotRecord::decode(&bytes)
        .map_err(|e| anyhow::anyhow!("snapshot record {rname:?} does not decode: {e}"))?;
    anyhow::ensure!(
        rec.bucket == bucket && rec.name == name,
        "snapshot record {rname:?} names {}/{}",
        rec.bucket,
        rec.name
    );
    Ok(rec)
}

/// `snapshot list BUCKET`: the live snapshots of a bucket, by name.
pub async fn snapshot_list(
    client: &mut Client,
    bucket: &str,
) -> anyhow::Result<Vec<SnapshotRecord>> {
    let prefix = format!("{SNAPSHOT_BUCKET}/{bucket}/");
    let (_, ms) = list_and_fetch(client, SNAPSHOT_BUCKET).await?;
    let mut out = Vec::new();
    for (name, vs) in by_name(ms) {
        if !name.starts_with(&prefix) {
            continue;
        }
        let Some((_, m)) = vs.last() else { continue };
        if is_tombstone(m) {
            continue;
        }
        let bytes = fetch_object(client, m).await?;
        out.push(
            SnapshotRecord::decode(&bytes)
                .map_err(|e| anyhow::anyhow!("snapshot record {name:?} does not decode: {e}"))?,
        );
    }
    Ok(out)
}

/// `get NAME [--version N] [--snapshot S]`: a tombstone reads as "deleted".
pub async fn get(
    client: &mut Client,
    name: &str,
    version: Option<u64>,
    snapshot: Option<&str>,
    out: &Path,
    quiet: bool,
) -> anyhow::Result<GetReport> {
    let start = Instant::now();
    let m = match snapshot {
        Some(s) => {
            let rec = snapshot_show(client, bucket_of(name), s).await?;
            let e = rec.entry(name).ok_or_else(|| {
                anyhow::anyhow!("object {name:?} is not in snapshot {s:?} (it did not exist, or was deleted, at the cut)")
            })?;
            anyhow::ensure!(
                version.is_none_or(|v| v == e.version),
                "snapshot {s:?} holds version {} of {name:?}",
                e.version
            );
            fetch_manifest(client, name, e.manifest_id).await?
        }
        None => objects::manifest(client, name, version).await?,
    };
    anyhow::ensure!(
        !is_tombstone(&m),
        "object {name:?} was deleted (version {} by writer {} is a tombstone; older versions: --version N)",
        m.version,
        m.writer
    );
    objects::get_manifest_object(client, &m, out, quiet, start).await
}

/// What a clone made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CloneReport {
    pub from_snapshot: String,
    /// (new name, its version, the source name).
    pub objects: Vec<(String, u64, String)>,
}

/// `clone BUCKET/OBJECT@SNAP NEW/NAME` or `clone BUCKET@SNAP NEWBUCKET`:
/// new names whose first version names the snapshot's chunks.
pub async fn clone(
    client: &mut Client,
    source: &str,
    dest: &str,
    o: &PutOptions,
) -> anyhow::Result<CloneReport> {
    let (src, snap) = source.rsplit_once('@').ok_or_else(|| {
        anyhow::anyhow!("clone source {source:?}: BUCKET/OBJECT@SNAPSHOT or BUCKET@SNAPSHOT")
    })?;
    let bucket = bucket_of(src);
    let rec = snapshot_show(client, bucket, snap).await?;
    let pairs: Vec<(String, &super::record::SnapEntry)> = if src.contains('/') {
        anyhow::ensure!(
            dest.contains('/'),
            "clone of an object: the new name is BUCKET/NAME, not {dest:?}"
        );
        let e = rec
            .entry(src)
            .ok_or_else(|| anyhow::anyhow!("object {src:?} is not in snapshot {snap:?}"))?;
        vec![(dest.to_owned(), e)]
    } else {
        anyhow::ensure!(
            !dest.contains('/') && !dest.is_empty() && dest != SNAPSHOT_BUCKET,
            "clone of a bucket: the new name is a bucket, not {dest:?}"
        );
        rec.entries
            .iter()
            .map(|e| {
                let rest = e.name.split_once('/').map_or("", |(_, r)| r);
                (format!("{dest}/{rest}"), e)
            })
            .collect()
    };
    let mut made = Vec::new();
    for (new, e) in pairs {
        let m = fetch_manifest(client, &e.name, e.manifest_id).await?;
        let version = next_version(client, &new, o.replicas).await?;
        let c = Manifest {
            name: new.clone(),
            version,
            writer: client.node_id(),
            created_us: subcast_proto::now_us(),
            ..m
        };
        put_manifest(client, &c, o).await?;
        made.push((new, version, e.name.clone()));
    }
    Ok(CloneReport {
        from_snapshot: format!("{bucket}@{snap}"),
        objects: made,
    })
}

/// One version in a listing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LsVersion {
    pub version: u64,
    pub writer: u32,
    pub size: u64,
    pub deleted: bool,
    pub created_us: u64,
    pub manifest: String,
    /// Snapshots of the bucket that hold this version.
    pub snapshots: Vec<String>,
}

/// One object in a listing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LsObject {
    pub name: String,
    pub versions: Vec<LsVersion>,
}

/// `ls BUCKET[/PREFIX]`.
pub async fn ls(client: &mut Client, path: &str) -> anyhow::Result<Vec<LsObject>> {
    let bucket = bucket_of(path);
    let (_, ms) = list_and_fetch(client, bucket).await?;
    let snaps = if bucket == SNAPSHOT_BUCKET {
        Vec::new()
    } else {
        snapshot_list(client, bucket).await?
    };
    let prefix = if path.contains('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    Ok(by_name(ms)
        .into_iter()
        .filter(|(n, _)| n.starts_with(&prefix) || n == path)
        .map(|(name, vs)| LsObject {
            versions: vs
                .iter()
                .map(|(id, m)| LsVersion {
                    version: m.version,
                    writer: m.writer,
                    size: m.size,
                    deleted: is_tombstone(m),
                    created_us: m.created_us,
                    manifest: hex::encode(id),
                    snapshots: snaps
                        .iter()
                        .filter(|s| s.entry(&name).is_some_and(|e| e.manifest_id == *id))
                        .map(|s| s.name.clone())
                        .collect(),
                })
                .collect(),
            name,
        })
        .collect())
}
