//! `subcast-lab run TOPOLOGY --scenario floor`, for real: the lab alone, the
//! kernel and the disk timed for one round, one pass and three durable copies,
//! and the multicast ceiling. Needs root (skips otherwise with a message; fails
//! under SUBCAST_LABS_REQUIRED=1). No wall-clock assertions: what the floor
//! measures is in the bench.

use serde_json::Value;

mod common;
use common::{json_report, subcast_lab};

fn floor(topology: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "run",
        topology,
        "--scenario",
        "floor",
        "--puts",
        "20",
        "--json",
    ];
    args.extend_from_slice(extra);
    json_report(&subcast_lab(&args))
}

fn ms(v: &Value, k: &str, p: &str) -> f64 {
    v[k][p]
        .as_f64()
        .unwrap_or_else(|| panic!("{k}.{p} missing: {v:#}"))
}

#[test]
fn the_floor_of_the_seed_lab_has_every_step() {
    if !labs::lab_tests_enabled() {
        println!("SKIP the_floor_of_the_seed_lab_has_every_step: needs root and iproute2");
        return;
    }
    let v = floor("seed-three-switch.yaml", &[]);
    println!("{v:#}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["scenario"], "floor");
    // The put-bench writer and the GlusterFS servers of `--peer`.
    assert_eq!(v["writer"], "X1");
    assert_eq!(v["targets"], serde_json::json!(["X2", "X3", "X4"]));
    assert_eq!(v["object_size"], 262_144);
    assert_eq!(v["samples"], 20);
    assert_eq!(v["datagram_payload"], 1452, "MTU 1500 less IPv6 and UDP");
    for k in ["round_ms", "pass_ms", "disk_ms", "put_ms"] {
        let (p50, p99) = (ms(&v, k, "p50"), ms(&v, k, "p99"));
        assert!(p50 > 0.0 && p50 <= p99, "{k}: {v:#}");
    }
    // Every put sample is the sum of a round, a pass and a disk sample, so
    // its median is at least each of theirs.
    for k in ["round_ms", "pass_ms", "disk_ms"] {
        assert!(ms(&v, "put_ms", "p50") >= ms(&v, k, "p50"), "{k}: {v:#}");
    }
    let per = v["ceiling_per_target_mib_s"].as_array().unwrap();
    assert_eq!(per.len(), 3);
    let slowest = per
        .iter()
        .filter_map(Value::as_f64)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(v["ceiling_mib_s"].as_f64(), Some(slowest));
    assert!(slowest > 0.0, "{v:#}");
    // Two threads send, as a subcast writer does.
    assert_eq!(v["senders"], 2, "{v:#}");
}

#[test]
fn the_floor_takes_the_hosts_it_is_given_on_an_ipv4_lab() {
    if !labs::lab_tests_enabled() {
        println!(
            "SKIP the_floor_takes_the_hosts_it_is_given_on_an_ipv4_lab: needs root and iproute2"
        );
        return;
    }
    let v = floor(
        "seed-three-switch-ipv4.yaml",
        &["--sender", "X9", "--targets", "X1,X5"],
    );
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["writer"], "X9");
    assert_eq!(v["targets"], serde_json::json!(["X1", "X5"]));
    assert_eq!(
        v["ceiling_per_target_mib_s"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn the_floor_refuses_the_writer_as_its_own_target() {
    let out = subcast_lab(&[
        "run",
        "seed-three-switch.yaml",
        "--scenario",
        "floor",
        "--sender",
        "X1",
        "--targets",
        "X1,X2",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the floor needs targets other than the writer X1"),
        "{err}"
    );
}
