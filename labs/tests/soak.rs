//! The soak scenario, short: `subcast-lab run seed-three-switch.yaml
//! --scenario soak --seconds 20 --json` (puts read back, gets, grants and
//! releases, agent restarts; the 10-minute run is kept in
//! labs/results/soak.json). Needs root (skips otherwise, fails under
//! SUBCAST_LABS_REQUIRED=1) and the daemons built first:
//! `cargo build -p subcast-agent -p subcast-controller -p subcast-node --bins`.

use std::process::Command;
use std::time::Instant;

use serde_json::Value;

mod common;
use common::daemons_dir;

#[test]
fn churn_leaks_no_lease_and_agents_get_their_leases_back() {
    if !labs::lab_tests_enabled() {
        println!(
            "SKIP churn_leaks_no_lease_and_agents_get_their_leases_back: needs root and iproute2"
        );
        return;
    }
    let dir = daemons_dir();
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_subcast-lab"))
        .args([
            "run",
            "seed-three-switch.yaml",
            "--scenario",
            "soak",
            "--seconds",
            "20",
            "--json",
        ])
        .arg("--bin-dir")
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!(
        "subcast-lab run --scenario soak --seconds 20: {:?}",
        t0.elapsed()
    );
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    let p = &v["puts"];
    println!("puts {p}\ngets {}\ngrants {}", v["gets"], v["grants"]);
    assert_eq!(v["leases_leaked"], 0, "{v:#}");
    let verified = p["verified"].as_u64().unwrap_or(0);
    assert!(verified > 0, "no put verified: {p:#}");
    assert_eq!(p["verified"], p["attempted"], "{p:#}");
    assert!(v["grants"]["granted"].as_u64().unwrap_or(0) > 0, "{v:#}");
    let restarts = v["restarts"].as_array().cloned().unwrap_or_default();
    assert!(!restarts.is_empty(), "no agent restart: {v:#}");
    for r in &restarts {
        assert_eq!(r["hello_acked"], true, "{r:#}");
        assert_eq!(r["leases_back"], true, "{r:#}");
        assert_ne!(r["old_pid"], r["new_pid"], "{r:#}");
    }
    // Every daemon's replay map and memory were read, the audit table counted.
    for d in ["controller", "agent-A", "agent-B", "agent-C", "node-X1"] {
        let m = &v["memory_kib"][d];
        assert!(m["start"].as_u64().unwrap_or(0) > 0, "{d}: {m}");
        assert!(m["end"].as_u64().unwrap_or(0) > 0, "{d}: {m}");
        let rs = &v["replay_senders"][d];
        assert!(rs["end"].as_u64().is_some(), "{d}: {rs}");
    }
    assert!(
        v["replay_senders"]["controller"]["max"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{:#}",
        v["replay_senders"]
    );
    assert!(
        v["audit_rows"]["end"].as_u64().unwrap_or(0)
            > v["audit_rows"]["start"].as_u64().unwrap_or(0),
        "{:#}",
        v["audit_rows"]
    );
    assert_eq!(v["memory_ok"], true, "{:#}", v["memory_kib"]);
    assert_eq!(v["ok"], true, "{v:#}\nstderr:\n{stderr}");
    assert!(out.status.success(), "subcast-lab failed: {stderr}");
}
