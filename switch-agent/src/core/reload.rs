//! Live reload (SIGHUP): the daemon re-reads the config, refuses it whole
//! when a key that cannot change live differs ([`fixed_changes`]), and
//! otherwise hands the new settings and keys to [`Agent::reload`].
//! Installed groups and their leases are never touched.

use super::auth::Gate;
use super::hello::HelloTimer;
use super::{Agent, AgentSettings, Phase};
use crate::config::Config;
use subcast_proto::{Key, Keyring, Sealer};

/// Config keys whose change needs a restart: the switch, the backend and
/// the sockets the agent holds, and the range it cleaned at start.
pub fn fixed_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let d = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut out = Vec::new();
    if old.switch_id != new.switch_id {
        out.push("switch_id");
    }
    if old.name != new.name {
        out.push("name");
    }
    if d(&old.backend, &new.backend) {
        out.push("backend");
    }
    if old.listen != new.listen {
        out.push("listen");
    }
    if old.metrics != new.metrics {
        out.push("metrics");
    }
    if old.rendezvous_range != new.rendezvous_range {
        out.push("rendezvous_range");
    }
    out
}

/// Config keys that may change live and did (key files are re-read on
/// every reload whatever this says).
pub fn live_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let d = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut out = Vec::new();
    for (k, changed) in [
        ("controller", old.controller != new.controller),
        ("key", d(&old.key, &new.key)),
        (
            "controller_keys",
            d(&old.controller_keys, &new.controller_keys),
        ),
        (
            "controller_sources",
            old.controller_sources != new.controller_sources,
        ),
        (
            "heartbeat_interval_ms",
            old.heartbeat_interval_ms != new.heartbeat_interval_ms,
        ),
        (
            "max_clock_skew_ms",
            old.max_clock_skew_ms != new.max_clock_skew_ms,
        ),
        (
            "max_lifetime_ms",
            old.max_lifetime_ms != new.max_lifetime_ms,
        ),
        ("parent_groups", old.parent_groups != new.parent_groups),
        ("table_capacity", old.table_capacity != new.table_capacity),
        ("guard_sweep_ms", old.guard_sweep_ms != new.guard_sweep_ms),
    ] {
        if changed {
            out.push(k);
        }
    }
    out
}

impl Agent {
    /// Applies new settings and keys (the daemon checked that only live
    /// keys changed). Instructions are opened with the new controller keys
    /// from now on (datagrams sealed before the reload are refused, as
    /// after a start); a new controller address gets a HELLO at once, so
    /// it re-pushes what it holds. Installed groups stay as they are.
    pub fn reload(
        &mut self,
        new: AgentSettings,
        controller_keys: Keyring,
        own_key: Key,
        now: super::Now,
    ) {
        self.gate = Gate::new(
            controller_keys,
            new.max_clock_skew_ms.saturating_mul(1000),
            new.controller_sources.clone(),
            self.metrics.clone(),
            now,
        );
        self.sealer = Sealer::new(own_key, new.switch_id, now.unix_us);
        let moved = new.controller != self.settings.controller;
        if moved || new.heartbeat_interval != self.settings.heartbeat_interval {
            let mut h = HelloTimer::new(new.heartbeat_interval);
            if self.phase == Phase::Running {
                h.start(now.at);
                if !moved && self.hello.acked() {
                    h.on_ack();
                }
            }
            self.hello = h;
        }
        if new.sweep_interval != self.settings.sweep_interval && self.phase == Phase::Running {
            self.next_sweep = new.sweep_interval.map(|d| now.at + d);
        }
        if moved {
            self.metrics.hello_acked.set(0);
        }
        self.settings = new;
    }
}
