//! Bench part (e): the `rate` scenario on one topology for K in {1, 4, 16} clients
//! and five policy columns: fresh, reuse with budget 8, reuse with budget 64,
//! preenum (budget 64), lazy-mld. Each cell is one `run --scenario rate` (its own
//! lab); the table shows grants/s, hit ratio and grant latency p50/p99.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use crate::bins::Locate;
use crate::rate::{self, Policy, RateArgs};

/// Client counts.
pub const CLIENTS: [usize; 3] = [1, 4, 16];
/// (column, policy, budget).
pub const COLUMNS: [(&str, Policy, u32); 5] = [
    ("fresh", Policy::Fresh, 64),
    ("reuse-8", Policy::Reuse, 8),
    ("reuse-64", Policy::Reuse, 64),
    ("preenum", Policy::Preenum, 64),
    ("lazy-mld", Policy::LazyMld, 64),
];

/// Run every cell; a failing cell is recorded with its error, the rest go on.
pub fn run(topology: &Path, locate: &Locate, seconds: u64) -> Result<Value> {
    let mut cells = Vec::new();
    for k in CLIENTS {
        for (col, policy, budget) in COLUMNS {
            let a = RateArgs {
                clients: k,
                seconds: Some(seconds),
                policy,
                budget,
            };
            eprintln!("subcast-lab bench: rate {col} with {k} clients, {seconds} s");
            let v = rate::run(topology, None, &a, locate)
                .unwrap_or_else(|e| json!({"ok": false, "error": format!("{e:#}")}));
            cells.push(json!({"clients": k, "column": col, "budget": budget, "report": v}));
        }
    }
    Ok(json!({
        "topology": topology.display().to_string(),
        "seconds": seconds,
        "what": "run --scenario rate per cell: K clients request a group for a random 3-subset, release at once",
        "cells": cells,
    }))
}

fn cell(v: &Value) -> String {
    let r = &v["report"];
    if let Some(e) = r["error"].as_str() {
        return format!("error: {}", e.lines().next().unwrap_or(""));
    }
    let us = |k: &str, q: &str| {
        r[k][q]
            .as_u64()
            .map_or("-".to_string(), |x| format!("{:.2}", x as f64 / 1000.0))
    };
    format!(
        "{:.0}/s {:.0}% {}/{}{}",
        r["grants_per_s"].as_f64().unwrap_or(0.0),
        r["hit_ratio"].as_f64().unwrap_or(0.0) * 100.0,
        us("grant_us", "p50"),
        us("grant_us", "p99"),
        if r["ok"] == true { "" } else { " NOT OK" }
    )
}

/// The table: one row per K, one column per policy.
pub fn render(v: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "(e) rate, {} s per cell: grants/s, hit %, grant ms p50/p99",
        v["seconds"]
    );
    let _ = write!(out, "{:>3}", "K");
    for (col, _, _) in COLUMNS {
        let _ = write!(out, " | {col:<24}");
    }
    let _ = writeln!(out);
    let cells = v["cells"].as_array().cloned().unwrap_or_default();
    for k in CLIENTS {
        let _ = write!(out, "{k:>3}");
        for (col, _, _) in COLUMNS {
            let c = cells
                .iter()
                .find(|c| c["clients"] == k && c["column"] == col)
                .map_or("-".to_string(), cell);
            let _ = write!(out, " | {c:<24}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "switch ops/s and max occupancy per switch (budget):");
    for c in &cells {
        let r = &c["report"];
        if r["error"].is_string() {
            continue;
        }
        let _ = writeln!(
            out,
            "  K={:<2} {:<8}: ops {:>8.1}/s, refusals {}, max {} (budget {})",
            c["clients"],
            c["column"].as_str().unwrap_or(""),
            r["switch_ops_per_s"].as_f64().unwrap_or(0.0),
            r["refusals"]["total"],
            r["max_occupancy"],
            r["budget"]
        );
    }
}

/// Run part (e), write `bench-rate.json` into `out`, print the table, or the JSON
/// (`json_out: Some(true)`), or nothing but the file's path on stderr (`None`: the
/// full bench's `--json`, whose stdout is bench.json).
pub fn main_part(
    topology: &Path,
    locate: &Locate,
    seconds: u64,
    out: &Path,
    json_out: Option<bool>,
) -> Result<Value> {
    let v = run(topology, locate, seconds)?;
    std::fs::create_dir_all(out)?;
    let path = out.join("bench-rate.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v)?)?;
    if json_out.is_none() {
        eprintln!("wrote {}", path.display());
    } else if json_out == Some(true) {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let mut t = String::new();
        render(&v, &mut t);
        println!("{t}wrote {}", path.display());
    }
    Ok(v)
}
