//! `subcast-node serve`: owns the socket, timers and stats file around
//! [`NodeCore`].

use crate::config::Config;
use crate::node::{NodeAction, NodeCore, params_from};
use crate::outgoing::Pacer;
use crate::store::Store;
use crate::transport::{IP_UDP_OVERHEAD, ifindex, udp_socket};
use std::time::{Duration, Instant};
use subcast_proto::replicast::{self, ReplicastSealer};
use subcast_proto::{Keyring, ReplayGuard, now_us};

/// Runs the storage server until SIGINT or SIGTERM.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let key = cfg.key.load(&cfg.base_dir)?;
    let node = cfg.node()?.clone();
    let store = Store::open(&node.store)?;
    let mut core = NodeCore::new(params_from(&cfg)?, store);
    let ifx = ifindex(cfg.interface.as_deref())?;
    let groups = cfg.member_groups();
    let sock = udp_socket(cfg.port, ifx, cfg.hops, &groups)
        .map_err(|e| anyhow::anyhow!("cannot open UDP port {} for the node: {e}", cfg.port))?;
    let keyring = Keyring::new([key.clone()]);
    let mut guard = ReplayGuard::default();
    let mut sealer = ReplicastSealer::new(key, node.id, now_us());
    let mut pacer = Pacer::new(cfg.rate_bytes_per_s(), cfg.pacer_burst(), Instant::now());
    let stats_path = node.store.join("stats.json");
    let mut next_stats = Instant::now();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tracing::info!(node = node.id, port = cfg.port, groups = ?groups, store = %node.store.display(), "serving");
    let mut buf = vec![0u8; 65536];
    loop {
        while let Some(a) = core.poll_action() {
            let r = match a {
                NodeAction::Join(g) => sock.join_multicast_v6(&g, ifx),
                NodeAction::Leave(g) => sock.leave_multicast_v6(&g, ifx),
            };
            if let Err(e) = r {
                tracing::warn!(?a, error = %e, "group membership change failed");
            }
        }
        while core.wants_to_send() && pacer.ready(Instant::now()) {
            let Some(t) = core.poll_transmit() else { break };
            let bytes = sealer.seal(&t.msg, now_us());
            pacer.consume(bytes.len() + IP_UDP_OVERHEAD);
            if let Err(e) = sock.send_to(&bytes, t.dest).await {
                tracing::warn!(dest = %t.dest, error = %e, "send failed");
            }
        }
        let now = Instant::now();
        if now >= next_stats {
            write_stats(&stats_path, &core);
            next_stats = now + Duration::from_secs(1);
        }
        let mut wake = next_stats;
        if let Some(t) = core.poll_timeout() {
            wake = wake.min(t);
        }
        if core.wants_to_send() {
            wake = wake.min(pacer.next_ready());
        }
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let mut next = Some(r);
                // Drain what is queued without yielding between datagrams.
                let mut n = 0;
                while let Some(r) = next.take() {
                    let (len, from) = r?;
                    let now = Instant::now();
                    let nu = now_us();
                    match replicast::open(&keyring, &mut guard, &buf[..len], nu) {
                        Ok(dg) => core.handle(from, dg.header.sender_id, dg.message, now, nu),
                        Err(e) => {
                            core.count_refused();
                            tracing::debug!(%from, error = %e, "datagram refused");
                        }
                    }
                    n += 1;
                    if n < 256 {
                        match sock.try_recv_from(&mut buf) {
                            Ok(x) => next = Some(Ok(x)),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        core.handle_timeout(Instant::now());
    }
    write_stats(&stats_path, &core);
    tracing::info!("stopped");
    Ok(())
}

fn write_stats(path: &std::path::Path, core: &NodeCore) {
    let v = serde_json::json!({
        "node_id": core.node_id(),
        "node": core.counters,
        "store": core.store.counters,
        "receives_in_progress": core.receives_in_progress(),
    });
    let tmp = path.with_extension("json.tmp");
    if std::fs::write(&tmp, v.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}
