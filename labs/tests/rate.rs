//! The `rate` scenario, run for real: `subcast-lab run seed-three-switch.yaml
//! --scenario rate` builds the seed lab, starts the controller and agents (or,
//! for lazy-mld, none), drives K clients for S seconds and reports JSON. Needs
//! root (skips otherwise, fails under SUBCAST_LABS_REQUIRED) and the daemons built:
//! `cargo build -p subcast-agent -p subcast-controller -p subcast-node --bins`.
//! Nothing here asserts speed: only that the budget held, every checked group
//! reached exactly its targets, and the policy did what it says.

use serde_json::Value;

mod common;
use common::lab_json;

fn enabled(test: &str) -> bool {
    if labs::lab_tests_enabled() {
        true
    } else {
        println!("SKIP {test}: needs root and iproute2");
        false
    }
}

/// `subcast-lab run seed-three-switch.yaml --scenario rate --clients 4
/// --seconds 2 --policy POLICY [extra] --json`; the report, which must be ok.
fn rate(policy: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "run",
        "seed-three-switch.yaml",
        "--scenario",
        "rate",
        "--clients",
        "4",
        "--seconds",
        "2",
        "--policy",
        policy,
        "--json",
    ];
    args.extend_from_slice(extra);
    let v = lab_json(&args);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["policy"], policy);
    assert!(v["grants_per_s"].as_f64().unwrap() > 0.0, "{v:#}");
    assert!(v["grants"].as_u64().unwrap() > 0, "{v:#}");
    assert_eq!(v["target_sets"], 20, "C(6,3) sets on the seed: {v:#}");
    // Every checked group reached exactly its targets.
    let checked = v["verified"].as_array().unwrap();
    assert!(!checked.is_empty(), "{v:#}");
    for c in checked {
        assert_eq!(c["ports_match"], true, "{c:#}");
        assert_eq!(c["deliveries_ok"], true, "{c:#}");
    }
    for k in ["grant_us", "grant_us_hit", "grant_us_miss"] {
        assert!(v[k]["n"].is_u64(), "{k}: {v:#}");
    }
    assert!(v["grant_us"]["p50"].as_u64().is_some(), "{v:#}");
    assert!(v["grant_us"]["p99"].as_u64() >= v["grant_us"]["p50"].as_u64());
    v
}

/// Occupancy seen from outside per switch, and each switch's budget.
fn occupancy(v: &Value) -> Vec<(String, u64, Option<u64>)> {
    let max = v["max_occupancy"].as_object().unwrap();
    assert_eq!(max.len(), 3, "{v:#}");
    max.iter()
        .map(|(sw, n)| (sw.clone(), n.as_u64().unwrap(), v["budget"][sw].as_u64()))
        .collect()
}

#[test]
fn reuse_with_budget_4_never_holds_more_than_4() {
    if !enabled("reuse_with_budget_4_never_holds_more_than_4") {
        return;
    }
    let v = rate("reuse", &["--budget", "4"]);
    for (sw, max, budget) in occupancy(&v) {
        assert_eq!(budget, Some(4), "switch {sw}: {v:#}");
        assert!(max <= 4, "switch {sw} held {max} groups: {v:#}");
    }
    // More distinct sets than the budget: the controller must have evicted warm
    // groups or refused (table-full) to stay within it.
    assert!(v["distinct_sets_granted"].as_u64().unwrap() > 4, "{v:#}");
    let lru = v["evictions_by_cause"]["lru"].as_f64().unwrap_or(0.0);
    let forced = lru + v["refusals"]["total"].as_f64().unwrap();
    assert!(forced > 0.0, "no LRU eviction and no refusal: {v:#}");
    assert!(v["switch_ops_per_s"].as_f64().unwrap() > 0.0, "{v:#}");
}

#[test]
fn fresh_installs_a_group_for_most_requests() {
    if !enabled("fresh_installs_a_group_for_most_requests") {
        return;
    }
    let v = rate("fresh", &[]);
    assert!(v["misses"].as_u64().unwrap() > 0, "{v:#}");
    // A released group is cleared at once: installs and clears both count.
    assert!(v["switch_ops"].as_f64().unwrap() >= 2.0, "{v:#}");
    for (sw, max, budget) in occupancy(&v) {
        assert!(Some(max) <= budget, "switch {sw}: {v:#}");
    }
}

#[test]
fn lazy_mld_joins_once_per_set_and_client() {
    if !enabled("lazy_mld_joins_once_per_set_and_client") {
        return;
    }
    let v = rate("lazy-mld", &[]);
    let (grants, misses) = (v["grants"].as_u64().unwrap(), v["misses"].as_u64().unwrap());
    assert!(misses > 0, "{v:#}");
    // A client joins a set once (its cache holds all 20): at most 4 x 20 misses.
    assert!(misses <= 80, "{v:#}");
    assert!(grants >= misses);
    assert!(v["refusals"]["total"] == 0, "{v:#}");
    // The joins were snooped: some switch held groups of the pool.
    let occ = occupancy(&v);
    assert!(occ.iter().any(|(_, n, _)| *n > 0), "{v:#}");
}
