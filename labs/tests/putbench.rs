//! `subcast-lab run seed-three-switch.yaml --scenario put-bench`, run for real:
//! writers run `subcast-node bench` against storage nodes on the other members;
//! every put is read back; the writers' egress is counted outside the nodes.
//! Needs root (skips otherwise, fails under SUBCAST_LABS_REQUIRED) and the daemons:
//! `cargo build -p subcast-agent -p subcast-controller -p subcast-node --bins`.
//! No wall-clock assertions: speeds are in `subcast-lab bench --put-only`.

use std::process::Command;

use serde_json::Value;

mod common;
use common::{daemons_dir, lab_json};

fn enabled(test: &str) -> bool {
    if labs::lab_tests_enabled() {
        true
    } else {
        println!("SKIP {test}: needs root and iproute2");
        false
    }
}

/// `run seed-three-switch.yaml --scenario put-bench --object-size 262144 --puts 20
/// --json` plus `extra`; the report (the run must succeed).
fn put_bench(extra: &[&str]) -> Value {
    put_bench_on("seed-three-switch.yaml", extra)
}

/// [`put_bench`] on `topology` (a shipped name or a path).
fn put_bench_on(topology: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "run",
        topology,
        "--scenario",
        "put-bench",
        "--object-size",
        "262144",
        "--puts",
        "20",
        "--json",
    ];
    args.extend_from_slice(extra);
    let v = lab_json(&args);
    println!(
        "{extra:?}: egress/B {} p50 {} ms p99 {} ms {} MiB/s",
        v["sender_egress_per_payload_byte"],
        v["put_ms"]["p50"],
        v["put_ms"]["p99"],
        v["throughput_mib_s"]
    );
    v
}

/// Every put of every writer verified by a get; the shape of the report.
fn check_common(v: &Value, transport: &str, writers: usize) {
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["scenario"], "put-bench");
    assert_eq!(v["transport"], transport);
    assert_eq!(v["object_size"], 262144);
    assert_eq!(v["puts"], 20);
    assert_eq!(v["writers"], writers);
    assert_eq!(v["verified"], 20 * writers as u64, "{v:#}");
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(0), "{v:#}");
    let pw = v["per_writer"].as_array().unwrap();
    assert_eq!(pw.len(), writers);
    for w in pw {
        assert_eq!(w["ok"], true, "{w:#}");
        assert_eq!(w["verified"], 20, "{w:#}");
        // 256 KiB objects go inside their manifests: one transfer each,
        // no data phases.
        assert_eq!(w["inline_puts"], 20, "{w:#}");
        // Every read-back get was timed.
        assert!(w["get_ms"]["p50"].as_f64() > Some(0.0), "{w:#}");
        assert!(w["phases_ms"]["data.bids"].is_null(), "{w:#}");
        assert!(
            w["phases_ms"]["manifest.transfer"]["p50"].as_f64() > Some(0.0),
            "{w:#}"
        );
        // The writers hold no store.
        let host = w["host"].as_str().unwrap();
        assert!(
            !v["storage_nodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == host),
            "writer {host} is also a storage node: {v:#}"
        );
    }
    for k in ["p50", "p90", "p99", "max"] {
        assert!(v["put_ms"][k].as_f64().unwrap() > 0.0, "{k}: {v:#}");
    }
    assert!(v["put_ms"]["p50"].as_f64() <= v["put_ms"]["p99"].as_f64());
    assert!(v["throughput_mib_s"].as_f64().unwrap() > 0.0);
    assert_eq!(
        v["payload_bytes"].as_u64(),
        Some(20 * 262144 * writers as u64)
    );
}

#[test]
fn rendezvous_sends_each_byte_about_once() {
    if !enabled("rendezvous_sends_each_byte_about_once") {
        return;
    }
    let v = put_bench(&["--transport", "rendezvous"]);
    check_common(&v, "rendezvous", 1);
    let e = v["sender_egress_per_payload_byte"].as_f64().unwrap();
    assert!((1.0..=1.5).contains(&e), "rendezvous egress {e}: {v:#}");
    assert_eq!(v["fallbacks"], 0, "{v:#}");
    assert_eq!(v["link_mtu"], 1500);
    let frame = mean_frame(&v);
    assert!(frame <= 1514.0, "mean frame {frame} over Ethernet's: {v:#}");
    assert_eq!(v["nic_offload"], false, "{v:#}");
}

/// Mean Ethernet frame size leaving the writers (segmentation is off).
fn mean_frame(v: &Value) -> f64 {
    let frames = v["sender_egress_frames"].as_u64().unwrap();
    assert!(frames > 0, "{v:#}");
    v["sender_egress_bytes"].as_u64().unwrap() as f64 / frames as f64
}

/// `mtu: 9000` in a topology: every link and bridge carries jumbo frames
/// and the nodes cut chunks into datagrams that fill them.
#[test]
fn jumbo_frames_carry_the_data_in_six_times_fewer_datagrams() {
    if !enabled("jumbo_frames_carry_the_data_in_six_times_fewer_datagrams") {
        return;
    }
    let seed =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/seed-three-switch.yaml");
    let text = std::fs::read_to_string(&seed).unwrap();
    let jumbo = std::env::temp_dir().join(format!("seed-jumbo-{}.yaml", std::process::id()));
    std::fs::write(&jumbo, format!("mtu: 9000\n{text}")).unwrap();
    let v = put_bench_on(jumbo.to_str().unwrap(), &["--transport", "rendezvous"]);
    let _ = std::fs::remove_file(&jumbo);
    check_common(&v, "rendezvous", 1);
    assert_eq!(v["link_mtu"], 9000);
    // 20 x 256 KiB in datagrams of up to ~8.9 kB: ~600 DATA frames (191 per
    // put at 1500), plus the control messages of puts and read-backs.
    let frame = mean_frame(&v);
    assert!(
        (1514.0..=9014.0).contains(&frame),
        "mean frame {frame}: {v:#}"
    );
    let frames = v["sender_egress_frames"].as_u64().unwrap();
    assert!(
        frames < 20 * 191,
        "{frames} frames: as many as at 1500: {v:#}"
    );
    let e = v["sender_egress_per_payload_byte"].as_f64().unwrap();
    assert!((1.0..=1.1).contains(&e), "rendezvous egress {e}: {v:#}");
}

/// `nic_offload: true` (the shipped seed-three-switch-offload.yaml): the writer's UDP GSO batches cross the bridges whole
/// (its interface counts packets larger than any Ethernet frame), the report
/// says so and takes the egress from the writer's own count, and every put is
/// still read back whole.
#[test]
fn nic_offload_carries_gso_batches_whole_through_the_bridges() {
    if !enabled("nic_offload_carries_gso_batches_whole_through_the_bridges") {
        return;
    }
    let v = put_bench_on(
        "seed-three-switch-offload.yaml",
        &["--transport", "rendezvous"],
    );
    check_common(&v, "rendezvous", 1);
    assert_eq!(v["nic_offload"], true, "{v:#}");
    let frame = mean_frame(&v);
    assert!(
        frame > 1514.0,
        "mean packet {frame}: the batches were cut into frames: {v:#}"
    );
    let e = v["sender_egress_per_payload_byte"].as_f64().unwrap();
    assert!((1.0..=1.1).contains(&e), "rendezvous egress {e}: {v:#}");
    assert!(
        v["sender_egress_source"]
            .as_str()
            .unwrap()
            .contains("own count"),
        "{v:#}"
    );
}

#[test]
fn unicast_sends_each_byte_once_per_copy() {
    if !enabled("unicast_sends_each_byte_once_per_copy") {
        return;
    }
    let v = put_bench(&["--transport", "unicast"]);
    check_common(&v, "unicast", 1);
    let e = v["sender_egress_per_payload_byte"].as_f64().unwrap();
    assert!(e >= 2.5, "unicast egress {e}: {v:#}");
}

#[test]
fn two_writers_on_different_switches() {
    if !enabled("two_writers_on_different_switches") {
        return;
    }
    let v = put_bench(&["--transport", "rendezvous", "--writers", "2"]);
    check_common(&v, "rendezvous", 2);
    let pw = v["per_writer"].as_array().unwrap();
    assert_ne!(pw[0]["switch"], pw[1]["switch"], "{v:#}");
    for w in pw {
        let e = w["egress_per_payload_byte"].as_f64().unwrap();
        assert!((1.0..=1.5).contains(&e), "writer egress {e}: {w:#}");
    }
    // Seven storage nodes: the nine members but the two writers.
    assert_eq!(v["storage_nodes"].as_array().map(Vec::len), Some(7));
}

#[test]
fn too_many_writers_is_a_clear_error() {
    if !enabled("too_many_writers_is_a_clear_error") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_subcast-lab"))
        .args([
            "run",
            "seed-three-switch.yaml",
            "--scenario",
            "put-bench",
            "--writers",
            "7",
            "--puts",
            "1",
            "--json",
            "--bin-dir",
        ])
        .arg(daemons_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("seed-three-switch.yaml") && stderr.contains("--writers 7"),
        "{stderr}"
    );
}
