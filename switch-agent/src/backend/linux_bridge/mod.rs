//! Linux bridge backend: FDB through rtnetlink, MDB through our own netlink codec.
//!
//! - Unicast placement ([`Backend::port_toward`]) reads a mirror of the
//!   bridge FDB kept by [`fdb::FdbCache`]: one neighbour dump
//!   (AF_BRIDGE, plus AF_INET6 for the bridge's own IPv6 neighbours) at
//!   start, then RTM_NEWNEIGH / RTM_DELNEIGH and link notifications.
//! - Subset groups are permanent IPv6 MDB entries, one per port, written
//!   with RTM_NEWMDB / RTM_DELMDB ([`mdb`]); an install is a diff against
//!   the ports the backend installed before (adds first, then deletes; a
//!   failed add rolls back the adds of the same install).
//! - The agent runs inside the switch's network namespace; the backend
//!   only sees that namespace.

pub mod fdb;
pub mod mdb;

use crate::backend::{Backend, BackendError, InstalledGroup, PortId, PortSet};
use fdb::FdbCache;
use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_ROUTE};
use rtnetlink::MulticastGroup;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use subcast_proto::{BackendKind, Member};
use tokio::task::JoinHandle;

/// How long to wait for the kernel to answer one netlink request.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(2);
const EEXIST: i32 = 17;
const ENOENT: i32 = 2;
const E2BIG: i32 = 7;
const ENOSPC: i32 = 28;
const RTNLGRP_MDB: u32 = 26;

/// A Linux bridge in the agent's network namespace.
#[derive(Debug)]
pub struct LinuxBridge {
    bridge: String,
    bridge_ifindex: u32,
    cache: Arc<Mutex<FdbCache>>,
    mdb: MdbSocket,
    /// What this backend installed: (vid, group) -> ports.
    installed: HashMap<(u16, Ipv6Addr), PortSet>,
    /// Without VLAN filtering the bridge takes MDB entries on VLAN 0 only.
    vlan_filtering: bool,
    tasks: Vec<JoinHandle<()>>,
}

/// Whether a bridge link message says VLAN filtering is on.
fn vlan_filtering(link: &netlink_packet_route::link::LinkMessage) -> bool {
    use netlink_packet_route::link::{InfoBridge, InfoData, LinkAttribute, LinkInfo};
    link.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().any(|i| match i {
            LinkInfo::Data(InfoData::Bridge(b)) => b
                .iter()
                .any(|x| matches!(x, InfoBridge::VlanFiltering(true))),
            _ => false,
        }),
        _ => false,
    })
}

impl Drop for LinuxBridge {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn unreachable(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Unreachable(format!("{what}: {e}"))
}

impl LinuxBridge {
    /// Opens the bridge named `bridge`: subscribes to neighbour and link
    /// notifications, then reads the ports and the FDB once.
    pub async fn open(bridge: &str) -> Result<Self, BackendError> {
        let (conn, handle, mut messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Neigh, MulticastGroup::Link])
                .map_err(|e| unreachable("rtnetlink socket", e))?;
        let conn_task = tokio::spawn(conn);
        let link = handle
            .link()
            .get()
            .match_name(bridge.to_owned())
            .execute()
            .try_next()
            .await
            .map_err(|e| {
                BackendError::Other(format!(
                    "bridge {bridge:?} not found in this network namespace ({e}); \
                     create it or fix backend.bridge in the config"
                ))
            })?
            .ok_or_else(|| BackendError::Other(format!("bridge {bridge:?} not found")))?;
        let bridge_ifindex = link.header.index;
        let vlan_filtering = vlan_filtering(&link);
        let mut cache = FdbCache::new(bridge_ifindex);
        let mut links = handle.link().get().execute();
        while let Some(l) = links
            .try_next()
            .await
            .map_err(|e| unreachable("link dump", e))?
        {
            cache.apply_link(&l, false);
        }
        for family in [AddressFamily::Bridge, AddressFamily::Inet6] {
            let mut n = handle
                .neighbours()
                .get()
                .set_address_family(family)
                .execute();
            while let Some(m) = n
                .try_next()
                .await
                .map_err(|e| unreachable("neighbour dump", e))?
            {
                cache.apply_neighbour(&m, false);
            }
        }
        tracing::info!(
            bridge,
            ifindex = bridge_ifindex,
            ports = cache.ports.len(),
            fdb_entries = cache.fdb_len(),
            "linux bridge opened"
        );
        let cache = Arc::new(Mutex::new(cache));
        let c2 = cache.clone();
        let follow = tokio::spawn(async move {
            while let Some((msg, _)) = messages.next().await {
                let NetlinkPayload::InnerMessage(m) = msg.payload else {
                    continue;
                };
                let mut c = lock(&c2);
                match m {
                    RouteNetlinkMessage::NewNeighbour(n) => c.apply_neighbour(&n, false),
                    RouteNetlinkMessage::DelNeighbour(n) => c.apply_neighbour(&n, true),
                    RouteNetlinkMessage::NewLink(l) => c.apply_link(&l, false),
                    RouteNetlinkMessage::DelLink(l) => c.apply_link(&l, true),
                    _ => {}
                }
            }
            tracing::warn!("rtnetlink notification stream ended: FDB no longer followed");
        });
        // Keep the handle alive as long as the connection task runs.
        drop(handle);
        Ok(LinuxBridge {
            bridge: bridge.to_owned(),
            bridge_ifindex,
            cache,
            mdb: MdbSocket::new()?,
            installed: HashMap::new(),
            vlan_filtering,
            tasks: vec![conn_task, follow],
        })
    }

    /// The MDB VLAN id for an instruction's VLAN.
    fn vid(&self, vlan: u16) -> u16 {
        if self.vlan_filtering { vlan } else { 0 }
    }

    pub fn bridge_ifindex(&self) -> u32 {
        self.bridge_ifindex
    }

    /// Keeps rendezvous groups closed: follows MDB notifications and
    /// deletes at once every entry inside `range` that the bridge learned
    /// from an MLD report (state temporary), so a host that joins a subset
    /// group it was not chosen for is removed again within a notification
    /// round trip (well under a millisecond here). Entries the agent
    /// installs are permanent and untouched. For no window at all, also
    /// drop MLD reports from host ports with nftables (see the README).
    /// `removed` counts the entries deleted.
    pub fn guard_range(
        &mut self,
        range: ipnet::Ipv6Net,
        removed: prometheus_client::metrics::counter::Counter,
    ) -> Result<(), BackendError> {
        let mut sock =
            TokioSocket::new(NETLINK_ROUTE).map_err(|e| unreachable("netlink socket", e))?;
        sock.socket_mut()
            .bind(&SocketAddr::new(0, 1 << (RTNLGRP_MDB - 1)))
            .map_err(|e| unreachable("netlink bind to MDB notifications", e))?;
        let br = self.bridge_ifindex;
        let task = tokio::spawn(async move {
            let mut seq = 0x4000_0000u32;
            loop {
                let bytes = match sock.recv_from_full().await {
                    Ok((b, _)) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "MDB notifications: receive failed");
                        continue;
                    }
                };
                let Ok(replies) = mdb::decode_replies(&bytes) else {
                    continue;
                };
                let mut req = Vec::new();
                for r in replies {
                    let mdb::Reply::Entries {
                        ty: mdb::RTM_NEWMDB,
                        entries,
                        ..
                    } = r
                    else {
                        continue;
                    };
                    for e in entries {
                        if let mdb::MdbAddr::Ipv6(g) = e.addr
                            && e.bridge == br
                            && e.port != br
                            && e.state == mdb::MDB_TEMPORARY
                            && range.contains(&g)
                        {
                            tracing::info!(group = %g, port = e.port, "closed group: removing an MLD-learned entry");
                            seq = seq.wrapping_add(1);
                            mdb::emit_set(&mut req, false, seq, br, e.port, e.vid, &g);
                            removed.inc();
                        }
                    }
                }
                if !req.is_empty()
                    && let Err(e) = sock.send_to(&req, &SocketAddr::new(0, 0)).await
                {
                    tracing::error!(error = %e, "closed group: delete not sent");
                }
            }
        });
        self.tasks.push(task);
        Ok(())
    }

    /// The current FDB mirror (for tests and logs).
    pub fn fdb(&self) -> FdbCache {
        lock(&self.cache).clone()
    }

    /// Every MDB entry of this bridge, from a fresh dump.
    pub async fn mdb_entries(&mut self) -> Result<Vec<mdb::MdbEntry>, BackendError> {
        let all = self.mdb.dump().await?;
        Ok(all
            .into_iter()
            .filter(|e| e.bridge == self.bridge_ifindex)
            .collect())
    }

    /// Adds or deletes permanent entries for `group` on `ports`; returns the
    /// errno of each request in order (0 = done).
    async fn set_entries(
        &mut self,
        add: bool,
        vid: u16,
        group: &Ipv6Addr,
        ports: &[PortId],
    ) -> Result<Vec<i32>, BackendError> {
        let br = self.bridge_ifindex;
        self.mdb
            .transact(ports.len(), |buf, seq_of| {
                for (i, p) in ports.iter().enumerate() {
                    mdb::emit_set(buf, add, seq_of(i), br, *p, vid, group);
                }
            })
            .await
    }
}

fn lock(m: &Mutex<FdbCache>) -> MutexGuard<'_, FdbCache> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn errno_error(op: &str, port: PortId, errno: i32) -> BackendError {
    let msg = format!(
        "{op} on port ifindex {port}: {}",
        std::io::Error::from_raw_os_error(errno)
    );
    match errno {
        E2BIG | ENOSPC => {
            BackendError::TableFull(format!("{msg} (raise the bridge's mcast_hash_max)"))
        }
        _ => BackendError::Refused(msg),
    }
}

impl Backend for LinuxBridge {
    fn kind(&self) -> BackendKind {
        BackendKind::LinuxBridge
    }

    fn port_count(&self) -> u16 {
        u16::try_from(lock(&self.cache).ports.len()).unwrap_or(u16::MAX)
    }

    fn port_name(&self, port: PortId) -> String {
        lock(&self.cache)
            .ports
            .get(&port)
            .cloned()
            .unwrap_or_else(|| format!("{}:if{port}", self.bridge))
    }

    async fn port_toward(
        &mut self,
        vlan: u16,
        member: &Member,
    ) -> Result<Option<PortId>, BackendError> {
        let c = lock(&self.cache);
        Ok(match member {
            Member::Mac(m) => c.port_of_mac(vlan, m),
            Member::Ipv6(a) => c.mac_of_ipv6(a).and_then(|m| c.port_of_mac(vlan, &m)),
        })
    }

    async fn parent_ports(
        &mut self,
        vlan: u16,
        parent: Ipv6Addr,
    ) -> Result<Option<PortSet>, BackendError> {
        let br = self.bridge_ifindex;
        let ports: PortSet = self
            .mdb_entries()
            .await?
            .into_iter()
            .filter(|e| {
                e.addr == mdb::MdbAddr::Ipv6(parent)
                    && e.port != br
                    && (e.vid == vlan || e.vid == 0)
            })
            .map(|e| e.port)
            .collect();
        Ok((!ports.is_empty()).then_some(ports))
    }

    async fn install(
        &mut self,
        vlan: u16,
        group: Ipv6Addr,
        ports: &PortSet,
    ) -> Result<(), BackendError> {
        let vlan = self.vid(vlan);
        let current = self
            .installed
            .get(&(vlan, group))
            .cloned()
            .unwrap_or_default();
        let adds: Vec<PortId> = ports.difference(&current).copied().collect();
        let dels: Vec<PortId> = current.difference(ports).copied().collect();
        if !adds.is_empty() {
            let res = self.set_entries(true, vlan, &group, &adds).await?;
            let failed = adds
                .iter()
                .zip(&res)
                .find(|(_, e)| **e != 0 && **e != -EEXIST);
            if let Some((port, errno)) = failed {
                let done: Vec<PortId> = adds
                    .iter()
                    .zip(&res)
                    .filter(|(_, e)| **e == 0)
                    .map(|(p, _)| *p)
                    .collect();
                if let Err(e) = self.set_entries(false, vlan, &group, &done).await {
                    tracing::error!(%group, error = %e, "rollback of a failed install failed");
                }
                return Err(errno_error("add MDB entry", *port, -errno));
            }
        }
        if !dels.is_empty() {
            let res = self.set_entries(false, vlan, &group, &dels).await?;
            if let Some((port, errno)) = dels
                .iter()
                .zip(&res)
                .find(|(_, e)| **e != 0 && **e != -ENOENT)
            {
                // The entry stays: record the real state before failing.
                let mut now = ports.clone();
                now.insert(*port);
                self.installed.insert((vlan, group), now);
                return Err(errno_error("delete MDB entry", *port, -errno));
            }
        }
        self.installed.insert((vlan, group), ports.clone());
        Ok(())
    }

    async fn remove(&mut self, vlan: u16, group: Ipv6Addr) -> Result<(), BackendError> {
        let vlan = self.vid(vlan);
        let Some(current) = self.installed.remove(&(vlan, group)) else {
            return Ok(());
        };
        let ports: Vec<PortId> = current.iter().copied().collect();
        let res = self.set_entries(false, vlan, &group, &ports).await?;
        if let Some((port, errno)) = ports
            .iter()
            .zip(&res)
            .find(|(_, e)| **e != 0 && **e != -ENOENT)
        {
            self.installed.insert((vlan, group), current.clone());
            return Err(errno_error("delete MDB entry", *port, -errno));
        }
        Ok(())
    }

    async fn installed(
        &mut self,
        range: ipnet::Ipv6Net,
    ) -> Result<Vec<InstalledGroup>, BackendError> {
        let br = self.bridge_ifindex;
        let mut groups: BTreeMap<(u16, Ipv6Addr), PortSet> = BTreeMap::new();
        for e in self.mdb_entries().await? {
            if let mdb::MdbAddr::Ipv6(a) = e.addr
                && range.contains(&a)
                && e.port != br
            {
                groups.entry((e.vid, a)).or_default().insert(e.port);
            }
        }
        for (k, v) in &groups {
            self.installed.insert(*k, v.clone());
        }
        Ok(groups
            .into_iter()
            .map(|((vlan, group), ports)| InstalledGroup { vlan, group, ports })
            .collect())
    }
}

/// A netlink socket for MDB requests.
struct MdbSocket {
    sock: TokioSocket,
    seq: u32,
}

impl std::fmt::Debug for MdbSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdbSocket").field("seq", &self.seq).finish()
    }
}

impl MdbSocket {
    fn new() -> Result<Self, BackendError> {
        let mut sock =
            TokioSocket::new(NETLINK_ROUTE).map_err(|e| unreachable("netlink socket", e))?;
        sock.socket_mut()
            .bind_auto()
            .map_err(|e| unreachable("netlink bind", e))?;
        // Acks carry only the request header, not the whole request.
        let _ = sock.socket_ref().set_cap_ack(true);
        Ok(MdbSocket { sock, seq: 1 })
    }

    /// Sends `n` requests built by `build` (given the sequence number of
    /// request i) in one datagram and returns the errno of each.
    async fn transact(
        &mut self,
        n: usize,
        build: impl FnOnce(&mut Vec<u8>, &dyn Fn(usize) -> u32),
    ) -> Result<Vec<i32>, BackendError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let first = self.seq;
        self.seq = self.seq.wrapping_add(n as u32);
        let mut buf = Vec::with_capacity(n * 56);
        build(&mut buf, &|i| first.wrapping_add(i as u32));
        let kernel = SocketAddr::new(0, 0);
        self.sock
            .send_to(&buf, &kernel)
            .await
            .map_err(|e| unreachable("netlink send", e))?;
        let mut errnos = vec![None; n];
        let mut left = n;
        while left > 0 {
            for r in self.recv().await? {
                if let mdb::Reply::Ack { seq, errno } = r {
                    let i = seq.wrapping_sub(first) as usize;
                    if let Some(slot @ None) = errnos.get_mut(i) {
                        *slot = Some(errno);
                        left -= 1;
                    }
                }
            }
        }
        Ok(errnos.into_iter().map(|e| e.unwrap_or(0)).collect())
    }

    async fn recv(&mut self) -> Result<Vec<mdb::Reply>, BackendError> {
        let (bytes, _) = tokio::time::timeout(NETLINK_TIMEOUT, self.sock.recv_from_full())
            .await
            .map_err(|_| unreachable("netlink", "kernel did not answer within 2 s"))?
            .map_err(|e| unreachable("netlink recv", e))?;
        mdb::decode_replies(&bytes).map_err(|e| BackendError::Other(format!("MDB answer: {e}")))
    }

    async fn dump(&mut self) -> Result<Vec<mdb::MdbEntry>, BackendError> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut buf = Vec::new();
        mdb::emit_dump(&mut buf, seq);
        self.sock
            .send_to(&buf, &SocketAddr::new(0, 0))
            .await
            .map_err(|e| unreachable("netlink send", e))?;
        let mut out = Vec::new();
        loop {
            for r in self.recv().await? {
                match r {
                    mdb::Reply::Entries {
                        seq: s, entries, ..
                    } if s == seq => out.extend(entries),
                    mdb::Reply::Done { seq: s } if s == seq => return Ok(out),
                    mdb::Reply::Ack { seq: s, errno } if s == seq && errno != 0 => {
                        return Err(errno_error("MDB dump", 0, -errno));
                    }
                    _ => {}
                }
            }
        }
    }
}
