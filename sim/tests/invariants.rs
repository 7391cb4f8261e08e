//! The simulator at a small size (a few seconds in a debug build): the
//! Interface's JSON, invariants of the simulated switches that the policies
//! could break, determinism, and the validation against a lab bench file
//! this test writes itself.

use serde_json::{Value, json};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_subcast-sim");

fn sim(args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(args)
        .arg("--json")
        .output()
        .expect("run subcast-sim");
    assert!(
        out.status.success(),
        "subcast-sim {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// 4 leaves x 6 servers, 2 spines; budget and update rate small enough that
/// both limits bind.
const SMALL: &[&str] = &[
    "--leaves",
    "4",
    "--servers-per-leaf",
    "6",
    "--spines",
    "2",
    "--rate",
    "20",
    "--budget",
    "32",
    "--update-rate",
    "200",
    "--seconds",
    "2",
];

fn f(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {v}"))
}

#[test]
fn small_cluster_keeps_the_switch_limits_and_reports_every_field() {
    let seeded = |s: &'static str| sim(&[SMALL, &["--seed", s]].concat());
    let v = seeded("7");
    let again = seeded("7");
    assert_eq!(v, again, "same seed, different JSON");
    let other = seeded("8");
    assert_ne!(v["policies"], other["policies"], "the seed changes nothing");

    let pols = v["policies"].as_object().expect("policies");
    for name in ["fresh", "reuse", "preenum", "lazy-mld", "unicast"] {
        let p = &pols[name];
        for field in [
            "puts_per_s",
            "waited_fraction",
            "max_occupancy",
            "max_updates_per_s",
            "sender_bytes_vs_unicast",
            "mean_occupancy",
            "fabric_bytes_vs_unicast",
        ] {
            assert!(p[field].is_number(), "{name}.{field} missing: {p}");
        }
        assert!(p["wait_ms"].get("p50").is_some() && p["wait_ms"].get("p99").is_some());
        assert!(p["refusals"]["total"].is_u64());
        assert!(
            p["max_occupancy"].as_u64().unwrap() <= 32,
            "{name}: a switch held more groups than its budget: {p}"
        );
        assert!(
            p["max_updates_per_s"].as_u64().unwrap() <= 200,
            "{name}: a switch took more changes a second than its limit: {p}"
        );
        assert_eq!(p["delivery_errors"], json!(0), "{name}: {p}");
        assert!(f(&p["puts_per_s"]) > 0.0, "{name}: no put settled");
    }
    // Unicast sends R = 3 copies; a granted rendezvous group one.
    assert_eq!(f(&pols["unicast"]["sender_bytes_vs_unicast"]), 1.0);
    assert_eq!(f(&pols["unicast"]["max_occupancy"]), 0.0);
    let reuse = &pols["reuse"];
    let granted_share = f(&reuse["granted"]) / f(&reuse["puts"]);
    let expect = granted_share / 3.0 + (1.0 - granted_share);
    assert!(
        (f(&reuse["sender_bytes_vs_unicast"]) - expect).abs() < 1e-9,
        "reuse: sender bytes {} but {granted_share} of puts were granted",
        reuse["sender_bytes_vs_unicast"]
    );
    // Fresh needs a switch update for every put: all of them wait, and the
    // update limit binds (a SET and a CLEAR per put on every switch).
    assert_eq!(f(&pols["fresh"]["waited_fraction"]), 1.0);
    assert!(pols["fresh"]["max_updates_per_s"].as_u64().unwrap() >= 150);
    // Reuse and preenum fill the budget (this load asks for more sets).
    assert_eq!(pols["reuse"]["max_occupancy"], json!(32));
    assert!(f(&pols["preenum"]["hit_ratio"]) > f(&pols["fresh"]["hit_ratio"]));
}

#[test]
fn validation_against_a_bench_file_reports_ok_per_cell() {
    // A bench file in the lab's format, not the shipped one: one client,
    // reuse with budget 8 (LRU over 20 sets: about 8/20 hits) and 64 (every
    // set stays), and a cell the simulator cannot match.
    let cell = |budget: u64, column: &str, hit: f64, occ: u64| {
        json!({"budget": budget, "clients": 1, "column": column, "report": {
            "policy": "reuse", "hit_ratio": hit, "sender": "X2",
            "universe": ["X1", "X3", "X4", "X5", "X6", "X7"],
            "max_occupancy": {"A": occ, "B": occ, "C": occ}}})
    };
    let dir = std::env::temp_dir().join(format!("subcast-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("bench-good.json");
    std::fs::write(
        &good,
        json!({"cells": [cell(8, "reuse-8", 0.40, 8), cell(64, "reuse-64", 1.0, 20)]}).to_string(),
    )
    .unwrap();
    let bad = dir.join("bench-bad.json");
    std::fs::write(
        &bad,
        json!({"cells": [cell(8, "reuse-8", 0.9, 3)]}).to_string(),
    )
    .unwrap();
    let args = |p: &std::path::Path| {
        vec![
            "--validate-only".to_owned(),
            "--validate-seconds".to_owned(),
            "0.3".to_owned(),
            "--validate-against".to_owned(),
            p.display().to_string(),
        ]
    };
    let run = |p: &std::path::Path| {
        let a = args(p);
        sim(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let v = run(&good);
    let val = &v["validation"];
    assert_eq!(val["ok"], json!(true), "{val:#}");
    assert_eq!(val["cells"].as_array().unwrap().len(), 2);
    let v = run(&bad);
    assert_eq!(v["validation"]["ok"], json!(false), "{:#}", v["validation"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_controller_that_costs_time_caps_the_grant_rate() {
    // 16 back-to-back clients, hits only (budget 64 over 20 sets): with
    // 50 µs of controller time per message (a request and a release per
    // grant) the controller grants at most 10,000 a second; with none, the
    // clients go as fast as the links let them.
    let dir = std::env::temp_dir().join(format!("subcast-sim-ctl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bench.json");
    std::fs::write(
        &file,
        json!({"cells": [{"budget": 64, "clients": 16, "column": "reuse-64", "report": {
            "policy": "reuse", "hit_ratio": 1.0,
            "max_occupancy": {"A": 20, "B": 20, "C": 20}}}]})
        .to_string(),
    )
    .unwrap();
    let rate = |ctl_us: &str| {
        let f = file.display().to_string();
        let v = sim(&[
            "--validate-only",
            "--validate-seconds",
            "0.2",
            "--validate-ctl-us",
            ctl_us,
            "--validate-against",
            &f,
        ]);
        v["validation"]["cells"][0]["sim"]["puts_per_s"]
            .as_f64()
            .unwrap()
    };
    let capped = rate("50");
    let free = rate("0");
    std::fs::remove_dir_all(&dir).ok();
    assert!((9_000.0..=10_000.0).contains(&capped), "{capped}");
    assert!(free > 3.0 * capped, "{free} vs {capped}");
}

#[test]
fn puts_waiting_on_a_dead_controller_fail_over() {
    // A load the surviving controller answers well within the timeout.
    let v = sim(&[
        &SMALL[..6],
        &[
            "--budget",
            "32",
            "--update-rate",
            "200",
            "--seconds",
            "2",
            "--rate",
            "4",
            "--seed",
            "3",
            "--policy",
            "reuse",
            "--controllers",
            "2",
            "--kill-controller-at",
            "0.5",
            "--failover-ms",
            "300",
        ],
    ]
    .concat());
    let r = &v["policies"]["reuse"];
    let k = &r["controller_failure"];
    let stranded = k["stranded"].as_u64().unwrap();
    assert!(stranded > 0, "no put asked the dead controller: {k}");
    // Those asked in the last 300 ms of the window settle after it.
    let settled = k["stranded_settled"].as_u64().unwrap();
    assert!(settled * 10 >= stranded * 8, "{k}");
    assert!(k["failovers"].as_u64().unwrap() >= settled, "{k}");
    // Each of them waited for the node's timeout before asking the other.
    assert!(f(&k["their_wait_ms"]["p50"]) >= 300.0, "{k}");
    assert!(r["max_occupancy"].as_u64().unwrap() <= 32, "{r}");
}
