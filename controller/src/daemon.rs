//! The daemon around the engine: one task owns the UDP socket, the
//! engine and the store's writes; HTTP handlers and tests talk to it
//! through [`Controller`] (a channel in, oneshot answers out). No
//! polling: the loop sleeps until a datagram, a command or the engine's
//! next deadline. A turn's datagrams leave in one `sendmmsg`
//! ([`crate::udp_batch`]), then its writes are committed in one
//! transaction.

use crate::config::Config;
use crate::engine::{
    AgentStatus, Answer, BudgetStatus, Caller, Engine, Event, GroupStatus, Refusal, Refused,
    ReleaseError, Released, ReloadReport, Request,
};
use crate::leases::Lease;
use crate::metrics::Metrics;
use crate::store::Store;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use subcast_proto::{MAX_DATAGRAM, RefuseReason, now_us};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

type Query = Box<dyn FnOnce(&Engine, Instant) + Send>;

enum Cmd {
    Request {
        req: Request,
        caller: Caller,
        tx: oneshot::Sender<Answer>,
    },
    Release {
        lease_id: u64,
        caller: Caller,
        tx: oneshot::Sender<Answer>,
    },
    Query(Query),
    Reload {
        config: Arc<Config>,
        tx: oneshot::Sender<Result<ReloadReport, Vec<Refused>>>,
    },
}

/// Why a reload did not happen.
#[derive(Debug, Clone)]
pub enum ReloadError {
    /// Started from a config given as text (the embedded default, a
    /// test): there is no file to read again.
    NoFile,
    /// The file has errors (rendered as `FILE:LINE:COL: error: ...`, as
    /// `check-config` prints them).
    Invalid {
        file: String,
        problems: Vec<String>,
    },
    /// Keys that cannot change on a running controller; nothing applied.
    Refused {
        file: String,
        keys: Vec<Refused>,
    },
    Stopping,
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::NoFile => f.write_str(
                "the controller was started without --config: there is no file to read again",
            ),
            ReloadError::Invalid { file, problems } => {
                write!(f, "{file} has errors; nothing was applied:")?;
                for p in problems {
                    write!(f, "\n{p}")?;
                }
                Ok(())
            }
            ReloadError::Refused { file, keys } => {
                write!(
                    f,
                    "{file}: these changes cannot be made while the controller runs; nothing was applied:"
                )?;
                for k in keys {
                    write!(f, "\n{}: {}", k.key, k.reason)?;
                }
                Ok(())
            }
            ReloadError::Stopping => f.write_str("the controller is stopping"),
        }
    }
}

/// A reload that was applied.
#[derive(Debug, Clone)]
pub struct Reloaded {
    pub file: String,
    pub changes: Vec<String>,
    /// Warnings of the new file, rendered.
    pub warnings: Vec<String>,
}

/// A handle on the running engine; cheap to share.
#[derive(Debug)]
pub struct Controller {
    tx: mpsc::UnboundedSender<Cmd>,
    /// The config in force (replaced by a reload the engine accepted).
    config: Arc<RwLock<Arc<Config>>>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    udp_addr: SocketAddr,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

fn gone() -> Refusal {
    Refusal::new(RefuseReason::Internal, "the controller is stopping")
}

impl Controller {
    /// A rendezvous request as `req.requester`, an admin without quota
    /// (tests and tools; the HTTP API uses [`Controller::rendezvous_as`]).
    pub async fn rendezvous(&self, req: Request) -> Result<Lease, Refusal> {
        let caller = Caller::admin(&req.requester);
        self.rendezvous_as(req, caller).await
    }

    /// A rendezvous request by `caller`. The grant runs to completion
    /// even if this future is dropped.
    pub async fn rendezvous_as(&self, mut req: Request, caller: Caller) -> Result<Lease, Refusal> {
        req.requester = caller.name.clone();
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Request { req, caller, tx })
            .map_err(|_| gone())?;
        match rx.await.map_err(|_| gone())? {
            Answer::Granted(l) => Ok(l),
            Answer::Refused(r) => Err(r),
            other => Err(Refusal::new(RefuseReason::Internal, format!("{other:?}"))),
        }
    }

    /// Releases a lease as `caller` (admins may release any lease).
    pub async fn release_as(
        &self,
        lease_id: u64,
        caller: Caller,
    ) -> Result<Released, ReleaseError> {
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(Cmd::Release {
                lease_id,
                caller,
                tx,
            })
            .is_err()
        {
            return Err(ReleaseError::Unknown);
        }
        match rx.await {
            Ok(Answer::Released(r)) => Ok(r),
            Ok(Answer::NotReleased(e)) => Err(e),
            _ => Err(ReleaseError::Unknown),
        }
    }

    /// Releases as an admin: `Ok(None)` if no such lease, `Err` if pending.
    pub async fn release(&self, lease_id: u64) -> Result<Option<Released>, Refusal> {
        match self.release_as(lease_id, Caller::admin("admin")).await {
            Ok(r) => Ok(Some(r)),
            Err(ReleaseError::Unknown) => Ok(None),
            Err(ReleaseError::Pending) => Err(Refusal::new(
                RefuseReason::BadRequest,
                format!("lease {lease_id} is still being granted; release it after the grant"),
            )),
            Err(ReleaseError::NotOwner { owner }) => Err(Refusal::new(
                RefuseReason::Unauthorized,
                format!("lease {lease_id} belongs to {owner}"),
            )),
        }
    }

    /// Runs `f` on the engine (read only) and returns its result.
    pub async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine, Instant) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Query(Box::new(move |e, now| {
                let _ = tx.send(f(e, now));
            })))
            .ok()?;
        rx.await.ok()
    }

    pub async fn leases(&self) -> Vec<Lease> {
        self.query(|e, _| e.leases()).await.unwrap_or_default()
    }

    pub async fn lease(&self, id: u64) -> Option<Lease> {
        self.query(move |e, _| e.lease(id)).await.flatten()
    }

    pub async fn pool_in_use(&self, vlan: u16) -> usize {
        self.query(move |e, _| e.pool_in_use(vlan))
            .await
            .unwrap_or(0)
    }

    pub async fn agents(&self) -> Vec<AgentStatus> {
        self.query(|e, now| e.agents(now)).await.unwrap_or_default()
    }

    pub async fn budgets(&self) -> Vec<BudgetStatus> {
        self.query(|e, _| e.budgets()).await.unwrap_or_default()
    }

    pub async fn groups(&self) -> Vec<GroupStatus> {
        self.query(|e, _| e.groups()).await.unwrap_or_default()
    }

    pub async fn stats(&self) -> Option<(crate::engine::Stats, crate::engine::fanout::Stats)> {
        self.query(|e, _| (e.stats, e.fanout_stats())).await
    }

    /// The OpenMetrics text, with gauges taken from the engine now.
    pub async fn metrics_text(&self) -> String {
        self.query(|e, now| e.update_gauges(now)).await;
        self.count_audit_rows().await;
        self.metrics.encode()
    }

    /// Sets `audit_rows` from the table (skipped if the database fails).
    async fn count_audit_rows(&self) {
        let n = self
            .store
            .call(|c| Ok(c.query_row("SELECT count(*) FROM audit", [], |r| r.get::<_, i64>(0))?))
            .await;
        if let Ok(n) = n {
            self.metrics.audit_rows.set(n);
        }
    }

    /// The same in the Prometheus text format 0.0.4 (`promtool check
    /// metrics` reads it).
    pub async fn metrics_prometheus_text(&self) -> String {
        self.query(|e, now| e.update_gauges(now)).await;
        self.count_audit_rows().await;
        self.metrics.encode_prometheus()
    }

    /// Reads the config file again, checks it as `check-config` does,
    /// and applies it if every change can be made live (nothing otherwise).
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let r = self.reload_inner().await;
        let outcome = match &r {
            Ok(_) => "applied",
            Err(ReloadError::Invalid { .. }) => "invalid",
            Err(_) => "refused",
        };
        self.metrics
            .reloads
            .get_or_create(&crate::metrics::OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
        r
    }

    async fn reload_inner(&self) -> Result<Reloaded, ReloadError> {
        let Some(path) = self.config().source.clone() else {
            return Err(ReloadError::NoFile);
        };
        let file = path.display().to_string();
        let loaded = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || crate::config::load_file(&path))
                .await
                .map_err(|_| ReloadError::Stopping)?
        };
        let (cfg, warnings) = loaded.map_err(|problems| ReloadError::Invalid {
            file: file.clone(),
            problems: problems.iter().map(|p| p.render(&file)).collect(),
        })?;
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Reload {
                config: Arc::new(cfg),
                tx,
            })
            .map_err(|_| ReloadError::Stopping)?;
        match rx.await.map_err(|_| ReloadError::Stopping)? {
            Ok(report) => Ok(Reloaded {
                file: file.clone(),
                changes: report.changes,
                warnings: warnings.iter().map(|p| p.render(&file)).collect(),
            }),
            Err(keys) => Err(ReloadError::Refused { file, keys }),
        }
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn local_udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }
}

/// Binds the socket, opens the store, restores state and starts the loop.
/// Returns once restored groups are settled (pushed again or cleared).
pub async fn spawn(
    config: Config,
) -> anyhow::Result<(Arc<Controller>, tokio::task::JoinHandle<()>)> {
    let socket = UdpSocket::bind(config.udp_listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot bind UDP {}: {e} (is another controller running? change controller.udp_listen)",
            config.udp_listen
        )
    })?;
    let udp_addr = socket.local_addr()?;
    let store = Store::open(config.database.as_deref())
        .map_err(|e| anyhow::anyhow!("cannot open database {:?}: {e}", config.database))?
        .with_audit_max_rows(config.audit_max_rows);
    let loaded = store.load().await?;
    let metrics = Arc::new(Metrics::new());
    let cfg = Arc::new(config);
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
    let now = Instant::now();
    let mut engine = Engine::new(cfg.clone(), metrics.clone(), now, now_us(), seed);
    engine.recover(now, loaded);
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(RwLock::new(cfg.clone()));
    let task = tokio::spawn(run(engine, socket, rx, store.clone(), shared.clone()));
    let ctl = Arc::new(Controller {
        tx,
        config: shared,
        store,
        metrics,
        udp_addr,
    });
    let give_up = crate::engine::Policy {
        rto: cfg.retransmit,
        attempts: cfg.attempts,
    }
    .give_up_after();
    let end = Instant::now() + give_up * 2 + Duration::from_secs(2);
    while Instant::now() < end {
        if ctl.query(|e, _| e.recovered()).await.unwrap_or(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok((ctl, task))
}

async fn run(
    mut engine: Engine,
    socket: UdpSocket,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    store: Store,
    shared: Arc<RwLock<Arc<Config>>>,
) {
    let mut pending: HashMap<u64, oneshot::Sender<Answer>> = HashMap::new();
    let mut next_handle: u64 = 0;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    let metrics = engine.metrics.clone();
    loop {
        let deadline = engine.poll_timeout();
        let mut woke: Instant;
        let sleep_to = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let now = Instant::now();
                woke = now;
                engine.sync_wall(now, now_us());
                match r {
                    Ok((n, from)) => engine.handle_datagram(now, from, &buf[..n]),
                    Err(e) => tracing::debug!(error = %e, "UDP receive error"),
                }
                // Whatever else is already there joins this turn.
                for _ in 0..256 {
                    match socket.try_recv_from(&mut buf) {
                        Ok((n, from)) => engine.handle_datagram(now, from, &buf[..n]),
                        Err(_) => break,
                    }
                }
            }
            c = rx.recv() => {
                let Some(c) = c else { return };
                let now = Instant::now();
                woke = now;
                engine.sync_wall(now, now_us());
                let mut next = Some(c);
                let mut n = 0;
                while let Some(c) = next.take() {
                    command(&mut engine, now, c, &mut pending, &mut next_handle, &shared);
                    n += 1;
                    if n < 256 {
                        next = rx.try_recv().ok();
                    }
                }
            }
            _ = tokio::time::sleep_until(sleep_to.into()) => { woke = Instant::now(); }
        }
        let now = Instant::now();
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
        }
        // Datagrams first (all of the turn's in one sendmmsg), then this
        // turn's writes (they overlap the agents' work), then whatever
        // the durable writes released.
        loop {
            out.extend(std::iter::from_fn(|| engine.poll_transmit(now)));
            let sealed = Instant::now();
            metrics.turn(0, sealed.saturating_duration_since(woke).as_secs_f64());
            if !out.is_empty() {
                crate::udp_batch::send_all(&socket, &out).await;
                out.clear();
                woke = Instant::now();
                metrics.turn(1, woke.saturating_duration_since(sealed).as_secs_f64());
            }
            let writes: Vec<_> = std::iter::from_fn(|| engine.poll_store()).collect();
            if writes.is_empty() {
                break;
            }
            let t = Instant::now();
            let upto = store.apply_now(writes);
            woke = Instant::now();
            metrics.turn(2, woke.saturating_duration_since(t).as_secs_f64());
            engine.handle(now, Event::StoreDone { upto });
        }
        while let Some((h, ans)) = engine.poll_reply() {
            if let Some(tx) = pending.remove(&h) {
                // The client may be gone: the grant stands regardless.
                let _ = tx.send(ans);
            }
        }
    }
}

fn command(
    engine: &mut Engine,
    now: Instant,
    c: Cmd,
    pending: &mut HashMap<u64, oneshot::Sender<Answer>>,
    next: &mut u64,
    shared: &RwLock<Arc<Config>>,
) {
    match c {
        Cmd::Request { req, caller, tx } => {
            *next += 1;
            pending.insert(*next, tx);
            engine.handle(
                now,
                Event::Request {
                    handle: *next,
                    req,
                    caller,
                },
            );
        }
        Cmd::Release {
            lease_id,
            caller,
            tx,
        } => {
            *next += 1;
            pending.insert(*next, tx);
            engine.handle(
                now,
                Event::Release {
                    handle: *next,
                    lease_id,
                    caller,
                },
            );
        }
        Cmd::Query(f) => f(engine, now),
        Cmd::Reload { config, tx } => {
            let r = engine.reload(now, config.clone());
            if r.is_ok() {
                // The API sees the new tokens from the same turn on.
                *shared.write().unwrap_or_else(|p| p.into_inner()) = config;
            }
            let _ = tx.send(r);
        }
    }
}
