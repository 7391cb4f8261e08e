//! The daemon around [`crate::core::Agent`]: the UDP socket, the lease and
//! heartbeat timers, the metrics server and signals.
//!
//! Start: open the backend, remove stale groups in the rendezvous range,
//! bind, send HELLO. Then answer every datagram to its source, expire
//! leases on time, send HEARTBEAT periodically. On SIGINT/SIGTERM remove
//! what the agent installed and exit.

use crate::backend::Backend;
use crate::backend::linux_bridge::LinuxBridge;
use crate::backend::openflow::OpenFlow;
use crate::backend::snmp::SnmpBackend;
use crate::config::{BackendConfig, Config};
use crate::core::metrics::Metrics;
use crate::core::{Agent, AgentSettings};
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_proto::{Key, Keyring, MAX_DATAGRAM, now_us};
use tokio::net::UdpSocket;

/// Runs the agent described by `cfg` until SIGINT or SIGTERM.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let keyring = cfg.keyring()?;
    let own = cfg.own_key()?;
    let metrics = Arc::new(Metrics::new());
    match &cfg.backend {
        BackendConfig::LinuxBridge { bridge } => {
            let mut b = LinuxBridge::open(bridge)
                .await
                .with_context(|| format!("opening Linux bridge {bridge:?}"))?;
            b.guard_range(cfg.rendezvous_range, metrics.closed_group_removals.clone())
                .context("following MDB notifications to keep rendezvous groups closed")?;
            run_with(&cfg, b, keyring, own, metrics).await
        }
        BackendConfig::Openflow(of) => {
            let b = OpenFlow::listen(of.clone())
                .await
                .with_context(|| format!("listening for the OpenFlow switch on {}", of.listen))?;
            b.guard_range(cfg.rendezvous_range)
                .await
                .context("installing the flow that keeps rendezvous groups closed")?;
            tracing::info!(
                listen = %b.local_addr(),
                timeout_ms = of.connect_timeout_ms,
                "waiting for the OpenFlow switch (ovs-vsctl set-controller BR tcp:{})",
                b.local_addr()
            );
            run_with(&cfg, b, keyring, own, metrics).await
        }
        BackendConfig::Snmp { credentials } => {
            let b = SnmpBackend::from_file(credentials).await.with_context(|| {
                format!(
                    "connecting to the SNMP switch described in {}",
                    credentials.display()
                )
            })?;
            run_with(&cfg, b, keyring, own, metrics).await
        }
    }
}

/// Serves Prometheus metrics at `http://addr/metrics`.
pub async fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics address {addr} (is it in use?)"))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.encode(),
                )
            }
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    }))
}

/// Runs the agent over an already opened backend.
pub async fn run_with<B: Backend>(
    cfg: &Config,
    backend: B,
    keyring: Keyring,
    own: Key,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let mut agent = Agent::new(
        AgentSettings::from_config(cfg),
        backend,
        keyring,
        own,
        metrics,
        Instant::now(),
        now_us(),
    );
    let removed = agent
        .clean_start()
        .await
        .context("removing stale groups at start")?;
    tracing::info!(removed, range = %cfg.rendezvous_range, "start: stale groups removed");
    let sock = UdpSocket::bind(cfg.listen)
        .await
        .with_context(|| format!("binding the listen address {} (is it in use?)", cfg.listen))?;
    let metrics_task = match cfg.metrics {
        Some(addr) => Some(serve_metrics(addr, agent.metrics()).await?),
        None => None,
    };
    let hello = agent.hello(now_us());
    if let Err(e) = sock.send_to(&hello, cfg.controller).await {
        tracing::warn!(controller = %cfg.controller, error = %e, "HELLO not sent");
    }
    tracing::info!(switch_id = cfg.switch_id, listen = %cfg.listen, "agent ready");

    let mut heartbeat = tokio::time::interval(Duration::from_millis(cfg.heartbeat_interval_ms));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let deadline = agent.next_deadline();
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let (n, src) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "receive failed");
                        continue;
                    }
                };
                let reply = agent.handle_datagram(&buf[..n], Instant::now(), now_us()).await;
                if let Err(e) = sock.send_to(&reply, src).await {
                    tracing::warn!(%src, error = %e, "answer not sent");
                }
            }
            () = sleep_until(deadline) => {
                agent.expire(Instant::now()).await;
            }
            _ = heartbeat.tick() => {
                let hb = agent.heartbeat(Instant::now(), now_us());
                if let Err(e) = sock.send_to(&hb, cfg.controller).await {
                    tracing::debug!(error = %e, "HEARTBEAT not sent");
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    tracing::info!("stopping: removing installed groups");
    agent.remove_all().await;
    if let Some(t) = metrics_task {
        t.abort();
    }
    Ok(())
}

async fn sleep_until(d: Option<Instant>) {
    match d {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
