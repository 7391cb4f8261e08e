//! `subcast-node gateway`: links, the site's reports and the local client.

use super::rule::{LinkId, Received, Router};
use super::wire::{self, Purpose};
use super::{GatewayConfig, status};
use crate::chunking::{chunk_id, name_hash};
use crate::client::{Client, Finished, Task, new_txid};
use crate::config::Config;
use crate::get::{GetMachine, GetTimers};
use crate::manifest::Manifest;
use crate::placement::ng_index;
use crate::put::{PutMachine, PutParams, PutTimers};
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subcast_proto::replicast::{ChunkKind, Hash32};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};

/// A session ends after this long without a frame (pings every 500 ms).
const LINK_TIMEOUT: Duration = Duration::from_secs(3);
const PING_EVERY: Duration = Duration::from_millis(500);

/// A manifest stored in the site (status).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LocalManifest {
    pub name: String,
    pub version: u64,
    pub writer: u32,
    pub id: String,
}

/// Everything the tasks share.
#[derive(Debug)]
pub struct State {
    pub site: String,
    pub router: Router,
    /// Data chunks in memory for forwarding (bounded, oldest out).
    cache: HashMap<Hash32, Arc<Vec<u8>>>,
    cache_order: VecDeque<Hash32>,
    cache_bytes: usize,
    cache_max: usize,
    /// Every manifest known here (small; kept).
    manifest_bytes: HashMap<Hash32, Arc<Vec<u8>>>,
    sizes: HashMap<Hash32, u32>,
    pub local_manifests: Vec<LocalManifest>,
    pub stores_failed: u64,
    pub fetches_failed: u64,
}

impl State {
    fn cache_put(&mut self, id: Hash32, b: Arc<Vec<u8>>) {
        if self.cache.insert(id, b.clone()).is_none() {
            self.cache_bytes += b.len();
            self.cache_order.push_back(id);
        }
        while self.cache_bytes > self.cache_max {
            let Some(old) = self.cache_order.pop_front() else {
                break;
            };
            if let Some(v) = self.cache.remove(&old) {
                self.cache_bytes -= v.len();
            }
        }
    }

    fn bytes_of(&self, id: &Hash32) -> Option<Arc<Vec<u8>>> {
        self.manifest_bytes
            .get(id)
            .or_else(|| self.cache.get(id))
            .cloned()
    }

    fn note_manifest(&mut self, id: Hash32, m: &Manifest) {
        if !self.local_manifests.iter().any(|x| x.id == hex::encode(id)) {
            self.local_manifests.push(LocalManifest {
                name: m.name.clone(),
                version: m.version,
                writer: m.writer,
                id: hex::encode(id),
            });
        }
    }
}

#[derive(Debug)]
pub struct Shared {
    pub state: Mutex<State>,
    wake: Vec<Notify>,
    jobs: mpsc::UnboundedSender<Job>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn wake_all(&self) {
        for w in &self.wake {
            w.notify_one();
        }
    }
}

/// Where a fetched chunk goes (None: not readable).
type Reply = oneshot::Sender<Option<Arc<Vec<u8>>>>;

/// Work for the local client.
#[derive(Debug)]
enum Job {
    /// Read a chunk stored in the site.
    Fetch {
        id: Hash32,
        size: Option<u32>,
        reply: Reply,
    },
    /// Store a chunk from `from` in the site (manifest: its name).
    Store {
        id: Hash32,
        manifest: Option<String>,
        bytes: Arc<Vec<u8>>,
        from: LinkId,
        tries: u32,
    },
}

/// Runs the gateway until SIGINT or SIGTERM.
pub async fn run(cfg: Config, gw: GatewayConfig) -> anyhow::Result<()> {
    let notify_secret = gw.secret(&gw.notify_secret)?;
    let mut secrets = Vec::new();
    for l in &gw.links {
        secrets.push(gw.secret(&l.secret)?);
    }
    let (jobs_tx, mut jobs_rx) = mpsc::unbounded_channel();
    let sh = Arc::new(Shared {
        state: Mutex::new(State {
            site: gw.site.clone(),
            router: Router::new(gw.links.iter().map(|l| l.peer.clone())),
            cache: HashMap::new(),
            cache_order: VecDeque::new(),
            cache_bytes: 0,
            cache_max: gw.cache_mib << 20,
            manifest_bytes: HashMap::new(),
            sizes: HashMap::new(),
            local_manifests: Vec::new(),
            stores_failed: 0,
            fetches_failed: 0,
        }),
        wake: gw.links.iter().map(|_| Notify::new()).collect(),
        jobs: jobs_tx,
    });
    let mut client = Client::new(cfg).await?;
    let links = Arc::new(gw.clone());
    let secrets = Arc::new(secrets);

    // Links: accepted here (the peer's name sorts first) or connected.
    let listener = listen(gw.listen, gw.socket_buffer)?;
    {
        let (sh, links, secrets) = (sh.clone(), links.clone(), secrets.clone());
        tokio::spawn(async move {
            loop {
                let Ok((s, from)) = listener.accept().await else {
                    continue;
                };
                let (sh, links, secrets) = (sh.clone(), links.clone(), secrets.clone());
                tokio::spawn(async move {
                    let mut s = s;
                    let r = tokio::time::timeout(
                        LINK_TIMEOUT,
                        wire::server_handshake(&mut s, &links.site, |p, name| {
                            (p == Purpose::Link)
                                .then(|| links.links.iter().position(|l| l.peer == name))
                                .flatten()
                                .map(|i| secrets[i])
                        }),
                    )
                    .await;
                    match r {
                        Ok(Ok((_, peer, keys))) => {
                            let i = links
                                .links
                                .iter()
                                .position(|l| l.peer == peer)
                                .expect("checked by the handshake");
                            session(sh, i, s, keys).await;
                        }
                        Ok(Err(e)) => tracing::warn!(%from, error = %e, "link refused"),
                        Err(_) => tracing::warn!(%from, "link handshake timed out"),
                    }
                });
            }
        });
    }
    for (i, l) in gw.links.iter().enumerate() {
        if gw.site < l.peer
            && let Some(addr) = l.address
        {
            let (sh, site, secret, buf) =
                (sh.clone(), gw.site.clone(), secrets[i], gw.socket_buffer);
            tokio::spawn(async move {
                loop {
                    match connect(addr, buf, &site, &secret).await {
                        Ok((s, keys)) => session(sh.clone(), i, s, keys).await,
                        Err(e) => tracing::debug!(%addr, error = %e, "link not up; retrying"),
                    }
                    tokio::time::sleep(PING_EVERY).await;
                }
            });
        }
    }
    // The site's nodes.
    let nl = TcpListener::bind(gw.notify_listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen for the site's nodes on {}: {e}",
            gw.notify_listen
        )
    })?;
    {
        let sh = sh.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, from)) = nl.accept().await else {
                    continue;
                };
                let sh = sh.clone();
                tokio::spawn(async move {
                    if let Err(e) = notes(sh, s, notify_secret).await {
                        tracing::debug!(%from, error = %e, "node report stream ended");
                    }
                });
            }
        });
    }
    if let Some(addr) = gw.status {
        status::serve(addr, sh.clone()).await?;
    }
    tracing::info!(site = %gw.site, links = gw.links.len(), "gateway running");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        let first = tokio::select! {
            j = jobs_rx.recv() => j,
            _ = int.recv() => None,
            _ = term.recv() => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < 64
            && let Ok(j) = jobs_rx.try_recv()
        {
            batch.push(j);
        }
        work(&mut client, &sh, batch).await;
    }
    client.close().await;
    Ok(())
}

fn group_of(c: &Config, id: &Hash32) -> Ipv6Addr {
    c.negotiating_groups[ng_index(id, c.negotiating_groups.len())]
}

/// Runs a batch of jobs on the local client.
async fn work(client: &mut Client, sh: &Arc<Shared>, batch: Vec<Job>) {
    let cfg = client.cfg.clone();
    let mut fetches: HashMap<Hash32, Vec<Reply>> = HashMap::new();
    let mut stores: HashMap<Hash32, Job> = HashMap::new();
    let mut tasks = Vec::new();
    let now = Instant::now();
    for j in batch {
        match j {
            Job::Fetch { id, size, reply } => {
                if fetches.contains_key(&id) {
                    fetches.get_mut(&id).expect("present").push(reply);
                    continue;
                }
                fetches.insert(id, vec![reply]);
                tasks.push(Task::Get(Box::new(GetMachine::new(
                    new_txid(),
                    id,
                    group_of(&cfg, &id),
                    cfg.port,
                    cfg.datagram_payload(1),
                    16 << 20,
                    size.map(|s| s as usize),
                    GetTimers::default(),
                    now,
                ))));
            }
            Job::Store {
                id,
                ref manifest,
                ref bytes,
                ..
            } => {
                let (kind, group) = match manifest {
                    Some(name) => (ChunkKind::Manifest, group_of(&cfg, &name_hash(name))),
                    None => (ChunkKind::Data, group_of(&cfg, &id)),
                };
                let p = PutParams {
                    replicas: cfg.replicas,
                    mode: cfg.transport,
                    group,
                    port: cfg.port,
                    datagram_payload: cfg.put_datagram_payload(),
                    kind,
                    timers: PutTimers::default(),
                    fallback: cfg.fallback_transport,
                };
                tasks.push(Task::Put(Box::new(PutMachine::new(
                    new_txid(),
                    bytes.clone(),
                    p,
                    now,
                ))));
                stores.insert(id, j);
            }
        }
    }
    let mut tasks = tasks.into_iter();
    let mut stored = Vec::new();
    let r = client
        .run(
            cfg.parallel.max(1) * 2,
            |_| tasks.next(),
            |_, f| {
                match f {
                    Finished::Put(Ok(o)) => stored.push(o.chunk_id),
                    Finished::Get(Ok(b)) => {
                        let id = chunk_id(&b);
                        let b = Arc::new(b);
                        sh.lock().cache_put(id, b.clone());
                        for r in fetches.remove(&id).unwrap_or_default() {
                            let _ = r.send(Some(b.clone()));
                        }
                    }
                    Finished::Put(Err(e)) => {
                        tracing::warn!(error = %e, "storing a chunk from a link failed")
                    }
                    Finished::Get(Err(e)) => {
                        tracing::warn!(error = %e, "reading a chunk of the site failed")
                    }
                    Finished::Lookup(_) => {}
                }
                Ok(())
            },
        )
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "local client");
    }
    let mut st = sh.lock();
    for (_, rs) in fetches.drain() {
        st.fetches_failed += 1;
        for r in rs {
            let _ = r.send(None);
        }
    }
    for id in stored {
        let Some(Job::Store { from, manifest, .. }) = stores.remove(&id) else {
            continue;
        };
        if manifest.is_some()
            && let Some(b) = st.manifest_bytes.get(&id).cloned()
            && let Ok(m) = Manifest::decode(&b)
        {
            st.note_manifest(id, &m);
        }
        for (m, l) in st.router.on_stored(id, Some(from)) {
            let bytes = st.manifest_bytes.get(&m).cloned();
            let name = bytes
                .as_ref()
                .and_then(|b| Manifest::decode(b).ok())
                .map(|x| x.name);
            if let (Some(bytes), Some(name)) = (bytes, name) {
                let _ = sh.jobs.send(Job::Store {
                    id: m,
                    manifest: Some(name),
                    bytes,
                    from: l,
                    tries: 0,
                });
            }
        }
    }
    // Failed stores: again, up to three times; then forgotten (a later
    // copy or catch-up brings the chunk again).
    for (id, j) in stores {
        if let Job::Store {
            manifest,
            bytes,
            from,
            tries,
            ..
        } = j
        {
            if tries < 3 {
                let _ = sh.jobs.send(Job::Store {
                    id,
                    manifest,
                    bytes,
                    from,
                    tries: tries + 1,
                });
            } else {
                st.stores_failed += 1;
                st.router.on_store_failed(&id);
            }
        }
    }
    drop(st);
    sh.wake_all();
}

/// A socket with the link's buffers (set before connect/listen, so the
/// window scale is negotiated for them).
fn socket(addr: SocketAddr, buf: usize) -> std::io::Result<TcpSocket> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.set_send_buffer_size(buf as u32)?;
    s.set_recv_buffer_size(buf as u32)?;
    Ok(s)
}

fn listen(addr: SocketAddr, buf: usize) -> anyhow::Result<TcpListener> {
    let s = socket(addr, buf)?;
    s.set_reuseaddr(true)?;
    s.bind(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen for links on {addr}: {e}"))?;
    Ok(s.listen(64)?)
}

async fn connect(
    addr: SocketAddr,
    buf: usize,
    site: &str,
    secret: &[u8; 32],
) -> anyhow::Result<(TcpStream, wire::Session)> {
    let mut s = tokio::time::timeout(LINK_TIMEOUT, socket(addr, buf)?.connect(addr)).await??;
    let (_, keys) = tokio::time::timeout(
        LINK_TIMEOUT,
        wire::client_handshake(&mut s, Purpose::Link, site, secret),
    )
    .await??;
    Ok((s, keys))
}

/// One session on link `link`: inventories, then chunks both ways.
async fn session(sh: Arc<Shared>, link: LinkId, s: TcpStream, keys: wire::Session) {
    let wire::Session {
        send: mut tx,
        recv: mut rx,
    } = keys;
    let inv = {
        let mut st = sh.lock();
        if st.router.links[link].up {
            tracing::debug!(link, "a session is up already: new one dropped");
            return;
        }
        st.router.link_up(link)
    };
    let peer = sh.lock().router.links[link].peer.clone();
    tracing::info!(%peer, inventory = inv.len(), "link up");
    let _ = s.set_nodelay(true);
    let (mut rd, mut wr) = s.into_split();
    let writer = async {
        for b in inv.chunks(wire::HAVE_BATCH) {
            let body: Vec<u8> = b.iter().flat_map(|id| id.iter().copied()).collect();
            wire::write_frame(&mut wr, &mut tx, wire::T_HAVE, &[&body]).await?;
            sh.lock().router.links[link].counters.have_ids_sent += b.len() as u64;
        }
        wire::write_frame(&mut wr, &mut tx, wire::T_HAVE_END, &[]).await?;
        loop {
            let ads = sh.lock().router.take_adverts(link);
            if !ads.is_empty() {
                let body: Vec<u8> = ads.iter().flat_map(|id| id.iter().copied()).collect();
                wire::write_frame(&mut wr, &mut tx, wire::T_HAVE, &[&body]).await?;
            }
            let next = {
                let mut st = sh.lock();
                st.router.next_to_send(link).map(|id| {
                    let m = st.router.is_manifest(&id);
                    (id, m, st.bytes_of(&id), st.sizes.get(&id).copied())
                })
            };
            let Some((id, manifest, bytes, size)) = next else {
                tokio::select! {
                    _ = sh.wake[link].notified() => {}
                    _ = tokio::time::sleep(PING_EVERY) => {
                        wire::write_frame(&mut wr, &mut tx, wire::T_PING, &[]).await?;
                    }
                }
                continue;
            };
            let bytes = match bytes {
                Some(b) => Some(b),
                None => {
                    let (tx, rx) = oneshot::channel();
                    let _ = sh.jobs.send(Job::Fetch {
                        id,
                        size,
                        reply: tx,
                    });
                    rx.await.ok().flatten()
                }
            };
            let Some(bytes) = bytes else {
                tracing::warn!(chunk = %hex::encode(id), "chunk not readable in the site; not sent");
                continue;
            };
            let n = wire::write_frame(
                &mut wr,
                &mut tx,
                wire::T_CHUNK,
                &[&[u8::from(manifest)], &id, &bytes],
            )
            .await?;
            sh.lock().router.on_sent(link, id, n);
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    };
    let reader = async {
        loop {
            let (ty, body) = tokio::time::timeout(LINK_TIMEOUT, wire::read_frame(&mut rd, &mut rx))
                .await
                .map_err(|_| anyhow::anyhow!("no frame for {LINK_TIMEOUT:?}"))??;
            match ty {
                wire::T_CHUNK => on_chunk(&sh, link, &body)?,
                wire::T_HAVE => {
                    let ids = wire::split_ids(&body);
                    sh.lock().router.on_have(link, &ids);
                }
                wire::T_HAVE_END => {
                    let n = sh.lock().router.on_have_end(link);
                    tracing::info!(%peer, missing = n, "catch-up: peer inventory received");
                    sh.wake[link].notify_one();
                }
                _ => {}
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    };
    let r = tokio::select! {
        r = writer => r,
        r = reader => r,
    };
    sh.lock().router.link_down(link);
    tracing::info!(%peer, reason = %r.err().map(|e| e.to_string()).unwrap_or_default(), "link down");
}

fn on_chunk(sh: &Arc<Shared>, link: LinkId, body: &[u8]) -> anyhow::Result<()> {
    let (is_manifest, id, payload) = wire::split_chunk(body)?;
    let decoded = if is_manifest {
        Manifest::decode(payload).ok()
    } else {
        None
    };
    if is_manifest && decoded.is_none() {
        anyhow::bail!("peer sent a manifest that does not decode");
    }
    let mut st = sh.lock();
    let r = st.router.on_link_chunk(
        link,
        id,
        payload,
        decoded.as_ref().map(|m| m.chunks.clone()),
    );
    let bytes = Arc::new(payload.to_vec());
    match r {
        Received::Known | Received::BadHash => {}
        Received::Held => {
            st.manifest_bytes.insert(id, bytes);
        }
        Received::Store => {
            if is_manifest {
                st.manifest_bytes.insert(id, bytes.clone());
            } else {
                st.cache_put(id, bytes.clone());
            }
            let _ = sh.jobs.send(Job::Store {
                id,
                manifest: decoded.map(|m| m.name),
                bytes,
                from: link,
                tries: 0,
            });
        }
    }
    Ok(())
}

/// A node's report stream.
async fn notes(sh: Arc<Shared>, mut s: TcpStream, secret: [u8; 32]) -> anyhow::Result<()> {
    let site = sh.lock().site.clone();
    let (_, node, mut keys) = tokio::time::timeout(
        LINK_TIMEOUT,
        wire::server_handshake(&mut s, &site, |p, _| {
            (p == Purpose::Notify).then_some(secret)
        }),
    )
    .await??;
    tracing::info!(%node, "node reports its stores");
    loop {
        let (ty, body) = wire::read_frame(&mut s, &mut keys.recv).await?;
        if ty != wire::T_NOTE {
            continue;
        }
        let (is_manifest, id, size, mbytes) = super::notify::parse_note(&body)?;
        let mut st = sh.lock();
        st.sizes.insert(id, size);
        let chunks = if is_manifest {
            let Ok(m) = Manifest::decode(mbytes) else {
                continue;
            };
            if chunk_id(mbytes) != id {
                continue;
            }
            st.note_manifest(id, &m);
            st.manifest_bytes.insert(id, Arc::new(mbytes.to_vec()));
            Some(m.chunks)
        } else {
            None
        };
        st.router.on_local(id, chunks);
        drop(st);
        sh.wake_all();
    }
}
