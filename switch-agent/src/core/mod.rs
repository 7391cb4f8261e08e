//! The backend-independent agent: datagram in, backend calls, sealed answer
//! out. No sockets and no timers: the daemon passes the current time and
//! asks [`Agent::next_deadline`] when to call [`Agent::expire`].
//!
//! - [`validate`]: range, parent, VLAN and membership checks.
//! - [`rule`]: ports(X) = (∪ ports toward members) ∩ ports(Y).
//! - [`leases`]: expiry and the retransmission policy.
//! - [`metrics`]: Prometheus counters.
//!
//! ports(Y) comes from the configured members of Y when Y is configured
//! (the MDB learned from MLD can be polluted: any host can join Y and would
//! then be a valid target), else from the backend's view of Y (its MDB).

pub mod leases;
pub mod metrics;
pub mod rule;
pub mod validate;

use crate::backend::{Backend, BackendError, PortSet};
use leases::{Lease, Leases};
use metrics::Metrics;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Instant;
use subcast_proto::{
    Ack, Clear, Heartbeat, Hello, Key, Keyring, Member, Message, Nak, NakReason, Opener,
    ReplayGuard, Sealer, SetSubset, decode,
};
use validate::{ParentScope, Parents, Refusal};

/// What the core needs from the configuration.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub switch_id: u32,
    pub rendezvous_range: ipnet::Ipv6Net,
    pub max_lifetime_ms: u32,
    pub max_clock_skew_ms: u64,
    pub parents: Parents,
}

impl AgentSettings {
    pub fn from_config(c: &crate::config::Config) -> Self {
        AgentSettings {
            switch_id: c.switch_id,
            rendezvous_range: c.rendezvous_range,
            max_lifetime_ms: c.max_lifetime_ms,
            max_clock_skew_ms: c.max_clock_skew_ms,
            parents: Parents::new(&c.parent_groups),
        }
    }
}

/// The agent's state over one backend.
#[derive(Debug)]
pub struct Agent<B> {
    settings: AgentSettings,
    backend: B,
    opener: Opener,
    sealer: Sealer,
    leases: Leases,
    metrics: Arc<Metrics>,
    started: Instant,
}

fn backend_refusal(e: BackendError) -> Refusal {
    match e {
        BackendError::TableFull(d) => Refusal::new(NakReason::TableFull, d),
        other => Refusal::new(NakReason::BackendError, other.to_string()),
    }
}

impl<B: Backend> Agent<B> {
    /// `keyring` holds the controller keys; `own_key` seals the answers.
    pub fn new(
        settings: AgentSettings,
        backend: B,
        keyring: Keyring,
        own_key: Key,
        metrics: Arc<Metrics>,
        now: Instant,
        now_us: u64,
    ) -> Self {
        let guard = ReplayGuard::new(settings.max_clock_skew_ms.saturating_mul(1000));
        Agent {
            sealer: Sealer::new(own_key, settings.switch_id, now_us),
            opener: Opener::new(keyring, guard),
            settings,
            backend,
            leases: Leases::default(),
            metrics,
            started: now,
        }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Removes every group inside the rendezvous range that the switch
    /// holds (left by an earlier run); returns how many.
    pub async fn clean_start(&mut self) -> Result<usize, BackendError> {
        let stale = self
            .backend
            .installed(self.settings.rendezvous_range)
            .await?;
        for g in &stale {
            tracing::info!(group = %g.group, vlan = g.vlan, ports = g.ports.len(), "removing stale group");
            self.backend.remove(g.vlan, g.group).await?;
        }
        Ok(stale.len())
    }

    /// A sealed HELLO.
    pub fn hello(&mut self, now_us: u64) -> Vec<u8> {
        let m = Message::Hello(Hello {
            switch_id: self.settings.switch_id,
            backend: self.backend.kind(),
            port_count: self.backend.port_count(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
        });
        self.sealer.seal(&m, now_us)
    }

    /// A sealed HEARTBEAT.
    pub fn heartbeat(&mut self, now: Instant, now_us: u64) -> Vec<u8> {
        let m = Message::Heartbeat(Heartbeat {
            switch_id: self.settings.switch_id,
            installed_groups: self.leases.len() as u32,
            uptime_s: now.saturating_duration_since(self.started).as_secs() as u32,
        });
        self.sealer.seal(&m, now_us)
    }

    /// Handles one received datagram; returns the sealed answer to send
    /// back to its source.
    pub async fn handle_datagram(&mut self, bytes: &[u8], now: Instant, now_us: u64) -> Vec<u8> {
        let (kind, txid, result) = match self.opener.open(bytes, now_us) {
            Err(e) => {
                let dg = decode(bytes).ok();
                let kind = dg.as_ref().map_or("UNDECODABLE", |d| d.message.name());
                let txid = dg.and_then(|d| d.message.txid()).unwrap_or(0);
                tracing::warn!(error = %e, kind, txid, "datagram refused");
                (kind, txid, Err(Refusal::new(e.nak_reason(), e.to_string())))
            }
            Ok(dg) => match dg.message {
                Message::SetSubset(s) => ("SET_SUBSET", s.txid, self.set_subset(&s, now).await),
                Message::Clear(c) => ("CLEAR", c.txid, self.clear(&c).await),
                other => (
                    other.name(),
                    other.txid().unwrap_or(0),
                    Err(Refusal::new(
                        NakReason::Malformed,
                        format!(
                            "an agent accepts SET_SUBSET and CLEAR, not {}",
                            other.name()
                        ),
                    )),
                ),
            },
        };
        let reply = match result {
            Ok(port_count) => {
                self.metrics.count(kind, None);
                Message::Ack(Ack {
                    txid,
                    switch_id: self.settings.switch_id,
                    port_count,
                })
            }
            Err(r) => {
                self.metrics.count(kind, Some(r.reason));
                tracing::info!(kind, txid, reason = r.reason.name(), detail = %r.detail, "NAK");
                Message::Nak(Nak {
                    txid,
                    switch_id: self.settings.switch_id,
                    reason: r.reason,
                    detail: r.detail,
                })
            }
        };
        self.metrics.installed_groups.set(self.leases.len() as i64);
        self.metrics
            .apply_latency
            .observe(now.elapsed().as_secs_f64());
        self.sealer.seal(&reply, now_us)
    }

    /// The port set `s` resolves to on this switch (no side effect).
    pub async fn plan(&mut self, s: &SetSubset) -> Result<PortSet, Refusal> {
        let resolved =
            validate::resolve(s, &self.settings.parents, &self.settings.rendezvous_range)?;
        let mut listed = Vec::with_capacity(resolved.members.len());
        for m in &resolved.members {
            let p = self
                .backend
                .port_toward(s.vlan, m)
                .await
                .map_err(backend_refusal)?;
            listed.push((*m, p));
        }
        let parent_ports = match resolved.scope {
            ParentScope::Configured(pg) => {
                let macs: Vec<Member> = pg.members.iter().map(|d| Member::Mac(d.mac)).collect();
                let mut ports = Vec::with_capacity(macs.len());
                for m in &macs {
                    ports.push(
                        self.backend
                            .port_toward(s.vlan, m)
                            .await
                            .map_err(backend_refusal)?,
                    );
                }
                rule::parent_ports_from_members(ports)
            }
            ParentScope::Switch => self
                .backend
                .parent_ports(s.vlan, s.parent)
                .await
                .map_err(backend_refusal)?
                .ok_or_else(|| {
                    Refusal::new(
                        NakReason::UnknownParent,
                        format!(
                            "parent {} is neither configured on this agent nor known to the switch",
                            s.parent
                        ),
                    )
                })?,
        };
        rule::subset_ports(&listed, &parent_ports)
    }

    async fn set_subset(&mut self, s: &SetSubset, now: Instant) -> Result<u16, Refusal> {
        if let Some(l) = self.leases.get(&s.group)
            && l.txid == s.txid
        {
            // Retransmission: re-ACK, change nothing.
            return Ok(port_count(&l.ports));
        }
        let ports = self.plan(s).await?;
        if let Some(old) = self.leases.get(&s.group)
            && old.vlan != s.vlan
        {
            let vlan = old.vlan;
            self.backend
                .remove(vlan, s.group)
                .await
                .map_err(backend_refusal)?;
            self.leases.remove(&s.group);
        }
        self.backend
            .install(s.vlan, s.group, &ports)
            .await
            .map_err(backend_refusal)?;
        tracing::debug!(group = %s.group, txid = s.txid, ports = ?ports, "installed");
        let n = port_count(&ports);
        self.leases.insert(
            s.group,
            Lease {
                txid: s.txid,
                vlan: s.vlan,
                parent: s.parent,
                ports,
                expires: leases::expiry(now, s.lifetime_ms, self.settings.max_lifetime_ms),
            },
        );
        Ok(n)
    }

    async fn clear(&mut self, c: &Clear) -> Result<u16, Refusal> {
        if let Some(l) = self.leases.get(&c.group) {
            let vlan = l.vlan;
            self.backend
                .remove(vlan, c.group)
                .await
                .map_err(backend_refusal)?;
            self.leases.remove(&c.group);
        }
        Ok(0)
    }

    /// Removes the groups whose lease ended; returns how many. A group the
    /// backend fails to remove is retried one second later.
    pub async fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for (group, lease) in self.leases.take_expired(now) {
            match self.backend.remove(lease.vlan, group).await {
                Ok(()) => {
                    n += 1;
                    self.metrics.expired.inc();
                    tracing::debug!(%group, txid = lease.txid, "lease expired");
                }
                Err(e) => {
                    tracing::error!(%group, error = %e, "removing an expired group failed; retrying in 1 s");
                    let mut l = lease;
                    l.expires = now + std::time::Duration::from_secs(1);
                    self.leases.insert(group, l);
                }
            }
        }
        self.metrics.installed_groups.set(self.leases.len() as i64);
        n
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.leases.next_deadline()
    }

    /// Removes every installed group (clean shutdown).
    pub async fn remove_all(&mut self) {
        let groups: Vec<(Ipv6Addr, u16)> = self.leases.iter().map(|(g, l)| (*g, l.vlan)).collect();
        for (g, vlan) in groups {
            if let Err(e) = self.backend.remove(vlan, g).await {
                tracing::error!(group = %g, error = %e, "removing at shutdown failed");
            }
            self.leases.remove(&g);
        }
    }
}

fn port_count(p: &PortSet) -> u16 {
    u16::try_from(p.len()).unwrap_or(u16::MAX)
}
