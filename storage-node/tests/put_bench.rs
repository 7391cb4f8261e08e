//! Node bench on a real lab (ignored: run as root with release binaries;
//! needs `iperf3`):
//!
//! ```text
//! cargo build --release -p subcast-node -p subcast-controller -p subcast-agent
//! SUBCAST_NODE_BIN=target/release/subcast-node \
//! SUBCAST_CONTROLLER_BIN=target/release/subcast-controller \
//! SUBCAST_AGENT_BIN=target/release/subcast-agent \
//! [SUBCAST_NODE_BIN_BASELINE=/path/to/older/subcast-node] \
//! cargo test --release -p subcast-node --test put_bench -- --ignored --nocapture
//! ```
//!
//! On the rendezvous lab of `tests/rv` (one Linux bridge, real agent and
//! controller, five nodes): `subcast-node bench` of 256 KiB objects
//! (p50/p99 over `SUBCAST_BENCH_PUTS`, default 200, per transport) and of
//! 64 MiB objects (MiB/s per transport), beside an iperf3 UDP stream
//! (1400-octet datagrams) between the client and a node host in the same
//! lab. With a baseline binary, the same runs with it (a binary without
//! `bench` is timed by its `put --json` report, which excludes process
//! start; `SUBCAST_BENCH_BASELINE_PUTS` puts). `SUBCAST_BENCH_NO_GSO=1`
//! adds a run with `udp_gso: false` (DATA by `sendmmsg` only). Prints a
//! table; JSON to `$SUBCAST_BENCH_OUT` (default `target/node-put-bench.json`).

mod rv;

use serde_json::{Value, json};
use std::time::Duration;

fn has_bench(bin: &str) -> bool {
    std::process::Command::new(bin)
        .args(["bench", "--help"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// One bench row: `subcast-node bench`, or a loop of `put --json`.
fn bench(lab: &rv::Rv, size: usize, puts: usize, mode: &str, tag: &str) -> Value {
    if has_bench(&lab.bin) {
        let (s, n) = (size.to_string(), puts.to_string());
        let prefix = format!("b-{tag}-{mode}/");
        let o = lab.client_any(&[
            "bench",
            "--object-size",
            &s,
            "--puts",
            &n,
            "--transport",
            mode,
            "--name-prefix",
            &prefix,
            "--json",
        ]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            json!({
                "ok": false, "transport": mode, "object_size": size, "puts": puts,
                "errors": [format!("bench output: {e}: {}", String::from_utf8_lossy(&o.stderr))],
            })
        });
        eprintln!("{tag} {mode} {size}: {v}");
        return v;
    }
    let mut ms = Vec::new();
    let mut errors = Vec::new();
    let file = lab.dir.path().join("obj.bin");
    for i in 0..puts {
        let data: Vec<u8> = (0..size).map(|_| rand::random::<u8>()).collect();
        std::fs::write(&file, &data).unwrap();
        let name = format!("p-{tag}-{mode}/{i}");
        let o = lab.client_any(&[
            "put",
            file.to_str().unwrap(),
            "--name",
            &name,
            "--transport",
            mode,
            "--json",
            "--quiet",
        ]);
        match serde_json::from_slice::<Value>(&o.stdout) {
            Ok(r) if o.status.success() => ms.push(r["seconds"].as_f64().unwrap() * 1000.0),
            _ => errors.push(String::from_utf8_lossy(&o.stderr).into_owned()),
        }
    }
    eprintln!("{tag} {mode} {size}: {} puts, errors {errors:?}", ms.len());
    if ms.is_empty() {
        return json!({"ok": false, "transport": mode, "object_size": size, "puts": puts, "errors": errors});
    }
    let total: f64 = ms.iter().sum::<f64>() / 1000.0;
    let mib = (ms.len() * size) as f64 / f64::from(1 << 20);
    json!({
        "ok": errors.is_empty(),
        "puts": puts,
        "object_size": size,
        "transport": mode,
        "put_ms": {
            "p50": percentile(&mut ms, 50.0),
            "p90": percentile(&mut ms, 90.0),
            "p99": percentile(&mut ms, 99.0),
            "max": percentile(&mut ms, 100.0),
        },
        "throughput_mib_s": mib / total,
        "errors": errors,
        "timed_by": "put --json report",
    })
}

/// iperf3 UDP (1400-octet datagrams, unlimited rate) from the client to H1.
fn iperf_udp(lab: &rv::Rv) -> Value {
    let h1 = lab.lab.host("H1");
    let _server = lab
        .lab
        .spawn_with(&h1.netns, &["iperf3", "-s", "-1", "-p", "5201"], |c| {
            c.stdout(std::process::Stdio::null());
        })
        .expect("iperf3 is needed for this bench (apt-get install iperf3)");
    let addr = h1.ipv6.to_string();
    for _ in 0..50 {
        let o = lab
            .lab
            .exec(
                &lab.client_ns,
                &[
                    "iperf3", "-c", &addr, "-p", "5201", "-u", "-b", "0", "-l", "1400", "-t", "3",
                    "-J",
                ],
            )
            .unwrap();
        if let Ok(v) = serde_json::from_slice::<Value>(&o.stdout)
            && v["error"].is_null()
        {
            let s = &v["end"]["sum"];
            return json!({
                "udp_gbit_s": s["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9,
                "lost_percent": s["lost_percent"],
            });
        }
        // The server is not listening yet.
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("iperf3 client could not reach the server in H1");
}

/// 256 KiB write + fsync + directory fsync (what a target does per chunk)
/// in the lab's directory, 50 times: the disk's share of a put right now.
fn fsync_probe(dir: &std::path::Path) -> Value {
    use std::io::Write;
    let data = vec![0x5au8; 256 << 10];
    let mut ms = Vec::new();
    for i in 0..50 {
        let t0 = std::time::Instant::now();
        let p = dir.join(format!("fsync-probe-{i}"));
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        std::fs::File::open(dir).unwrap().sync_all().unwrap();
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        let _ = std::fs::remove_file(&p);
    }
    json!({
        "transport": "fsync-probe",
        "p50": percentile(&mut ms, 50.0),
        "p99": percentile(&mut ms, 99.0),
    })
}

fn run_lab(bin: &str, tag: &str, puts: usize, extra: &str) -> Vec<Value> {
    let Some(lab) = rv::setup_with(extra, bin) else {
        return Vec::new();
    };
    // The agent needs a moment to say HELLO: the first put may be refused.
    let warm = lab.dir.path().join("warm.bin");
    std::fs::write(&warm, b"warm up").unwrap();
    rv::put_with_retry(&lab, &warm, "warm/up", "rendezvous");
    let mut rows = Vec::new();
    let mut probe = fsync_probe(lab.dir.path());
    probe["binary"] = json!(tag);
    eprintln!("{tag} {probe}");
    rows.push(probe);
    for mode in ["rendezvous", "unicast", "ng-multicast"] {
        let mut r = bench(&lab, 256 << 10, puts, mode, tag);
        r["binary"] = json!(tag);
        rows.push(r);
    }
    let big: usize = std::env::var("SUBCAST_BENCH_BIG_PUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    for mode in ["rendezvous", "unicast", "ng-multicast"] {
        let mut r = bench(&lab, 64 << 20, big, mode, tag);
        r["binary"] = json!(tag);
        rows.push(r);
    }
    let mut ip = iperf_udp(&lab);
    ip["binary"] = json!(tag);
    ip["transport"] = json!("iperf3-udp");
    eprintln!("{tag} {ip}");
    rows.push(ip);
    rows
}

#[test]
#[ignore = "benchmark: run explicitly as root with release binaries"]
fn node_put_bench() {
    let puts: usize = std::env::var("SUBCAST_BENCH_PUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let extra = std::env::var("SUBCAST_BENCH_CONFIG")
        .unwrap_or_else(|_| "rate_mbps: 10000\nparallel: 4".into());
    let mut rows = Vec::new();
    if let Ok(base) = std::env::var("SUBCAST_NODE_BIN_BASELINE") {
        let n = std::env::var("SUBCAST_BENCH_BASELINE_PUTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(puts);
        rows.extend(run_lab(&base, "baseline", n, &extra));
    }
    rows.extend(run_lab(&rv::node_bin(), "current", puts, &extra));
    if std::env::var("SUBCAST_BENCH_NO_GSO").is_ok() {
        let no_gso = format!("{extra}\nudp_gso: false");
        rows.extend(run_lab(&rv::node_bin(), "no-gso", puts, &no_gso));
    }
    println!(
        "{:<9} {:<13} {:>10} {:>6} {:>9} {:>9} {:>9} {:>10} {:>6}",
        "binary", "transport", "object", "puts", "p50 ms", "p99 ms", "max ms", "MiB/s", "ok"
    );
    for r in &rows {
        if r["transport"] == "fsync-probe" {
            println!(
                "{:<9} {:<13} 256 KiB write+fsync+dir fsync: p50 {:.2} ms, p99 {:.2} ms",
                r["binary"].as_str().unwrap_or(""),
                "fsync-probe",
                r["p50"].as_f64().unwrap_or(f64::NAN),
                r["p99"].as_f64().unwrap_or(f64::NAN)
            );
            continue;
        }
        if r["transport"] == "iperf3-udp" {
            println!(
                "{:<9} {:<13} iperf3 UDP 1400 B: {:.2} Gbit/s ({:.1} MiB/s), lost {}%",
                r["binary"].as_str().unwrap_or(""),
                "iperf3-udp",
                r["udp_gbit_s"].as_f64().unwrap_or(0.0),
                r["udp_gbit_s"].as_f64().unwrap_or(0.0) * 1e9 / 8.0 / f64::from(1 << 20),
                r["lost_percent"]
            );
            continue;
        }
        println!(
            "{:<9} {:<13} {:>10} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>10.1} {:>6}",
            r["binary"].as_str().unwrap_or(""),
            r["transport"].as_str().unwrap_or(""),
            r["object_size"],
            r["puts"],
            r["put_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
            r["put_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
            r["put_ms"]["max"].as_f64().unwrap_or(f64::NAN),
            r["throughput_mib_s"].as_f64().unwrap_or(f64::NAN),
            r["ok"],
        );
    }
    let path = std::env::var("SUBCAST_BENCH_OUT").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/node-put-bench.json").into()
    });
    std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    println!("written to {path}");
}
