//! Instruction -> answer latency per backend, through real agent processes
//! (needs root, Open vSwitch, snmpd):
//!
//! - SET_SUBSET -> ACK, a fresh rendezvous group each time (a real install);
//! - SET_SUBSET of an installed group with the same ports and a new txid ->
//!   ACK (a refresh: no switch operation);
//! - BATCH of n SETs (fresh groups, members by MAC so 128 items fit one
//!   datagram) -> BATCH_ACK, for several n: the cost per item of a batch
//!   against single instructions.
//!
//! `sudo cargo bench -p subcast-agent --bench backends [-- N_FAST N_SNMP]`
//!
//! For each backend the seed three-switch lab is built as in the behaviour
//! suite (`tests/behaviour/harness.rs`: one agent per switch namespace, the
//! bench as controller on `[::1]` there). Instructions go to one agent, one
//! after another, each timed from `send_to` to its answer; every group is
//! cleared again (untimed) so the table stays the same size. Members are
//! {X1, X4, X8} of NG0, 2 ports on agent A. Agent A for linux-bridge, openflow
//! and SNMPv3 (authPriv SHA/AES), agent C for SNMP v2c. Defaults: 1,000
//! single instructions (linux-bridge, openflow), 200 (snmp); batches: 200
//! per size (50 for 128 items), snmp 20 per size up to 32 items (its
//! configured capacity is 100 groups). Prints one table; writes JSON to
//! `target/bench/agent-backends.json` (or `$SUBCAST_BENCH_OUT`).

#[path = "../tests/support/ctl.rs"]
mod ctl;
#[path = "../tests/behaviour/harness.rs"]
#[allow(dead_code)]
mod harness;

use harness::{Env, Kind, set};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_proto::{Batch, BatchItem, MacAddr, Member, Members, Message};

struct Row {
    backend: &'static str,
    agent: &'static str,
    measure: String,
    items: usize,
    n: usize,
    failures: usize,
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
}

impl Row {
    fn per_item_p50(&self) -> f64 {
        self.p50_us / self.items as f64
    }
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

struct Bench<'a> {
    env: &'a mut Env,
    idx: usize,
    backend: &'static str,
    agent: &'static str,
    next_txid: u64,
    next_group: u128,
}

impl Bench<'_> {
    fn txid(&mut self) -> u64 {
        self.next_txid += 1;
        self.next_txid
    }

    fn group(&mut self) -> Ipv6Addr {
        let base = u128::from("ff05::5c:2:0".parse::<Ipv6Addr>().expect("addr"));
        self.next_group = (self.next_group + 1) % 0xff00;
        Ipv6Addr::from(base + 1 + self.next_group)
    }

    /// Sends `m`, returns its answer and the time to it.
    fn timed(&mut self, m: &Message) -> (Message, Duration) {
        let a = &mut self.env.agents[self.idx];
        let bytes = a.seal(m);
        let t0 = Instant::now();
        a.send_raw(&bytes);
        let ans = a.answer();
        (ans, t0.elapsed())
    }

    fn clear(&mut self, groups: Vec<Ipv6Addr>) {
        let txid = self.txid();
        let m = Message::Batch(Batch {
            txid,
            items: groups
                .into_iter()
                .map(|group| BatchItem::Clear { group })
                .collect(),
        });
        let a = &mut self.env.agents[self.idx];
        assert!(matches!(a.request(&m), Message::BatchAck(_)), "clear");
    }

    fn row(&self, measure: String, items: usize, mut lat: Vec<Duration>, failures: usize) -> Row {
        lat.sort();
        let mean = lat.iter().map(Duration::as_secs_f64).sum::<f64>() / lat.len().max(1) as f64;
        Row {
            backend: self.backend,
            agent: self.agent,
            measure,
            items,
            n: lat.len(),
            failures,
            p50_us: quantile(&lat, 0.5),
            p99_us: quantile(&lat, 0.99),
            mean_us: mean * 1e6,
        }
    }

    fn members(&self) -> Members {
        self.env.list(&["X1", "X4", "X8"])
    }

    /// The same members by MAC (17 octets shorter each than by IPv6): 128
    /// batch items of them fit one datagram.
    fn macs(&self) -> Members {
        Members::List(
            ["X1", "X4", "X8"]
                .iter()
                .map(|h| Member::Mac(MacAddr(self.env.lab.host(h).mac)))
                .collect(),
        )
    }

    /// `n` single SET_SUBSETs of fresh groups.
    fn singles(&mut self, n: usize) -> Row {
        let y = self.env.ng0();
        let (mut lat, mut failures) = (Vec::with_capacity(n), 0);
        for _ in 0..n {
            let (txid, group) = (self.txid(), self.group());
            let (ans, dt) = self.timed(&set(txid, y, group, self.members()));
            match ans {
                Message::Ack(a) if a.txid == txid && a.port_count == 2 => lat.push(dt),
                other => {
                    failures += 1;
                    eprintln!("{}: single: {other:?}", self.backend);
                }
            }
            self.clear(vec![group]);
        }
        self.row("SET_SUBSET->ACK (new group)".into(), 1, lat, failures)
    }

    /// `n` refreshes of one installed group (same ports, new txid).
    fn refreshes(&mut self, n: usize) -> Row {
        let y = self.env.ng0();
        let group = self.group();
        let txid = self.txid();
        let _ = self.timed(&set(txid, y, group, self.members()));
        let (mut lat, mut failures) = (Vec::with_capacity(n), 0);
        for _ in 0..n {
            let txid = self.txid();
            let (ans, dt) = self.timed(&set(txid, y, group, self.members()));
            match ans {
                Message::Ack(a) if a.txid == txid => lat.push(dt),
                other => {
                    failures += 1;
                    eprintln!("{}: refresh: {other:?}", self.backend);
                }
            }
        }
        self.clear(vec![group]);
        self.row(
            "SET_SUBSET->ACK (refresh, no switch op)".into(),
            1,
            lat,
            failures,
        )
    }

    /// `reps` BATCHes of `items` fresh groups.
    fn batches(&mut self, items: usize, reps: usize) -> Row {
        let y = self.env.ng0();
        let (mut lat, mut failures) = (Vec::with_capacity(reps), 0);
        for _ in 0..reps {
            let txid = self.txid();
            let groups: Vec<Ipv6Addr> = (0..items).map(|_| self.group()).collect();
            let m = Message::Batch(Batch {
                txid,
                items: groups
                    .iter()
                    .map(|g| BatchItem::Set {
                        vlan: 0,
                        parent: y,
                        group: *g,
                        lifetime_ms: 60_000,
                        members: self.macs(),
                    })
                    .collect(),
            });
            let (ans, dt) = self.timed(&m);
            match ans {
                Message::BatchAck(a) if a.txid == txid && a.port_counts.iter().all(|c| *c == 2) => {
                    lat.push(dt)
                }
                other => {
                    failures += 1;
                    eprintln!("{}: batch of {items}: {other:?}", self.backend);
                }
            }
            self.clear(groups);
        }
        self.row(format!("BATCH({items})->BATCH_ACK"), items, lat, failures)
    }
}

/// (backend, agent, agent index, single instructions, batch sizes, batches per size)
type Target = (
    &'static str,
    &'static str,
    usize,
    usize,
    &'static [usize],
    usize,
);

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
        // The SNMP guard sweeps at its production default (10 s), not the
        // suite's 300 ms.
        let mut env = Env::start_with(kind, 10_000);
        eprintln!(
            "{kind:?}: lab and agents ready in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        let targets: Vec<Target> = match kind {
            Kind::LinuxBridge => vec![("linux-bridge", "A", 0, n_fast, &[1, 8, 32, 128], 200)],
            Kind::Openflow => vec![("openflow", "A", 0, n_fast, &[1, 8, 32, 128], 200)],
            Kind::Snmp => vec![
                ("snmp v3 authPriv", "A", 0, n_snmp, &[1, 8, 32], 20),
                ("snmp v2c", "C", 2, n_snmp, &[1, 8, 32], 20),
            ],
        };
        for (backend, agent, idx, n, sizes, reps) in targets {
            let mut b = Bench {
                env: &mut env,
                idx,
                backend,
                agent,
                next_txid: 1000,
                next_group: 0,
            };
            rows.push(b.singles(n));
            rows.push(b.refreshes(n.min(200)));
            for &items in sizes {
                let reps = if items >= 128 { reps / 4 } else { reps };
                rows.push(b.batches(items, reps));
            }
        }
    }
    println!("\nInstruction sent -> answer received, one agent, one instruction at a time");
    println!(
        "{:<17} {:>5} {:<40} {:>5} {:>5} {:>9} {:>9} {:>9} {:>12}",
        "backend", "agent", "measure", "n", "fail", "p50 us", "p99 us", "mean us", "p50/item us"
    );
    for r in &rows {
        println!(
            "{:<17} {:>5} {:<40} {:>5} {:>5} {:>9.0} {:>9.0} {:>9.0} {:>12.1}",
            r.backend,
            r.agent,
            r.measure,
            r.n,
            r.failures,
            r.p50_us,
            r.p99_us,
            r.mean_us,
            r.per_item_p50()
        );
    }
    let json = serde_json::json!({
        "bench": "agent-backends",
        "measure": "instruction sent -> answer received (us), members X1 X4 X8 of NG0 (seed three-switch lab), fresh groups cleared after each measurement",
        "results": rows.iter().map(|r| serde_json::json!({
            "backend": r.backend, "agent": r.agent, "measure": r.measure, "items": r.items,
            "n": r.n, "failures": r.failures, "p50_us": r.p50_us, "p99_us": r.p99_us,
            "mean_us": r.mean_us, "p50_per_item_us": r.per_item_p50(),
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
