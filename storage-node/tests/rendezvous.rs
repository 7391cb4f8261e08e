//! End to end over rendezvous groups: the labs harness builds one Linux
//! bridge with MLD closed (static negotiating groups), `subcast-agent`
//! drives the bridge, `subcast-controller` leases groups, five
//! `subcast-node serve` processes store, the client puts with
//! `--transport rendezvous`. Checks: bytes identical after a get, every
//! chunk on exactly R nodes, and each payload datagram reached exactly R
//! hosts (tcpdump on every host).
//!
//! Needs root and the controller and agent binaries (built by
//! `cargo build -p subcast-controller -p subcast-agent`, or named by
//! SUBCAST_CONTROLLER_BIN / SUBCAST_AGENT_BIN); skipped otherwise.

mod rv;

use rv::{NODES, put_reaches_only_the_targets, put_with_retry, setup};
use std::time::Duration;

#[test]
fn rendezvous_put_reaches_only_the_targets() {
    let Some(rv) = setup("chunk_size: 262144\nrate_mbps: 300") else {
        return;
    };
    put_reaches_only_the_targets(&rv, "ip6 dst net ff15::5c00:0/104", "rv/obj", 7);
}

/// Benchmark on the same topology (ignored; root; release binaries advised):
/// `SUBCAST_NODE_BIN=target/release/subcast-node cargo test -p subcast-node
/// --test rendezvous -- --ignored --nocapture`. Per mode: put MiB/s of a
/// 64 MiB object (R=3, 5 nodes), client wire bytes per payload byte, and
/// bytes the switch delivered to all node ports per payload byte (from the
/// bridge ports' TX counters; R=3 is the floor, ng-multicast floods the
/// whole negotiating group). JSON to `$SUBCAST_BENCH_OUT`
/// (default `target/replicast-bench-rendezvous.json`).
#[test]
#[ignore = "benchmark: run explicitly as root"]
fn bench_three_modes_on_one_bridge() {
    let mib: usize = std::env::var("SUBCAST_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let Some(rv) = setup("rate_mbps: 2000\nparallel: 4") else {
        return;
    };
    let size = mib << 20;
    let file = rv.dir.path().join("big.bin");
    let data: Vec<u8> = (0..size as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let mut rows = Vec::new();
    for mode in ["rendezvous", "ng-multicast", "unicast"] {
        // Same content per mode would deduplicate: change every chunk.
        let mut d = data.clone();
        for k in (0..size).step_by(1 << 20) {
            d[k] ^= mode.len() as u8;
        }
        std::fs::write(&file, &d).unwrap();
        let before = rv.port_tx_bytes();
        let o = put_with_retry(&rv, &file, &format!("bench/{mode}"), mode);
        let after = rv.port_tx_bytes();
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let delivered: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
        if std::env::var("SUBCAST_BENCH_DEBUG").is_ok() {
            std::thread::sleep(Duration::from_millis(1100));
            for i in 1..=NODES {
                let p = rv.dir.path().join(format!("node{i}/stats.json"));
                eprintln!(
                    "{mode} node {i}: {}",
                    std::fs::read_to_string(p).unwrap_or_default()
                );
            }
        }
        rows.push(serde_json::json!({
            "transport": mode,
            "object_mib": mib,
            "replicas": 3,
            "nodes": NODES,
            "put_seconds": r["seconds"],
            "put_mib_per_s": r["mib_per_s"],
            "sender_wire_bytes_per_payload_byte": r["wire_bytes_per_payload_byte"],
            "switch_bytes_to_nodes_per_payload_byte": delivered as f64 / size as f64,
        }));
    }
    println!(
        "{:<13} {:>9} {:>8} {:>10} {:>16}",
        "transport", "put MiB/s", "put s", "wire B/B", "to nodes B/B"
    );
    for r in &rows {
        println!(
            "{:<13} {:>9.1} {:>8.2} {:>10.3} {:>16.3}",
            r["transport"].as_str().unwrap(),
            r["put_mib_per_s"].as_f64().unwrap(),
            r["put_seconds"].as_f64().unwrap(),
            r["sender_wire_bytes_per_payload_byte"].as_f64().unwrap(),
            r["switch_bytes_to_nodes_per_payload_byte"]
                .as_f64()
                .unwrap(),
        );
    }
    let path = std::env::var("SUBCAST_BENCH_OUT").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/replicast-bench-rendezvous.json"
        )
        .into()
    });
    std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    println!("written to {path}");
}
