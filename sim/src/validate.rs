//! `--validate-against BENCH.json`: the simulator on the seed's three-switch
//! topology under the lab bench's load (`subcast-lab bench --rate-only`,
//! `labs/results/bench-rate.json`), compared cell by cell with what the lab
//! measured: hit ratio and most groups held per switch.
//!
//! A cell is `{clients, budget, column, report: {policy, hit_ratio,
//! max_occupancy: {switch: n}, sender?, universe?}}`; the load is the
//! bench's: `clients` back-to-back clients on `sender` (default X2) asking for
//! random 3-subsets of `universe` (default the six members after the sender)
//! and releasing each grant at once, the lab's controller settings
//! (`warm_ms` 1000, retransmission 20 ms x 5, `preenumerate: all` with
//! `replicas: 3` for `preenum`).

use crate::fabric::Fabric;
use crate::load::{Arrivals, Picker, combinations};
use crate::run::{CtlKnobs, Policy, run_policy};
use crate::setup::{NegGroup, parent_of};
use crate::world::RunParams;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::Path;

/// Largest difference in hit ratio (absolute) accepted.
pub const HIT_RATIO_TOLERANCE: f64 = 0.05;
/// Largest difference in most groups per switch accepted: this many groups,
/// or this fraction of the lab's figure if larger.
pub const OCCUPANCY_TOLERANCE_GROUPS: f64 = 2.0;
pub const OCCUPANCY_TOLERANCE_FRACTION: f64 = 0.10;
/// The lab's `leases.warm_ms` (labs/src/bin/subcast-lab/stack.rs WARM_MS).
pub const LAB_WARM_MS: u64 = 1000;

/// The lab's timing, as the simulator models it.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    /// One-way latency of a link (µs): a node on switch A reaches the
    /// controller on A over 2 links.
    pub link_us: u64,
    /// Controller CPU per message (µs).
    pub ctl_us: u64,
    /// Table changes a second per switch.
    pub update_rate: u32,
    /// Latency of one batch of changes on a switch (µs); batches overlap.
    pub apply_us: u64,
    /// Extra one-way controller <-> agent latency (µs).
    pub agent_path_us: u64,
    /// Store commit (µs).
    pub store_us: u64,
}

impl Calibration {
    /// The lab bench's timing, read off the lab's own timings in the bench
    /// file, never off its hit ratios or occupancy (what is validated):
    /// - a hit takes ~25 µs request -> grant with one client (`reuse-64`,
    ///   K = 1): 2 links of 5 µs each way plus the controller's time;
    /// - the controller, saturated by 16 clients on hits only (`reuse-64`,
    ///   K = 16), grants ~23,300 a second with a release per grant: ~21 µs a
    ///   message, so 20 µs;
    /// - a miss takes ~450-520 µs with one client (`fresh`, `reuse-8`,
    ///   K = 1): the agents' processes are woken to read their datagrams
    ///   (180 µs each way); a Linux bridge's change through netlink costs
    ///   little beside that (100,000 a second).
    pub const LAB: Calibration = Calibration {
        link_us: 5,
        ctl_us: 20,
        update_rate: 100_000,
        apply_us: 0,
        agent_path_us: 180,
        store_us: 50,
    };
}

/// One cell of the bench file.
#[derive(Debug, Clone)]
pub struct Cell {
    pub clients: usize,
    pub budget: u32,
    pub column: String,
    pub policy: Policy,
    pub hit_ratio: f64,
    pub max_occupancy: u64,
    pub sender: String,
    pub universe: Vec<String>,
}

pub fn read_cells(path: &Path) -> Result<Vec<Cell>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the lab bench JSON {}", path.display()))?;
    let v: Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not JSON (give the file `subcast-lab bench --rate-only` wrote, e.g. labs/results/bench-rate.json)",
            path.display()
        )
    })?;
    let Some(cells) = v["cells"].as_array() else {
        bail!(
            "{} has no \"cells\" array: give the file `subcast-lab bench --rate-only` wrote",
            path.display()
        );
    };
    let mut out = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        let r = &c["report"];
        let what = |f: &str| format!("cell {i} of {}: no {f}", path.display());
        let name = r["policy"]
            .as_str()
            .or_else(|| c["column"].as_str())
            .with_context(|| what("report.policy"))?;
        let policy = Policy::from_name(name)
            .filter(|p| *p != Policy::Unicast)
            .with_context(|| {
                format!("cell {i}: unknown policy {name:?} (fresh, reuse, preenum or lazy-mld)")
            })?;
        let occ = r["max_occupancy"]
            .as_object()
            .with_context(|| what("report.max_occupancy object"))?
            .values()
            .filter_map(Value::as_u64)
            .max()
            .with_context(|| what("switch in report.max_occupancy"))?;
        let universe = match r["universe"].as_array() {
            Some(a) => a
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .with_context(|| what("list of names in report.universe"))?,
            None => ["X1", "X3", "X4", "X5", "X6", "X7"]
                .map(str::to_owned)
                .to_vec(),
        };
        out.push(Cell {
            clients: c["clients"]
                .as_u64()
                .or_else(|| r["clients"].as_u64())
                .with_context(|| what("clients"))? as usize,
            budget: c["budget"]
                .as_u64()
                .with_context(|| what("budget"))?
                .try_into()
                .with_context(|| what("budget that fits 32 bits"))?,
            column: c["column"].as_str().unwrap_or(name).to_owned(),
            policy,
            hit_ratio: r["hit_ratio"]
                .as_f64()
                .with_context(|| what("report.hit_ratio"))?,
            max_occupancy: occ,
            sender: r["sender"].as_str().unwrap_or("X2").to_owned(),
            universe,
        });
    }
    if out.is_empty() {
        bail!("{} has no cells to compare with", path.display());
    }
    Ok(out)
}

fn occupancy_ok(lab: u64, sim: u64) -> bool {
    let tol = OCCUPANCY_TOLERANCE_GROUPS.max(OCCUPANCY_TOLERANCE_FRACTION * lab as f64);
    (lab as f64 - sim as f64).abs() <= tol
}

/// Runs every cell on the seed topology; the `validation` object.
pub fn validate(path: &Path, seconds: f64, seed: u64, cal: &Calibration) -> Result<Value> {
    let cells = read_cells(path)?;
    let f = Fabric::seed_three_switch(cal.link_us);
    let names = f.host_by_name();
    let ng0 = NegGroup {
        parent: parent_of(0),
        members: (0..f.hosts.len()).collect(),
    };
    let groups = vec![ng0];
    let mut rows = Vec::new();
    let mut all_ok = true;
    for c in &cells {
        let host = |n: &String| {
            names.get(n).copied().with_context(|| {
                format!("host {n} is not in the seed topology (X1..X9): validation runs the seed's three-switch lab only")
            })
        };
        let sender = host(&c.sender)?;
        let universe = c.universe.iter().map(host).collect::<Result<Vec<_>>>()?;
        let p = RunParams {
            seconds,
            seed,
            payload_bytes: 1 << 20,
            link_gbps: 10.0,
            release_at_once: true,
            update_rate: cal.update_rate,
            store_us: cal.store_us,
            ctl_us: cal.ctl_us,
            apply_us: cal.apply_us,
            agent_path_us: cal.agent_path_us,
            arrivals: Arrivals::Closed { clients: c.clients },
            picker: Picker::Sets {
                sender,
                sets: combinations(&universe, 3.min(universe.len())),
            },
            max_warmup_s: 30.0,
            load_warmup_s: 0.0,
            controllers: 1,
            kill_at_s: None,
            failover_ms: 250,
        };
        let k = CtlKnobs {
            budget: c.budget,
            warm_ms: LAB_WARM_MS,
            retransmit_ms: 20,
            attempts: 5,
            lease_ms: 10_000,
        };
        let (mut s, end, start) = run_policy(&f, &groups, &p, &k, c.policy)?;
        let v = s.to_json(seconds, end, start, p.update_rate);
        let hit = v["hit_ratio"].as_f64().unwrap_or(0.0);
        let occ = v["max_occupancy"].as_u64().unwrap_or(0);
        let hit_ok = (hit - c.hit_ratio).abs() <= HIT_RATIO_TOLERANCE;
        let occ_ok = occupancy_ok(c.max_occupancy, occ);
        let ok = hit_ok && occ_ok;
        all_ok &= ok;
        rows.push(json!({
            "clients": c.clients,
            "budget": c.budget,
            "column": c.column,
            "policy": c.policy.name(),
            "lab": { "hit_ratio": c.hit_ratio, "max_occupancy": c.max_occupancy },
            "sim": {
                "hit_ratio": hit, "max_occupancy": occ, "grants": v["granted"],
                "refusals": v["refusals"]["total"], "grant_ms": v["grant_ms"], "wait_ms": v["wait_ms"],
                "puts_per_s": v["puts_per_s"],
            },
            "hit_ratio_ok": hit_ok,
            "occupancy_ok": occ_ok,
            "ok": ok,
        }));
    }
    Ok(json!({
        "ok": all_ok,
        "against": path.display().to_string(),
        "topology": "seed-three-switch (A-B-C, X1..X9, one negotiating group)",
        "seconds_per_cell": seconds,
        "calibration": {
            "link_us": cal.link_us, "ctl_us": cal.ctl_us,
            "update_rate": cal.update_rate, "apply_us": cal.apply_us, "agent_path_us": cal.agent_path_us, "store_us": cal.store_us,
        },
        "tolerance": {
            "hit_ratio_abs": HIT_RATIO_TOLERANCE,
            "max_occupancy": format!("max({OCCUPANCY_TOLERANCE_GROUPS} groups, {}% of the lab's)", OCCUPANCY_TOLERANCE_FRACTION * 100.0),
        },
        "cells": rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occupancy_tolerance() {
        assert!(occupancy_ok(20, 22));
        assert!(!occupancy_ok(20, 23));
        assert!(occupancy_ok(58, 53));
        assert!(!occupancy_ok(58, 52));
    }
}
