//! subcast-controller: owns the fabric's view, leases rendezvous groups
//! and pushes them to every agent in scope.
//!
//! - [`config`]: the YAML file, its checks, `check-config`.
//! - [`pool`], [`leases`]: addresses and who holds them.
//! - [`fanout`]: pushing SET_SUBSET/CLEAR to agents with retransmission.
//! - [`engine`]: request -> lease -> push -> grant or refuse; release,
//!   expiry, restart recovery, agent liveness.
//! - [`udp`]: the one UDP socket (agents and binary rendezvous).
//! - [`api`]: the HTTP API; [`store`]: SQLite; [`metrics`]: Prometheus.

pub mod api;
pub mod config;
pub mod engine;
pub mod fanout;
pub mod leases;
pub mod metrics;
pub mod pool;
pub mod sim;
pub mod store;
pub mod udp;

pub use config::Config;
pub use engine::{Controller, Refusal, Request, TargetSpec};

use std::sync::Arc;

/// A running controller: engine, UDP loop, expiry loop and HTTP API.
#[derive(Debug)]
pub struct Running {
    pub controller: Arc<Controller>,
    pub udp_addr: std::net::SocketAddr,
    pub api_addr: std::net::SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the background tasks (the UDP socket closes when the last
    /// reference to the controller goes).
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Starts everything for `config`: binds UDP and the API, restores leases.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let api_listen = config.api_listen;
    let controller = Controller::new(config).await?;
    // Answers from agents must flow before leases are restored.
    let udp_task = tokio::spawn(udp::run(controller.clone()));
    if let Err(e) = controller.recover().await {
        udp_task.abort();
        return Err(e);
    }
    let listener = tokio::net::TcpListener::bind(api_listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot bind the API on {api_listen}: {e} (change api.listen)")
        })?;
    let api_addr = listener.local_addr()?;
    let udp_addr = controller.local_udp_addr()?;
    let tasks = vec![
        udp_task,
        tokio::spawn(controller.clone().run_expiry()),
        tokio::spawn({
            let c = controller.clone();
            async move {
                if let Err(e) = api::serve(c, listener).await {
                    tracing::error!(error = %e, "HTTP API stopped");
                }
            }
        }),
    ];
    Ok(Running {
        controller,
        udp_addr,
        api_addr,
        tasks,
    })
}
