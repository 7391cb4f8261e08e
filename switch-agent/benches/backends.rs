//! SET_SUBSET sent -> ACK received, per backend, through real agent processes
//! (needs root, Open vSwitch, snmpd).
//!
//! `sudo cargo bench -p subcast-agent --bench backends [-- N_FAST N_SNMP]`
//!
//! For each backend the seed three-switch lab is built as in the behaviour
//! suite (`tests/behaviour/harness.rs`: one agent per switch namespace, the
//! bench as controller on `[::1]` there). The bench sends N instructions one
//! after another to one agent, each a fresh rendezvous group (a real install,
//! not a retransmission) = NG0 | {X1, X4, X8}, and times each from `send_to`
//! to the ACK. Agent A (2 ports: h-X1, t-B) for linux-bridge, openflow and
//! SNMPv3 (authPriv SHA/AES), agent C (2 ports: t-B, h-X8) for SNMP v2c.
//! Defaults: 1,000 instructions (linux-bridge, openflow), 200 (snmp).
//! Prints one table; writes JSON to `target/bench/agent-backends.json`
//! (or `$SUBCAST_BENCH_OUT`).

#[path = "../tests/support/ctl.rs"]
mod ctl;
#[path = "../tests/behaviour/harness.rs"]
#[allow(dead_code)]
mod harness;

use harness::{Env, Kind, set};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_proto::Message;

struct Row {
    name: &'static str,
    agent: &'static str,
    n: usize,
    failures: usize,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    mean_us: f64,
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// `n` fresh SET_SUBSETs to agent `switch`; latency of each ACK.
fn measure(env: &mut Env, name: &'static str, switch: &'static str, n: usize) -> Row {
    let y = env.ng0();
    let members = env.list(&["X1", "X4", "X8"]);
    let idx = harness::SWITCHES
        .iter()
        .position(|s| *s == switch)
        .expect("switch");
    let a = &mut env.agents[idx];
    let base = u128::from("ff05::5c:2:0".parse::<Ipv6Addr>().expect("addr"));
    let mut lat = Vec::with_capacity(n);
    let mut failures = 0;
    for i in 0..n {
        let txid = 1000 + i as u64;
        let group = Ipv6Addr::from(base + 1 + i as u128);
        let bytes = a.seal(&set(txid, y, group, members.clone()));
        let t0 = Instant::now();
        a.send_raw(&bytes);
        let ans = a.answer();
        let dt = t0.elapsed();
        match &ans {
            Message::Ack(a) if a.txid == txid && a.port_count == 2 => lat.push(dt),
            _ => {
                failures += 1;
                eprintln!("{name}: instruction {i}: {ans:?}");
            }
        }
    }
    lat.sort();
    let mean = lat.iter().map(Duration::as_secs_f64).sum::<f64>() / lat.len().max(1) as f64;
    Row {
        name,
        agent: switch,
        n,
        failures,
        p50_us: quantile(&lat, 0.5),
        p99_us: quantile(&lat, 0.99),
        max_us: lat.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e6),
        mean_us: mean * 1e6,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; numbers are positional.
    let nums: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n_fast = nums.first().copied().unwrap_or(1000);
    let n_snmp = nums.get(1).copied().unwrap_or(200);
    if !labs::lab_tests_enabled() || !labs::ovs_available() {
        eprintln!("backends bench: needs root, iproute2, Open vSwitch and snmpd; skipped");
        return;
    }
    let mut rows = Vec::new();
    for kind in [Kind::LinuxBridge, Kind::Openflow, Kind::Snmp] {
        let t0 = Instant::now();
        let mut env = Env::start(kind);
        eprintln!(
            "{kind:?}: lab and agents ready in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        match kind {
            Kind::LinuxBridge => rows.push(measure(&mut env, "linux-bridge", "A", n_fast)),
            Kind::Openflow => rows.push(measure(&mut env, "openflow", "A", n_fast)),
            Kind::Snmp => {
                rows.push(measure(&mut env, "snmp v3 authPriv", "A", n_snmp));
                rows.push(measure(&mut env, "snmp v2c", "C", n_snmp));
            }
        }
    }
    println!("\nSET_SUBSET sent -> ACK received, one agent, fresh group per instruction");
    println!(
        "{:<18} {:>5} {:>6} {:>5} {:>10} {:>10} {:>10} {:>10}",
        "backend", "agent", "n", "fail", "p50 us", "p99 us", "max us", "mean us"
    );
    for r in &rows {
        println!(
            "{:<18} {:>5} {:>6} {:>5} {:>10.0} {:>10.0} {:>10.0} {:>10.0}",
            r.name, r.agent, r.n, r.failures, r.p50_us, r.p99_us, r.max_us, r.mean_us
        );
    }
    let json = serde_json::json!({
        "bench": "agent-backends",
        "measure": "SET_SUBSET sent -> ACK received (us), fresh rendezvous group per instruction, members X1 X4 X8 of NG0 (seed three-switch lab)",
        "results": rows.iter().map(|r| serde_json::json!({
            "backend": r.name, "agent": r.agent, "n": r.n, "failures": r.failures,
            "p50_us": r.p50_us, "p99_us": r.p99_us, "max_us": r.max_us, "mean_us": r.mean_us,
        })).collect::<Vec<_>>(),
    });
    let out = std::env::var("SUBCAST_BENCH_OUT").unwrap_or_else(|_| {
        format!(
            "{}/../target/bench/agent-backends.json",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir).expect("create the JSON output directory");
    }
    std::fs::write(&out, serde_json::to_string_pretty(&json).expect("json")).expect("write JSON");
    println!("JSON: {out}");
}
