//! Agents: HELLO (answered with HELLO_ACK; a new instance lost every
//! group, so its switch gets its groups again, batched), HEARTBEAT,
//! liveness and the table capacity they report.

use super::fanout::Purpose;
use super::grant::set_item;
use super::groups::{GState, Gid, PState};
use super::{Engine, Refusal, StoreOp};
use crate::config::{Config, Switch};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;
use subcast_proto::{Heartbeat, Hello, HelloAck, Message, RefuseReason};

/// What an agent last told us.
#[derive(Debug, Clone, Default)]
pub struct AgentSeen {
    pub from: Option<SocketAddr>,
    pub last_heard: Option<Instant>,
    pub last_heard_ms: u64,
    pub hello: Option<Hello>,
    pub heartbeat: Option<Heartbeat>,
    pub hellos: u64,
    pub repushes: u64,
}

#[derive(Debug)]
pub struct AgentTable {
    per: BTreeMap<u32, AgentSeen>,
}

impl AgentTable {
    pub fn new(cfg: &Config) -> AgentTable {
        AgentTable {
            per: cfg
                .switches
                .iter()
                .map(|s| (s.id, AgentSeen::default()))
                .collect(),
        }
    }

    /// Follows a reload: switches added start unheard, removed ones go.
    pub fn sync(&mut self, cfg: &Config) {
        self.per.retain(|id, _| cfg.switch(*id).is_some());
        for s in &cfg.switches {
            self.per.entry(s.id).or_default();
        }
    }

    /// The agent of `sw` said HELLO to this controller.
    pub fn said_hello(&self, sw: u32) -> bool {
        self.per.get(&sw).is_some_and(|a| a.hello.is_some())
    }
}

/// An agent as the API shows it.
#[derive(Debug, Clone)]
pub struct AgentStatus {
    pub switch: Switch,
    pub seen: Option<AgentSeen>,
    pub up: bool,
}

impl Engine {
    pub(super) fn on_hello(&mut self, now: Instant, h: Hello, from: SocketAddr) {
        let sw = h.switch_id;
        let Some(s) = self.cfg.switch(sw) else {
            return;
        };
        let (addr, key) = (s.agent, s.key_id);
        let seen = self.agents.per.entry(sw).or_default();
        let new_instance = seen.hello.as_ref().map(|x| x.instance) != Some(h.instance);
        seen.from = Some(from);
        seen.last_heard = Some(now);
        seen.last_heard_ms = self.clock.unix_ms(now);
        seen.hellos += 1;
        if new_instance {
            seen.repushes += 1;
        }
        seen.hello = Some(h.clone());
        let ack = Message::HelloAck(HelloAck {
            switch_id: sw,
            instance: h.instance,
        });
        if let Some(bytes) = self.sealing.seal(key, &ack, self.clock.unix_us(now)) {
            self.transmits.push_back((addr, bytes));
        }
        if !new_instance {
            return;
        }
        tracing::info!(switch = sw, instance = h.instance, capacity = h.table_capacity, version = %h.software_version, "agent HELLO (new instance)");
        self.write(StoreOp::AgentHello {
            switch_id: sw,
            address: from.to_string(),
            software_version: h.software_version.clone(),
            backend: h.backend.name(),
            at_ms: self.clock.unix_ms(now),
        });
        self.budgets.report(sw, h.table_capacity);
        self.repush_switch(now, sw);
        // Pre-enumeration may now have every agent it waits for.
        self.timers.at(now, super::timers::Timer::Preenumerate);
    }

    pub(super) fn on_heartbeat(&mut self, now: Instant, hb: Heartbeat, from: SocketAddr) {
        let sw = hb.switch_id;
        let seen = self.agents.per.entry(sw).or_default();
        seen.from = Some(from);
        seen.last_heard = Some(now);
        seen.last_heard_ms = self.clock.unix_ms(now);
        let cap = hb.table_capacity;
        seen.heartbeat = Some(hb);
        if self.budgets.report(sw, cap) {
            tracing::info!(
                switch = sw,
                capacity = cap,
                "agent reports a new table capacity"
            );
            self.slots_freed = true;
        }
    }

    /// The switch lost every group: it gets every group it should hold
    /// again (in BATCHes), with the lifetime the others have.
    fn repush_switch(&mut self, now: Instant, sw: u32) {
        let gids: Vec<Gid> = self
            .groups
            .by_id
            .values()
            .filter(|g| {
                g.presence(sw)
                    .is_some_and(|p| p.st.may_hold() && p.st != PState::Setting)
            })
            .map(|g| g.id)
            .collect();
        let mut n = 0;
        for gid in gids {
            let Some(g) = self.groups.get_mut(gid) else {
                continue;
            };
            let keep = g.state == GState::Installed && !g.tainted;
            let Some(p) = g.presence_mut(sw) else {
                continue;
            };
            if p.item.is_some() {
                // A CLEAR or refresh in flight: its answer settles it.
                continue;
            }
            if !keep {
                p.st = PState::Absent;
                self.uncount(gid, sw);
                self.teardown_step(now, gid);
                continue;
            }
            p.st = PState::Setting;
            let life = Self::ms_until(now, g.held_until);
            let body = set_item(g, life);
            let lease = g.first_lease;
            let it = self
                .fanout
                .queue(sw, gid, body, Purpose::Repush, None, lease);
            if let Some(p) = self.groups.get_mut(gid).and_then(|g| g.presence_mut(sw)) {
                p.item = Some(it);
            }
            n += 1;
        }
        if n > 0 {
            tracing::info!(
                switch = sw,
                groups = n,
                "re-pushing groups to a restarted agent"
            );
        }
        // Groups it joined by a reload, before its agent was up.
        self.join_push(now, sw);
    }

    /// Refuses at once when an agent of the VLAN is known dead.
    pub(super) fn check_alive(&self, now: Instant, switches: &[u32]) -> Result<(), Refusal> {
        let timeout = self.cfg.agent_timeout;
        for id in switches {
            if let Some(t) = self.agents.per.get(id).and_then(|a| a.last_heard)
                && now.saturating_duration_since(t) > timeout
            {
                let name = self.switch_name(*id);
                return Err(Refusal::new(
                    RefuseReason::AgentUnreachable,
                    format!(
                        "the agent of {name} has been silent for {} ms (timeout {} ms); start it or check the path to it",
                        now.saturating_duration_since(t).as_millis(),
                        timeout.as_millis()
                    ),
                )
                .at(name));
            }
        }
        Ok(())
    }

    /// True when every agent of `vlan` said HELLO to this controller.
    pub(super) fn vlan_ready(&self, vlan: u16) -> bool {
        self.cfg.switches_in_vlan(vlan).all(|s| {
            self.agents
                .per
                .get(&s.id)
                .is_some_and(|a| a.hello.is_some())
        })
    }

    /// Every configured agent and whether it is up.
    pub fn agents(&self, now: Instant) -> Vec<AgentStatus> {
        self.cfg
            .switches
            .iter()
            .map(|s| {
                let seen = self
                    .agents
                    .per
                    .get(&s.id)
                    .filter(|a| a.last_heard.is_some())
                    .cloned();
                let up = seen
                    .as_ref()
                    .and_then(|a| a.last_heard)
                    .is_some_and(|t| now.saturating_duration_since(t) <= self.cfg.agent_timeout);
                AgentStatus {
                    switch: s.clone(),
                    seen,
                    up,
                }
            })
            .collect()
    }
}
