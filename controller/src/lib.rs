//! subcast-controller: owns the fabric's view, leases rendezvous groups
//! and pushes them to every agent in scope.
//!
//! - [`config`]: the YAML file, its checks, `check-config`.
//! - [`engine`]: the sans-I/O state machine: requests, group reuse,
//!   budgets, batching, retransmission, expiry, agents, recovery.
//! - [`daemon`]: the one task that owns the UDP socket and the engine.
//! - [`pool`], [`leases`]: addresses and who holds them.
//! - [`api`]: the HTTP API; [`store`]: SQLite; [`metrics`]: Prometheus.
//! - [`cli`]: the inspection commands (clients of the API).

pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod leases;
pub mod metrics;
pub mod pool;
pub mod store;
mod udp_batch;

pub use config::Config;
pub use daemon::Controller;
pub use engine::{Caller, Refusal, Request, TargetSpec};

use std::sync::Arc;

/// A running controller: engine loop and HTTP API.
#[derive(Debug)]
pub struct Running {
    pub controller: Arc<Controller>,
    pub udp_addr: std::net::SocketAddr,
    pub api_addr: std::net::SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the engine loop (closing the UDP socket) and the API.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Starts everything for `config`: restores state, binds UDP and the API.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let api_listen = config.api_listen;
    let (controller, engine_task) = daemon::spawn(config).await?;
    let listener = tokio::net::TcpListener::bind(api_listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot bind the API on {api_listen}: {e} (change api.listen)")
        })?;
    let api_addr = listener.local_addr()?;
    let udp_addr = controller.local_udp_addr();
    let tasks = vec![
        engine_task,
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
