//! The daemon around [`crate::core::Agent`]: the UDP socket, the backend
//! (in its own task, one action at a time), the timers, the metrics server
//! and signals. Every decision is the core's; this file only moves bytes,
//! actions and results between the core and the world.
//!
//! Start: open the backend, bind, hand the core the first events (its first
//! action removes stale groups; HELLO follows). On SIGINT/SIGTERM the core
//! removes what it installed, then the daemon exits.

use crate::backend::linux_bridge::LinuxBridge;
use crate::backend::openflow::OpenFlow;
use crate::backend::snmp::SnmpBackend;
use crate::backend::{Backend, execute};
use crate::config::{BackendConfig, Config};
use crate::core::action::{ActionId, ActionResult, BackendAction};
use crate::core::metrics::Metrics;
use crate::core::{Agent, AgentSettings, Now};
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subcast_proto::{Key, Keyring, MAX_DATAGRAM};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Longest wait for the removals at shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Re-reads the configuration (the file and the same flags) on SIGHUP.
pub type Reloader = Box<dyn Fn() -> anyhow::Result<Config> + Send>;

/// Runs the agent described by `cfg` until SIGINT or SIGTERM; on SIGHUP,
/// `reload` gives the new configuration (see [`reload`]).
pub async fn run(cfg: Config, reload: Option<Reloader>) -> anyhow::Result<()> {
    let keyring = cfg.keyring()?;
    let own = cfg.own_key()?;
    let metrics = Arc::new(Metrics::with_labels(&cfg.switch_name(), cfg.backend.kind()));
    match &cfg.backend {
        BackendConfig::LinuxBridge { bridge } => {
            let mut b = LinuxBridge::open(bridge)
                .await
                .with_context(|| format!("opening Linux bridge {bridge:?}"))?;
            b.guard_range(cfg.rendezvous_range, metrics.closed_group_removals.clone());
            run_with(&cfg, b, keyring, own, metrics, reload).await
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
            run_with(&cfg, b, keyring, own, metrics, reload).await
        }
        BackendConfig::Snmp { credentials } => {
            let b = SnmpBackend::from_file(credentials).await.with_context(|| {
                format!(
                    "connecting to the SNMP switch described in {}",
                    credentials.display()
                )
            })?;
            run_with(&cfg, b, keyring, own, metrics, reload).await
        }
    }
}

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

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
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let m = metrics.clone();
            async move {
                // OpenMetrics when the scraper asks for it (Prometheus
                // does), the Prometheus text format otherwise (promtool,
                // curl).
                let om = headers
                    .get(axum::http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("application/openmetrics-text"));
                let (ct, body) = if om {
                    (OPENMETRICS_CONTENT_TYPE, m.encode())
                } else {
                    (PROMETHEUS_CONTENT_TYPE, m.encode_prometheus())
                };
                ([(axum::http::header::CONTENT_TYPE, ct)], body)
            }
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    }))
}

/// Runs the backend's actions one at a time, in order.
async fn backend_worker<B: Backend>(
    mut backend: B,
    mut actions: mpsc::UnboundedReceiver<BackendAction>,
    done: mpsc::UnboundedSender<(ActionId, ActionResult)>,
    metrics: Arc<Metrics>,
) {
    while let Some(a) = actions.recv().await {
        let t0 = Instant::now();
        let r = execute(&mut backend, &a).await;
        if matches!(a, BackendAction::Apply { .. }) {
            metrics.stage("backend", t0.elapsed().as_secs_f64());
        }
        if done.send((a.id(), r)).is_err() {
            break;
        }
    }
}

/// Sends what the core wants sent and hands its actions to the backend.
async fn flush(
    agent: &mut Agent,
    sock: &UdpSocket,
    actions: &mpsc::UnboundedSender<BackendAction>,
) -> anyhow::Result<()> {
    while let Some(t) = agent.poll_transmit() {
        if let Err(e) = sock.send_to(&t.bytes, t.to).await {
            tracing::debug!(to = %t.to, error = %e, "datagram not sent");
        }
    }
    while let Some(a) = agent.poll_action() {
        actions
            .send(a)
            .map_err(|_| anyhow::anyhow!("the backend task stopped"))?;
    }
    Ok(())
}

/// Runs the agent over an already opened backend.
pub async fn run_with<B: Backend>(
    cfg: &Config,
    backend: B,
    keyring: Keyring,
    own: Key,
    metrics: Arc<Metrics>,
    reloader: Option<Reloader>,
) -> anyhow::Result<()> {
    let mut current = cfg.clone();
    let sock = UdpSocket::bind(cfg.listen)
        .await
        .with_context(|| format!("binding the listen address {} (is it in use?)", cfg.listen))?;
    let metrics_task = match cfg.metrics {
        Some(addr) => Some(serve_metrics(addr, metrics.clone()).await?),
        None => None,
    };
    let mut agent = Agent::new(
        AgentSettings::from_config(cfg),
        backend.view(),
        keyring,
        own,
        metrics.clone(),
        Now::system(),
    );
    let topology = backend.topology_events();
    let (act_tx, act_rx) = mpsc::unbounded_channel();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let worker = tokio::spawn(backend_worker(backend, act_rx, done_tx, metrics.clone()));
    tracing::info!(switch_id = cfg.switch_id, listen = %cfg.listen, "agent listening");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        flush(&mut agent, &sock, &act_tx).await?;
        let deadline = agent.poll_timeout();
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, src)) => agent.handle_datagram(&buf[..n], src, Now::system()),
                Err(e) => tracing::warn!(error = %e, "receive failed"),
            },
            d = done_rx.recv() => match d {
                Some((id, r)) => agent.on_action_done(id, r, Now::system()),
                None => anyhow::bail!("the backend task stopped"),
            },
            () = sleep_until(deadline) => agent.handle_timeout(Now::system()),
            () = notified(topology.as_deref()) => agent.on_topology_change(Now::system()),
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => match &reloader {
                Some(r) => reload(&mut agent, &mut current, r(), &metrics),
                None => tracing::warn!("SIGHUP ignored: this agent was not started from a config file"),
            },
        }
    }
    agent.shutdown(Now::system());
    let until = Instant::now() + SHUTDOWN_TIMEOUT;
    while !agent.is_stopped() {
        flush(&mut agent, &sock, &act_tx).await?;
        match tokio::time::timeout_at(until.into(), done_rx.recv()).await {
            Ok(Some((id, r))) => agent.on_action_done(id, r, Now::system()),
            _ => {
                tracing::error!("installed groups not removed within 10 s at shutdown");
                break;
            }
        }
    }
    worker.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    Ok(())
}

/// Applies a re-read configuration whole, or nothing: a key that cannot
/// change live (switch_id, name, backend, listen, metrics,
/// rendezvous_range) refuses the reload with a log line naming it.
/// Installed groups are kept either way.
pub fn reload(
    agent: &mut Agent,
    current: &mut Config,
    new: anyhow::Result<Config>,
    metrics: &Metrics,
) {
    let keys = new.and_then(|c| {
        let ring = c.keyring()?;
        let own = c.own_key()?;
        Ok((c, ring, own))
    });
    let (new, ring, own) = match keys {
        Ok(k) => k,
        Err(e) => {
            metrics.reload("invalid");
            tracing::error!(error = %format!("{e:#}"), "reload refused: the config has errors; running on unchanged");
            return;
        }
    };
    let fixed = crate::core::reload::fixed_changes(current, &new);
    if !fixed.is_empty() {
        metrics.reload("refused");
        for k in &fixed {
            tracing::error!(
                key = k,
                "reload refused: `{k}` cannot change while the agent runs (restart it); nothing applied"
            );
        }
        return;
    }
    let changed = crate::core::reload::live_changes(current, &new);
    agent.reload(AgentSettings::from_config(&new), ring, own, Now::system());
    *current = new;
    metrics.reload("applied");
    tracing::info!(changed = ?changed, "config reloaded (key files re-read)");
}

async fn notified(n: Option<&tokio::sync::Notify>) {
    match n {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(d: Option<Instant>) {
    match d {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
