//! The client driver: owns the socket, the pacer and the controller link,
//! and runs put / get / lookup state machines concurrently.

use crate::config::Config;
use crate::get::{GetError, GetEvent, GetMachine, ManifestLookup};
use crate::outgoing::{Pacer, Transmit};
use crate::put::{PutError, PutEvent, PutMachine, PutOutcome};
use crate::transport::{IP_UDP_OVERHEAD, ifindex, udp_socket};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};
use subcast_proto::replicast::{self, Hash32, ReplicastMessage, ReplicastSealer};
use subcast_proto::{
    GrantOutcome, Keyring, Member, Message, Opener, RendezvousRelease, RendezvousRequest,
    ReplayGuard, Sealer, now_us,
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
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        match self {
            Task::Put(m) => m.poll_transmit(now),
            Task::Get(m) => m.poll_transmit(),
            Task::Lookup(m) => m.poll_transmit(),
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
}

struct CtlLink {
    sock: UdpSocket,
    addr: SocketAddr,
    vlan: u16,
    lifetime_ms: u32,
    sealer: Sealer,
    opener: Opener,
    /// request id -> (txid, request, next retransmit, tries)
    pending: HashMap<u64, (u64, RendezvousRequest, Instant, u32)>,
    leases: HashMap<u64, u64>,
}

/// The client side: one socket, many concurrent tasks.
pub struct Client {
    pub cfg: Config,
    sock: UdpSocket,
    sealer: ReplicastSealer,
    keyring: Keyring,
    guard: ReplayGuard,
    pacer: Pacer,
    ctl: Option<CtlLink>,
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
        let key = cfg.key.load(&cfg.base_dir)?;
        let ifx = ifindex(cfg.interface.as_deref())?;
        let sock = udp_socket(0, ifx, cfg.hops, &[])?;
        let sender_id = rand::random::<u32>() | 0x8000_0000;
        let ctl = match &cfg.controller {
            Some(c) => {
                let k = c.key.load(&cfg.base_dir)?;
                let s = UdpSocket::bind("[::]:0").await?;
                Some(CtlLink {
                    sock: s,
                    addr: c.address,
                    vlan: c.vlan,
                    lifetime_ms: c.lifetime_ms,
                    sealer: Sealer::new(k.clone(), sender_id, now_us()),
                    opener: Opener::new(Keyring::new([k]), ReplayGuard::default()),
                    pending: HashMap::new(),
                    leases: HashMap::new(),
                })
            }
            None => None,
        };
        Ok(Client {
            sealer: ReplicastSealer::new(key.clone(), sender_id, now_us()),
            keyring: Keyring::new([key]),
            guard: ReplayGuard::default(),
            pacer: Pacer::new(cfg.rate_bytes_per_s(), cfg.pacer_burst(), Instant::now()),
            sock,
            ctl,
            cfg,
            stats: ClientStats::default(),
        })
    }

    pub fn has_controller(&self) -> bool {
        self.ctl.is_some()
    }

    async fn send(&mut self, t: Transmit) {
        let is_data = matches!(t.msg, ReplicastMessage::Data(_));
        let bytes = self.sealer.seal(&t.msg, now_us());
        let wire = (bytes.len() + IP_UDP_OVERHEAD) as u64;
        self.pacer.consume(bytes.len() + IP_UDP_OVERHEAD);
        self.stats.datagrams_sent += 1;
        self.stats.wire_bytes_sent += wire;
        if is_data {
            self.stats.data_wire_bytes_sent += wire;
        }
        if let Err(e) = self.sock.send_to(&bytes, t.dest).await {
            tracing::warn!(dest = %t.dest, error = %e, "send failed");
        }
    }

    async fn request_rendezvous(&mut self, txid: u64, parent: Ipv6Addr, targets: Vec<Ipv6Addr>) {
        let Some(ctl) = &mut self.ctl else { return };
        let req = RendezvousRequest {
            request_id: rand::random(),
            vlan: ctl.vlan,
            parent,
            lifetime_ms: ctl.lifetime_ms,
            targets: targets.into_iter().map(Member::Ipv6).collect(),
        };
        let bytes = ctl
            .sealer
            .seal(&Message::RendezvousRequest(req.clone()), now_us());
        if let Err(e) = ctl.sock.send_to(&bytes, ctl.addr).await {
            tracing::warn!(error = %e, "sending to the controller failed");
        }
        ctl.pending.insert(
            req.request_id,
            (txid, req, Instant::now() + Duration::from_millis(300), 1),
        );
    }

    async fn release(&mut self, txid: u64) {
        let Some(ctl) = &mut self.ctl else { return };
        if let Some(lease_id) = ctl.leases.remove(&txid) {
            let bytes = ctl.sealer.seal(
                &Message::RendezvousRelease(RendezvousRelease { lease_id }),
                now_us(),
            );
            let _ = ctl.sock.send_to(&bytes, ctl.addr).await;
        }
    }

    /// Runs tasks from `next` (at most `parallel` at once) until `next` is
    /// exhausted and all have finished; `done` gets each result.
    pub async fn run(
        &mut self,
        parallel: usize,
        mut next: impl FnMut(Instant) -> Option<Task>,
        mut done: impl FnMut(&mut ClientStats, Finished) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut tasks: HashMap<u64, Task> = HashMap::new();
        let mut order: VecDeque<u64> = VecDeque::new();
        let mut exhausted = false;
        let mut buf = vec![0u8; 65536];
        let mut cbuf = vec![0u8; 9216];
        loop {
            while !exhausted && tasks.len() < parallel.max(1) {
                match next(Instant::now()) {
                    Some(t) => {
                        tracing::debug!(txid = t.txid(), "task started");
                        order.push_back(t.txid());
                        tasks.insert(t.txid(), t);
                    }
                    None => exhausted = true,
                }
            }
            if exhausted && tasks.is_empty() {
                return Ok(());
            }
            // Transmit, round robin, as the pacer allows.
            let mut idle_rounds = 0;
            while idle_rounds < order.len() && self.pacer.ready(Instant::now()) {
                let Some(id) = order.pop_front() else { break };
                order.push_back(id);
                let Some(t) = tasks.get_mut(&id) else {
                    continue;
                };
                match t.poll_transmit(Instant::now()) {
                    Some(tx) => {
                        idle_rounds = 0;
                        self.send(tx).await;
                    }
                    None => idle_rounds += 1,
                }
            }
            // Events and finished tasks.
            let ids: Vec<u64> = order.iter().copied().collect();
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
                                    PutEvent::Done(o) => finished = Some(Finished::Put(Ok(o))),
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
                    if self.ctl.is_some() {
                        self.request_rendezvous(id, parent, targets).await;
                    } else if let Some(Task::Put(m)) = tasks.get_mut(&id) {
                        m.on_rendezvous(
                            Err("no `controller:` section in the config".into()),
                            Instant::now(),
                        );
                    }
                }
                if let Some(f) = finished {
                    tracing::debug!(txid = id, "task finished");
                    tasks.remove(&id);
                    order.retain(|x| *x != id);
                    self.release(id).await;
                    done(&mut self.stats, f)?;
                }
            }
            if tasks.is_empty()
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
            let wants = tasks.values().any(|t| match t {
                Task::Put(m) => m.wants_to_send(),
                _ => false,
            });
            if wants {
                wake = wake.min(self.pacer.next_ready());
            }
            if let Some(ctl) = &self.ctl {
                for (_, _, at, _) in ctl.pending.values() {
                    wake = wake.min(*at);
                }
            }
            let ctl_sock = self.ctl.as_ref().map(|c| &c.sock);
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => {
                    let (len, from) = r?;
                    self.on_datagram(&buf[..len], from, &mut tasks);
                    let mut n = 0;
                    while n < 256 {
                        match self.sock.try_recv_from(&mut buf) {
                            Ok((len, from)) => self.on_datagram(&buf[..len], from, &mut tasks),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                }
                r = async { ctl_sock.expect("guarded").recv_from(&mut cbuf).await }, if ctl_sock.is_some() => {
                    if let Ok((len, _)) = r {
                        self.on_controller(&cbuf[..len], &mut tasks);
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            let now = Instant::now();
            for t in tasks.values_mut() {
                t.handle_timeout(now);
            }
            self.retransmit_requests(&mut tasks).await;
        }
    }

    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr, tasks: &mut HashMap<u64, Task>) {
        self.stats.datagrams_received += 1;
        match replicast::open(&self.keyring, &mut self.guard, bytes, now_us()) {
            Ok(dg) => {
                if let Some(t) = tasks.get_mut(&dg.message.txid()) {
                    t.handle(from, dg.header.sender_id, &dg.message, Instant::now());
                }
            }
            Err(e) => {
                self.stats.refused_datagrams += 1;
                tracing::debug!(%from, error = %e, "datagram refused");
            }
        }
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
        let Some((txid, ..)) = ctl.pending.remove(&g.request_id) else {
            return;
        };
        let result = match g.outcome {
            GrantOutcome::Granted {
                group, lease_id, ..
            } => {
                ctl.leases.insert(txid, lease_id);
                self.stats.rendezvous_granted += 1;
                Ok(group)
            }
            GrantOutcome::Refused { reason, detail } => Err(format!("{}: {detail}", reason.name())),
        };
        if let Some(Task::Put(m)) = tasks.get_mut(&txid) {
            m.on_rendezvous(result, Instant::now());
        }
    }

    async fn retransmit_requests(&mut self, tasks: &mut HashMap<u64, Task>) {
        let Some(ctl) = &mut self.ctl else { return };
        let now = Instant::now();
        let due: Vec<u64> = ctl
            .pending
            .iter()
            .filter(|(_, (_, _, at, _))| *at <= now)
            .map(|(k, _)| *k)
            .collect();
        for rid in due {
            let Some((txid, req, at, tries)) = ctl.pending.get_mut(&rid) else {
                continue;
            };
            if *tries >= 5 {
                let txid = *txid;
                ctl.pending.remove(&rid);
                if let Some(Task::Put(m)) = tasks.get_mut(&txid) {
                    m.on_rendezvous(Err(format!("controller {} did not answer", ctl.addr)), now);
                }
                continue;
            }
            *tries += 1;
            *at = now + Duration::from_millis(300);
            let bytes = ctl
                .sealer
                .seal(&Message::RendezvousRequest(req.clone()), now_us());
            let _ = ctl.sock.send_to(&bytes, ctl.addr).await;
        }
    }
}

/// Versions found by a lookup, newest last.
pub type Versions = BTreeMap<u64, crate::get::FoundVersion>;

/// A random transaction id.
pub fn new_txid() -> u64 {
    rand::random()
}

/// Short form of a chunk id for messages.
pub fn id_hex(id: &Hash32) -> String {
    hex::encode(id)
}
