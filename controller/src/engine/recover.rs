//! Restart recovery: leases found in the database are re-pushed if still
//! live (and kept only if every agent ACKs) and cleared otherwise.

use super::{Controller, now_ms};
use crate::fanout::Outcome;
use crate::leases::{Lease, LeaseState};
use std::collections::BTreeSet;
use std::sync::Arc;

impl Controller {
    /// After a restart: live leases are re-pushed (kept if every agent ACKs,
    /// cleared otherwise); expired and half-granted ones are cleared.
    pub async fn recover(self: &Arc<Self>) -> anyhow::Result<()> {
        let stored = self.store.leases().await?;
        if stored.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tasks = tokio::task::JoinSet::new();
        {
            let mut st = self.state();
            for l in stored {
                let reserved = st
                    .pools
                    .get_mut(&l.vlan)
                    .is_some_and(|p| p.reserve(l.group));
                if !reserved {
                    tracing::warn!(lease = l.id, group = %l.group, "stored lease is outside this controller's pool slice; clearing it");
                }
                let _ = st.leases.insert(l.clone());
                let me = self.clone();
                let keep = l.state == LeaseState::Live && l.expires_ms > now + 10 && reserved;
                tasks.spawn(async move { me.recover_one(l, keep, now).await });
            }
        }
        let (mut kept, mut cleared) = (0, 0);
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(true) => kept += 1,
                _ => cleared += 1,
            }
        }
        tracing::info!(kept, cleared, "leases restored from the database");
        Ok(())
    }

    async fn recover_one(self: Arc<Self>, l: Lease, keep: bool, now: u64) -> bool {
        if keep {
            let switches = self
                .config
                .switches_in_vlan(l.vlan)
                .map(|s| s.id)
                .collect::<BTreeSet<u32>>();
            let switches: Vec<u32> = switches.into_iter().collect();
            let f = self.push_set(&l, &switches, l.expires_ms - now).await;
            if f.outcome() == Some(Outcome::AllAcked) {
                return true;
            }
            let sw = f.maybe_applied();
            self.clear_and_forget(l, sw).await;
            return false;
        }
        let all: Vec<u32> = self.config.switches_in_vlan(l.vlan).map(|s| s.id).collect();
        let (vlan, group) = (l.vlan, l.group);
        let held = self
            .state()
            .pools
            .get(&vlan)
            .is_some_and(|p| p.contains(group));
        self.clone().clear_and_forget(l, all).await;
        if !held {
            tracing::debug!(%group, "foreign lease cleared");
        }
        false
    }
}
