//! What one policy's run measured, and its JSON.

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Per-switch counters: updates by simulated second, table occupancy.
#[derive(Debug, Clone, Default)]
pub struct SwitchStats {
    /// Table changes completed in each millisecond of the measured window.
    pub updates_by_ms: Vec<u32>,
    pub max_occupancy: usize,
    occupancy: usize,
    since_ns: u64,
    /// Integral of occupancy over the window (group-nanoseconds).
    area: u128,
}

impl SwitchStats {
    /// The table holds `n` groups from `t_ns` on.
    pub fn occupancy_at(&mut self, t_ns: u64, n: usize, window_start: u64) {
        let from = self.since_ns.max(window_start);
        if t_ns > from {
            self.area += (t_ns - from) as u128 * self.occupancy as u128;
        }
        self.occupancy = n;
        self.since_ns = t_ns;
        self.max_occupancy = self.max_occupancy.max(n);
    }

    /// One table change done at `t_ns`.
    pub fn update_at(&mut self, t_ns: u64, window_start: u64) {
        if t_ns < window_start {
            return;
        }
        let s = ((t_ns - window_start) / 1_000_000) as usize;
        if self.updates_by_ms.len() <= s {
            self.updates_by_ms.resize(s + 1, 0);
        }
        self.updates_by_ms[s] += 1;
    }

    pub fn mean_occupancy(&mut self, end_ns: u64, window_start: u64) -> f64 {
        let n = self.occupancy;
        self.occupancy_at(end_ns, n, window_start);
        let span = end_ns.saturating_sub(window_start);
        if span == 0 {
            return n as f64;
        }
        self.area as f64 / span as f64
    }
}

/// Counters of one policy's run over the measured window.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Puts started in the window.
    pub offered: u64,
    /// Puts whose transport was settled in the window (granted, or refused
    /// and sent by unicast).
    pub puts: u64,
    pub granted: u64,
    /// Grants of a group already installed (no switch update waited for).
    pub reused: u64,
    /// Grant latency of the puts that waited for a switch update (µs).
    pub waits_us: Vec<u64>,
    /// Grant latency of every grant (µs).
    pub grant_us: Vec<u64>,
    pub refusals: BTreeMap<String, u64>,
    pub sender_bytes: u128,
    pub sender_bytes_unicast: u128,
    pub fabric_bytes: u128,
    pub fabric_bytes_unicast: u128,
    /// Grants whose installed forwarding state did not deliver exactly one
    /// copy to each target and none elsewhere.
    pub delivery_errors: u64,
    pub switches: Vec<SwitchStats>,
    /// Several controllers: requests re-sent to another controller.
    pub failovers: u64,
    pub killed_at_ns: Option<u64>,
    /// Puts waiting on the controller when it died.
    pub in_flight_at_kill: u64,
    /// Those, and puts asked of the dead controller later (the node did
    /// not know yet).
    pub stranded: u64,
    /// Their time from request to grant or refusal (µs).
    pub orphan_waits_us: Vec<u64>,
    /// When the last group of the dead controller's slice left the switches.
    pub dead_groups_gone_ns: Option<u64>,
}

/// Most changes in any 1,000 consecutive milliseconds of `ms` (a window
/// shorter than a second: its count scaled to a second).
fn max_in_second(ms: &[u32], window_ms: usize) -> u32 {
    if window_ms < 1000 {
        let n: u32 = ms.iter().sum();
        return (f64::from(n) * 1000.0 / window_ms.max(1) as f64) as u32;
    }
    let mut sum: u32 = ms.iter().take(1000).sum();
    let mut best = sum;
    for i in 1000..ms.len() {
        sum = sum + ms[i] - ms[i - 1000];
        best = best.max(sum);
    }
    best
}

pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(v: Option<u64>) -> Value {
    v.map_or(Value::Null, |us| json!(us as f64 / 1000.0))
}

fn ratio(a: u128, b: u128) -> Value {
    if b == 0 {
        Value::Null
    } else {
        json!(a as f64 / b as f64)
    }
}

impl Stats {
    /// The policy's JSON; `seconds` is the measured window, `limit` the
    /// switch update rate limit, `budget` each switch's table budget.
    pub fn to_json(&mut self, seconds: f64, end_ns: u64, window_start: u64, limit: u32) -> Value {
        let mut waits = self.waits_us.clone();
        waits.sort_unstable();
        let mut grants = self.grant_us.clone();
        grants.sort_unstable();
        let waited = waits.len() as u64;
        let means: Vec<f64> = self
            .switches
            .iter_mut()
            .map(|s| s.mean_occupancy(end_ns, window_start))
            .collect();
        let max_occ = self
            .switches
            .iter()
            .map(|s| s.max_occupancy)
            .max()
            .unwrap_or(0);
        let mean_occ = if means.is_empty() {
            0.0
        } else {
            means.iter().sum::<f64>() / means.len() as f64
        };
        // Changes inside the window only (queued ones complete later); the
        // most in any 1-second sliding window, or a shorter window's rate.
        let window_ms = (seconds * 1000.0).round() as usize;
        for s in &mut self.switches {
            s.updates_by_ms.truncate(window_ms);
        }
        let max_ups = self
            .switches
            .iter()
            .map(|s| max_in_second(&s.updates_by_ms, window_ms))
            .max()
            .unwrap_or(0);
        let total_updates: u64 = self
            .switches
            .iter()
            .map(|s| s.updates_by_ms.iter().map(|u| u64::from(*u)).sum::<u64>())
            .sum();
        let per_switch_mean = if self.switches.is_empty() || seconds <= 0.0 {
            0.0
        } else {
            total_updates as f64 / self.switches.len() as f64 / seconds
        };
        let refused: u64 = self.refusals.values().sum();
        json!({
            "puts_per_s": self.puts as f64 / seconds,
            "offered_puts_per_s": self.offered as f64 / seconds,
            "puts": self.puts,
            "granted": self.granted,
            "hit_ratio": if self.granted == 0 { Value::Null } else { json!(self.reused as f64 / self.granted as f64) },
            "waited_fraction": if self.puts == 0 { Value::Null } else { json!(waited as f64 / self.puts as f64) },
            "wait_ms": { "p50": ms(percentile(&waits, 50.0)), "p99": ms(percentile(&waits, 99.0)), "n": waited },
            "grant_ms": { "p50": ms(percentile(&grants, 50.0)), "p99": ms(percentile(&grants, 99.0)) },
            "max_occupancy": max_occ,
            "mean_occupancy": mean_occ,
            "max_updates_per_s": max_ups,
            "mean_updates_per_s": per_switch_mean,
            "update_rate_limit": limit,
            "refusals": { "total": refused, "by_reason": self.refusals },
            "refused_fraction": if self.puts == 0 { Value::Null } else { json!(refused as f64 / self.puts as f64) },
            "sender_bytes_vs_unicast": ratio(self.sender_bytes, self.sender_bytes_unicast),
            "fabric_bytes_vs_unicast": ratio(self.fabric_bytes, self.fabric_bytes_unicast),
            "delivery_errors": self.delivery_errors,
            "failovers": self.failovers,
        })
    }
}

impl Stats {
    /// What happened after a controller died (`None` if none did).
    pub fn kill_json(&self) -> Option<Value> {
        let at = self.killed_at_ns?;
        let mut w = self.orphan_waits_us.clone();
        w.sort_unstable();
        Some(json!({
            "in_flight_at_kill": self.in_flight_at_kill,
            "stranded": self.stranded,
            "stranded_settled": w.len(),
            "their_wait_ms": { "p50": ms(percentile(&w, 50.0)), "p99": ms(percentile(&w, 99.0)) },
            "failovers": self.failovers,
            "dead_controller_groups_gone_after_s": self.dead_groups_gone_ns.map(|t| (t - at) as f64 / 1e9),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn mean_occupancy_is_time_weighted() {
        let mut s = SwitchStats::default();
        s.occupancy_at(0, 10, 0);
        s.occupancy_at(500, 0, 0);
        assert!((s.mean_occupancy(1000, 0) - 5.0).abs() < 1e-9);
        assert_eq!(s.max_occupancy, 10);
    }
}
