//! The controller's core: validate a rendezvous request, lease an address,
//! push it to the agents, grant or refuse; release, expiry, restart
//! recovery and agent liveness. Both the UDP and the HTTP front ends call
//! [`Controller::rendezvous`] and [`Controller::release`].

use crate::config::{Config, Group};
use crate::fanout::{AgentRef, Failure, Fanout, IdGen, Outcome, PeerState, Policy, Pusher, Until};
use crate::leases::{Lease, LeaseState, Leases, Target};
use crate::metrics::{Metrics, PathLabel};
use crate::pool::Pool;
use crate::store::{AuditEntry, Store};

mod agents;
mod recover;
use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use subcast_proto::{Clear, Heartbeat, Hello, Members, Message, RefuseReason, SetSubset, now_us};
use tokio::net::UdpSocket;

pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// How a request names a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// A member name, IPv6 or MAC address as text (HTTP).
    Text(String),
    /// A wire member (UDP).
    Member(subcast_proto::Member),
}

/// A rendezvous request from either front end.
#[derive(Debug, Clone)]
pub struct Request {
    /// Parent group address or group name.
    pub parent: String,
    pub vlan: Option<u16>,
    pub targets: Vec<TargetSpec>,
    /// 0 or `None`: the configured default.
    pub lifetime_ms: Option<u64>,
    pub requester: String,
    /// "udp" or "http", for metrics.
    pub path: &'static str,
}

/// A refusal a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefuseReason,
    pub detail: String,
    /// The switch that refused or did not answer, if any.
    pub switch: Option<String>,
}

impl Refusal {
    fn new(reason: RefuseReason, detail: impl Into<String>) -> Self {
        Refusal {
            reason,
            detail: detail.into(),
            switch: None,
        }
    }
}

/// What an agent last told us.
#[derive(Debug, Clone)]
pub struct AgentSeen {
    pub from: SocketAddr,
    pub last_heard: Instant,
    pub last_heard_ms: u64,
    pub hello: Option<Hello>,
    pub heartbeat: Option<Heartbeat>,
}

#[derive(Debug, Default)]
struct State {
    pools: HashMap<u16, Pool>,
    leases: Leases,
    agents: HashMap<u32, AgentSeen>,
}

/// Result of a release: per-switch outcome of the CLEAR.
#[derive(Debug, Clone)]
pub struct Released {
    pub lease: Lease,
    pub clear: Vec<(u32, String)>,
}

#[derive(Debug)]
pub struct Controller {
    pub config: Arc<Config>,
    pub store: Store,
    pub metrics: Metrics,
    pub pusher: Pusher,
    txids: IdGen,
    lease_ids: IdGen,
    state: Mutex<State>,
}

impl Controller {
    /// Binds the UDP socket and opens the database. The caller spawns
    /// [`crate::udp::run`], then awaits [`Controller::recover`], then
    /// spawns [`Controller::run_expiry`] (as [`crate::start`] does).
    pub async fn new(config: Config) -> anyhow::Result<Arc<Controller>> {
        let socket = UdpSocket::bind(config.udp_listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind UDP {}: {e} (is another controller running? change controller.udp_listen)", config.udp_listen))?;
        let store = Store::open(config.database.as_deref())
            .map_err(|e| anyhow::anyhow!("cannot open database {:?}: {e}", config.database))?;
        let policy = Policy {
            rto: config.retransmit,
            attempts: config.attempts,
        };
        let pusher = Pusher::new(
            Arc::new(socket),
            config.controller_id,
            config.keys.clone(),
            policy,
        );
        let mut st = State::default();
        for v in config.vlans.values() {
            st.pools.insert(
                v.id,
                Pool::new(&v.pool, config.pool_slice.0, config.pool_slice.1),
            );
        }
        let ctl = Arc::new(Controller {
            txids: IdGen::new(config.controller_id),
            lease_ids: IdGen::new(config.controller_id),
            config: Arc::new(config),
            store,
            metrics: Metrics::new(),
            pusher,
            state: Mutex::new(st),
        });
        Ok(ctl)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn local_udp_addr(&self) -> std::io::Result<SocketAddr> {
        self.pusher.socket().local_addr()
    }

    fn agents_of(&self, switch_ids: &[u32]) -> Vec<AgentRef> {
        switch_ids
            .iter()
            .filter_map(|id| self.config.switch(*id))
            .map(|s| AgentRef {
                switch_id: s.id,
                addr: s.agent,
                key_id: s.key_id,
            })
            .collect()
    }

    fn switch_name(&self, id: u32) -> String {
        self.config.switch(id).map_or_else(
            || format!("switch {id}"),
            |s| format!("{} (id {id}, agent {})", s.name, s.agent),
        )
    }

    /// Records a transaction's per-agent outcomes in the audit log.
    fn audit(&self, f: &Fanout, lease_id: u64, instruction: &str) {
        let at_ms = now_ms();
        let rows = f
            .peers()
            .iter()
            .map(|(id, st)| AuditEntry {
                at_ms,
                txid: f.txid,
                lease_id,
                switch_id: *id,
                instruction: instruction.to_owned(),
                outcome: st.outcome_name().to_owned(),
                sends: st.sends(),
                detail: match st {
                    PeerState::Naked { reason, detail, .. } => {
                        format!("{}: {detail}", reason.name())
                    }
                    PeerState::Acked { port_count, .. } => format!("{port_count} ports"),
                    _ => String::new(),
                },
            })
            .collect();
        self.store.audit(rows);
    }

    fn resolve(&self, req: &Request) -> Result<(&Group, Vec<Target>, u64), Refusal> {
        let group = self.config.group(&req.parent).ok_or_else(|| {
            let known: Vec<String> = self
                .config
                .groups
                .iter()
                .map(|g| format!("{} ({})", g.name, g.parent))
                .collect();
            Refusal::new(
                RefuseReason::UnknownParent,
                format!(
                    "no negotiating group {:?}; known groups: {}",
                    req.parent,
                    known.join(", ")
                ),
            )
        })?;
        if let Some(v) = req.vlan
            && v != group.vlan
        {
            return Err(Refusal::new(
                RefuseReason::BadRequest,
                format!(
                    "group {} ({}) is in VLAN {}, the request says VLAN {v}",
                    group.name, group.parent, group.vlan
                ),
            ));
        }
        if req.targets.is_empty() {
            return Err(Refusal::new(
                RefuseReason::BadRequest,
                "no targets: name at least one member of the group",
            ));
        }
        if req.targets.len() > subcast_proto::member::MAX_MEMBERS {
            return Err(Refusal::new(
                RefuseReason::BadRequest,
                format!(
                    "{} targets; at most {}",
                    req.targets.len(),
                    subcast_proto::member::MAX_MEMBERS
                ),
            ));
        }
        let mut targets: Vec<Target> = Vec::new();
        for t in &req.targets {
            let (m, shown) = match t {
                TargetSpec::Text(s) => (group.member(s), s.clone()),
                TargetSpec::Member(m) => (group.member_of(m), m.to_string()),
            };
            let Some(m) = m else {
                let names: Vec<&str> = group.members.iter().map(|m| m.name.as_str()).collect();
                return Err(Refusal::new(
                    RefuseReason::NotAMember,
                    format!(
                        "{shown} is not a member of group {} ({}); its members are {}",
                        group.name,
                        group.parent,
                        names.join(", ")
                    ),
                ));
            };
            if !targets.iter().any(|x| x.name == m.name) {
                targets.push(Target {
                    name: m.name.clone(),
                    ipv6: m.ipv6,
                    mac: m.mac,
                });
            }
        }
        let max = self.config.lease_max.as_millis() as u64;
        let lifetime = match req.lifetime_ms {
            None | Some(0) => self.config.lease_default.as_millis() as u64,
            Some(l) if l > max => {
                return Err(Refusal::new(
                    RefuseReason::LifetimeTooLong,
                    format!(
                        "lifetime {l} ms is above the maximum of {max} ms; ask for less or raise leases.max_ms"
                    ),
                ));
            }
            Some(l) => l,
        };
        Ok((group, targets, lifetime))
    }

    /// Handles one rendezvous request end to end.
    pub async fn rendezvous(self: &Arc<Self>, req: Request) -> Result<Lease, Refusal> {
        let t0 = Instant::now();
        let r = self.rendezvous_inner(&req, t0).await;
        match &r {
            Ok(_) => {
                self.metrics
                    .granted
                    .get_or_create(&PathLabel {
                        path: req.path.to_owned(),
                    })
                    .inc();
                self.metrics
                    .grant_latency
                    .observe(t0.elapsed().as_secs_f64());
            }
            Err(f) => self.metrics.refused(f.reason.name()),
        }
        r
    }

    async fn rendezvous_inner(
        self: &Arc<Self>,
        req: &Request,
        t0: Instant,
    ) -> Result<Lease, Refusal> {
        let start_ms = now_ms();
        let (group, targets, lifetime) = self.resolve(req)?;
        let switches: Vec<u32> = self
            .config
            .switches_in_vlan(group.vlan)
            .map(|s| s.id)
            .collect();
        if switches.is_empty() {
            return Err(Refusal::new(
                RefuseReason::AgentUnreachable,
                format!(
                    "no switch carries VLAN {}; list it under a switch's `vlans:`",
                    group.vlan
                ),
            ));
        }
        let timeout = self.config.agent_timeout;
        let lease = {
            let mut st = self.state();
            for id in &switches {
                if let Some(a) = st.agents.get(id)
                    && t0.duration_since(a.last_heard) > timeout
                {
                    return Err(Refusal {
                        reason: RefuseReason::AgentUnreachable,
                        detail: format!(
                            "the agent of {} has been silent for {} ms (timeout {} ms); start it or check the path to it",
                            self.switch_name(*id),
                            t0.duration_since(a.last_heard).as_millis(),
                            timeout.as_millis()
                        ),
                        switch: Some(self.switch_name(*id)),
                    });
                }
            }
            let State { pools, leases, .. } = &mut *st;
            let pool = pools
                .get_mut(&group.vlan)
                .ok_or_else(|| Refusal::new(RefuseReason::Internal, "VLAN has no pool"))?;
            let Some(addr) = pool.allocate() else {
                return Err(Refusal::new(
                    RefuseReason::PoolExhausted,
                    format!(
                        "all {} addresses of VLAN {}'s pool slice are leased; retry after a release, shorten leases, or enlarge the pool",
                        pool.size(),
                        group.vlan
                    ),
                ));
            };
            let lease = Lease {
                id: self.lease_ids.next(),
                vlan: group.vlan,
                parent: group.parent,
                group: addr,
                targets,
                switches: switches.clone(),
                created_ms: start_ms,
                expires_ms: start_ms + lifetime,
                state: LeaseState::Pending,
                requester: req.requester.clone(),
            };
            if let Err(e) = leases.insert(lease.clone()) {
                pool.release(addr);
                return Err(Refusal::new(RefuseReason::Internal, e.to_string()));
            }
            self.metrics.leases_live.set(leases.len() as i64);
            lease
        };
        if let Err(e) = self.store.put_lease(&lease).await {
            self.forget(&lease);
            return Err(Refusal::new(
                RefuseReason::Internal,
                format!("cannot record the lease: {e}"),
            ));
        }
        let f = self.push_set(&lease, &switches, lifetime).await;
        match f.outcome() {
            Some(Outcome::AllAcked) => {
                let still_ours = self.state().leases.set_live(lease.id);
                if !still_ours {
                    return Err(Refusal::new(
                        RefuseReason::Internal,
                        "lease vanished while being granted",
                    ));
                }
                self.store
                    .set_lease_state(lease.id, LeaseState::Live, lease.expires_ms);
                let mut l = lease;
                l.state = LeaseState::Live;
                Ok(l)
            }
            other => {
                let (reason, detail, sw) = match other {
                    Some(Outcome::Failed(Failure::Nak {
                        switch_id,
                        reason,
                        detail,
                    })) => (
                        RefuseReason::AgentRefused,
                        format!(
                            "{} refused: {} ({detail})",
                            self.switch_name(switch_id),
                            reason.name()
                        ),
                        switch_id,
                    ),
                    Some(Outcome::Failed(Failure::Silent { switch_id, sends })) => (
                        RefuseReason::AgentUnreachable,
                        format!(
                            "{} did not answer {sends} sends of SET_SUBSET; is the agent running and reachable?",
                            self.switch_name(switch_id)
                        ),
                        switch_id,
                    ),
                    _ => (
                        RefuseReason::Internal,
                        "fan-out ended undecided".to_owned(),
                        0,
                    ),
                };
                let leftovers = f.maybe_applied();
                // Out of the lease table now (the refusal is final); the
                // address stays reserved and the row stays in the database
                // until the CLEAR is done.
                {
                    let mut st = self.state();
                    st.leases.remove(lease.id);
                    self.metrics.leases_live.set(st.leases.len() as i64);
                }
                let me = self.clone();
                tokio::spawn(async move { me.clear_and_forget(lease, leftovers).await });
                Err(Refusal {
                    reason,
                    detail,
                    switch: Some(self.switch_name(sw)),
                })
            }
        }
    }

    async fn push_set(&self, lease: &Lease, switches: &[u32], lifetime_ms: u64) -> Fanout {
        let txid = self.txids.next();
        let msg = Message::SetSubset(SetSubset {
            txid,
            vlan: lease.vlan,
            parent: lease.parent,
            group: lease.group,
            lifetime_ms: u32::try_from(lifetime_ms).unwrap_or(u32::MAX).max(1),
            members: Members::List(
                lease
                    .targets
                    .iter()
                    .map(|t| subcast_proto::Member::Mac(t.mac))
                    .collect(),
            ),
        });
        let f = self
            .pusher
            .push(txid, &msg, &self.agents_of(switches), Until::Decided)
            .await;
        self.audit(&f, lease.id, "SET_SUBSET");
        f
    }

    /// CLEARs `group` on `switches`; returns per-switch outcome and whether
    /// every one confirmed.
    async fn push_clear(&self, lease: &Lease, switches: &[u32]) -> (Vec<(u32, String)>, bool) {
        if switches.is_empty() {
            return (Vec::new(), true);
        }
        let txid = self.txids.next();
        let msg = Message::Clear(Clear {
            txid,
            group: lease.group,
        });
        let f = self
            .pusher
            .push(txid, &msg, &self.agents_of(switches), Until::Settled)
            .await;
        self.audit(&f, lease.id, "CLEAR");
        let out: Vec<(u32, String)> = f
            .peers()
            .iter()
            .map(|(id, s)| (*id, s.outcome_name().to_owned()))
            .collect();
        let all = f
            .peers()
            .iter()
            .all(|(_, s)| matches!(s, PeerState::Acked { .. }));
        (out, all)
    }

    /// Removes a lease from memory and returns its address at once (only
    /// for leases nothing was sent for).
    fn forget(&self, lease: &Lease) {
        let mut st = self.state();
        st.leases.remove(lease.id);
        if let Some(p) = st.pools.get_mut(&lease.vlan) {
            p.release(lease.group);
        }
        self.metrics.leases_live.set(st.leases.len() as i64);
    }

    /// CLEARs a lease that is already out of the lease table, deletes its
    /// row and returns its address to the pool. If an agent did not
    /// confirm, the address is held until the lease's own end, when the
    /// agent has dropped the entry by itself.
    async fn clear_and_forget(
        self: Arc<Self>,
        lease: Lease,
        switches: Vec<u32>,
    ) -> Vec<(u32, String)> {
        {
            let mut st = self.state();
            st.leases.remove(lease.id);
            self.metrics.leases_live.set(st.leases.len() as i64);
        }
        let (outcome, all) = self.push_clear(&lease, &switches).await;
        if let Err(e) = self.store.delete_lease(lease.id).await {
            tracing::error!(lease = lease.id, error = %e, "cannot delete lease row");
        }
        let wait_ms = lease.expires_ms.saturating_sub(now_ms());
        if all || wait_ms == 0 {
            self.return_address(lease.vlan, lease.group);
        } else {
            tracing::warn!(lease = lease.id, group = %lease.group, "CLEAR not confirmed by every agent; holding the address until the lease ends");
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
                me.return_address(lease.vlan, lease.group);
            });
        }
        outcome
    }

    fn return_address(&self, vlan: u16, group: Ipv6Addr) {
        if let Some(p) = self.state().pools.get_mut(&vlan) {
            p.release(group);
        }
    }

    /// Releases a live lease: CLEAR to its agents, then the address returns
    /// to the pool. `Ok(None)` if no such lease; `Err` if it is still pending.
    pub async fn release(self: &Arc<Self>, lease_id: u64) -> Result<Option<Released>, Refusal> {
        let lease = {
            let st = self.state();
            match st.leases.get(lease_id) {
                None => return Ok(None),
                Some(l) if l.state == LeaseState::Pending => {
                    return Err(Refusal::new(
                        RefuseReason::BadRequest,
                        format!(
                            "lease {lease_id} is still being granted; release it after the grant"
                        ),
                    ));
                }
                Some(l) => l.clone(),
            }
        };
        self.metrics.released.inc();
        let switches = lease.switches.clone();
        let clear = self.clone().clear_and_forget(lease.clone(), switches).await;
        Ok(Some(Released { lease, clear }))
    }

    /// Ends leases whose time is up; runs until the process stops.
    pub async fn run_expiry(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(25));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.expire_due();
            self.refresh_agents_up();
        }
    }

    /// Starts the CLEAR of every lease due at this moment.
    pub fn expire_due(self: &Arc<Self>) {
        let due: Vec<Lease> = {
            let mut st = self.state();
            let ids = st.leases.expired(now_ms());
            ids.into_iter()
                .filter_map(|id| st.leases.remove(id))
                .collect()
        };
        for l in due {
            self.metrics.expired.inc();
            let me = self.clone();
            let sw = l.switches.clone();
            tokio::spawn(async move {
                me.clear_and_forget(l, sw).await;
            });
        }
    }

    pub fn leases(&self) -> Vec<Lease> {
        self.state().leases.list()
    }

    pub fn lease(&self, id: u64) -> Option<Lease> {
        self.state().leases.get(id).cloned()
    }

    /// Addresses in use in `vlan`'s pool slice (for tests and status).
    pub fn pool_in_use(&self, vlan: u16) -> usize {
        self.state().pools.get(&vlan).map_or(0, |p| p.in_use())
    }
}
