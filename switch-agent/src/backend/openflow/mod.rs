//! Open vSwitch backend: the agent is the OpenFlow 1.3 controller of its bridge.
//!
//! - The agent listens on TCP ([`OpenflowConfig::listen`]); the bridge connects with
//!   `ovs-vsctl set-controller BR tcp:ADDR` (bridge with `protocols=OpenFlow13
//!   fail_mode=secure`). A new connection replaces the old one.
//! - Handshake: HELLO (1.3 only), FEATURES, SET_CONFIG (whole packets to the
//!   controller), PORT_DESC, the learning pipeline (`pipeline.rs`) with the learned
//!   flows, then reconciliation (below). Ports follow PORT_STATUS.
//! - MAC location by learning (two tables, see `pipeline.rs`): a PACKET_IN from
//!   an unknown source (table-0 miss) or an ND copy teaches source MAC -> in_port
//!   and IPv6 source -> MAC; the backend installs `in_port,eth_src -> goto 1` and
//!   `eth_dst=MAC -> output:PORT` (idle timeout) and resubmits the packet; unknown
//!   destinations flood. A member that has sent nothing yet cannot be placed
//!   (`port_toward` -> None). VLANs are ignored for learning (labs are untagged).
//!   A reconnect of the same datapath (e.g. a restarted ovs-vswitchd) keeps the
//!   learned locations and re-installs their flows.
//! - Subset group X: GROUP_MOD type ALL, one `output:PORT` bucket per port (ADD the
//!   first time, MODIFY afterwards: hitless), plus FLOW_MOD `eth_type=0x86dd,
//!   ipv6_dst=X [, vlan_vid=V]` (an IPv4 group: `eth_type=0x0800, ipv4_dst=X`) -> group
//!   (table 1, priority 100, cookie `0x5c..` | id).
//!   Removal deletes the flow (by cookie) and the group. Every action's mods go in
//!   one atomic bundle (`apply.rs`): all of them or none.
//! - Capacity: GROUP_FEATURES' limit for groups of type ALL minus the groups on the
//!   switch that are not subset groups, read at every (re)connect.
//! - Group ids of subset groups are `0x5c00_0000 | n`. On every (re)connect the
//!   backend reads GROUP_DESC and deletes subset groups it does not own (a crashed
//!   agent's leftovers), and re-pushes the ones it owns.

mod apply;
mod pipeline;
mod session;

use crate::backend::{Backend, BackendError, InstalledGroup, Lookup, PortId, PortSet, SwitchView};
use crate::core::action::{ActionResult, Change, Refresh};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use subcast_ofp13::action::Instruction;
use subcast_ofp13::error::{OFPET_FLOW_MOD_FAILED, OFPET_GROUP_MOD_FAILED};
use subcast_ofp13::group_mod::OFPGT_ALL;
use subcast_ofp13::oxm::OFPVID_PRESENT;
use subcast_ofp13::port::OFPP_MAX;
use subcast_ofp13::{
    Action, Bucket, FlowMod, FlowStatsRequest, Frame, GroupMod, Match, Message, MultipartReply,
    MultipartReplyBody, MultipartRequest, MultipartRequestBody, Oxm,
};
use subcast_proto::{BackendKind, Member};
use tokio::sync::watch;

/// Cookie of subset-group flows (low 32 bits: the group id).
pub const SUBSET_COOKIE: u64 = 0x5c00_0000_0000_0000;
/// Cookie of learned forwarding flows and the table-miss flow.
pub const LEARN_COOKIE: u64 = 0x1e00_0000_0000_0000;
/// Mask selecting the cookie kind.
pub const COOKIE_KIND_MASK: u64 = 0xff00_0000_0000_0000;
/// Group ids of subset groups are `SUBSET_GROUP_BASE | n`.
pub const SUBSET_GROUP_BASE: u32 = 0x5c00_0000;
/// Priority of subset-group flows.
pub const SUBSET_PRIORITY: u16 = 100;

fn is_subset_gid(gid: u32) -> bool {
    gid & 0xff00_0000 == SUBSET_GROUP_BASE
}

/// `backend:` settings of the OpenFlow backend.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OpenflowConfig {
    /// Address the agent listens on; point the bridge at it with
    /// `ovs-vsctl set-controller BR tcp:ADDR`. Default 127.0.0.1:6653.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// How long an operation waits for the switch to connect. Default 10000.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// How long an operation waits for the switch's barrier reply. Default 5000.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Idle timeout of learned forwarding flows, seconds. Default 300.
    #[serde(default = "default_learn_idle")]
    pub learn_idle_timeout_s: u16,
    /// Flood IPv6 multicast of scope wider than link-local that has no flow
    /// (parent groups without snooping). When false such packets are dropped, so a
    /// removed subset group reaches no one. Link-local multicast (ND, MLD) and
    /// broadcast always flood. Default true.
    #[serde(default = "default_true")]
    pub flood_unknown_multicast: bool,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6653))
}
fn default_connect_timeout() -> u64 {
    10_000
}
fn default_request_timeout() -> u64 {
    5_000
}
fn default_learn_idle() -> u16 {
    300
}
fn default_true() -> bool {
    true
}

impl Default for OpenflowConfig {
    fn default() -> Self {
        OpenflowConfig {
            listen: default_listen(),
            connect_timeout_ms: default_connect_timeout(),
            request_timeout_ms: default_request_timeout(),
            learn_idle_timeout_s: default_learn_idle(),
            flood_unknown_multicast: true,
        }
    }
}

impl OpenflowConfig {
    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// A subset group the agent owns.
#[derive(Debug, Clone)]
struct Owned {
    gid: u32,
    ports: PortSet,
}

#[derive(Debug, Default)]
struct State {
    conn: Option<session::ConnHandle>,
    datapath_id: Option<u64>,
    /// port number -> name (from PORT_DESC / PORT_STATUS).
    ports: BTreeMap<u32, String>,
    /// Learned MAC -> port.
    macs: HashMap<[u8; 6], u32>,
    /// Learned IPv6 source -> MAC.
    ipv6: HashMap<Ipv6Addr, [u8; 6]>,
    owned: HashMap<(u16, Ipv6Addr), Owned>,
    next_gid: u32,
    /// Rendezvous range whose uninstalled groups are dropped.
    guard: Option<ipnet::Ipv6Net>,
    /// Parent groups read by the last refresh, and when.
    parents: HashMap<(u16, Ipv6Addr), (Option<PortSet>, std::time::Instant)>,
    /// Subset groups the switch can hold (group table size minus groups
    /// subcast does not own), read at connect.
    capacity: Option<u32>,
    /// Running connection tasks (aborted when the backend is dropped).
    sessions: Vec<tokio::task::AbortHandle>,
}

#[derive(Debug)]
struct Shared {
    config: OpenflowConfig,
    local: SocketAddr,
    state: Mutex<State>,
    xid: AtomicU32,
    /// Some(connection id) once a switch has finished the handshake.
    ready: watch::Sender<Option<u64>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(super) fn next_xid(&self) -> u32 {
        self.xid.fetch_add(1, Ordering::Relaxed)
    }
    fn listen_addr(&self) -> String {
        format!("tcp:{}", self.local)
    }
    fn not_connected(&self) -> BackendError {
        BackendError::Unreachable(format!(
            "no OpenFlow switch connected; run `ovs-vsctl set-controller BR {}` and check \
             the bridge has protocols=OpenFlow13",
            self.listen_addr()
        ))
    }
}

/// The Open vSwitch (OpenFlow 1.3) backend.
#[derive(Debug)]
pub struct OpenFlow {
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for OpenFlow {
    fn drop(&mut self) {
        self.accept.abort();
        let mut st = self.shared.lock();
        st.conn = None;
        for s in st.sessions.drain(..) {
            s.abort();
        }
    }
}

fn group_mod_for(command: u16, gid: u32, ports: &PortSet) -> GroupMod {
    GroupMod {
        command,
        group_type: OFPGT_ALL,
        group_id: gid,
        buckets: ports
            .iter()
            .map(|p| Bucket::all(vec![Action::output(*p)]))
            .collect(),
    }
}

fn group_match(vlan: u16, group: Ipv6Addr) -> Match {
    // An IPv4 group (IPv4-mapped in the push protocol) matches `ipv4_dst`.
    let mut f = match group.to_ipv4_mapped() {
        Some(v4) => vec![
            Oxm::EthType(0x0800),
            Oxm::Ipv4Dst {
                addr: v4,
                mask: None,
            },
        ],
        None => vec![
            Oxm::EthType(0x86dd),
            Oxm::Ipv6Dst {
                addr: group,
                mask: None,
            },
        ],
    };
    if vlan != 0 {
        f.insert(
            0,
            Oxm::VlanVid {
                vid: OFPVID_PRESENT | (vlan & 0x0fff),
                mask: None,
            },
        );
    }
    Match::new(f)
}

fn flow_for(vlan: u16, group: Ipv6Addr, gid: u32) -> FlowMod {
    FlowMod {
        cookie: SUBSET_COOKIE | u64::from(gid),
        table_id: pipeline::FWD_TABLE,
        ..FlowMod::add(
            SUBSET_PRIORITY,
            group_match(vlan, group),
            vec![Instruction::ApplyActions(vec![Action::Group(gid)])],
        )
    }
}

/// Maps the first OFPT_ERROR among `frames` to a backend error.
fn check_errors(frames: &[Frame]) -> Result<(), BackendError> {
    for f in frames {
        if let Message::Error(e) = &f.message {
            let what = format!(
                "switch answered OFPT_ERROR type {} code {} to xid {}",
                e.typ, e.code, f.xid
            );
            return Err(match (e.typ, e.code) {
                // OUT_OF_GROUPS, OUT_OF_BUCKETS / TABLE_FULL
                (OFPET_GROUP_MOD_FAILED, 3 | 4) | (OFPET_FLOW_MOD_FAILED, 1) => {
                    BackendError::TableFull(what)
                }
                _ => BackendError::Refused(what),
            });
        }
    }
    Ok(())
}

fn output_ports(actions: &[Action], groups: &HashMap<u32, Vec<Bucket>>, out: &mut PortSet) {
    for a in actions {
        match a {
            Action::Output { port, .. } if *port <= OFPP_MAX => {
                out.insert(*port);
            }
            Action::Group(g) => {
                for b in groups.get(g).into_iter().flatten() {
                    for a in &b.actions {
                        if let Action::Output { port, .. } = a
                            && *port <= OFPP_MAX
                        {
                            out.insert(*port);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

impl OpenFlow {
    /// Binds `config.listen` and starts accepting the switch's connection. Returns
    /// at once; operations wait up to `connect_timeout_ms` for the switch.
    pub async fn listen(config: OpenflowConfig) -> Result<OpenFlow, BackendError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| {
                BackendError::Other(format!(
                    "cannot listen for the OpenFlow switch on {}: {e}; pick a free \
                     backend.listen address",
                    config.listen
                ))
            })?;
        Self::start(listener, config)
    }

    /// Like [`OpenFlow::listen`] with an already bound listener (e.g. one made inside
    /// the switch's network namespace); `config.listen` is ignored. Needs a tokio
    /// runtime.
    pub fn with_listener(
        listener: std::net::TcpListener,
        config: OpenflowConfig,
    ) -> Result<OpenFlow, BackendError> {
        let l = listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
            .map_err(|e| BackendError::Other(format!("OpenFlow listener: {e}")))?;
        Self::start(l, config)
    }

    fn start(
        listener: tokio::net::TcpListener,
        config: OpenflowConfig,
    ) -> Result<OpenFlow, BackendError> {
        let local = listener
            .local_addr()
            .map_err(|e| BackendError::Other(format!("OpenFlow listener address: {e}")))?;
        let shared = Arc::new(Shared {
            config,
            local,
            state: Mutex::new(State {
                next_gid: 1,
                ..State::default()
            }),
            xid: AtomicU32::new(1),
            ready: watch::Sender::new(None),
        });
        let accept = tokio::spawn(session::accept_loop(listener, shared.clone()));
        Ok(OpenFlow { shared, accept })
    }

    /// The address the switch must connect to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// Waits until a switch has connected and finished the handshake; returns its
    /// datapath id.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<u64, BackendError> {
        let mut rx = self.shared.ready.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| r.is_some()))
            .await
            .map_err(|_| self.shared.not_connected())?
            .map_err(|_| self.shared.not_connected())?;
        Ok(self.shared.lock().datapath_id.unwrap_or(0))
    }

    /// The id of the live connection, once its handshake is done.
    pub fn connection(&self) -> Option<u64> {
        *self.shared.ready.borrow()
    }

    /// Waits for a connection other than `old` to finish its handshake (the
    /// switch reconnected).
    pub async fn wait_new_connection(
        &self,
        old: u64,
        timeout: Duration,
    ) -> Result<u64, BackendError> {
        let mut rx = self.shared.ready.subscribe();
        let r = tokio::time::timeout(timeout, rx.wait_for(|r| r.is_some_and(|id| id != old)))
            .await
            .map_err(|_| self.shared.not_connected())?
            .map_err(|_| self.shared.not_connected())?;
        Ok(r.unwrap_or(0))
    }

    async fn ready(&self) -> Result<(), BackendError> {
        let t = Duration::from_millis(self.shared.config.connect_timeout_ms);
        self.wait_connected(t).await.map(|_| ())
    }

    /// Keeps the rendezvous range closed: IPv6 traffic to an address in `range`
    /// without a subset-group flow is dropped (otherwise an uninstalled group would
    /// flood like any unknown multicast). Installed now if a switch is connected, and
    /// on every later connection.
    pub async fn guard_range(&self, range: ipnet::Ipv6Net) -> Result<(), BackendError> {
        self.shared.lock().guard = Some(range);
        if self.shared.ready.borrow().is_some() {
            let frames = self
                .shared
                .transact(vec![pipeline::guard_flow(range)])
                .await?;
            check_errors(&frames)?;
        }
        Ok(())
    }

    /// Number of MAC addresses learned so far.
    pub fn learned_macs(&self) -> usize {
        self.shared.lock().macs.len()
    }
}

/// How long parent ports read from the switch answer lookups.
pub const PARENT_TTL: Duration = Duration::from_secs(2);

/// The core's view of the OpenFlow switch: learned hosts (live), parent
/// groups read by the last refresh (for [`PARENT_TTL`]).
#[derive(Debug, Clone)]
pub struct OfView {
    shared: Arc<Shared>,
}

impl SwitchView for OfView {
    fn kind(&self) -> BackendKind {
        BackendKind::Openflow
    }

    fn port_count(&self) -> u16 {
        let n = self
            .shared
            .lock()
            .ports
            .keys()
            .filter(|p| **p <= OFPP_MAX)
            .count();
        u16::try_from(n).unwrap_or(u16::MAX)
    }

    fn table_capacity(&self) -> Option<u32> {
        self.shared.lock().capacity
    }

    fn port_toward(&self, _vlan: u16, member: &Member) -> Lookup<PortId> {
        if self.shared.ready.borrow().is_none() {
            return Lookup::Unknown;
        }
        let st = self.shared.lock();
        let mac = match member {
            Member::Mac(m) => Some(m.0),
            Member::Ipv6(a) => st.ipv6.get(a).copied(),
            Member::Ipv4(_) => None,
        };
        mac.and_then(|m| st.macs.get(&m).copied())
            .map_or(Lookup::Absent, Lookup::Found)
    }

    fn parent_ports(&self, vlan: u16, parent: Ipv6Addr) -> Lookup<PortSet> {
        match self.shared.lock().parents.get(&(vlan, parent)) {
            Some((p, at)) if at.elapsed() < PARENT_TTL => {
                p.clone().map_or(Lookup::Absent, Lookup::Found)
            }
            _ => Lookup::Unknown,
        }
    }
}

impl OpenFlow {
    /// Number of switch ports (not counting the local port).
    pub fn port_count(&self) -> u16 {
        self.view_handle().port_count()
    }

    /// A readable name of a port (e.g. "p2").
    pub fn port_name(&self, port: PortId) -> String {
        self.shared
            .lock()
            .ports
            .get(&port)
            .cloned()
            .unwrap_or_else(|| format!("ofport{port}"))
    }

    fn view_handle(&self) -> OfView {
        OfView {
            shared: self.shared.clone(),
        }
    }

    /// The port `member` was learned on, once a switch is connected.
    pub async fn port_toward(
        &mut self,
        vlan: u16,
        member: &Member,
    ) -> Result<Option<PortId>, BackendError> {
        self.ready().await?;
        Ok(self.view_handle().port_toward(vlan, member).found())
    }

    /// Ports the switch's flows for `parent` output to (through groups), read
    /// from the switch; `None` if it has no flow for `parent`.
    pub async fn parent_ports(
        &mut self,
        vlan: u16,
        parent: Ipv6Addr,
    ) -> Result<Option<PortSet>, BackendError> {
        self.ready().await?;
        let frames = self
            .shared
            .transact(vec![
                Message::MultipartRequest(MultipartRequest {
                    flags: 0,
                    body: MultipartRequestBody::Flow(FlowStatsRequest {
                        r#match: group_match(vlan, parent),
                        ..FlowStatsRequest::all(0, 0)
                    }),
                }),
                Message::MultipartRequest(MultipartRequest {
                    flags: 0,
                    body: MultipartRequestBody::GroupDesc,
                }),
            ])
            .await?;
        check_errors(&frames)?;
        let mut groups = HashMap::new();
        let mut flows = Vec::new();
        for f in frames {
            match f.message {
                Message::MultipartReply(MultipartReply {
                    body: MultipartReplyBody::GroupDesc(g),
                    ..
                }) => groups.extend(g.into_iter().map(|g| (g.group_id, g.buckets))),
                Message::MultipartReply(MultipartReply {
                    body: MultipartReplyBody::Flow(fl),
                    ..
                }) => flows.extend(fl),
                _ => {}
            }
        }
        let want = group_match(vlan, parent);
        let mut ports = PortSet::new();
        let mut found = false;
        for fl in flows.iter().filter(|f| f.r#match == want) {
            found = true;
            for i in &fl.instructions {
                if let Instruction::ApplyActions(a) | Instruction::WriteActions(a) = i {
                    output_ports(a, &groups, &mut ports);
                }
            }
        }
        Ok(found.then_some(ports))
    }

    /// Makes `group` forward to exactly `ports` (one change).
    pub async fn install(
        &mut self,
        vlan: u16,
        group: Ipv6Addr,
        ports: &PortSet,
    ) -> Result<(), BackendError> {
        let previous = self
            .shared
            .lock()
            .owned
            .get(&(vlan, group))
            .map(|o| o.ports.clone());
        let c = Change::Install {
            vlan,
            group,
            ports: ports.clone(),
            previous,
        };
        self.apply(&[c]).await.map_err(|e| e.error)
    }

    /// Removes `group` (one change; absent is not an error).
    pub async fn remove(&mut self, vlan: u16, group: Ipv6Addr) -> Result<(), BackendError> {
        let Some(o) = self.shared.lock().owned.get(&(vlan, group)).cloned() else {
            return Ok(());
        };
        let c = Change::Remove {
            vlan,
            group,
            ports: o.ports,
        };
        self.apply(&[c]).await.map_err(|e| e.error)
    }
}

impl Backend for OpenFlow {
    fn view(&self) -> Arc<dyn SwitchView> {
        Arc::new(self.view_handle())
    }

    async fn apply(&mut self, changes: &[Change]) -> ActionResult {
        self.ready().await?;
        apply::apply(&self.shared, changes).await
    }

    async fn refresh(&mut self, r: &Refresh) -> Result<(), BackendError> {
        self.ready().await?;
        for (vlan, parent) in &r.parents {
            let p = self.parent_ports(*vlan, *parent).await?;
            self.shared
                .lock()
                .parents
                .insert((*vlan, *parent), (p, std::time::Instant::now()));
        }
        Ok(())
    }

    async fn installed(
        &mut self,
        range: ipnet::Ipv6Net,
    ) -> Result<Vec<InstalledGroup>, BackendError> {
        self.ready().await?;
        let (groups, flows) = session::read_switch(&self.shared).await?;
        let groups: HashMap<u32, Vec<Bucket>> = groups
            .into_iter()
            .map(|g| (g.group_id, g.buckets))
            .collect();
        let mut out = Vec::new();
        for f in flows {
            let mut vlan = 0;
            let mut addr = None;
            for m in &f.r#match.fields {
                match m {
                    Oxm::Ipv6Dst {
                        addr: a,
                        mask: None,
                    } => addr = Some(*a),
                    Oxm::Ipv4Dst {
                        addr: a,
                        mask: None,
                    } => addr = Some(a.to_ipv6_mapped()),
                    Oxm::VlanVid { vid, mask: None } => vlan = vid & 0x0fff,
                    _ => {}
                }
            }
            let Some(group) = addr.filter(|a| range.contains(a)) else {
                continue;
            };
            let mut ports = PortSet::new();
            for i in &f.instructions {
                if let Instruction::ApplyActions(a) = i {
                    output_ports(a, &groups, &mut ports);
                }
            }
            out.push(InstalledGroup { vlan, group, ports });
        }
        out.sort_by_key(|g| (g.vlan, g.group));
        Ok(out)
    }
}
