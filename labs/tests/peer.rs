//! `subcast-lab run seed-three-switch.yaml --scenario put-bench --peer
//! glusterfs|glusterfs-gfapi`, run for real with a few objects: the comparison of
//! `subcast-lab bench --peer-only` keeps working. Needs root and GlusterFS (skips
//! otherwise with a message; fails under SUBCAST_LABS_REQUIRED=1). No subcast
//! daemons needed. No wall-clock assertions: speeds are in the bench.

use std::process::Command;

use labs::gluster;
use serde_json::Value;

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

fn subcast_lab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_subcast-lab"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    assert!(out.status.success(), "subcast-lab failed: {stderr}\n{v:#}");
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
