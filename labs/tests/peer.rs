//! `subcast-lab run seed-three-switch.yaml --scenario put-bench --peer
//! glusterfs|glusterfs-gfapi`, run for real with a few objects: the comparison of
//! `subcast-lab bench --peer-only` keeps working. Needs root and GlusterFS (skips
//! otherwise with a message; fails under SUBCAST_LABS_REQUIRED=1). No subcast
//! daemons needed. No wall-clock assertions: speeds are in the bench.

use labs::gluster;
use serde_json::Value;

mod common;
use common::{json_report, subcast_lab};

fn enabled(test: &str) -> bool {
    // Panics under SUBCAST_LABS_REQUIRED=1 when something is missing.
    if gluster::available() {
        true
    } else {
        println!(
            "SKIP {test}: needs root, iproute2 and GlusterFS ({}); missing: {:?}",
            gluster::INSTALL_HINT,
            gluster::missing()
        );
        false
    }
}

/// `run seed-three-switch.yaml --scenario put-bench --peer P --object-size B
/// --puts N --json`: the report (the run must succeed).
fn peer_bench(peer: &str, size: u64, puts: u64) -> Value {
    let (size_s, puts_s) = (size.to_string(), puts.to_string());
    let out = subcast_lab(&[
        "run",
        "seed-three-switch.yaml",
        "--scenario",
        "put-bench",
        "--peer",
        peer,
        "--object-size",
        &size_s,
        "--puts",
        &puts_s,
        "--json",
    ]);
    let v = json_report(&out);
    println!(
        "{peer} {size} x {puts}: egress/B {} received/B {} p50 {} ms p99 {} ms {} MiB/s",
        v["sender_egress_per_payload_byte"],
        v["received_per_payload_byte"],
        v["put_ms"]["p50"],
        v["put_ms"]["p99"],
        v["throughput_mib_s"]
    );
    check(&v, peer, size, puts);
    v
}

/// What put-bench's report promises, for the peer.
fn check(v: &Value, peer: &str, size: u64, puts: u64) {
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["scenario"], "put-bench");
    assert_eq!(v["peer"], peer, "{v:#}");
    assert_eq!(v["object_size"], size);
    assert_eq!(v["puts"], puts);
    // Every object read back identical.
    assert_eq!(v["verified"], puts, "{v:#}");
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(0), "{v:#}");
    assert_eq!(v["bad_objects"].as_array().map(Vec::len), Some(0), "{v:#}");
    // The hosts of subcast's put-bench: the writer X1 is the client, the first
    // three hosts that would run storage nodes are the servers.
    assert_eq!(v["writer_hosts"], serde_json::json!(["X1"]), "{v:#}");
    assert_eq!(
        v["storage_nodes"],
        serde_json::json!(["X2", "X3", "X4"]),
        "{v:#}"
    );
    assert_eq!(v["replicas"], 3);
    let ms = |k: &str| v["put_ms"][k].as_f64().unwrap();
    assert!(ms("p50") > 0.0 && ms("p50") <= ms("p99"), "{v:#}");
    assert!(v["throughput_mib_s"].as_f64().unwrap() > 0.0, "{v:#}");
    assert_eq!(v["payload_bytes"].as_u64(), Some(size * puts));
    // Client-side replication: the client sends every byte to each of the three
    // servers, ~3 bytes on its wire per payload byte (TSO/GSO off, counted outside).
    let e = v["sender_egress_per_payload_byte"].as_f64().unwrap();
    assert!(e > 2.5 && e < 4.0, "egress per payload byte {e}: {v:#}");
    // The three servers receive those copies.
    let r = v["received_per_payload_byte"].as_f64().unwrap();
    assert!(r > 2.5 && r < 4.5, "received per payload byte {r}: {v:#}");
    // Unicast to the servers: the five other hosts see (nearly) nothing.
    let others = v["bytes_at_non_targets"].as_u64().unwrap();
    assert!(others * 100 < size * puts, "{others} at non-targets: {v:#}");
    // Torn down with the lab: no process, mount or directory of the peer left.
    assert_eq!(
        v["teardown_leftovers"].as_array().map(Vec::len),
        Some(0),
        "{v:#}"
    );
}

#[test]
fn glusterfs_fuse_small_and_large_objects() {
    if !enabled("glusterfs_fuse_small_and_large_objects") {
        return;
    }
    peer_bench("glusterfs", 256 << 10, 4);
    peer_bench("glusterfs", 64 << 20, 1);
}

#[test]
fn glusterfs_gfapi_small_and_large_objects() {
    if !enabled("glusterfs_gfapi_small_and_large_objects") {
        return;
    }
    peer_bench("glusterfs-gfapi", 256 << 10, 4);
    peer_bench("glusterfs-gfapi", 64 << 20, 1);
}

#[test]
fn peer_arguments_are_checked() {
    // Rejected before any lab is built: no root needed.
    let out = subcast_lab(&[
        "run",
        "seed-three-switch.yaml",
        "--scenario",
        "put-bench",
        "--peer",
        "ceph",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("glusterfs") && stderr.contains("glusterfs-gfapi"),
        "{stderr}"
    );
    let out = subcast_lab(&[
        "run",
        "seed-three-switch.yaml",
        "--scenario",
        "put-bench",
        "--peer",
        "glusterfs",
        "--writers",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("drop --writers 2"), "{stderr}");
}

/// `bench --peer-only --peer-blocks 2`, one object of each size per system and
/// block: both labs run every system in both blocks, table order then reversed;
/// each timed target is judged on the median of its two block ratios, the bytes
/// target on the blocks pooled. The figures themselves are the bench's business.
#[test]
fn paired_blocks_alternate_and_judge_on_the_blocks() {
    if !enabled("paired_blocks_alternate_and_judge_on_the_blocks") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("labs-peer-paired-{}", std::process::id()));
    let out = dir.to_str().unwrap();
    let v = common::lab_json(&[
        "bench",
        "--peer-only",
        "--peer-blocks",
        "2",
        "--peer-small-puts",
        "2",
        "--peer-big-puts",
        "1",
        // The shaped lab at 1 Gbit/s: the figures are not the point here.
        "--peer-rate-mbit",
        "1000",
        "--json",
        "--out",
        out,
    ]);
    assert!(dir.join("bench-peer.json").is_file() && dir.join("bench-peer.svg").is_file());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(v["blocks"], 2, "{v:#}");
    let systems = [
        "rendezvous",
        "ng-multicast",
        "unicast",
        "glusterfs",
        "glusterfs-gfapi",
    ];
    for lab in ["unshaped", "shaped"] {
        let rows = v[lab]["rows"].as_array().unwrap();
        // Five systems, two sizes, two blocks; each row one object.
        assert_eq!(rows.len(), 20, "{lab}: {v:#}");
        for r in rows {
            assert_eq!(r["ok"], true, "{lab}: {r:#}");
            assert_eq!(r["puts"], 1, "{lab}: {r:#}");
        }
        let order: Vec<(u64, &str)> = rows
            .iter()
            .step_by(2)
            .map(|r| (r["block"].as_u64().unwrap(), r["system"].as_str().unwrap()))
            .collect();
        let mut want: Vec<(u64, &str)> = systems.iter().map(|s| (0, *s)).collect();
        want.extend(systems.iter().rev().map(|s| (1, *s)));
        assert_eq!(order, want, "{lab}: the blocks alternate");
        assert_eq!(v[lab]["block_summaries"].as_array().map(Vec::len), Some(2));
        // The floor after each block, apart from the systems' rows.
        let floor = &v[lab]["floor"];
        assert_eq!(floor["ok"], true, "{lab}: {floor:#}");
        assert_eq!(floor["runs"], 2, "{lab}: {floor:#}");
        assert_eq!(
            floor["rows"].as_array().map(Vec::len),
            Some(2),
            "{lab}: {floor:#}"
        );
        assert!(
            floor["put_256k_p50_ms"].as_f64().is_some_and(|x| x > 0.0),
            "{floor:#}"
        );
        assert!(
            floor["ceiling_mib_s"].as_f64().is_some_and(|x| x > 0.0),
            "{floor:#}"
        );
        for s in systems {
            assert_eq!(v[lab]["summary"][s]["ok"], true, "{lab} {s}: {v:#}");
        }
    }
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 4, "{v:#}");
    for t in targets {
        let rs: Vec<f64> = t["block_ratios"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_f64().unwrap())
            .collect();
        assert_eq!(rs.len(), 2, "{t:#}");
        let ratio = t["ratio"].as_f64().unwrap();
        if t["paired"] == false {
            // Sender bytes: about 1.06 against about 3.2, pooled.
            assert!(ratio > 0.30 && ratio < 0.37, "{t:#}");
            assert!(t["floor"].is_null(), "bytes have no floor: {t:#}");
        } else {
            assert!((ratio - (rs[0] + rs[1]) / 2.0).abs() < 1e-9, "{t:#}");
            // What the floor allows, beside every timed target.
            assert!(
                t["floor"]["ratio"].as_f64().is_some_and(|x| x > 0.0),
                "{t:#}"
            );
            assert!(t["floor"]["reachable"].is_boolean(), "{t:#}");
        }
    }
}
