//! `subcast-node serve`: owns the socket, timers and stats file around
//! [`NodeCore`].

use crate::config::Config;
use crate::disk::{Disk, DiskDone};
use crate::node::{NodeAction, NodeCore, params_from};
use crate::outgoing::To;
use crate::outgoing::{Outbound, Pacer};
use crate::store::Store;
use crate::transport::{IP_UDP_OVERHEAD, ifindex, join, leave, udp_socket};
use crate::udp::{RecvBatch, SendBatch};
use std::time::{Duration, Instant};
use subcast_proto::replicast::{self, ReplicastSealer};
use subcast_proto::{ReplayGuard, now_us};

/// The clock skew a node tolerates in Replicast timestamps.
pub const MAX_SKEW_US: u64 = 30_000_000;

/// Runs the storage server until SIGINT or SIGTERM.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let id = cfg.identity()?;
    let keys = id.keys.clone();
    if keys.is_shared() {
        tracing::warn!(
            "INSECURE single-key mode (`key:`): any holder of the key can claim any node id; use `keys:` with pair keys outside labs"
        );
    }
    let node = cfg.node()?.clone();
    let node_id = keys.own_id();
    let mut store = Store::open(&node.store)?;
    store.set_direct_io(
        node.direct_io,
        usize::try_from(node.direct_io_min_kib.saturating_mul(1024)).unwrap_or(usize::MAX),
    );
    match node.journal() {
        Some(j) => {
            store.enable_journal(j)?;
        }
        None => {
            store.replay_left_journal()?;
        }
    }
    let index = store.index();
    // What the store held before this start, for the site gateway.
    let held = match &node.gateway {
        Some(_) => crate::sites::notify::startup_notes(&mut store),
        None => Vec::new(),
    };
    let mut core = NodeCore::new(params_from(&cfg, &id)?, index).with_keys(id.keys.clone());
    let (disk, mut disk_done) = Disk::spawn(store);
    let ifx = ifindex(cfg.interface.as_deref())?;
    crate::transport::check_mtu(cfg.interface.as_deref(), cfg.mtu)?;
    let groups = cfg.member_groups();
    let sock = udp_socket(cfg.family(), cfg.port, ifx, cfg.hops, &groups)
        .map_err(|e| anyhow::anyhow!("cannot open UDP port {} for the node: {e}", cfg.port))?;
    // Fresh start: datagrams sealed before this start are refused (the
    // replay windows of the previous run are gone).
    let mut guard = ReplayGuard::new(MAX_SKEW_US).with_start(now_us());
    let mut sealer = ReplicastSealer::new(keys.clone(), now_us());
    let mut pacer = Pacer::new(cfg.rate_bytes_per_s(), cfg.pacer_burst(), Instant::now());
    let stats_writer = StatsWriter::spawn(node.store.join("stats.json"));
    let shared = crate::metrics::Shared::default();
    let metrics_task = match node.metrics {
        Some(addr) => {
            let t = crate::metrics::serve(addr, shared.clone()).await?;
            tracing::info!(%addr, "metrics at http://{addr}/metrics");
            Some(t)
        }
        None => None,
    };
    let mut next_stats = Instant::now();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    // One timer, moved when the next deadline moves (not a new one per
    // wakeup: the loop wakes for every few datagrams).
    let sleep = tokio::time::sleep_until(Instant::now().into());
    tokio::pin!(sleep);
    tracing::info!(node = node_id, port = cfg.port, groups = ?groups, store = %node.store.display(), "serving");
    let mut batch = SendBatch::new(&sock, cfg.udp_gso)?;
    let mut recv = RecvBatch::new(&sock)?;
    let mut io = IoCounters::default();
    let mut notify = match &node.gateway {
        Some(g) => Some(crate::sites::notify::Notifier::spawn(
            g.address,
            crate::keys::read_secret(&cfg.base_dir.join(&g.secret))?,
            node_id,
            held,
        )),
        None => None,
    };
    loop {
        while let Some(a) = core.poll_action() {
            let r = match a {
                NodeAction::Join(g) => join(&sock, &g, ifx),
                NodeAction::Leave(g) => leave(&sock, &g, ifx),
                a @ (NodeAction::Store { .. } | NodeAction::Read { .. }) => {
                    if let (
                        Some(n),
                        NodeAction::Store {
                            job,
                            kind,
                            id,
                            payload,
                        },
                    ) = (&mut notify, &a)
                    {
                        n.submitted(*job, *kind, id, payload);
                    }
                    disk.submit(a);
                    continue;
                }
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "group membership change failed");
            }
        }
        while core.wants_to_send() && pacer.ready(Instant::now()) {
            let Some(o) = core.poll_transmit() else { break };
            match o {
                Outbound::Data(d) => {
                    let w = batch.push(&sock, &mut sealer, now_us(), &d).await;
                    pacer.consume(w);
                }
                Outbound::Control(t) => {
                    let to = match t.to {
                        To::Node(n) => vec![n],
                        To::Members(g) => cfg.audience(&g, &keys),
                        To::Nodes(v) => v.to_vec(),
                    };
                    match sealer.seal(&t.msg, &to, now_us()) {
                        Ok(bytes) => {
                            pacer.consume(bytes.len() + IP_UDP_OVERHEAD);
                            batch.push_bytes(&sock, &bytes, t.dest).await;
                        }
                        Err(e) => tracing::warn!(dest = %t.dest, error = %e, "not sent"),
                    }
                }
            }
        }
        batch.flush(&sock).await;
        let now = Instant::now();
        if now >= next_stats {
            // Space freed by others (or taken) is seen within a second: a
            // node that once found its disk full must not say "not now
            // (full)" forever, since only a completed store refreshed it.
            core.index.free_bytes = crate::store::free_bytes_of(&node.store);
            stats_writer.write(stats_text(
                &shared,
                &core,
                &disk,
                guard.senders(),
                &io_stats(&io, &batch),
            ));
            next_stats = now + Duration::from_secs(1);
            crate::gc::daemon_tick(&mut core, &node.store);
        }
        let mut wake = next_stats;
        if let Some(t) = core.poll_timeout() {
            wake = wake.min(t);
        }
        if core.wants_to_send() {
            wake = wake.min(pacer.next_ready());
        }
        if sleep.deadline() != wake.into() {
            sleep.as_mut().reset(wake.into());
        }
        tokio::select! {
            r = recv.readable(&sock) => {
                r?;
                // Drain what is queued (many datagrams per call) without
                // yielding, up to a budget.
                let mut n = 0;
                while n < 1024 {
                    // One clock reading per batch (DATA needs no wall
                    // clock at all): reading the clocks for every datagram
                    // was 1.5 % of both CPUs during 64 MiB puts.
                    let now = Instant::now();
                    let got = recv.drain(&sock, |bytes, from| {
                        on_datagram(&mut core, &keys, &mut guard, bytes, from, now)
                    })?;
                    if got == 0 {
                        break;
                    }
                    n += got;
                }
                io.wakeups += 1;
                io.datagrams_received += n as u64;
            }
            Some(d) = disk_done.recv() => {
                let mut next = Some(d);
                while let Some(d) = next.take() {
                    match d {
                        DiskDone::Stored { job, result, free_bytes } => {
                            if let Some(n) = &mut notify {
                                n.done(job, result.is_ok());
                            }
                            core.index.free_bytes = free_bytes;
                            core.on_stored(job, result);
                        }
                        DiskDone::Read { job, result } => core.on_read(job, result),
                    }
                    next = disk_done.try_recv().ok();
                }
            }
            _ = &mut sleep => {}
            _ = int.recv() => break,
            _ = term.recv() => break,
        }
        core.handle_timeout(Instant::now());
    }
    stats_writer.finish(stats_text(
        &shared,
        &core,
        &disk,
        guard.senders(),
        &io_stats(&io, &batch),
    ));
    if let Some(t) = metrics_task {
        t.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// A datagram on the node's port.
fn on_datagram(
    core: &mut NodeCore,
    keys: &subcast_proto::PairKeys,
    guard: &mut ReplayGuard,
    bytes: &[u8],
    from: std::net::SocketAddr,
    now: Instant,
) {
    // DATA is read in place (its payload is copied once, into the chunk);
    // other messages whole.
    match replicast::KeyedData::parse(bytes) {
        Ok(Some(d)) => return core.handle_keyed_data(from, &d, now),
        Ok(None) => {}
        Err(e) => {
            core.refused(bytes, e.kind());
            tracing::debug!(%from, error = %e, "datagram refused");
            return;
        }
    }
    let nu = now_us();
    let r = match replicast::open_data(keys, guard, bytes, nu) {
        Ok(Some(d)) => {
            core.handle_data(
                from,
                d.header.sender_id,
                d.txid,
                d.index,
                d.total,
                d.payload,
                now,
            );
            Ok(())
        }
        Ok(None) => replicast::open(keys, guard, bytes, nu)
            .map(|dg| core.handle(from, dg.header.sender_id, dg.message, now, nu)),
        Err(e) => Err(e),
    };
    if let Err(e) = r {
        core.refused(bytes, e.kind());
        tracing::debug!(%from, error = %e, "datagram refused");
    }
}

/// How the loop met its socket: wakeups for datagrams, datagrams per
/// wakeup, datagrams per send call (`stats.json` `io`).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct IoCounters {
    wakeups: u64,
    datagrams_received: u64,
    send_calls: u64,
    datagrams_sent: u64,
}

fn io_stats(io: &IoCounters, batch: &SendBatch) -> IoCounters {
    IoCounters {
        send_calls: batch.sends,
        datagrams_sent: batch.datagrams,
        ..*io
    }
}

/// Writes `stats.json` on its own thread: a file written (and an inode
/// allocated) on the receive loop could hold it for milliseconds on a busy
/// file system.
struct StatsWriter {
    path: std::path::PathBuf,
    tx: Option<std::sync::mpsc::SyncSender<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn write_atomically(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("json.tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

impl StatsWriter {
    fn spawn(path: std::path::PathBuf) -> StatsWriter {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(1);
        let p = path.clone();
        let thread = std::thread::Builder::new()
            .name("subcast-stats".into())
            .spawn(move || {
                for text in rx {
                    write_atomically(&p, &text);
                }
            })
            .map_err(
                |e| tracing::warn!(error = %e, "no thread for stats.json; written on the loop"),
            )
            .ok();
        StatsWriter {
            path,
            tx: thread.is_some().then_some(tx),
            thread,
        }
    }

    /// Hands `text` to the thread (dropped if it still writes the last).
    fn write(&self, text: String) {
        match &self.tx {
            Some(tx) => {
                let _ = tx.try_send(text);
            }
            None => write_atomically(&self.path, &text),
        }
    }

    /// Writes `text` last, once the thread is done (at exit).
    fn finish(mut self, text: String) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        write_atomically(&self.path, &text);
    }
}

/// Takes a snapshot for `/metrics` and returns `stats.json`'s text.
fn stats_text(
    shared: &crate::metrics::Shared,
    core: &NodeCore,
    disk: &Disk,
    guard_senders: usize,
    io: &IoCounters,
) -> String {
    let store = disk.counters();
    if let Ok(mut s) = shared.lock() {
        *s = crate::metrics::Snapshot {
            node_id: core.node_id(),
            counters: core.counters.clone(),
            gauges: core.gauges(),
            store: store.clone(),
            replay_senders: guard_senders,
        };
    }
    let v = serde_json::json!({
        "node_id": core.node_id(),
        "replay_senders": guard_senders,
        "node": core.counters,
        "store": store,
        "receives_in_progress": core.receives_in_progress(),
        "io": io,
    });
    v.to_string()
}
