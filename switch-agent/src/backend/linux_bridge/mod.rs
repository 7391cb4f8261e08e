//! Linux bridge backend: FDB through rtnetlink, MDB through our own netlink
//! codec (`subcast-mdb`).
//!
//! - The view ([`BridgeView`]) answers at once from mirrors kept by
//!   notifications: the FDB and IPv6/IPv4 neighbours ([`fdb::FdbCache`]: one
//!   dump, then RTM_NEWNEIGH / RTM_DELNEIGH and link notifications) and the
//!   MDB ([`mirror::MdbMirror`]: one dump, then RTM_NEWMDB / RTM_DELMDB,
//!   resynchronised after lost notifications, `watch.rs`). Its capacity is
//!   the bridge's `mcast_hash_max` minus the groups outside the rendezvous
//!   range.
//! - Subset groups are permanent IPv6 or IPv4 MDB entries, one per port. An action
//!   is one netlink batch (`apply.rs`): adds (create-or-replace, so an entry
//!   a host's MLD report created is made permanent, not left temporary)
//!   before deletes, errors only, one barrier; a failure part way is undone.
//! - Spanning tree: the FDB mirror follows each port's state
//!   (IFLA_BRPORT_STATE); only forwarding ports lead to members or count as
//!   ports of a parent group. When a port changes state (and, on a bridge
//!   running STP, when a member is learned behind another port afterwards)
//!   the backend notifies [`Backend::topology_events`] and the core re-pushes
//!   its groups (`core/repush.rs`).
//! - The agent runs inside the switch's network namespace; the backend only
//!   sees that namespace.

pub mod apply;
pub mod fdb;
pub mod mirror;
pub mod socket;
mod watch;
/// The MDB codec (its own crate, shared with the SNMP test switch).
pub use subcast_mdb as mdb;

use crate::backend::{Backend, BackendError, InstalledGroup, Lookup, PortId, PortSet, SwitchView};
use crate::core::action::{ActionResult, Change, Refresh};
use fdb::FdbCache;
use futures::{StreamExt, TryStreamExt};
use mirror::MdbMirror;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::MulticastGroup;
use socket::{MdbSocket, unreachable};
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use subcast_proto::{BackendKind, Member};
use tokio::task::JoinHandle;

/// What the view reads; kept current by the notification tasks.
#[derive(Debug)]
pub struct BridgeState {
    pub fdb: FdbCache,
    pub mdb: MdbMirror,
    /// The bridge's `mcast_hash_max` (groups the MDB can hold).
    pub hash_max: Option<u32>,
    /// The guarded rendezvous range and the counter of removed entries.
    pub guard: Option<(ipnet::Ipv6Net, prometheus_client::metrics::counter::Counter)>,
    /// Full MDB reads after lost notifications.
    pub resyncs: u64,
    /// The bridge runs the spanning tree (`stp_state` != 0).
    pub stp: bool,
}

pub(crate) fn lock(m: &Mutex<BridgeState>) -> MutexGuard<'_, BridgeState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The core's view of one bridge.
#[derive(Debug, Clone)]
pub struct BridgeView {
    state: Arc<Mutex<BridgeState>>,
    vlan_filtering: bool,
}

impl SwitchView for BridgeView {
    fn kind(&self) -> BackendKind {
        BackendKind::LinuxBridge
    }

    fn port_count(&self) -> u16 {
        u16::try_from(lock(&self.state).fdb.ports.len()).unwrap_or(u16::MAX)
    }

    fn table_capacity(&self) -> Option<u32> {
        let st = lock(&self.state);
        let others = st.mdb.groups_outside(st.guard.as_ref().map(|(r, _)| r));
        st.hash_max
            .map(|h| h.saturating_sub(u32::try_from(others).unwrap_or(u32::MAX)))
    }

    fn port_toward(&self, vlan: u16, member: &Member) -> Lookup<PortId> {
        let st = lock(&self.state);
        let c = &st.fdb;
        let p = match member {
            Member::Mac(m) => c.port_of_mac(vlan, m),
            Member::Ipv6(a) => c.mac_of_ipv6(a).and_then(|m| c.port_of_mac(vlan, &m)),
            Member::Ipv4(a) => c.mac_of_ipv4(a).and_then(|m| c.port_of_mac(vlan, &m)),
        };
        p.map_or(Lookup::Absent, Lookup::Found)
    }

    fn parent_ports(&self, vlan: u16, parent: Ipv6Addr) -> Lookup<PortSet> {
        let vid = if self.vlan_filtering { vlan } else { 0 };
        let st = lock(&self.state);
        st.mdb.ports(vid, parent).map_or(Lookup::Absent, |p| {
            Lookup::Found(p.into_iter().filter(|p| st.fdb.forwards(*p)).collect())
        })
    }

    fn port_forwards(&self, port: PortId) -> bool {
        lock(&self.state).fdb.forwards(port)
    }
}

/// A Linux bridge in the agent's network namespace.
#[derive(Debug)]
pub struct LinuxBridge {
    bridge: String,
    bridge_ifindex: u32,
    state: Arc<Mutex<BridgeState>>,
    mdb: MdbSocket,
    /// Without VLAN filtering the bridge takes MDB entries on VLAN 0 only.
    vlan_filtering: bool,
    tasks: Vec<JoinHandle<()>>,
    /// Notified when forwarding ports change (see the module docs).
    events: Arc<tokio::sync::Notify>,
}

/// Whether a bridge link message says VLAN filtering is on, and its hash_max.
fn bridge_info(link: &netlink_packet_route::link::LinkMessage) -> (bool, Option<u32>) {
    use netlink_packet_route::link::{InfoBridge, InfoData, LinkAttribute, LinkInfo};
    let mut filtering = false;
    let mut hash_max = None;
    for a in &link.attributes {
        let LinkAttribute::LinkInfo(infos) = a else {
            continue;
        };
        for i in infos {
            let LinkInfo::Data(InfoData::Bridge(b)) = i else {
                continue;
            };
            for x in b {
                match x {
                    InfoBridge::VlanFiltering(v) => filtering = *v,
                    InfoBridge::MulticastHashMax(h) => hash_max = Some(*h),
                    _ => {}
                }
            }
        }
    }
    (filtering, hash_max)
}

/// The bridge's `stp_state` from its link message, if present.
fn bridge_stp(link: &netlink_packet_route::link::LinkMessage) -> Option<bool> {
    use netlink_packet_route::link::{InfoBridge, InfoData, LinkAttribute, LinkInfo};
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::Bridge(b)) => b.iter().find_map(|x| match x {
                InfoBridge::StpState(s) => {
                    Some(*s != netlink_packet_route::link::BridgeStpState::Disabled)
                }
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

impl Drop for LinuxBridge {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl LinuxBridge {
    /// Opens the bridge named `bridge`: subscribes to neighbour, link and
    /// MDB notifications, then reads the ports, the FDB and the MDB once.
    pub async fn open(bridge: &str) -> Result<Self, BackendError> {
        Self::open_with(bridge, None).await
    }

    /// As [`LinuxBridge::open`], with the receive buffer of the MDB
    /// notification socket set to `notify_rcvbuf` bytes (the kernel's
    /// default otherwise; a small one loses notifications under bursts,
    /// which the resync then covers).
    pub async fn open_with(
        bridge: &str,
        notify_rcvbuf: Option<usize>,
    ) -> Result<Self, BackendError> {
        let (conn, handle, mut messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Neigh, MulticastGroup::Link])
                .map_err(|e| unreachable("rtnetlink socket", e))?;
        let conn_task = tokio::spawn(conn);
        let mdb_events =
            watch::subscribe(notify_rcvbuf).map_err(|e| unreachable("MDB notifications", e))?;
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
        let (vlan_filtering, hash_max) = bridge_info(&link);
        let stp = bridge_stp(&link).unwrap_or(false);
        let mut cache = FdbCache::new(bridge_ifindex);
        let mut links = handle.link().get().execute();
        while let Some(l) = links
            .try_next()
            .await
            .map_err(|e| unreachable("link dump", e))?
        {
            cache.apply_link(&l, false);
        }
        for family in [
            AddressFamily::Bridge,
            AddressFamily::Inet6,
            AddressFamily::Inet,
        ] {
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
        let mut sock = MdbSocket::new()?;
        let mut mirror = MdbMirror::new(bridge_ifindex);
        mirror.replace(sock.dump().await?);
        tracing::info!(
            bridge,
            ifindex = bridge_ifindex,
            ports = cache.ports.len(),
            fdb_entries = cache.fdb_len(),
            hash_max = ?hash_max,
            stp,
            "linux bridge opened"
        );
        let state = Arc::new(Mutex::new(BridgeState {
            fdb: cache,
            mdb: mirror,
            hash_max,
            guard: None,
            resyncs: 0,
            stp,
        }));
        let events = Arc::new(tokio::sync::Notify::new());
        let s2 = state.clone();
        let ev = events.clone();
        let follow = tokio::spawn(async move {
            while let Some((msg, _)) = messages.next().await {
                let NetlinkPayload::InnerMessage(m) = msg.payload else {
                    continue;
                };
                let mut st = lock(&s2);
                let mut moved = false;
                match m {
                    RouteNetlinkMessage::NewNeighbour(n) => {
                        moved = st.fdb.apply_neighbour(&n, false) && st.stp;
                    }
                    RouteNetlinkMessage::DelNeighbour(n) => {
                        st.fdb.apply_neighbour(&n, true);
                    }
                    RouteNetlinkMessage::NewLink(l) => {
                        if l.header.index == bridge_ifindex {
                            if let (_, Some(h)) = bridge_info(&l) {
                                st.hash_max = Some(h);
                            }
                            if let Some(s) = bridge_stp(&l) {
                                st.stp = s;
                            }
                        }
                        if let Some(s) = st.fdb.apply_link(&l, false) {
                            let port = st.fdb.ports.get(&l.header.index).cloned();
                            tracing::info!(
                                port = port.as_deref().unwrap_or("?"),
                                ifindex = l.header.index,
                                state = fdb::state_name(s),
                                "bridge port changed state: re-pushing groups"
                            );
                            ev.notify_one();
                        }
                    }
                    RouteNetlinkMessage::DelLink(l) => {
                        st.fdb.apply_link(&l, true);
                    }
                    _ => {}
                }
                if moved {
                    tracing::debug!(
                        "a host was learned behind another port of a bridge running STP: re-pushing groups"
                    );
                    ev.notify_one();
                }
            }
            tracing::warn!("rtnetlink notification stream ended: FDB no longer followed");
        });
        let watch_task = tokio::spawn(watch::follow(
            mdb_events,
            state.clone(),
            MdbSocket::new()?,
            bridge_ifindex,
        ));
        // Keep the handle alive as long as the connection task runs.
        drop(handle);
        Ok(LinuxBridge {
            bridge: bridge.to_owned(),
            bridge_ifindex,
            state,
            mdb: sock,
            vlan_filtering,
            tasks: vec![conn_task, follow, watch_task],
            events,
        })
    }

    pub fn bridge_ifindex(&self) -> u32 {
        self.bridge_ifindex
    }

    pub fn name(&self) -> &str {
        &self.bridge
    }

    /// Keeps rendezvous groups closed: every entry inside `range` the bridge
    /// learned from an MLD report is deleted as soon as it is notified (or
    /// found by a resync); `removed` counts them. The range also separates
    /// the groups subcast owns from the others in the capacity. For no
    /// window at all, also drop MLD reports from host ports with nftables
    /// (see the README).
    pub fn guard_range(
        &mut self,
        range: ipnet::Ipv6Net,
        removed: prometheus_client::metrics::counter::Counter,
    ) {
        lock(&self.state).guard = Some((range, removed));
    }

    /// The current FDB mirror (for tests and logs).
    pub fn fdb(&self) -> FdbCache {
        lock(&self.state).fdb.clone()
    }

    /// How many times lost MDB notifications made the backend read the
    /// whole MDB again.
    pub fn resyncs(&self) -> u64 {
        lock(&self.state).resyncs
    }

    /// Every MDB entry of this bridge, from a fresh dump.
    pub async fn mdb_entries(&mut self) -> Result<Vec<mdb::MdbEntry>, BackendError> {
        let all = self.mdb.dump().await?;
        Ok(all
            .into_iter()
            .filter(|e| e.bridge == self.bridge_ifindex)
            .collect())
    }

    /// A readable name of a port for reports and logs (e.g. "veth-x1").
    pub fn port_name(&self, port: PortId) -> String {
        lock(&self.state)
            .fdb
            .ports
            .get(&port)
            .cloned()
            .unwrap_or_else(|| format!("{}:if{port}", self.bridge))
    }
}

impl Backend for LinuxBridge {
    fn table_vlan(&self, vlan: u16) -> u16 {
        if self.vlan_filtering { vlan } else { 0 }
    }

    fn topology_events(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.events.clone())
    }

    fn view(&self) -> Arc<dyn SwitchView> {
        Arc::new(BridgeView {
            state: self.state.clone(),
            vlan_filtering: self.vlan_filtering,
        })
    }

    async fn apply(&mut self, changes: &[Change]) -> ActionResult {
        let vf = self.vlan_filtering;
        apply::apply(&mut self.mdb, self.bridge_ifindex, changes, |v| {
            if vf { v } else { 0 }
        })
        .await
    }

    /// The view never answers "unknown"; a refresh re-reads the MDB anyway.
    async fn refresh(&mut self, _r: &Refresh) -> Result<(), BackendError> {
        let entries = self.mdb.dump().await?;
        lock(&self.state).mdb.replace(entries);
        Ok(())
    }

    async fn installed(
        &mut self,
        range: ipnet::Ipv6Net,
    ) -> Result<Vec<InstalledGroup>, BackendError> {
        let br = self.bridge_ifindex;
        let mut groups: BTreeMap<(u16, Ipv6Addr), PortSet> = BTreeMap::new();
        for e in self.mdb_entries().await? {
            if let Some(a) = e.addr.group()
                && range.contains(&a)
                && e.port != br
            {
                groups.entry((e.vid, a)).or_default().insert(e.port);
            }
        }
        Ok(groups
            .into_iter()
            .map(|((vlan, group), ports)| InstalledGroup { vlan, group, ports })
            .collect())
    }
}
