//! The client driver: owns the socket, the pacer and the controller link,
//! and runs put / get / lookup state machines concurrently.

use crate::config::Config;
use crate::get::{GetError, GetEvent, GetMachine, ManifestLookup};
use crate::groups::{ControllerOut, GroupAnswer, GroupCache, GroupParams};
use crate::keys::Addresses;
use crate::members::Membership;
use crate::outgoing::{Outbound, Pacer, To};
use crate::put::{DataKey, PutError, PutEvent, PutMachine, PutOutcome, take_turns};
use crate::transport::{IP_UDP_OVERHEAD, ifindex, udp_socket};
use crate::udp::{RecvBatch, SendBatch};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{self, Hash32, ReplicastMessage, ReplicastSealer};
use subcast_proto::{
    Keyring, Message, Opener, PairKeys, RendezvousRelease, ReplayGuard, Sealer, now_us,
};
use tokio::net::UdpSocket;

/// One state machine the driver runs.
#[derive(Debug)]
pub enum Task {
    Put(Box<PutMachine>),
    Get(Box<GetMachine>),
    Lookup(Box<ManifestLookup>),
}

impl Task {
    fn txid(&self) -> u64 {
        match self {
            Task::Put(m) => m.txid,
            Task::Get(m) => m.txid,
            Task::Lookup(m) => m.txid,
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Task::Put(m) => m.poll_timeout(),
            Task::Get(m) => m.poll_timeout(),
            Task::Lookup(m) => m.poll_timeout(),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Task::Put(m) => m.handle_timeout(now),
            Task::Get(m) => m.handle_timeout(now),
            Task::Lookup(m) => m.handle_timeout(now),
        }
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<Outbound> {
        match self {
            Task::Put(m) => m.poll_transmit(now),
            Task::Get(m) => m.poll_transmit().map(Outbound::Control),
            Task::Lookup(m) => m.poll_transmit().map(Outbound::Control),
        }
    }
    fn handle(&mut self, from: SocketAddr, sender: u32, msg: &ReplicastMessage, now: Instant) {
        match self {
            Task::Put(m) => m.handle(from, sender, msg, now),
            Task::Get(m) => m.handle(from, sender, msg, now),
            Task::Lookup(m) => m.handle(sender, msg, now),
        }
    }
}

/// How many tasks [`Client::run_steps`] runs at once.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Tasks at once, in any phase.
    pub tasks: usize,
    /// Of those, puts that may transfer (send their first pass) at once;
    /// the others take their bids and group and hold their ACCEPT (see
    /// [`PutMachine::set_queued`]).
    pub transfers: usize,
}

impl Window {
    /// At most `n` tasks, whatever their phase.
    pub fn flat(n: usize) -> Window {
        Window {
            tasks: n,
            transfers: n,
        }
    }
}

/// What [`Client::run_steps`] runs next.
#[derive(Debug)]
pub enum Next {
    Task(Task),
    /// Nothing yet: ask again when a task has finished.
    Later,
    /// Nothing more.
    Done,
}

/// How a task ended.
#[derive(Debug)]
pub enum Finished {
    Put(Result<PutOutcome, PutError>),
    Get(Result<Vec<u8>, GetError>),
    Lookup(Box<ManifestLookup>),
}

/// What the client sent and saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ClientStats {
    pub datagrams_sent: u64,
    /// Bytes on the wire (IPv6 + UDP + Replicast) of everything sent.
    pub wire_bytes_sent: u64,
    /// Wire bytes of DATA datagrams only.
    pub data_wire_bytes_sent: u64,
    pub datagrams_received: u64,
    pub refused_datagrams: u64,
    /// (node, chunk id hex) of copies reported or found corrupt.
    pub corrupt_reports: Vec<(u32, String)>,
    pub rendezvous_granted: u64,
    /// Chunks sent by the fallback transport after a table-full refusal.
    pub fallbacks: u64,
    /// Rendezvous transfers whose DATA went without waiting for PUT_READY
    /// (every target a known member of the group: `warm_for`).
    pub ready_skipped: u64,
}

struct CtlLink {
    sock: UdpSocket,
    addr: SocketAddr,
    sealer: Sealer,
    opener: Opener,
    groups: GroupCache,
}

/// Datagrams the client sends at most before it reads answers again.
const TRANSMIT_BUDGET: usize = 64;

/// The client side: one socket, many concurrent tasks.
pub struct Client {
    pub cfg: Config,
    sock: UdpSocket,
    batch: SendBatch,
    /// Always present between calls (taken while draining).
    recv: Option<RecvBatch>,
    sealer: ReplicastSealer,
    keys: std::sync::Arc<PairKeys>,
    /// Known addresses of the nodes (from the key file).
    addresses: Addresses,
    /// Tag-list audience of each negotiating group.
    audience: HashMap<std::net::Ipv6Addr, Vec<u32>>,
    guard: ReplayGuard,
    pacer: Pacer,
    ctl: Option<CtlLink>,
    /// Known members of each negotiating group (rounds end on them).
    pub members: Membership,
    pub stats: ClientStats,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("stats", &self.stats)
            .finish()
    }
}

impl Client {
    pub async fn new(cfg: Config) -> anyhow::Result<Client> {
        let id = cfg.identity()?;
        let keys = id.keys.clone();
        let ifx = ifindex(cfg.interface.as_deref())?;
        crate::transport::check_mtu(cfg.interface.as_deref(), cfg.mtu)?;
        let sock = udp_socket(cfg.family(), 0, ifx, cfg.hops, &[])?;
        let sender_id = keys.own_id();
        let audience = cfg
            .negotiating_groups
            .iter()
            .map(|g| (*g, cfg.audience(g, &keys)))
            .collect();
        let ctl = match &cfg.controller {
            Some(c) => {
                let k = c.key.load(&cfg.base_dir)?;
                let s = if c.address.is_ipv4() {
                    UdpSocket::bind("0.0.0.0:0").await?
                } else {
                    UdpSocket::bind("[::]:0").await?
                };
                Some(CtlLink {
                    sock: s,
                    addr: c.address,
                    sealer: Sealer::new(k.clone(), sender_id, now_us()),
                    opener: Opener::new(Keyring::new([k]), ReplayGuard::default()),
                    groups: GroupCache::new(GroupParams {
                        vlan: c.vlan,
                        lifetime: Duration::from_millis(u64::from(c.lifetime_ms)),
                        retry: Duration::from_millis(300),
                        max_tries: 5,
                    }),
                })
            }
            None => None,
        };
        let batch = if cfg.udp_send_thread {
            SendBatch::with_thread(&sock, cfg.udp_gso)?
        } else {
            SendBatch::new(&sock, cfg.udp_gso)?
        };
        let recv = Some(RecvBatch::new(&sock)?);
        Ok(Client {
            batch,
            recv,
            sealer: ReplicastSealer::new(keys.clone(), now_us()),
            keys,
            addresses: id.addresses,
            audience,
            guard: ReplayGuard::new(crate::daemon::MAX_SKEW_US).with_start(now_us()),
            pacer: Pacer::new(cfg.rate_bytes_per_s(), cfg.pacer_burst(), Instant::now()),
            sock,
            ctl,
            members: Membership::new(cfg.members.clone()),
            cfg,
            stats: ClientStats::default(),
        })
    }

    /// This client's node id (the writer of the versions it puts).
    pub fn node_id(&self) -> u32 {
        self.keys.own_id()
    }

    pub fn has_controller(&self) -> bool {
        self.ctl.is_some()
    }

    /// Seals and sends (DATA joins a GSO batch; see [`Self::flush`]).
    async fn send(&mut self, o: Outbound) {
        self.stats.datagrams_sent += 1;
        let wire = match o {
            Outbound::Data(d) => {
                let w = self
                    .batch
                    .push(&self.sock, &mut self.sealer, now_us(), &d)
                    .await as u64;
                self.stats.data_wire_bytes_sent += w;
                w
            }
            Outbound::Control(t) => {
                let one;
                let to: &[u32] = match &t.to {
                    To::Node(n) => {
                        one = [*n];
                        &one
                    }
                    To::Members(g) => self.audience.get(g).map_or(&[], |v| v.as_slice()),
                    To::Nodes(v) => v,
                };
                match self.sealer.seal(&t.msg, to, now_us()) {
                    Ok(bytes) => {
                        self.batch.push_bytes(&self.sock, &bytes, t.dest).await;
                        (bytes.len() + IP_UDP_OVERHEAD) as u64
                    }
                    Err(e) => {
                        tracing::warn!(dest = %t.dest, error = %e, "not sent");
                        0
                    }
                }
            }
        };
        self.pacer.consume(wire as usize);
        self.stats.wire_bytes_sent += wire;
    }

    /// Sends what the group cache wants sent to the controller.
    async fn flush_controller(&mut self) {
        let Some(ctl) = &mut self.ctl else { return };
        while let Some(o) = ctl.groups.poll_out() {
            let msg = match o {
                ControllerOut::Request(r) => Message::RendezvousRequest(r),
                ControllerOut::Release(lease_id) => {
                    Message::RendezvousRelease(RendezvousRelease { lease_id })
                }
            };
            let bytes = ctl.sealer.seal(&msg, now_us());
            if let Err(e) = ctl.sock.send_to(&bytes, ctl.addr).await {
                tracing::warn!(error = %e, "sending to the controller failed");
            }
        }
    }

    /// Hands the group cache's answers to the puts waiting for them.
    fn deliver_groups(&mut self, tasks: &mut HashMap<u64, Task>) {
        let Some(ctl) = &mut self.ctl else { return };
        while let Some((txid, answer)) = ctl.groups.poll_answer() {
            match &answer {
                GroupAnswer::Group(_) => self.stats.rendezvous_granted += 1,
                GroupAnswer::Fallback(_) => self.stats.fallbacks += 1,
                GroupAnswer::Failed(_) => {}
            }
            if let Some(Task::Put(m)) = tasks.get_mut(&txid) {
                let now = Instant::now();
                if let GroupAnswer::Group(g) = &answer {
                    m.set_warm(ctl.groups.is_warm(*g, now));
                }
                m.on_group(answer, now);
            }
        }
    }

    /// Rendezvous groups requested (first tries) and served from the cache.
    pub fn group_requests(&self) -> (u64, u64) {
        self.ctl
            .as_ref()
            .map_or((0, 0), |c| (c.groups.requests, c.groups.reused))
    }

    /// Gives back every rendezvous group still held (call before exit).
    pub async fn close(&mut self) {
        if let Some(ctl) = &mut self.ctl {
            ctl.groups.release_all();
        }
        self.flush_controller().await;
        self.batch.drain().await;
    }

    /// Runs tasks from `next` (at most `parallel` at once) until `next` is
    /// exhausted and all have finished; `done` gets each result.
    pub async fn run(
        &mut self,
        parallel: usize,
        mut next: impl FnMut(Instant) -> Option<Task>,
        done: impl FnMut(&mut ClientStats, Finished) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.run_steps(
            Window::flat(parallel),
            |now| next(now).map_or(Next::Done, Next::Task),
            done,
        )
        .await
    }

    /// As [`Self::run`], with a `next` that may say "later": it is asked
    /// again whenever a task finished (and so may wait for a result, while
    /// some task runs).
    pub async fn run_steps(
        &mut self,
        window: Window,
        mut next: impl FnMut(Instant) -> Next,
        mut done: impl FnMut(&mut ClientStats, Finished) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut tasks: HashMap<u64, Task> = HashMap::new();
        let mut order: VecDeque<u64> = VecDeque::new();
        let mut exhausted = false;
        let mut cbuf = vec![0u8; 9216];
        let sleep = tokio::time::sleep_until(Instant::now().into());
        tokio::pin!(sleep);
        loop {
            while !exhausted && tasks.len() < window.tasks.max(1) {
                match next(Instant::now()) {
                    Next::Later if tasks.is_empty() => {
                        anyhow::bail!("internal error: a put waits for a result no task computes")
                    }
                    Next::Later => break,
                    Next::Task(mut t) => {
                        tracing::debug!(txid = t.txid(), "task started");
                        match &mut t {
                            Task::Put(m) => {
                                m.set_members(self.members.known(m.group()));
                                m.use_data_key(DataKey::random(self.keys.clone()));
                            }
                            Task::Lookup(m) => {
                                m.set_members(self.members.known(m.group()));
                                m.set_total(self.members.all(m.group()));
                            }
                            Task::Get(_) => {}
                        }
                        order.push_back(t.txid());
                        tasks.insert(t.txid(), t);
                    }
                    Next::Done => exhausted = true,
                }
            }
            if exhausted && tasks.is_empty() {
                return Ok(());
            }
            let puts = tasks.values_mut().filter_map(|t| match t {
                Task::Put(m) => Some(&mut **m),
                _ => None,
            });
            take_turns(puts, window.transfers);
            // Transmit, round robin, as the pacer allows: up to a batch
            // from one task before the next; the batch goes out in as few
            // system calls as it can (see `udp.rs`).
            // At most TRANSMIT_BUDGET datagrams before answers are read
            // again: a long pass must not keep other chunks' bids, READYs
            // and ACKs (and so their next steps) waiting until it is over.
            let mut idle_rounds = 0;
            let mut budget = TRANSMIT_BUDGET;
            let per_turn = self.batch.max_segments();
            while idle_rounds < order.len() && budget > 0 && self.pacer.ready(Instant::now()) {
                let Some(id) = order.pop_front() else { break };
                order.push_back(id);
                let Some(t) = tasks.get_mut(&id) else {
                    continue;
                };
                let mut sent = 0;
                while sent < per_turn.min(budget) && self.pacer.ready(Instant::now()) {
                    let Some(tx) = t.poll_transmit(Instant::now()) else {
                        break;
                    };
                    sent += 1;
                    self.send(tx).await;
                }
                budget -= sent;
                if sent == 0 {
                    idle_rounds += 1;
                } else {
                    idle_rounds = 0;
                }
            }
            self.batch.flush(&self.sock).await;
            // Events and finished tasks.
            let ids: Vec<u64> = order.iter().copied().collect();
            let mut any_finished = false;
            for id in ids {
                let mut finished = None;
                let mut rendezvous = None;
                let mut lookup_done = false;
                if let Some(t) = tasks.get_mut(&id) {
                    match t {
                        Task::Put(m) => {
                            while let Some(ev) = m.poll_event() {
                                match ev {
                                    PutEvent::NeedRendezvous { parent, targets } => {
                                        rendezvous = Some((parent, targets))
                                    }
                                    PutEvent::Done(o) => {
                                        if let (Some((g, until)), Some(ctl)) =
                                            (m.warm_until(Instant::now()), &mut self.ctl)
                                        {
                                            ctl.groups.mark_warm(g, until);
                                        }
                                        self.stats.ready_skipped += u64::from(o.ready_skipped);
                                        finished = Some(Finished::Put(Ok(o)))
                                    }
                                    PutEvent::Failed(e) => finished = Some(Finished::Put(Err(e))),
                                }
                            }
                        }
                        Task::Get(m) => {
                            while let Some(ev) = m.poll_event() {
                                match ev {
                                    GetEvent::Corrupt { node, chunk } => {
                                        tracing::warn!(node, chunk = %hex::encode(chunk), "node holds a corrupt copy (quarantined there, not served)");
                                        self.stats.corrupt_reports.push((node, hex::encode(chunk)));
                                    }
                                    GetEvent::Done(b) => finished = Some(Finished::Get(Ok(b))),
                                    GetEvent::Failed(e) => finished = Some(Finished::Get(Err(e))),
                                }
                            }
                        }
                        Task::Lookup(m) => lookup_done = m.is_finished(),
                    }
                }
                if lookup_done && let Some(Task::Lookup(m)) = tasks.remove(&id) {
                    finished = Some(Finished::Lookup(m));
                }
                if let Some((parent, targets)) = rendezvous {
                    if let Some(ctl) = &mut self.ctl {
                        ctl.groups.need(id, parent, targets, Instant::now());
                        self.flush_controller().await;
                        self.deliver_groups(&mut tasks);
                    } else if let Some(Task::Put(m)) = tasks.get_mut(&id) {
                        m.on_group(
                            GroupAnswer::Failed("no `controller:` section in the config".into()),
                            Instant::now(),
                        );
                    }
                }
                if let Some(f) = finished {
                    tracing::debug!(txid = id, "task finished");
                    match (&f, tasks.get(&id)) {
                        (Finished::Lookup(m), _) => {
                            let (answered, silent) = m.round_report();
                            self.members.settle(m.group(), &answered, &silent);
                        }
                        // An abandoned put's round was cut short: its
                        // silent members say nothing.
                        (_, Some(Task::Put(m))) if !m.is_abandoned() => {
                            let (answered, silent) = m.round_report();
                            self.members.settle(m.group(), &answered, &silent);
                        }
                        _ => {}
                    }
                    tasks.remove(&id);
                    order.retain(|x| *x != id);
                    done(&mut self.stats, f)?;
                    any_finished = true;
                }
            }
            // A finished task frees a slot and may be what `next` waits
            // for: ask it again before sleeping.
            if any_finished
                || tasks.is_empty()
                || order.iter().any(|id| {
                    tasks.get(id).is_some_and(|t| match t {
                        Task::Put(m) => m.is_finished(),
                        Task::Get(m) => m.is_finished(),
                        Task::Lookup(_) => false,
                    })
                })
            {
                continue;
            }
            // Sleep until a datagram, a timer, or the pacer.
            let mut wake = Instant::now() + Duration::from_secs(1);
            for t in tasks.values() {
                if let Some(x) = t.poll_timeout() {
                    wake = wake.min(x);
                }
            }
            // Something became sendable while handling events (an ACCEPT
            // once a cached group was handed out, a next chunk's
            // PROPOSAL): send it now, not at the next timer tick.
            let now = Instant::now();
            let wants = tasks.values().any(|t| match t {
                Task::Put(m) => m.wants_to_send(now),
                Task::Get(m) => m.wants_to_send(),
                Task::Lookup(m) => m.wants_to_send(),
            });
            let send_now = wants && self.pacer.ready(now);
            if wants {
                wake = wake.min(self.pacer.next_ready());
            }
            if let Some(t) = self.ctl.as_ref().and_then(|c| c.groups.poll_timeout()) {
                wake = wake.min(t);
            }
            let ctl_sock = self.ctl.as_ref().map(|c| &c.sock);
            if send_now {
                // More to send right away: take what arrived meanwhile
                // without waiting, then go on sending.
                self.drain_now(&mut tasks, &mut cbuf);
            } else {
                if sleep.deadline() != wake.into() {
                    sleep.as_mut().reset(wake.into());
                }
                tokio::select! {
                    r = self.sock.readable() => {
                        r?;
                        self.drain_socket(&mut tasks, true);
                    }
                    r = async { ctl_sock.expect("guarded").recv_from(&mut cbuf).await }, if ctl_sock.is_some() => {
                        if let Ok((len, _)) = r {
                            self.on_controller(&cbuf[..len], &mut tasks);
                        }
                    }
                    _ = &mut sleep => {}
                }
            }
            let now = Instant::now();
            for t in tasks.values_mut() {
                t.handle_timeout(now);
            }
            self.retransmit_requests(&mut tasks).await;
        }
    }

    /// Reads what both sockets hold, without waiting (and without tokio's
    /// readiness, which only a wait would refresh).
    fn drain_now(&mut self, tasks: &mut HashMap<u64, Task>, cbuf: &mut [u8]) {
        self.drain_socket(tasks, false);
        while let Some(ctl) = &self.ctl {
            match rustix::net::recv(&ctl.sock, &mut *cbuf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((len, _)) => self.on_controller(&cbuf[..len], tasks),
                Err(_) => break,
            }
        }
    }

    /// Hands up to ~1024 queued datagrams of the node socket to their
    /// tasks, many per call (GRO trains are split). `tracked`: through
    /// tokio's readiness (after a wait), else straight from the socket.
    fn drain_socket(&mut self, tasks: &mut HashMap<u64, Task>, tracked: bool) {
        let mut recv = self.recv.take().expect("present");
        let mut n = 0;
        while n < 1024 {
            let (stats, keys, addresses, guard, members) = (
                &mut self.stats,
                &self.keys,
                &self.addresses,
                &mut self.guard,
                &mut self.members,
            );
            let f = |bytes: &[u8], from| {
                on_datagram(stats, keys, addresses, guard, members, bytes, from, tasks)
            };
            let got = if tracked {
                recv.drain(&self.sock, f)
            } else {
                recv.drain_now(&self.sock, f)
            };
            match got {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        self.recv = Some(recv);
    }

    fn on_controller(&mut self, bytes: &[u8], tasks: &mut HashMap<u64, Task>) {
        let Some(ctl) = &mut self.ctl else { return };
        let dg = match ctl.opener.open(bytes, now_us()) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "datagram from the controller refused");
                return;
            }
        };
        let Message::RendezvousGrant(g) = dg.message else {
            return;
        };
        ctl.groups.on_grant(g.request_id, g.outcome, Instant::now());
        self.deliver_groups(tasks);
    }

    async fn retransmit_requests(&mut self, tasks: &mut HashMap<u64, Task>) {
        let Some(ctl) = &mut self.ctl else { return };
        let addr = ctl.addr.to_string();
        ctl.groups.handle_timeout(Instant::now(), &addr);
        self.flush_controller().await;
        self.deliver_groups(tasks);
    }
}

/// A datagram for one of the client's tasks. An answer to a round that
/// already ended still says its sender is alive ([`Membership::heard`]).
#[allow(clippy::too_many_arguments)]
fn on_datagram(
    stats: &mut ClientStats,
    keys: &PairKeys,
    addresses: &Addresses,
    guard: &mut ReplayGuard,
    members: &mut Membership,
    bytes: &[u8],
    from: SocketAddr,
    tasks: &mut HashMap<u64, Task>,
) {
    stats.datagrams_received += 1;
    match replicast::open(keys, guard, bytes, now_us()) {
        Ok(dg) if !addresses.allows(dg.header.sender_id, from) => {
            stats.refused_datagrams += 1;
            tracing::debug!(%from, sender = dg.header.sender_id, "datagram from a known node at another address refused");
        }
        Ok(dg) => {
            if let Some(t) = tasks.get_mut(&dg.message.txid()) {
                t.handle(from, dg.header.sender_id, &dg.message, Instant::now());
            } else if matches!(
                dg.message,
                ReplicastMessage::ManifestOffer(_) | ReplicastMessage::PutBid(_)
            ) {
                members.heard(dg.header.sender_id);
            }
        }
        Err(e) => {
            stats.refused_datagrams += 1;
            tracing::debug!(%from, error = %e, "datagram refused");
        }
    }
}

pub use crate::versions::Versions;

/// A random transaction id.
pub fn new_txid() -> u64 {
    rand::random()
}

/// Short form of a chunk id for messages.
pub fn id_hex(id: &Hash32) -> String {
    hex::encode(id)
}
