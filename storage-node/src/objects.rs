//! Objects by name: put (chunks + a new version manifest), get (newest or
//! a given version, verified, written atomically), stat.

use crate::chunking::{chunk_id, name_hash, short};
use crate::client::{Client, Finished, Next, Task, Versions, Window, new_txid};
use crate::get::{GetMachine, GetTimers, ManifestLookup};
use crate::manifest::Manifest;
use crate::placement::ng_index;
use crate::put::{Hold, PutError, PutMachine, PutParams, PutPhases, PutTimers};
use crate::transport::Mode;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::net::Ipv6Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use subcast_proto::replicast::{ChunkKind, Hash32};

/// Options of a put.
#[derive(Debug, Clone)]
pub struct PutOptions {
    pub mode: Mode,
    pub replicas: usize,
    pub chunk_size: usize,
    /// Objects of 1 to this many bytes (and one chunk) go inside their
    /// manifest (config `inline_max`; 0: never).
    pub inline_max: usize,
    pub quiet: bool,
}

/// What a put did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PutReport {
    pub name: String,
    pub version: u64,
    /// This client's node id: versions are ordered by (version, writer).
    pub writer: u32,
    pub size: u64,
    /// Data chunks (0 for an object stored inside its manifest).
    pub chunks: usize,
    /// The object's bytes went inside its manifest (one transfer).
    pub inline: bool,
    /// Inline manifests proposed under version 1 and given up before
    /// their ACCEPT because the name had versions (then proposed again).
    pub proposals_abandoned: u32,
    pub transport: &'static str,
    pub replicas: usize,
    pub seconds: f64,
    pub mib_per_s: f64,
    /// Every byte the client sent (IPv6+UDP+Replicast), per object byte.
    pub wire_bytes_per_payload_byte: f64,
    pub data_wire_bytes: u64,
    pub chunks_deduplicated: usize,
    pub targets_replaced: u32,
    /// Chunks (data and manifest) sent by the fallback transport because
    /// the controller had no room for a rendezvous group.
    pub fallbacks: u64,
    /// Why, once per distinct reason (names the switch).
    pub fallback_reasons: Vec<String>,
    /// Node ids holding each chunk (data chunks in order, then the manifest).
    pub placement: Vec<Vec<u32>>,
    pub object_hash: String,
    /// Where the put's time went.
    pub phases: ObjectPhases,
}

/// Where the time of an object's put went, in milliseconds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ObjectPhases {
    /// The version lookup (one MANIFEST_QUERY round).
    pub lookup: f64,
    /// From the start of the put to the last data chunk's last ACK (the
    /// lookup runs meanwhile).
    pub data: f64,
    /// From there to the manifest's last ACK (its bids and group were
    /// had meanwhile; its DATA waited for the data chunks).
    pub manifest: f64,
    /// Each phase of a data chunk's put (mean over the chunks).
    pub data_chunk: PutPhases,
    /// Each phase of the manifest's put.
    pub manifest_chunk: PutPhases,
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
    Ok(lookup_answers(client, name, version).await?.0)
}

/// [`lookup`], with how many members answered and how many were known.
pub async fn lookup_answers(
    client: &mut Client,
    name: &str,
    version: u64,
) -> anyhow::Result<(Versions, usize, usize)> {
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
    let mut out = (Versions::new(), 0, 0);
    client
        .run(
            1,
            |_| task.take(),
            |_, f| {
                if let Finished::Lookup(m) = f {
                    let (answered, known) = (m.responders().len(), m.known_members());
                    out = (m.versions, answered, known);
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
    let (port, per) = (client.cfg.port, client.cfg.datagram_payload(1));
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

/// Puts `file` as a new version of `name`.
pub async fn put_object(
    client: &mut Client,
    file: &Path,
    name: &str,
    o: &PutOptions,
) -> anyhow::Result<PutReport> {
    let f = std::fs::File::open(file)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))?;
    let size = f.metadata()?.len();
    put_reader(client, f, size, name, o)
        .await
        .map_err(|e| match e.downcast::<ReadError>() {
            Ok(ReadError(e)) => anyhow::anyhow!("reading {}: {e}", file.display()),
            Err(e) => e,
        })
}

/// Reading the object's bytes failed.
#[derive(Debug, thiserror::Error)]
#[error("reading the object: {0}")]
struct ReadError(std::io::Error);

/// Puts the `size` bytes read from `f` as a new version of `name`.
///
/// One run of the client: the version lookup and the data chunks go at
/// once (chunks are named by content; only the manifest needs the
/// version); once the lookup answered and every chunk was read, the
/// manifest's put starts (bids, group, ACCEPT) with its DATA held back
/// until every data chunk was acknowledged, so a manifest is never stored
/// before the chunks it names.
pub async fn put_reader(
    client: &mut Client,
    mut f: impl Read,
    size: u64,
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
    let writer = client.node_id();
    // An object of one chunk up to `inline_max` bytes goes inside its
    // manifest: read whole now, hashed once (its id and object hash).
    let inline = if size > 0 && size <= o.inline_max.min(o.chunk_size) as u64 {
        let mut buf = vec![0u8; size as usize];
        f.read_exact(&mut buf).map_err(ReadError)?;
        let h = chunk_id(&buf);
        Some((buf, h))
    } else {
        None
    };
    let n = if inline.is_some() {
        0
    } else {
        crate::chunking::chunk_count(size, o.chunk_size) as usize
    };
    let pb = progress(size, o.quiet);
    let cfg = client.cfg.clone();
    let chunk_size = o.chunk_size;
    let stats_before = client.stats.data_wire_bytes_sent;
    let wire_before = client.stats.wire_bytes_sent;
    let nh = name_hash(name);
    let mgroup = group_of(&cfg, &nh);
    let mut lookup = Some(Task::Lookup(Box::new(ManifestLookup::new(
        new_txid(),
        nh,
        0,
        mgroup,
        cfg.port,
        cfg.replicas,
        GetTimers {
            offer_timeout: Duration::from_millis(150),
            ..GetTimers::default()
        },
        start,
    ))));
    let gate = Arc::new(AtomicBool::new(false));
    let params = |kind, group| PutParams {
        replicas: o.replicas,
        mode: o.mode,
        group,
        port: cfg.port,
        datagram_payload: cfg.put_datagram_payload(),
        kind,
        timers: PutTimers::default(),
        fallback: cfg.fallback_transport,
    };
    // Shared by `next` (makes tasks) and `done` (takes results).
    let st = RefCell::new(PutProgress {
        hasher: blake3::Hasher::new(),
        ids: Vec::with_capacity(n),
        produced: 0,
        data_done: 0,
        read_err: None,
        version: None,
        manifest: None,
        hold: None,
        abandoned: 0,
        holders_of: HashMap::new(),
        manifest_holders: None,
        dedup: 0,
        replaced: 0,
        fallbacks: 0,
        fallback_reasons: Vec::new(),
        phases: ObjectPhases::default(),
        chunk_phases: Vec::new(),
        data_end: None,
        first_ack: None,
    });
    let put_max = Duration::from_secs_f64(cfg.put_max_s);
    // gc collects a chunk no manifest names once it was last stored or
    // claimed more than its grace period before a mark (at least twice
    // `put_max`): a manifest released later than `put_max` after the first
    // chunk's acknowledgement could name chunks gc already took.
    let too_slow = |first: Option<Instant>| -> Option<String> {
        let age = first?.elapsed();
        (age > put_max).then(|| {
            format!(
                "put of {name:?}: abandoned before its manifest: its first chunk was \
                 acknowledged {:.1} s ago, more than put_max_s ({} s), so gc may collect \
                 it; nothing was stored under the name: retry (or raise put_max_s, and \
                 gc's --grace-s to at least twice it)",
                age.as_secs_f64(),
                cfg.put_max_s
            )
        })
    };
    let next = |now: Instant| -> Next {
        if let Some(t) = lookup.take() {
            return Next::Task(t);
        }
        let mut s = st.borrow_mut();
        if s.read_err.is_some() {
            return Next::Done;
        }
        if s.produced < n {
            if s.produced - s.data_done >= cfg.put_window.max(1) {
                return Next::Later;
            }
            let len =
                (size - (s.produced as u64) * chunk_size as u64).min(chunk_size as u64) as usize;
            let mut buf = vec![0u8; len];
            if let Err(e) = f.read_exact(&mut buf) {
                s.read_err = Some(e);
                return Next::Done;
            }
            let id = chunk_id(&buf);
            // An object of one chunk is hashed once: its BLAKE3 is the
            // chunk's id (see the manifest below).
            if n > 1 {
                s.hasher.update(&buf);
            }
            s.ids.push(id);
            s.produced += 1;
            let p = params(ChunkKind::Data, group_of(&cfg, &id));
            return Next::Task(Task::Put(Box::new(PutMachine::with_id(
                new_txid(),
                id,
                Arc::new(buf),
                p,
                now,
            ))));
        }
        if s.manifest.is_some() {
            // A held inline manifest may still be replaced (see `done`).
            return if s.hold.is_some() {
                Next::Later
            } else {
                Next::Done
            };
        }
        // An inline manifest is proposed at once under the number a new
        // name gets, its ACCEPT held until the lookup confirms it (see
        // `put/hold.rs`); a chunked object's once the lookup answered.
        let version = match s.version {
            Some(v) => v,
            None if inline.is_some() => 1,
            None => return Next::Later,
        };
        let m = Manifest {
            name: name.to_owned(),
            version,
            writer,
            size,
            chunk_size: chunk_size as u32,
            object_hash: match (&inline, s.ids.as_slice()) {
                (Some((_, h)), _) => *h,
                (None, [only]) => *only,
                (None, _) => *s.hasher.finalize().as_bytes(),
            },
            created_us: subcast_proto::now_us(),
            chunks: s.ids.clone(),
            inline: inline.as_ref().map(|(b, _)| b.clone()),
        };
        let enc = m.encode();
        if enc.len() > 16 << 20 {
            s.read_err = Some(std::io::Error::other(
                "object has too many chunks for one manifest: raise --chunk-size",
            ));
            return Next::Done;
        }
        let p = params(ChunkKind::Manifest, mgroup);
        let t = PutMachine::new(new_txid(), Arc::new(enc), p, now);
        if inline.is_some() {
            let t = match s.version {
                Some(_) => t,
                None => {
                    let h = Hold::new();
                    s.hold = Some(h.clone());
                    t.with_hold(h)
                }
            };
            s.manifest = Some((*t.chunk_id(), m));
            return Next::Task(Task::Put(Box::new(t)));
        }
        let t = t.with_gate(gate.clone());
        s.manifest = Some((*t.chunk_id(), m));
        if s.data_done == n {
            if let Some(why) = too_slow(s.first_ack) {
                s.read_err = Some(std::io::Error::other(why));
                return Next::Done;
            }
            gate.store(true, Ordering::Release);
        }
        Next::Task(Task::Put(Box::new(t)))
    };
    let done = |_: &mut crate::client::ClientStats, fin: Finished| -> anyhow::Result<()> {
        let mut s = st.borrow_mut();
        match fin {
            Finished::Lookup(m) => {
                s.phases.lookup = ms_since(start);
                let (answered, known) = (m.responders().len(), m.known_members());
                let v = crate::versions::next_version(&m.versions, answered, known, o.replicas)
                    .map_err(|e| anyhow::anyhow!("put of {name:?}: {e}"))?;
                s.version = Some(v);
                // The inline manifest proposed under version 1: go on, or
                // give it up and propose again under `v`.
                if let Some(h) = s.hold.take() {
                    if s.manifest.as_ref().is_some_and(|m| m.1.version == v) {
                        h.release();
                    } else if h.abandon() {
                        s.manifest = None;
                        s.abandoned += 1;
                    }
                }
            }
            Finished::Put(Err(PutError::Abandoned { .. })) => {}
            Finished::Put(r) => {
                let out = r?;
                if let Some(why) = &out.fallback {
                    s.fallbacks += 1;
                    if !s.fallback_reasons.contains(why) {
                        s.fallback_reasons.push(why.clone());
                    }
                }
                let mut holders = out.stored_on.clone();
                holders.extend(&out.already);
                holders.sort_unstable();
                if s.manifest.as_ref().is_some_and(|m| m.0 == out.chunk_id) {
                    s.manifest_holders = Some(holders);
                    s.phases.manifest_chunk = out.phases;
                    return Ok(());
                }
                if out.stored_on.is_empty() {
                    s.dedup += 1;
                }
                s.replaced += out.replaced;
                s.chunk_phases.push(out.phases);
                s.holders_of.insert(out.chunk_id, holders);
                s.data_done += 1;
                s.first_ack.get_or_insert_with(Instant::now);
                if s.data_done == n {
                    // Every data chunk is durable on R nodes: the
                    // manifest may go, unless the put took so long that gc
                    // may have collected its first chunks.
                    if let Some(why) = too_slow(s.first_ack) {
                        anyhow::bail!(why);
                    }
                    s.data_end = Some(Instant::now());
                    gate.store(true, Ordering::Release);
                }
                pb.inc(out.size as u64);
                show_after_a_second(&pb, start, o.quiet);
            }
            Finished::Get(_) => {}
        }
        Ok(())
    };
    // `put_window` chunks in flight, `put_transfers` of them transferring
    // at once, and room for the lookup and the manifest.
    let window = Window {
        tasks: cfg.put_window.max(1) + 2,
        transfers: cfg.put_transfers.max(1),
    };
    client.run_steps(window, next, done).await?;
    let s = st.into_inner();
    if let Some(e) = s.read_err {
        return Err(ReadError(e).into());
    }
    let (Some((_, m)), Some(mholders)) = (s.manifest, s.manifest_holders) else {
        anyhow::bail!("put of {name:?}: the version manifest was not stored");
    };
    let mut phases = s.phases;
    let data_end = s.data_end.unwrap_or(start);
    phases.data = data_end.saturating_duration_since(start).as_secs_f64() * 1000.0;
    phases.manifest = ms_since(data_end);
    phases.data_chunk = PutPhases::mean(&s.chunk_phases);
    let mut placement: Vec<Vec<u32>> = s
        .ids
        .iter()
        .map(|id| s.holders_of.get(id).cloned().unwrap_or_default())
        .collect();
    placement.push(mholders);
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    Ok(PutReport {
        name: name.to_owned(),
        version: m.version,
        writer,
        size,
        chunks: n,
        inline: inline.is_some(),
        proposals_abandoned: s.abandoned,
        transport: o.mode.name(),
        replicas: o.replicas,
        seconds: secs,
        mib_per_s: size as f64 / (1 << 20) as f64 / secs.max(1e-9),
        wire_bytes_per_payload_byte: (client.stats.wire_bytes_sent - wire_before) as f64
            / (size.max(1)) as f64,
        data_wire_bytes: client.stats.data_wire_bytes_sent - stats_before,
        chunks_deduplicated: s.dedup,
        targets_replaced: s.replaced,
        fallbacks: s.fallbacks,
        fallback_reasons: s.fallback_reasons,
        placement,
        object_hash: hex::encode(m.object_hash),
        phases,
    })
}

/// What a put has done so far (see [`put_reader`]).
struct PutProgress {
    hasher: blake3::Hasher,
    ids: Vec<Hash32>,
    /// Data chunks read and handed out; acknowledged.
    produced: usize,
    data_done: usize,
    read_err: Option<std::io::Error>,
    /// The version to write, once the lookup answered.
    version: Option<u64>,
    /// The manifest's chunk id and content, once made.
    manifest: Option<(Hash32, Manifest)>,
    /// The inline manifest's ACCEPT, held until the lookup answered.
    hold: Option<Hold>,
    /// Inline manifests given up because the lookup found older versions.
    abandoned: u32,
    holders_of: HashMap<Hash32, Vec<u32>>,
    manifest_holders: Option<Vec<u32>>,
    /// When the first data chunk was acknowledged (stored or already held).
    first_ack: Option<Instant>,
    dedup: usize,
    replaced: u32,
    fallbacks: u64,
    fallback_reasons: Vec<String>,
    phases: ObjectPhases,
    chunk_phases: Vec<PutPhases>,
    /// When the last data chunk was acknowledged.
    data_end: Option<Instant>,
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Fetches and decodes the manifest of `name` (newest, or `version`).
pub async fn manifest(
    client: &mut Client,
    name: &str,
    version: Option<u64>,
) -> anyhow::Result<Manifest> {
    let (versions, answered, known) = lookup_answers(client, name, version.unwrap_or(0)).await?;
    // "Not found" needs the answers of N - R + 1 of the N members (one
    // holder of every stored version among them), as a new version's
    // number does.
    let replicas = client.cfg.replicas;
    if versions.is_empty() {
        if answered == 0 {
            anyhow::bail!(
                "object {name:?}: no member of its negotiating group answered the lookup: are the nodes running?"
            );
        }
        let need = crate::versions::quorum(known, replicas);
        if answered < need {
            anyhow::bail!(
                "object {name:?}: only {answered} of the {known} members of its negotiating group answered the lookup, none with a version; with R={replicas} at least {need} must answer before it can be called missing: retry when the nodes are back"
            );
        }
    }
    // The newest among every member's answers (of that number, if given).
    let (key, found) =
        crate::versions::newest(&versions, version).ok_or_else(|| match version {
            Some(v) => anyhow::anyhow!(
                "object {name:?} has no version {v} (known: {:?})",
                versions.keys().map(|k| k.version).collect::<Vec<_>>()
            ),
            None => anyhow::anyhow!(
                "object {name:?} not found: no node of its negotiating group holds a manifest"
            ),
        })?;
    let (v, size) = (key.version, found.size);
    let mgroup = group_of(&client.cfg, &name_hash(name));
    let bytes = get_chunk(client, key.manifest_id, mgroup, Some(size as usize)).await?;
    let m = Manifest::decode(&bytes)
        .map_err(|e| anyhow::anyhow!("manifest of {name:?} version {v} does not decode: {e}"))?;
    anyhow::ensure!(
        m.name == name && m.version == v && m.writer == key.writer,
        "manifest names {:?} version {} by {}, expected {name:?} version {v} by {}",
        m.name,
        m.version,
        m.writer,
        key.writer
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
    let start = Instant::now();
    let m = manifest(client, name, version).await?;
    get_manifest_object(client, &m, out, quiet, start).await
}

/// Gets the object version `m` describes into `out` (written to a
/// temporary name, verified, renamed); `start` is when the get began.
pub async fn get_manifest_object(
    client: &mut Client,
    m: &Manifest,
    out: &Path,
    quiet: bool,
    start: Instant,
) -> anyhow::Result<GetReport> {
    use std::os::unix::fs::FileExt;
    let name = m.name.as_str();
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
    // A small object's bytes came with its manifest: no chunk to fetch
    // (checked against the object hash below, as fetched chunks are).
    if let Some(b) = &m.inline {
        file.write_at(b, 0)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
        pb.inc(b.len() as u64);
    }
    let mut next_i = 0usize;
    {
        let m2 = m;
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
                cfg.datagram_payload(1),
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
