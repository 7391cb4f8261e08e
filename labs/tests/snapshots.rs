//! Snapshots, deletes and clones on the seed topology (issue 16): the
//! `snapshots` scenario of `subcast-lab` with the real controller, agents
//! and storage nodes: put v1, snapshot s1, put v2, delete, snapshot s2; s1
//! gives v1, s2 has no object, the latest read says deleted; a clone of
//! s1 is written to and the original's versions are unchanged; the chunks
//! the clone shares with the original are stored once (chunk files
//! counted in the nodes' store directories). Needs root and the daemons
//! built first: `cargo build -p subcast-agent -p subcast-controller -p
//! subcast-node --bins`.

use std::process::Command;
use std::time::Instant;

use serde_json::Value;

mod common;
use common::daemons_dir;

#[test]
fn snapshots_deletes_and_clones_on_the_seed_topology() {
    if !labs::lab_tests_enabled() {
        println!("SKIP snapshots: needs root and iproute2");
        return;
    }
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_subcast-lab"))
        .args([
            "run",
            "seed-three-switch.yaml",
            "--scenario",
            "snapshots",
            "--json",
        ])
        .arg("--bin-dir")
        .arg(daemons_dir())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("subcast-lab snapshots: {:?}", t0.elapsed());
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    assert!(
        out.status.success(),
        "subcast-lab failed: {stderr}\nreport: {v:#}"
    );
    assert_eq!(v["ok"], true, "{v:#}");
    for (name, ok) in v["checks"].as_object().unwrap() {
        assert_eq!(*ok, true, "check {name}: {v:#}");
    }
    assert!(
        !v["shared_chunk_files"].as_array().unwrap().is_empty(),
        "{v:#}"
    );
}
