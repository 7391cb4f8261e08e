//! The attack scenario, run for real: `subcast-lab run seed-three-switch.yaml
//! --scenario attack --json` builds the lab, starts the controller, agents and
//! storage nodes with pair keys, makes puts (each read back) while a rogue host
//! sends junk, replays, spoofed-source datagrams and an insider's forgeries to
//! every daemon (forged keyed DATA for transfers in flight among them). Needs root (skips otherwise, fails under
//! SUBCAST_LABS_REQUIRED=1) and the daemons built first:
//! `cargo build -p subcast-agent -p subcast-controller -p subcast-node --bins`.

use std::process::Command;
use std::time::Instant;

use serde_json::Value;

mod common;
use common::daemons_dir;

const ATTACKS: [&str; 8] = [
    "junk",
    "replay",
    "spoofed_source",
    "forged_ack",
    "forged_bid",
    "forged_data",
    "sequence_poison",
    "huge_fetch",
];

#[test]
fn every_attack_is_refused_and_every_put_survives() {
    if !labs::lab_tests_enabled() {
        println!("SKIP every_attack_is_refused_and_every_put_survives: needs root and iproute2");
        return;
    }
    let dir = daemons_dir();
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_subcast-lab"))
        .args([
            "run",
            "seed-three-switch.yaml",
            "--scenario",
            "attack",
            "--json",
        ])
        .arg("--bin-dir")
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("subcast-lab run --scenario attack: {:?}", t0.elapsed());
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    for a in ATTACKS {
        let r = &v["attacks"][a];
        let sent = r["sent"].as_u64().unwrap_or(0);
        assert!(sent > 0, "attack {a} sent nothing: {r:#}");
        assert!(
            r["refused"].as_u64().unwrap_or(0) >= sent && r["replies"] == 0,
            "attack {a} not refused: {r:#}"
        );
        assert_eq!(r["not_refused"], serde_json::json!([]), "attack {a}: {r:#}");
        assert_eq!(r["ok"], true, "attack {a}: {r:#}");
        println!(
            "{a}: sent {sent}, refused {}, by reason {}",
            r["refused"], r["refused_by_reason"]
        );
    }
    // Forged keyed DATA met transfers in flight, not only finished ones.
    let f = &v["attacks"]["forged_data"];
    assert!(f["refused_in_flight"].as_u64().unwrap_or(0) > 0, "{f:#}");
    let puts = v["puts"]["count"].as_u64().unwrap();
    assert!(puts >= 8, "{:#}", v["puts"]);
    assert_eq!(v["puts"]["done"].as_u64(), Some(puts), "{:#}", v["puts"]);
    assert_eq!(
        v["puts"]["verified"].as_u64(),
        Some(puts),
        "{:#}",
        v["puts"]
    );
    assert_eq!(v["stored"]["ok"], true, "{:#}", v["stored"]);
    assert_eq!(v["leases_leaked"], 0, "{v:#}");
    assert_eq!(v["memory_ok"], true, "{:#}", v["memory_kib"]);
    for d in ["controller", "agent-A", "agent-B", "agent-C", "node-X1"] {
        let m = &v["memory_kib"][d];
        assert!(m["start"].as_u64().unwrap_or(0) > 0, "{d}: {m}");
    }
    assert_eq!(v["ok"], true, "{v:#}\nstderr:\n{stderr}");
    assert!(out.status.success(), "subcast-lab failed: {stderr}");
}
