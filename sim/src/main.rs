//! `subcast-sim`: does transactional subset multicast hold at cluster scale?
//! See sim/README.md.

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Value, json};
use std::fmt::Write;
use std::path::PathBuf;
use subcast_sim::fabric::Fabric;
use subcast_sim::load::{Arrivals, Picker, negotiating_groups};
use subcast_sim::run::{CtlKnobs, Policy, run_all};
use subcast_sim::world::RunParams;
use subcast_sim::{chart, validate};

/// Simulates storage nodes putting chunks over a leaf-spine fabric, with the
/// controller's engine and the switch agent's core deciding, in simulated
/// time; compares the policies of the lab bench.
#[derive(Parser, Debug)]
#[command(name = "subcast-sim", version)]
struct Args {
    /// Leaf switches.
    #[arg(long, default_value_t = 48)]
    leaves: usize,
    /// Storage servers on each leaf.
    #[arg(long, default_value_t = 20)]
    servers_per_leaf: usize,
    /// Spine switches.
    #[arg(long, default_value_t = 4)]
    spines: usize,
    /// Chunk puts per second per node (Poisson).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Multicast groups each switch may hold (table budget).
    #[arg(long, default_value_t = 4096)]
    budget: u32,
    /// Table changes each switch accepts per second.
    #[arg(long, default_value_t = 500)]
    update_rate: u32,
    /// Simulated seconds of load (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seed of every random choice: the same seed gives the same JSON.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Policies to run (repeat or comma-separate); default all five.
    #[arg(long, value_enum, value_delimiter = ',')]
    policy: Vec<Policy>,
    /// Negotiating groups (default: nodes/12 rounded up to a power of two,
    /// at most 1024: 128 for 960 nodes).
    #[arg(long)]
    negotiating_groups: Option<usize>,
    /// Members per negotiating group.
    #[arg(long, default_value_t = 12)]
    group_size: usize,
    /// Copies of each chunk (R).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Chunk size in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    chunk_bytes: u64,
    /// Server link speed (Gbit/s): a put holds its lease for the transfer.
    #[arg(long, default_value_t = 25.0)]
    link_gbps: f64,
    /// One-way latency of each link (µs); control messages cross 1-4 links.
    #[arg(long, default_value_t = 5)]
    link_us: u64,
    /// The controller's `leases.warm_ms` for reuse and preenum.
    #[arg(long, default_value_t = 10_000)]
    warm_ms: u64,
    /// The controller's `fanout.retransmit_ms`.
    #[arg(long, default_value_t = 20)]
    retransmit_ms: u64,
    /// The controller's `fanout.attempts`.
    #[arg(long, default_value_t = 5)]
    attempts: u32,
    /// Store (SQLite) commit latency, µs.
    #[arg(long, default_value_t = 50)]
    store_us: u64,
    /// Controller CPU per message (request, release, agent datagram), µs;
    /// messages queue behind each other. 0: the controller costs no time.
    #[arg(long, default_value_t = 0)]
    ctl_us: u64,
    /// Latency of one batch of table changes on a switch (µs), on top of
    /// its `--update-rate` time; batches overlap in it.
    #[arg(long, default_value_t = 0)]
    apply_us: u64,
    /// Extra one-way latency of controller <-> agent datagrams (µs).
    #[arg(long, default_value_t = 0)]
    agent_path_us: u64,
    /// Longest warm-up in simulated seconds (HELLOs, pre-enumerated groups).
    #[arg(long, default_value_t = 60.0)]
    max_warmup_s: f64,
    /// Seconds of load before the measured window (tables fill, caches
    /// warm; a switch fills at most --update-rate groups a second).
    #[arg(long, default_value_t = 0.0)]
    load_warmup_s: f64,
    /// Controllers side by side (1-4): disjoint pool slices, each switch's
    /// budget split evenly between them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4))]
    controllers: u8,
    /// Controller 1 (of --controllers, at least 2) dies this many seconds into the load.
    #[arg(long)]
    kill_controller_at: Option<f64>,
    /// A node that has no answer after this long asks the next controller.
    #[arg(long, default_value_t = 500)]
    failover_ms: u64,
    /// Also run the seed topology under a lab bench's load and compare
    /// (`labs/results/bench-rate.json`): adds `validation` to the JSON.
    #[arg(long)]
    validate_against: Option<PathBuf>,
    /// Simulated seconds per validation cell.
    #[arg(long, default_value_t = 2.0)]
    validate_seconds: f64,
    /// Validation timing, calibrated on the lab's one-client cells (see
    /// sim/RESULTS.md): one-way link latency (µs).
    #[arg(long, default_value_t = validate::Calibration::LAB.link_us)]
    validate_link_us: u64,
    /// Validation: controller CPU per message (µs).
    #[arg(long, default_value_t = validate::Calibration::LAB.ctl_us)]
    validate_ctl_us: u64,
    /// Validation: table changes a second a lab switch (Linux bridge through
    /// its agent) makes.
    #[arg(long, default_value_t = validate::Calibration::LAB.update_rate)]
    validate_update_rate: u32,
    /// Validation: latency of one batch of changes on a lab switch (µs).
    #[arg(long, default_value_t = validate::Calibration::LAB.apply_us)]
    validate_apply_us: u64,
    /// Validation: extra one-way controller <-> agent latency (µs).
    #[arg(long, default_value_t = validate::Calibration::LAB.agent_path_us)]
    validate_agent_path_us: u64,
    /// Only the validation (no cluster run).
    #[arg(long)]
    validate_only: bool,
    /// Write an SVG chart of this run (or of `--chart-from` files).
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Draw the chart from these JSON outputs instead of running.
    #[arg(long, num_args = 1..)]
    chart_from: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    if !a.chart_from.is_empty() {
        let chart = a
            .chart
            .as_ref()
            .context("--chart-from needs --chart OUT.svg")?;
        let runs = a
            .chart_from
            .iter()
            .map(|p| {
                let t = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                serde_json::from_str(&t)
                    .with_context(|| format!("{} is not subcast-sim's --json output", p.display()))
            })
            .collect::<Result<Vec<Value>>>()?;
        chart::draw(&runs, chart)?;
        return Ok(());
    }
    check(&a)?;
    let mut out = json!({});
    if !a.validate_only {
        out = cluster(&a)?;
    }
    if let Some(path) = &a.validate_against {
        out["validation"] = validate::validate(
            path,
            a.validate_seconds,
            a.seed,
            &validate::Calibration {
                link_us: a.validate_link_us,
                ctl_us: a.validate_ctl_us,
                update_rate: a.validate_update_rate,
                apply_us: a.validate_apply_us,
                agent_path_us: a.validate_agent_path_us,
                ..validate::Calibration::LAB
            },
        )?;
    }
    if let Some(path) = &a.chart
        && !a.validate_only
    {
        chart::draw(std::slice::from_ref(&out), path)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", render(&out));
    }
    Ok(())
}

fn check(a: &Args) -> Result<()> {
    if a.leaves == 0 || a.servers_per_leaf == 0 {
        bail!("--leaves and --servers-per-leaf must be at least 1");
    }
    if a.leaves * a.servers_per_leaf > 65_535 {
        bail!("at most 65,535 nodes: lower --leaves or --servers-per-leaf");
    }
    if a.rate <= 0.0 || a.seconds <= 0.0 || a.link_gbps <= 0.0 {
        bail!("--rate, --seconds and --link-gbps must be positive");
    }
    if a.update_rate == 0 || a.budget == 0 {
        bail!("--update-rate and --budget must be at least 1");
    }
    if a.kill_controller_at.is_some() && a.controllers < 2 {
        bail!("--kill-controller-at needs --controllers 2 or more (someone must take over)");
    }
    if a.replicas == 0 || a.replicas > a.group_size {
        bail!("--replicas must be between 1 and --group-size");
    }
    Ok(())
}

fn cluster(a: &Args) -> Result<Value> {
    let f = Fabric::leaf_spine(a.leaves, a.servers_per_leaf, a.spines, a.link_us);
    let nodes = f.hosts.len();
    let ng = a
        .negotiating_groups
        .unwrap_or_else(|| nodes.div_ceil(12).next_power_of_two().clamp(1, 1024));
    if ng > 65_000 {
        bail!("at most 65,000 negotiating groups");
    }
    let groups = negotiating_groups(&f, ng, a.group_size);
    let p = RunParams {
        seconds: a.seconds,
        seed: a.seed,
        payload_bytes: a.chunk_bytes,
        link_gbps: a.link_gbps,
        release_at_once: false,
        update_rate: a.update_rate,
        store_us: a.store_us,
        ctl_us: a.ctl_us,
        apply_us: a.apply_us,
        agent_path_us: a.agent_path_us,
        arrivals: Arrivals::Open { per_node: a.rate },
        picker: Picker::Cluster {
            nodes,
            replicas: a.replicas,
        },
        max_warmup_s: a.max_warmup_s,
        load_warmup_s: a.load_warmup_s,
        controllers: usize::from(a.controllers),
        kill_at_s: a.kill_controller_at,
        failover_ms: a.failover_ms,
    };
    let k = CtlKnobs {
        budget: a.budget,
        warm_ms: a.warm_ms,
        retransmit_ms: a.retransmit_ms,
        attempts: a.attempts,
        lease_ms: 10_000,
    };
    let policies = if a.policy.is_empty() {
        Policy::ALL.to_vec()
    } else {
        let mut p = a.policy.clone();
        p.sort();
        p.dedup();
        p
    };
    let res = run_all(&f, &groups, &p, &k, &policies)?;
    Ok(json!({
        "params": {
            "leaves": a.leaves, "servers_per_leaf": a.servers_per_leaf, "spines": a.spines,
            "nodes": nodes, "switches": f.switches.len(), "negotiating_groups": ng,
            "group_size": a.group_size, "replicas": a.replicas, "rate": a.rate,
            "budget": a.budget, "update_rate": a.update_rate, "seconds": a.seconds,
            "seed": a.seed, "load_warmup_s": a.load_warmup_s, "chunk_bytes": a.chunk_bytes, "link_gbps": a.link_gbps,
            "link_us": a.link_us, "warm_ms": a.warm_ms, "retransmit_ms": a.retransmit_ms,
            "attempts": a.attempts, "store_us": a.store_us, "ctl_us": a.ctl_us, "apply_us": a.apply_us, "agent_path_us": a.agent_path_us,
            "controllers": a.controllers, "kill_controller_at_s": a.kill_controller_at,
            "failover_ms": a.failover_ms,
        },
        "policies": res,
    }))
}

fn num(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
}

fn render(v: &Value) -> String {
    let mut o = String::new();
    if let Some(pols) = v["policies"].as_object() {
        let p = &v["params"];
        let _ = writeln!(
            o,
            "{} nodes ({} leaves x {}, {} spines), {} puts/s/node, budget {}, {} updates/s, {} s",
            p["nodes"],
            p["leaves"],
            p["servers_per_leaf"],
            p["spines"],
            p["rate"],
            p["budget"],
            p["update_rate"],
            p["seconds"]
        );
        let _ = writeln!(
            o,
            "{:<9} {:>10} {:>10} {:>7} {:>9} {:>9} {:>8} {:>9} {:>8} {:>9} {:>7} {:>7}",
            "policy",
            "offered/s",
            "puts/s",
            "hit",
            "waited",
            "wait p50",
            "p99 ms",
            "max occ",
            "mean occ",
            "max upd/s",
            "refused",
            "sender"
        );
        for (name, r) in pols {
            let _ = writeln!(
                o,
                "{:<9} {:>10} {:>10} {:>7} {:>9} {:>9} {:>8} {:>9} {:>8} {:>9} {:>7} {:>7}",
                name,
                num(&r["offered_puts_per_s"], 0),
                num(&r["puts_per_s"], 0),
                num(&r["hit_ratio"], 3),
                num(&r["waited_fraction"], 3),
                num(&r["wait_ms"]["p50"], 2),
                num(&r["wait_ms"]["p99"], 2),
                r["max_occupancy"],
                num(&r["mean_occupancy"], 0),
                r["max_updates_per_s"],
                r["refusals"]["total"],
                num(&r["sender_bytes_vs_unicast"], 2),
            );
        }
    }
    if let Some(cells) = v["validation"]["cells"].as_array() {
        let _ = writeln!(
            o,
            "\nvalidation against {} (ok: {})",
            v["validation"]["against"], v["validation"]["ok"]
        );
        for c in cells {
            let _ = writeln!(
                o,
                "  K={:<3} {:<9} budget {:<4} hit lab {} sim {}  max occ lab {} sim {}  {}",
                c["clients"],
                c["column"].as_str().unwrap_or("?"),
                c["budget"],
                num(&c["lab"]["hit_ratio"], 3),
                num(&c["sim"]["hit_ratio"], 3),
                c["lab"]["max_occupancy"],
                c["sim"]["max_occupancy"],
                if c["ok"].as_bool() == Some(true) {
                    "ok"
                } else {
                    "OFF"
                }
            );
        }
    }
    o
}
