//! Cost of authenticating one DATA datagram (ignored; run with
//! `cargo test --release -p subcast-proto --test seal_bench -- --ignored --nocapture`).
//!
//! Before the tag list, a DATA datagram carried one 32-octet keyed BLAKE3
//! tag over header and body (the baseline below computes exactly that).
//! Now it carries one 16-octet tag per receiver over BLAKE3(header ||
//! body): sealing hashes the datagram once plus one keyed hash of 32
//! octets per receiver, opening hashes it once plus one keyed hash.
//! Prints ns per datagram and writes JSON to `$SUBCAST_BENCH_OUT`
//! (default `target/seal-bench.json`).

use std::sync::Arc;
use std::time::Instant;
use subcast_proto::replicast::{ReplicastSealer, open_data, seal_data_into};
use subcast_proto::{PairKeys, ReplayGuard};

fn per_op(n: u32, mut f: impl FnMut(u32)) -> f64 {
    for i in 0..n / 10 {
        f(i);
    }
    let t0 = Instant::now();
    for i in 0..n {
        f(i);
    }
    t0.elapsed().as_nanos() as f64 / f64::from(n)
}

#[test]
#[ignore = "benchmark: run explicitly, in release"]
fn seal_and_open_cost_per_datagram() {
    let secret = [7u8; 32];
    let n = 200_000;
    let mut rows = Vec::new();
    println!(
        "{:>8} {:>9} {:>12} {:>12} {:>12} {:>8}",
        "payload", "receivers", "baseline ns", "seal ns", "open ns", "seal/base"
    );
    for payload_len in [1372usize, 8000] {
        let payload = vec![0x5au8; payload_len];
        // Baseline: keyed BLAKE3 over a datagram of the old size.
        let old = vec![0xa5u8; 32 + 16 + payload_len];
        let key = [3u8; 32];
        let base = per_op(n, |_| {
            std::hint::black_box(blake3::keyed_hash(&key, std::hint::black_box(&old)));
        });
        for receivers in [1u32, 3, 20] {
            let ids: Vec<u32> = (1..=receivers).collect();
            let keys = Arc::new(PairKeys::provision(1, &secret, 1000, ids.clone()).unwrap());
            let mut sealer = ReplicastSealer::new(keys, 1);
            let mut out = Vec::with_capacity(10_000);
            let seal = per_op(n, |i| {
                out.clear();
                seal_data_into(&mut out, &mut sealer, 1, 9, i % 100, 100, &payload, &ids).unwrap();
            });
            let me = PairKeys::provision(1, &secret, 1, [1000]).unwrap();
            let mut samples = Vec::new();
            for i in 0..1000u32 {
                let mut b = Vec::new();
                seal_data_into(&mut b, &mut sealer, 1, 9, i % 100, 100, &payload, &ids).unwrap();
                samples.push(b);
            }
            let mut guard = ReplayGuard::new(u64::MAX / 4);
            // Each sample opens once (later rounds are replays, refused
            // after the same tag work): the cost of the checks either way.
            let open = per_op(n, |i| {
                let _ = std::hint::black_box(open_data(
                    &me,
                    &mut guard,
                    &samples[i as usize % samples.len()],
                    1,
                ));
            });
            println!(
                "{payload_len:>8} {receivers:>9} {base:>12.0} {seal:>12.0} {open:>12.0} {:>8.2}",
                seal / base
            );
            rows.push(serde_json::json!({
                "payload": payload_len, "receivers": receivers,
                "baseline_keyed_blake3_ns": base, "seal_ns": seal, "open_ns": open,
            }));
        }
    }
    let path = std::env::var("SUBCAST_BENCH_OUT").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/seal-bench.json").into()
    });
    std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    println!("written to {path}");
}
