//! Agent liveness: HELLO and HEARTBEAT, and the view of every agent.

use super::{AgentSeen, Controller, now_ms};
use crate::fanout::Outcome;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use subcast_proto::{Heartbeat, Hello};

impl Controller {
    pub(super) fn refresh_agents_up(&self) {
        let now = Instant::now();
        let st = self.state();
        let up = st
            .agents
            .values()
            .filter(|a| now.duration_since(a.last_heard) <= self.config.agent_timeout)
            .count();
        self.metrics.agents_up.set(up as i64);
    }

    /// Records a HELLO. A HELLO means the agent (re)started with no state,
    /// so live leases on its switch are pushed to it again.
    pub fn on_hello(self: &Arc<Self>, h: Hello, from: SocketAddr) {
        let now = Instant::now();
        let first = {
            let mut st = self.state();
            let e = st.agents.entry(h.switch_id).or_insert_with(|| AgentSeen {
                from,
                last_heard: now,
                last_heard_ms: 0,
                hello: None,
                heartbeat: None,
            });
            e.from = from;
            e.last_heard = now;
            e.last_heard_ms = now_ms();
            e.hello = Some(h.clone());
            st.leases.live_on_switch(h.switch_id)
        };
        self.store.agent_hello(
            h.switch_id,
            from.to_string(),
            h.software_version.clone(),
            h.backend.name(),
            now_ms(),
        );
        for l in first {
            let me = self.clone();
            let id = h.switch_id;
            tokio::spawn(async move {
                let left = l.expires_ms.saturating_sub(now_ms());
                if left > 0 {
                    let f = me.push_set(&l, &[id], left).await;
                    tracing::info!(
                        lease = l.id,
                        switch = id,
                        ok = f.outcome() == Some(Outcome::AllAcked),
                        "re-pushed lease to restarted agent"
                    );
                }
            });
        }
    }

    pub fn on_heartbeat(&self, hb: Heartbeat, from: SocketAddr) {
        let now = Instant::now();
        let mut st = self.state();
        let e = st.agents.entry(hb.switch_id).or_insert_with(|| AgentSeen {
            from,
            last_heard: now,
            last_heard_ms: 0,
            hello: None,
            heartbeat: None,
        });
        e.from = from;
        e.last_heard = now;
        e.last_heard_ms = now_ms();
        e.heartbeat = Some(hb);
    }

    /// Liveness of every configured agent: (switch, seen, is up).
    pub fn agents(&self) -> Vec<(crate::config::Switch, Option<AgentSeen>, bool)> {
        let now = Instant::now();
        let st = self.state();
        self.config
            .switches
            .iter()
            .map(|s| {
                let seen = st.agents.get(&s.id).cloned();
                let up = seen
                    .as_ref()
                    .is_some_and(|a| now.duration_since(a.last_heard) <= self.config.agent_timeout);
                (s.clone(), seen, up)
            })
            .collect()
    }
}
