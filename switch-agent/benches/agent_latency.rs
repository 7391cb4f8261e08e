//! Instruction latency of the agent on real Linux bridges (needs root).
//!
//! `cargo bench -p subcast-agent --bench agent_latency`
//!
//! - SET_SUBSET sent -> ACK received, 1,000 instructions, one switch;
//! - the same with the three-switch seed topology: sent to the three agents
//!   at once, timed until the last ACK;
//! - CLEAR -> ACK on one switch;
//! - for comparison, the MLD path: a host joins a (non-rendezvous) group,
//!   time until the bridge forwards that group to it.
//!
//! Prints a table and writes JSON to `$SUBCAST_BENCH_JSON` (default
//! `target/agent-bench.json` in the workspace).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/ctl.rs"]
mod ctl;

use common::*;
use labs::{Lab, LabOptions, Topology};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_proto::{Clear, Member, Members, Message, SetSubset};

const N: usize = 1000;

fn lab(file: &str) -> Lab {
    let topo = Topology::from_yaml_file(labs::topology_path(file)).unwrap();
    Lab::build(&topo, LabOptions::default()).unwrap()
}

fn group(i: usize) -> Ipv6Addr {
    let base = u128::from("ff05::5c:2:0".parse::<Ipv6Addr>().unwrap());
    Ipv6Addr::from(base + 1 + i as u128)
}

fn set(lab: &Lab, txid: u64, g: Ipv6Addr, hosts: &[&str]) -> Message {
    let parent = lab.topology().group_address("NG0").unwrap();
    Message::SetSubset(SetSubset {
        txid,
        vlan: 0,
        parent,
        group: g,
        lifetime_ms: 120_000,
        members: Members::List(
            hosts
                .iter()
                .map(|h| Member::Ipv6(lab.host(h).ipv6))
                .collect(),
        ),
    })
}

#[derive(Debug)]
struct Stats {
    name: String,
    n: usize,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    failures: usize,
}

fn stats(name: &str, mut v: Vec<Duration>, failures: usize) -> Stats {
    v.sort();
    let q = |p: f64| {
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i].as_secs_f64() * 1e6
    };
    Stats {
        name: name.to_owned(),
        n: v.len(),
        p50_us: q(0.5),
        p99_us: q(0.99),
        max_us: q(1.0),
        failures,
    }
}

fn is_ack(m: &Message) -> bool {
    matches!(m, Message::Ack(_))
}

fn one_switch() -> (Stats, Stats, Stats) {
    let lab = lab("one-switch.yaml");
    let mut a = start_agent(&lab, "S", 1, Parents::Configured);
    let subsets: [&[&str]; 3] = [&["H1", "H2"], &["H1", "H3", "H4"], &["H2"]];
    let (mut lat, mut fail) = (Vec::with_capacity(N), 0);
    for i in 0..N {
        let m = set(&lab, i as u64 + 1, group(i), subsets[i % 3]);
        let t = Instant::now();
        let ans = a.request(&m);
        lat.push(t.elapsed());
        fail += usize::from(!is_ack(&ans));
    }
    let s1 = stats("SET_SUBSET->ACK, 1 switch (new group)", lat, fail);
    // Replacing an installed group (diff: add and delete ports).
    let (mut lat, mut fail) = (Vec::with_capacity(N), 0);
    for i in 0..N {
        let m = set(&lab, (N + i) as u64 + 1, group(i), subsets[(i + 1) % 3]);
        let t = Instant::now();
        let ans = a.request(&m);
        lat.push(t.elapsed());
        fail += usize::from(!is_ack(&ans));
    }
    let s2 = stats("SET_SUBSET->ACK, 1 switch (replace)", lat, fail);
    let (mut lat, mut fail) = (Vec::with_capacity(N), 0);
    for i in 0..N {
        let m = Message::Clear(Clear {
            txid: (2 * N + i) as u64 + 1,
            group: group(i),
        });
        let t = Instant::now();
        let ans = a.request(&m);
        lat.push(t.elapsed());
        fail += usize::from(!is_ack(&ans));
    }
    (s1, s2, stats("CLEAR->ACK, 1 switch", lat, fail))
}

fn three_switches() -> Stats {
    let lab = lab("seed-three-switch.yaml");
    let mut agents: Vec<AgentProc> = ["A", "B", "C"]
        .iter()
        .enumerate()
        .map(|(i, s)| start_agent(&lab, s, i as u32 + 1, Parents::Configured))
        .collect();
    let subsets: [&[&str]; 3] = [&["X1", "X4", "X8"], &["X2", "X5", "X9"], &["X3", "X7"]];
    let (mut lat, mut fail) = (Vec::with_capacity(N), 0);
    for i in 0..N {
        let m = set(&lab, i as u64 + 1, group(i), subsets[i % 3]);
        let datagrams: Vec<Vec<u8>> = agents.iter_mut().map(|a| a.seal(&m)).collect();
        let t = Instant::now();
        for (a, d) in agents.iter().zip(&datagrams) {
            a.send_raw(d);
        }
        for a in &mut agents {
            fail += usize::from(!is_ack(&a.answer()));
        }
        lat.push(t.elapsed());
    }
    stats("SET_SUBSET->3 ACKs, 3 switches", lat, fail)
}

/// Host H4 joins a group that H1 sends to every 200 us; time from the join
/// to the first datagram H4 receives.
fn mld_path() -> Stats {
    let lab = lab("one-switch.yaml");
    let runs = 30;
    let (mut lat, mut fail) = (Vec::new(), 0);
    for i in 0..runs {
        let g: Ipv6Addr = format!("ff05::5c:4:{:x}", i + 1).parse().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let ns = lab.host("H1").netns.clone();
        let sender = std::thread::spawn(move || {
            labs::netns::in_netns(&ns, move || {
                let s = std::net::UdpSocket::bind("[::]:0").unwrap();
                let sock = socket2::SockRef::from(&s);
                let idx = labs::netns::if_index("eth0").unwrap();
                sock.set_multicast_if_v6(idx).unwrap();
                sock.set_multicast_hops_v6(1).unwrap();
                while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = s.send_to(b"mld-probe", (g, 5100));
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
            .unwrap();
        });
        std::thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        let r = lab.udp_socket("H4", 5100, &[g]).unwrap();
        r.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 64];
        match r.recv_from(&mut buf) {
            Ok(_) => lat.push(t.elapsed()),
            Err(_) => fail += 1,
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sender.join().unwrap();
        drop(r);
    }
    stats("MLD join -> first datagram forwarded", lat, fail)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !enabled("agent_latency") {
        return;
    }
    let (a, b, c) = one_switch();
    let d = three_switches();
    let e = mld_path();
    let all = [a, b, c, d, e];
    println!(
        "{:<40} {:>6} {:>10} {:>10} {:>10} {:>6}",
        "measure", "n", "p50 us", "p99 us", "max us", "fail"
    );
    for s in &all {
        println!(
            "{:<40} {:>6} {:>10.0} {:>10.0} {:>10.0} {:>6}",
            s.name, s.n, s.p50_us, s.p99_us, s.max_us, s.failures
        );
    }
    let json = serde_json::json!({
        "bench": "subcast-agent latency (linux bridge, netns)",
        "instructions_per_run": N,
        "results": all.iter().map(|s| serde_json::json!({
            "name": s.name, "n": s.n, "p50_us": s.p50_us, "p99_us": s.p99_us,
            "max_us": s.max_us, "failures": s.failures,
        })).collect::<Vec<_>>(),
    });
    let out = std::env::var("SUBCAST_BENCH_JSON")
        .unwrap_or_else(|_| format!("{}/../target/agent-bench.json", env!("CARGO_MANIFEST_DIR")));
    std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("JSON: {out}");
}
