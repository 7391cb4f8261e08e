//! One policy's run, and all of them on one fabric and load.

use crate::fabric::Fabric;
use crate::lazy::{self, Mode};
use crate::setup::{CtlSetup, NegGroup};
use crate::stats::Stats;
use crate::world::{RunParams, World};
use anyhow::Result;
use serde_json::{Value, json};

/// The policies, in the lab bench's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Policy {
    /// A fresh group per chunk: the controller with `leases.warm_ms: 0`.
    Fresh,
    /// Reuse by target set, warm period, LRU eviction (the controller's default).
    Reuse,
    /// Reuse plus `preenumerate: all` on every negotiating group.
    Preenum,
    /// No controller: hashed group, MLD joins, join cache (EdgeFS-like).
    LazyMld,
    /// Three unicast copies.
    Unicast,
}

impl Policy {
    pub const ALL: [Policy; 5] = [
        Policy::Fresh,
        Policy::Reuse,
        Policy::Preenum,
        Policy::LazyMld,
        Policy::Unicast,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::Fresh => "fresh",
            Policy::Reuse => "reuse",
            Policy::Preenum => "preenum",
            Policy::LazyMld => "lazy-mld",
            Policy::Unicast => "unicast",
        }
    }

    pub fn from_name(s: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// The controller settings every controller policy shares.
#[derive(Debug, Clone)]
pub struct CtlKnobs {
    pub budget: u32,
    pub warm_ms: u64,
    pub retransmit_ms: u64,
    pub attempts: u32,
    pub lease_ms: u64,
}

/// Runs `policy`; its stats and the measured window.
pub fn run_policy(
    f: &Fabric,
    groups: &[NegGroup],
    p: &RunParams,
    k: &CtlKnobs,
    policy: Policy,
) -> Result<(Stats, u64, u64)> {
    let ctl = |warm_ms: u64, preenumerate: bool| CtlSetup {
        budget: k.budget,
        warm_ms,
        preenumerate,
        retransmit_ms: k.retransmit_ms,
        attempts: k.attempts,
        lease_ms: k.lease_ms,
    };
    Ok(match policy {
        Policy::Fresh => run_world(f, groups, p, &ctl(0, false))?,
        Policy::Reuse => run_world(f, groups, p, &ctl(k.warm_ms, false))?,
        Policy::Preenum => run_world(f, groups, p, &ctl(k.warm_ms, true))?,
        Policy::LazyMld => swap(lazy::run(f, groups, p, Mode::LazyMld, k.budget)),
        Policy::Unicast => swap(lazy::run(f, groups, p, Mode::Unicast, k.budget)),
    })
}

fn run_world(
    f: &Fabric,
    groups: &[NegGroup],
    p: &RunParams,
    ctl: &CtlSetup,
) -> Result<(Stats, u64, u64)> {
    let w = World::new(f, groups, p, ctl)?;
    let (stats, start, end) = w.run()?;
    Ok((stats, end, start))
}

/// Every policy in `policies`: `{name: report}`.
pub fn run_all(
    f: &Fabric,
    groups: &[NegGroup],
    p: &RunParams,
    k: &CtlKnobs,
    policies: &[Policy],
) -> Result<Value> {
    let mut out = serde_json::Map::new();
    for &pol in policies {
        let t = std::time::Instant::now();
        let (mut s, end, start) = run_policy(f, groups, p, k, pol)?;
        let mut v = s.to_json(p.seconds, end, start, p.update_rate);
        v["warmup_s"] = json!(start as f64 / 1e9);
        if let Some(k) = s.kill_json() {
            v["controller_failure"] = k;
        }
        tracing::info!(
            policy = pol.name(),
            wall_s = t.elapsed().as_secs_f64(),
            "policy done"
        );
        out.insert(pol.name().to_owned(), v);
    }
    Ok(Value::Object(out))
}

fn swap((s, start, end): (Stats, u64, u64)) -> (Stats, u64, u64) {
    (s, end, start)
}
