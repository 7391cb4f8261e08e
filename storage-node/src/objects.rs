//! Objects by name: put (chunks + a new version manifest), get (newest or
//! a given version, verified, written atomically), stat.

use crate::chunking::{chunk_id, name_hash, short};
use crate::client::{Client, Finished, Task, Versions, new_txid};
use crate::get::{GetMachine, GetTimers, ManifestLookup};
use crate::manifest::Manifest;
use crate::placement::ng_index;
use crate::put::{PutMachine, PutParams, PutTimers};
use crate::transport::Mode;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Read;
use std::net::Ipv6Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{ChunkKind, Hash32};

/// Options of a put.
#[derive(Debug, Clone)]
pub struct PutOptions {
    pub mode: Mode,
    pub replicas: usize,
    pub chunk_size: usize,
    pub quiet: bool,
}

/// What a put did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PutReport {
    pub name: String,
    pub version: u64,
    pub size: u64,
    pub chunks: usize,
    pub transport: &'static str,
    pub replicas: usize,
    pub seconds: f64,
    pub mib_per_s: f64,
    /// Every byte the client sent (IPv6+UDP+Replicast), per object byte.
    pub wire_bytes_per_payload_byte: f64,
    pub data_wire_bytes: u64,
    pub chunks_deduplicated: usize,
    pub targets_replaced: u32,
    /// Node ids holding each chunk (data chunks in order, then the manifest).
    pub placement: Vec<Vec<u32>>,
    pub object_hash: String,
}

/// What a get did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GetReport {
    pub name: String,
    pub version: u64,
    pub size: u64,
    pub seconds: f64,
    pub mib_per_s: f64,
    pub corrupt_reports: Vec<(u32, String)>,
}

fn group_of(c: &crate::config::Config, id: &Hash32) -> Ipv6Addr {
    c.negotiating_groups[ng_index(id, c.negotiating_groups.len())]
}

fn progress(total: u64, quiet: bool) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    if !quiet {
        pb.set_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    }
    pb
}

fn show_after_a_second(pb: &ProgressBar, start: Instant, quiet: bool) {
    if !quiet && pb.is_hidden() && start.elapsed() > Duration::from_secs(1) {
        pb.set_draw_target(ProgressDrawTarget::stderr());
    }
}

/// Looks up the versions of `name` (version 0 = the newest ones).
pub async fn lookup(client: &mut Client, name: &str, version: u64) -> anyhow::Result<Versions> {
    let nh = name_hash(name);
    let group = group_of(&client.cfg, &nh);
    let (port, expect) = (client.cfg.port, client.cfg.replicas);
    let mut task = Some(Task::Lookup(Box::new(ManifestLookup::new(
        new_txid(),
        nh,
        version,
        group,
        port,
        expect,
        GetTimers {
            offer_timeout: Duration::from_millis(150),
            ..GetTimers::default()
        },
        Instant::now(),
    ))));
    let mut out = Versions::new();
    client
        .run(
            1,
            |_| task.take(),
            |_, f| {
                if let Finished::Lookup(m) = f {
                    out = m.versions;
                }
                Ok(())
            },
        )
        .await?;
    Ok(out)
}

/// Fetches one chunk, verified.
async fn get_chunk(
    client: &mut Client,
    id: Hash32,
    group: Ipv6Addr,
    expect: Option<usize>,
) -> anyhow::Result<Vec<u8>> {
    let (port, per) = (client.cfg.port, client.cfg.datagram_payload());
    let mut task = Some(Task::Get(Box::new(GetMachine::new(
        new_txid(),
        id,
        group,
        port,
        per,
        16 << 20,
        expect,
        GetTimers::default(),
        Instant::now(),
    ))));
    let mut out = None;
    client
        .run(
            1,
            |_| task.take(),
            |_, f| {
                if let Finished::Get(r) = f {
                    out = Some(r?);
                }
                Ok(())
            },
        )
        .await?;
    out.ok_or_else(|| anyhow::anyhow!("chunk {} not received", short(&id)))
}

fn put_task(
    client: &Client,
    payload: Vec<u8>,
    kind: ChunkKind,
    group: Ipv6Addr,
    o: &PutOptions,
) -> Task {
    let p = PutParams {
        replicas: o.replicas,
        mode: o.mode,
        group,
        port: client.cfg.port,
        datagram_payload: client.cfg.datagram_payload(),
        kind,
        timers: PutTimers::default(),
    };
    Task::Put(Box::new(PutMachine::new(
        new_txid(),
        Arc::new(payload),
        p,
        Instant::now(),
    )))
}

/// Puts `file` as a new version of `name`.
pub async fn put_object(
    client: &mut Client,
    file: &Path,
    name: &str,
    o: &PutOptions,
) -> anyhow::Result<PutReport> {
    anyhow::ensure!(
        !name.is_empty() && name.len() <= crate::manifest::MAX_NAME,
        "object name must be 1 to 1024 bytes"
    );
    if o.mode == Mode::Rendezvous && !client.has_controller() {
        anyhow::bail!(
            "--transport rendezvous needs a `controller:` section in the config (or use --transport ng-multicast)"
        );
    }
    let start = Instant::now();
    let versions = lookup(client, name, 0).await?;
    let version = versions.keys().next_back().copied().unwrap_or(0) + 1;
    let mut f = std::fs::File::open(file)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))?;
    let size = f.metadata()?.len();
    let n = crate::chunking::chunk_count(size, o.chunk_size) as usize;
    let pb = progress(size, o.quiet);
    let mut hasher = blake3::Hasher::new();
    let mut ids: Vec<Hash32> = Vec::with_capacity(n);
    let mut read_err: Option<std::io::Error> = None;
    let mut holders_of: std::collections::HashMap<Hash32, Vec<u32>> = Default::default();
    let (mut dedup, mut replaced) = (0usize, 0u32);
    let cfg = client.cfg.clone();
    let chunk_size = o.chunk_size;
    let stats_before = client.stats.data_wire_bytes_sent;
    let wire_before = client.stats.wire_bytes_sent;
    {
        let mut produced = 0usize;
        let mut next = |_: Instant| -> Option<Task> {
            if produced >= n || read_err.is_some() {
                return None;
            }
            let len =
                (size - (produced as u64) * chunk_size as u64).min(chunk_size as u64) as usize;
            let mut buf = vec![0u8; len];
            if let Err(e) = f.read_exact(&mut buf) {
                read_err = Some(e);
                return None;
            }
            hasher.update(&buf);
            let id = chunk_id(&buf);
            ids.push(id);
            produced += 1;
            let group = group_of(&cfg, &id);
            let p = PutParams {
                replicas: o.replicas,
                mode: o.mode,
                group,
                port: cfg.port,
                datagram_payload: cfg.datagram_payload(),
                kind: ChunkKind::Data,
                timers: PutTimers::default(),
            };
            Some(Task::Put(Box::new(PutMachine::new(
                new_txid(),
                Arc::new(buf),
                p,
                Instant::now(),
            ))))
        };
        client
            .run(cfg.parallel, &mut next, |_, fin| {
                if let Finished::Put(r) = fin {
                    let out = r?;
                    if out.stored_on.is_empty() {
                        dedup += 1;
                    }
                    replaced += out.replaced;
                    let mut holders = out.stored_on.clone();
                    holders.extend(&out.already);
                    holders.sort_unstable();
                    holders_of.insert(out.chunk_id, holders);
                    pb.inc(out.size as u64);
                    show_after_a_second(&pb, start, o.quiet);
                }
                Ok(())
            })
            .await?;
    }
    if let Some(e) = read_err {
        anyhow::bail!("reading {}: {e}", file.display());
    }
    let mut placement: Vec<Vec<u32>> = ids
        .iter()
        .map(|id| holders_of.get(id).cloned().unwrap_or_default())
        .collect();
    let m = Manifest {
        name: name.to_owned(),
        version,
        size,
        chunk_size: chunk_size as u32,
        object_hash: *hasher.finalize().as_bytes(),
        created_us: subcast_proto::now_us(),
        chunks: ids,
    };
    let enc = m.encode();
    anyhow::ensure!(
        enc.len() <= 16 << 20,
        "object has too many chunks for one manifest: raise --chunk-size"
    );
    let mgroup = group_of(&client.cfg, &name_hash(name));
    let mut task = Some(put_task(client, enc, ChunkKind::Manifest, mgroup, o));
    client
        .run(
            1,
            |_| task.take(),
            |_, fin| {
                if let Finished::Put(r) = fin {
                    let out = r?;
                    let mut h = out.stored_on.clone();
                    h.extend(&out.already);
                    h.sort_unstable();
                    placement.push(h);
                }
                Ok(())
            },
        )
        .await?;
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    Ok(PutReport {
        name: name.to_owned(),
        version,
        size,
        chunks: n,
        transport: o.mode.name(),
        replicas: o.replicas,
        seconds: secs,
        mib_per_s: size as f64 / (1 << 20) as f64 / secs.max(1e-9),
        wire_bytes_per_payload_byte: (client.stats.wire_bytes_sent - wire_before) as f64
            / (size.max(1)) as f64,
        data_wire_bytes: client.stats.data_wire_bytes_sent - stats_before,
        chunks_deduplicated: dedup,
        targets_replaced: replaced,
        placement,
        object_hash: hex::encode(m.object_hash),
    })
}

/// Fetches and decodes the manifest of `name` (newest, or `version`).
pub async fn manifest(
    client: &mut Client,
    name: &str,
    version: Option<u64>,
) -> anyhow::Result<Manifest> {
    let versions = lookup(client, name, version.unwrap_or(0)).await?;
    let (v, found) = match version {
        Some(v) => (
            v,
            versions.get(&v).cloned().ok_or_else(|| {
                anyhow::anyhow!(
                    "object {name:?} has no version {v} (known: {:?})",
                    versions.keys().collect::<Vec<_>>()
                )
            })?,
        ),
        None => versions
            .iter()
            .next_back()
            .map(|(v, f)| (*v, f.clone()))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "object {name:?} not found: no node of its negotiating group holds a manifest"
                )
            })?,
    };
    let mgroup = group_of(&client.cfg, &name_hash(name));
    let bytes = get_chunk(client, found.manifest_id, mgroup, Some(found.size as usize)).await?;
    let m = Manifest::decode(&bytes)
        .map_err(|e| anyhow::anyhow!("manifest of {name:?} version {v} does not decode: {e}"))?;
    anyhow::ensure!(
        m.name == name && m.version == v,
        "manifest names {:?} version {}, expected {name:?} version {v}",
        m.name,
        m.version
    );
    Ok(m)
}

/// Gets `name` into `out` (written to a temporary name, verified, renamed).
pub async fn get_object(
    client: &mut Client,
    name: &str,
    version: Option<u64>,
    out: &Path,
    quiet: bool,
) -> anyhow::Result<GetReport> {
    use std::os::unix::fs::FileExt;
    let start = Instant::now();
    let m = manifest(client, name, version).await?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.subcast-{}.tmp",
        out.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let file = std::fs::File::create(&tmp)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", tmp.display()))?;
    struct Cleanup<'a>(&'a Path, bool);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            if !self.1 {
                let _ = std::fs::remove_file(self.0);
            }
        }
    }
    let mut guard = Cleanup(&tmp, false);
    file.set_len(m.size)?;
    let pb = progress(m.size, quiet);
    let cfg = client.cfg.clone();
    let mut next_i = 0usize;
    {
        let m2 = &m;
        let mut next = |now: Instant| -> Option<Task> {
            if next_i >= m2.chunks.len() {
                return None;
            }
            let i = next_i;
            next_i += 1;
            let id = m2.chunks[i];
            let txid = new_txid();
            Some(Task::Get(Box::new(GetMachine::new(
                txid,
                id,
                group_of(&cfg, &id),
                cfg.port,
                cfg.datagram_payload(),
                16 << 20,
                Some(m2.chunk_len(i) as usize),
                GetTimers::default(),
                now,
            ))))
        };
        // Results come back in completion order; the driver hands them to
        // `done` with no txid, so chunks are matched by content.
        let mut write_err = None;
        client
            .run(cfg.parallel, &mut next, |_, fin| {
                if let Finished::Get(r) = fin {
                    let bytes = r?;
                    let id = chunk_id(&bytes);
                    for (i, c) in m2.chunks.iter().enumerate() {
                        if *c == id
                            && let Err(e) =
                                file.write_at(&bytes, i as u64 * u64::from(m2.chunk_size))
                        {
                            write_err = Some(e);
                        }
                    }
                    pb.inc(bytes.len() as u64);
                    show_after_a_second(&pb, start, quiet);
                }
                Ok(())
            })
            .await?;
        if let Some(e) = write_err {
            anyhow::bail!("writing {}: {e}", tmp.display());
        }
    }
    pb.finish_and_clear();
    // Whole-object check, then durable rename.
    let mut h = blake3::Hasher::new();
    let mut rf = std::fs::File::open(&tmp)?;
    std::io::copy(&mut rf, &mut h)?;
    anyhow::ensure!(
        *h.finalize().as_bytes() == m.object_hash,
        "object {name:?} version {}: whole-object hash does not match the manifest; nothing written",
        m.version
    );
    file.sync_all()?;
    std::fs::rename(&tmp, out)
        .map_err(|e| anyhow::anyhow!("cannot rename to {}: {e}", out.display()))?;
    guard.1 = true;
    let secs = start.elapsed().as_secs_f64();
    Ok(GetReport {
        name: name.to_owned(),
        version: m.version,
        size: m.size,
        seconds: secs,
        mib_per_s: m.size as f64 / (1 << 20) as f64 / secs.max(1e-9),
        corrupt_reports: client.stats.corrupt_reports.clone(),
    })
}
