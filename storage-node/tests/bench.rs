//! Benchmark (ignored by default; needs root):
//! `SUBCAST_NODE_BIN=target/release/subcast-node cargo test -p subcast-node --test bench -- --ignored --nocapture`
//!
//! Per transport mode: put throughput of a 64 MiB object with R=3 on six
//! nodes, client wire bytes per payload byte, payload bytes delivered to
//! non-targets (from the nodes' counters). Prints a table and writes JSON
//! to `$SUBCAST_BENCH_OUT` (default `target/replicast-bench.json`).

mod common;

use common::{Lab, is_root, random_file};
use std::time::Duration;

fn not_for_us(lab: &Lab) -> u64 {
    lab.nodes
        .iter()
        .map(|i| {
            lab.stats(*i)["node"]["data_bytes_not_for_us"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum()
}

#[test]
#[ignore = "benchmark: run explicitly as root"]
fn put_throughput_per_mode() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let size: usize = std::env::var("SUBCAST_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
        << 20;
    let rate = std::env::var("SUBCAST_BENCH_RATE_MBPS").unwrap_or_else(|_| "2000".into());
    let mut modes = vec!["ng-multicast", "unicast"];
    if std::env::var("SUBCAST_BENCH_RENDEZVOUS").is_ok() {
        modes.insert(0, "rendezvous");
    }
    let mtu: u32 = std::env::var("SUBCAST_BENCH_MTU")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let mut rows = Vec::new();
    for mode in modes {
        let lab = Lab::with_mtu(6, &format!("rate_mbps: {rate}\nparallel: 4"), mtu);
        let f = random_file(lab.dir.path(), "big.bin", size, 42);
        std::thread::sleep(Duration::from_millis(1100));
        let before = not_for_us(&lab);
        let o = lab.client(&[
            "put",
            f.to_str().unwrap(),
            "--name",
            "bench/obj",
            "--transport",
            mode,
            "--quiet",
            "--json",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        let nt = not_for_us(&lab) - before;
        let out = lab.dir.path().join("out.bin");
        let t0 = std::time::Instant::now();
        let g = lab.client(&["get", "bench/obj", "-o", out.to_str().unwrap(), "--quiet"]);
        assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
        let get_s = t0.elapsed().as_secs_f64();
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f).unwrap());
        rows.push(serde_json::json!({
            "transport": mode,
            "object_mib": size >> 20,
            "replicas": 3,
            "nodes": 6,
            "rate_mbps": rate,
            "mtu": mtu,
            "put_seconds": r["seconds"],
            "put_mib_per_s": r["mib_per_s"],
            "sender_wire_bytes_per_payload_byte": r["wire_bytes_per_payload_byte"],
            "payload_bytes_to_non_targets": nt,
            "non_target_bytes_per_payload_byte": nt as f64 / size as f64,
            "get_seconds_incl_process_start": get_s,
        }));
    }
    println!(
        "{:<13} {:>9} {:>10} {:>12} {:>14} {:>8}",
        "transport", "put MiB/s", "put s", "wire B/B", "non-target B/B", "get s"
    );
    for r in &rows {
        println!(
            "{:<13} {:>9.1} {:>10.2} {:>12.3} {:>14.3} {:>8.2}",
            r["transport"].as_str().unwrap(),
            r["put_mib_per_s"].as_f64().unwrap(),
            r["put_seconds"].as_f64().unwrap(),
            r["sender_wire_bytes_per_payload_byte"].as_f64().unwrap(),
            r["non_target_bytes_per_payload_byte"].as_f64().unwrap(),
            r["get_seconds_incl_process_start"].as_f64().unwrap(),
        );
    }
    let path = std::env::var("SUBCAST_BENCH_OUT").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/replicast-bench.json"
        )
        .into()
    });
    std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    println!("written to {path}");
}

/// Diagnostics: one 32 MiB put logged at debug level, then every node's
/// counters.
#[test]
#[ignore = "diagnostics: run explicitly as root"]
fn trace_one_put() {
    let lab = Lab::new(6, "rate_mbps: 2000\nparallel: 4");
    let f = random_file(lab.dir.path(), "t.bin", 32 << 20, 7);
    let o = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns(common::CLIENT),
            "perf",
            "stat",
            "-e",
            "task-clock",
        ])
        .arg(common::bin())
        .args([
            "put",
            f.to_str().unwrap(),
            "--name",
            "t/o",
            "--log",
            "subcast_node=debug",
            "--config",
        ])
        .arg(lab.config(common::CLIENT))
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&o.stdout));
    println!("{}", String::from_utf8_lossy(&o.stderr));
    for i in &lab.nodes {
        println!("node {i}: {}", lab.stats(*i));
    }
}
