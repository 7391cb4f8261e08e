//! `subcast-lab`: check a topology file, bring a lab up, run the demo and scenarios
//! with the real daemons, and the benchmark. See `labs/README.md`.

mod attack;
mod attack_forged;
mod attack_setup;
mod bench;
mod bench_loss;
mod bench_ovs;
mod bench_rate;
mod bins;
mod chart;
mod dstcap;
mod dual;
mod expect;
mod floor;
mod objects;
mod putbench;
mod putbench_paired;
mod putbench_peer;
mod putget;
mod rate;
mod rate_load;
mod rate_watch;
mod report;
mod rogue;
mod scenario;
mod sites;
mod snapshots;
mod snmp;
mod soak;
mod stack;
mod stack_config;
mod stored;
mod stress;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use labs::{Lab, LabOptions, Topology};
use tokio::signal::unix::{SignalKind, signal};

use crate::scenario::{RunOptions, Scenario};

/// Where the daemons come from (see `bins`).
#[derive(Args, Debug, Clone)]
struct BinArgs {
    /// Directory holding subcast-agent, subcast-controller and subcast-node, and
    /// subcast-qbridge-passpersist for `backend: snmp` switches (default: next to this
    /// binary, then the workspace's target directory).
    #[arg(long, env = "SUBCAST_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// Run `cargo build` of the daemons first, even if they are found.
    #[arg(long)]
    build: bool,
    /// Never run cargo; fail if the daemons are missing.
    #[arg(long, conflicts_with = "build")]
    no_build: bool,
}

impl BinArgs {
    fn locate(&self) -> bins::Locate {
        bins::Locate {
            bin_dir: self.bin_dir.clone(),
            build: self.build,
            no_build: self.no_build,
        }
    }
}

/// Options of `run` and `demo`.
#[derive(Args, Debug, Clone)]
struct ScenarioArgs {
    /// Comma-separated target hosts (default: first, about a third in, and next to
    /// last member of the negotiating group, e.g. X1,X4,X8 on the seed topology).
    #[arg(long, value_delimiter = ',')]
    targets: Option<Vec<String>>,
    /// Sending host (default: the first host that is not a target, e.g. X2).
    #[arg(long)]
    sender: Option<String>,
    /// subset-only: number of datagrams sent.
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// subset-only: UDP payload bytes per datagram.
    #[arg(long, default_value_t = 1000)]
    payload: usize,
    /// subset-only: microseconds between datagrams (0: back to back). Open vSwitch's
    /// userspace datapath drops some of a back-to-back burst on a busy machine.
    #[arg(long, default_value_t = 0)]
    pace_us: u64,
    /// put-get, put-bench: object size in bytes.
    #[arg(long, default_value_t = 262_144)]
    object_size: usize,
    /// subset-only: this host (neither a target nor the sender) joins the granted
    /// group itself (IGMP or MLD report) before the datagrams go; it must get none.
    #[arg(long, value_name = "HOST")]
    rogue_join: Option<String>,
    #[command(flatten)]
    put_bench: putbench::PutBenchArgs,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    rate: rate::RateArgs,
    #[command(flatten)]
    sites: sites::SitesArgs,
    #[command(flatten)]
    bins: BinArgs,
}

#[derive(Parser, Debug)]
#[command(about = "Network-namespace labs for subcast")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build and tear down every shipped topology and a random tree, N times in a
    /// row, checking that nothing is left behind; count failures (issue 19).
    Stress {
        /// Runs (each builds every topology once, plus one random tree).
        #[arg(long, default_value_t = 100)]
        runs: usize,
        /// Seed of the random trees (run i uses seed + i); default: from the clock.
        #[arg(long)]
        seed: Option<u64>,
        /// Topology files to build instead of every file in labs/topologies/.
        #[arg(long, num_args = 1..)]
        topology: Vec<PathBuf>,
        /// No random tree.
        #[arg(long)]
        no_random: bool,
        /// Also start the daemons on each random tree and run subset-only there.
        #[arg(long)]
        subset_only: bool,
        /// Where failing random trees are written.
        #[arg(long, default_value = "target/subcast-lab-stress")]
        out: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        bins: BinArgs,
    },
    /// Validate a topology file and print what it describes.
    Check {
        /// Topology YAML file.
        file: PathBuf,
    },
    /// Build the lab, print it as JSON, keep it until Ctrl-C, SIGTERM or --seconds,
    /// then remove everything.
    Up {
        /// Topology YAML file.
        file: PathBuf,
        /// Drop MLD reports from host ports and pin solicited-node groups.
        #[arg(long)]
        close_mld: bool,
        /// Install static entries for the topology's negotiating groups.
        #[arg(long)]
        static_groups: bool,
        /// Tear down after this many seconds.
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Build the lab, start the controller and an agent per switch (and storage
    /// nodes for put-get), run one scenario, print the report, tear everything down.
    /// Exit status 0 only if every check passed.
    Run {
        /// Topology YAML file (a bare name is looked up in labs/topologies/).
        topology: PathBuf,
        /// What to run.
        #[arg(long, value_enum, default_value = "put-get")]
        scenario: Scenario,
        #[command(flatten)]
        args: ScenarioArgs,
    },
    /// The main demo: `run seed-three-switch.yaml --scenario put-get` (falls back to
    /// subset-only, and says so, if the storage node cannot do rendezvous puts).
    /// Runs `cargo build` of the daemons first unless --no-build or --bin-dir.
    Demo {
        /// Topology to run it on (a bare name is looked up in labs/topologies/), e.g.
        /// three-backends.yaml: a Linux bridge, an Open vSwitch and an SNMP switch.
        #[arg(long, default_value = "seed-three-switch.yaml")]
        topology: PathBuf,
        #[command(flatten)]
        args: ScenarioArgs,
    },
    /// Benchmark rendezvous against MLD joins, a fixed join delay, negotiating-group
    /// multicast and unicast; prints a table, writes JSON and an SVG chart.
    Bench {
        /// Topology YAML file (default: seed-three-switch.yaml).
        topology: Option<PathBuf>,
        /// Print the results as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Directory for bench.json and bench.svg.
        #[arg(long, default_value = "target/subcast-lab-bench")]
        out: PathBuf,
        /// Repetitions of each timing measurement.
        #[arg(long, default_value_t = 20)]
        reps: usize,
        /// The fixed join delay compared against (see README: default 1000 ms, the
        /// MLDv2 Unsolicited Report Interval).
        #[arg(long, default_value_t = bench::FIXED_JOIN_DELAY_MS)]
        fixed_join_delay_ms: u64,
        /// Only part (d): puts at 0 %, 1 % and 5 % loss per transport.
        #[arg(long)]
        loss_only: bool,
        /// Puts per transport and loss level in part (d).
        #[arg(long, default_value_t = 3)]
        loss_reps: usize,
        /// Object size of part (d) puts, bytes.
        #[arg(long, default_value_t = 4 << 20)]
        loss_object_size: usize,
        /// Where part (d) drops: on every link (each direction) or only at
        /// every host's input.
        #[arg(long, value_enum, default_value = "every-link")]
        loss_at: bench_loss::LossAt,
        /// Seconds of load per cell of part (e), the rate scenario.
        #[arg(long, default_value_t = 10)]
        rate_seconds: u64,
        /// Only part (e): the rate scenario, K x policy (writes bench-rate.json).
        #[arg(long, conflicts_with = "loss_only")]
        rate_only: bool,
        /// Only part (f), put-bench per transport; writes bench-put.json.
        #[arg(long, conflicts_with_all = ["loss_only", "rate_only"])]
        put_only: bool,
        /// Only part (g), subcast against GlusterFS replica 3 (unshaped and shaped);
        /// writes bench-peer.json and bench-peer.svg.
        #[arg(long, conflicts_with_all = ["loss_only", "rate_only", "put_only"])]
        peer_only: bool,
        /// 256 KiB objects per system in part (g).
        #[arg(long, default_value_t = 100)]
        peer_small_puts: usize,
        /// 64 MiB objects per system in part (g).
        #[arg(long, default_value_t = 3)]
        peer_big_puts: usize,
        /// `rate_mbit` of every link of part (g)'s shaped lab.
        #[arg(long, default_value_t = 200.0)]
        peer_rate_mbit: f64,
        /// Part (g) in N alternating blocks per lab (each system's puts cut in N;
        /// the systems in table order, then reversed, ...): each target's ratio is
        /// taken inside every block and judged on the median, so a machine that
        /// drifts between runs does not decide it. 1: each system once, in order.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=50))]
        peer_blocks: u16,
        /// Only part (h): on seed-openflow.yaml, OVS MLD snooping against our push
        /// through the OpenFlow backend (`--reps` each); writes bench-ovs.json.
        #[arg(long, conflicts_with_all = ["loss_only", "rate_only", "put_only", "peer_only"])]
        ovs_only: bool,
        #[command(flatten)]
        bins: BinArgs,
    },
}

/// A topology path as given, or a shipped topology by file name.
fn topology_file(p: &Path) -> PathBuf {
    if p.exists() {
        return p.to_path_buf();
    }
    let shipped = labs::topology_path(&p.to_string_lossy());
    if shipped.exists() {
        shipped
    } else {
        p.to_path_buf()
    }
}

/// Run blocking lab work; on Ctrl-C or SIGTERM, delete every namespace this process
/// made (ending the processes inside), remove its scratch directories, exit 130.
fn guarded<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let job = tokio::task::spawn_blocking(work);
        tokio::select! {
            r = job => r?,
            _ = int.recv() => { emergency_teardown(); std::process::exit(130) }
            _ = term.recv() => { emergency_teardown(); std::process::exit(143) }
        }
    })
}

fn emergency_teardown() {
    eprintln!("subcast-lab: interrupted, tearing the lab down");
    let prefix = labs::process_prefix();
    // The lab may still be being built on another thread: sweep until no namespace
    // of ours has been seen twice in a row (at most 10 s).
    let mut removed = 0;
    let mut clean_rounds = 0;
    let t0 = std::time::Instant::now();
    while clean_rounds < 3 && t0.elapsed() < Duration::from_secs(10) {
        let ours = labs::netns::list()
            .iter()
            .filter(|n| n.starts_with(&prefix))
            .count();
        if ours == 0 {
            clean_rounds += 1;
        } else {
            clean_rounds = 0;
            if let Ok(gone) = labs::cleanup_stale(&prefix) {
                removed += gone.len();
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("subcast-lab: removed {removed} namespaces");
    if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn run_cmd(topology: PathBuf, scenario: Scenario, a: ScenarioArgs) -> Result<()> {
    let topology = topology_file(&topology);
    if scenario == Scenario::MultiSite {
        let (size, locate) = (a.object_size, a.bins.locate());
        let report = guarded(move || sites::run(&topology, size, &a.sites, &locate))?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        anyhow::ensure!(
            report["ok"] == true,
            "some checks failed (see the report above)"
        );
        return Ok(());
    }
    let topo = Topology::from_yaml_file(&topology)?;
    let opts = RunOptions {
        topology,
        scenario,
        targets: a.targets.clone(),
        sender: a.sender.clone(),
        count: a.count,
        payload_len: a.payload,
        pace_us: a.pace_us,
        object_size: a.object_size,
        locate: a.bins.locate(),
        rate: a.rate.clone(),
        put_bench: a.put_bench.clone(),
        rogue_join: a.rogue_join.clone(),
    };
    let report = guarded(move || scenario::run(&opts))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report["family"] == "dual" {
        for f in ["ipv6", "ipv4"] {
            let r = &report[f];
            println!("=== put over {f}");
            print!("{}", report::render(&expect::tree_of_report(&topo, r), r));
        }
        let c = &report["coexist"];
        println!(
            "IPv6 group {} and IPv4 group {} installed side by side: {}",
            c["ipv6_group"],
            c["ipv4_group"],
            if c["ok"] == true { "OK" } else { "FAILED" }
        );
    } else {
        print!(
            "{}",
            report::render(&expect::tree_of_report(&topo, &report), &report)
        );
    }
    if report["ok"].as_bool() != Some(true) {
        anyhow::bail!("some checks failed (see the report above)");
    }
    Ok(())
}

/// `bench --put-only`: part (e), written to `bench-put.json`.
fn put_only_cmd(topology: PathBuf, locate: bins::Locate, out: &Path, json: bool) -> Result<()> {
    let v = guarded(move || putbench::bench_part(&topology, &locate))?;
    std::fs::create_dir_all(out)?;
    let file = out.join("bench-put.json");
    std::fs::write(&file, serde_json::to_string_pretty(&v)?)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let mut t = String::new();
        putbench::render(&v, &mut t);
        println!("{t}\nwrote {}", file.display());
    }
    Ok(())
}

/// `bench --peer-only`: part (g), written to `bench-peer.json` and `bench-peer.svg`.
fn peer_only_cmd(
    topology: PathBuf,
    locate: bins::Locate,
    out: &Path,
    json: bool,
    plan: putbench_peer::PeerPlan,
) -> Result<()> {
    let o = out.to_path_buf();
    let v = guarded(move || putbench_peer::bench_part(&topology, &locate, &o, &plan))?;
    let file = out.join("bench-peer.json");
    std::fs::write(&file, serde_json::to_string_pretty(&v)?)?;
    let svg = out.join("bench-peer.svg");
    chart::peer_svg(&v, &svg)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let mut t = String::new();
        putbench_peer::render(&v, &mut t);
        println!("{t}\nwrote {} and {}", file.display(), svg.display());
    }
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Check { file } => {
            if std::fs::read_to_string(&file)
                .is_ok_and(|t| labs::topology::sites::SitesTopology::is_sites_yaml(&t))
            {
                return sites::check(&file);
            }
            let t = Topology::from_yaml_file(&file)?;
            println!(
                "{}: family {}, {} switches, {} trunks, {} hosts, {} negotiating groups: OK",
                file.display(),
                t.family.name(),
                t.switches.len(),
                t.links.len(),
                t.hosts.len(),
                t.negotiating_groups.len()
            );
            if t.stp {
                println!(
                    "  stp: true: the bridges run the spanning tree{}",
                    if t.has_loops() {
                        " (the links form loops; it blocks trunks until they form a tree)"
                    } else {
                        ""
                    }
                );
            }
            for s in t.switches.keys() {
                println!(
                    "  switch {s}: hosts {:?}, trunks to {:?}",
                    t.hosts_on(s),
                    t.neighbours(s)
                );
            }
            for g in t.negotiating_groups.keys() {
                let addr = t.group_ip(g).map(|a| a.to_string()).unwrap_or_default();
                println!(
                    "  group {g} = {addr}: {:?}",
                    t.negotiating_groups[g].members
                );
            }
            Ok(())
        }
        Cmd::Run {
            topology,
            scenario,
            args,
        } => run_cmd(topology, scenario, args),
        Cmd::Stress {
            runs,
            seed,
            topology,
            no_random,
            subset_only,
            out,
            json,
            bins,
        } => {
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_secs())
            });
            eprintln!("subcast-lab stress: seed {seed}");
            let o = stress::StressOptions {
                runs,
                seed,
                topologies: topology.iter().map(|p| topology_file(p)).collect(),
                random: !no_random,
                subset_only,
                out,
                locate: bins.locate(),
                quiet: false,
            };
            let v = guarded(move || stress::run(&o))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", stress::render(&v));
            }
            if v["failures"].as_u64() != Some(0) {
                anyhow::bail!("{} of {} builds failed", v["failures"], v["builds"]);
            }
            Ok(())
        }
        Cmd::Demo { topology, mut args } => {
            // The demo is the README's first command: make sure the daemons match
            // this checkout (cargo build is a no-op when they are up to date).
            if !args.bins.no_build && args.bins.bin_dir.is_none() {
                args.bins.build = true;
            }
            run_cmd(topology, Scenario::PutGet, args)
        }
        Cmd::Bench {
            topology,
            json,
            out,
            reps,
            fixed_join_delay_ms,
            loss_only,
            loss_reps,
            loss_object_size,
            loss_at,
            rate_seconds,
            rate_only,
            put_only,
            peer_only,
            peer_small_puts,
            peer_big_puts,
            peer_rate_mbit,
            peer_blocks,
            ovs_only,
            bins,
        } => {
            let plan = putbench_peer::PeerPlan {
                small_puts: peer_small_puts,
                big_puts: peer_big_puts,
                rate_mbit: peer_rate_mbit,
                blocks: usize::from(peer_blocks),
            };
            let topology =
                topology_file(&topology.unwrap_or_else(|| "seed-three-switch.yaml".into()));
            let family = Topology::from_yaml_file(&topology)?.family;
            anyhow::ensure!(
                family == labs::Family::Ipv6 || (family == labs::Family::Ipv4 && put_only),
                "{}: `family: {}`: the bench configures its daemons in IPv6 only so far, \
                 except `bench --put-only` (part (f)), which runs on an IPv4 file too; run the \
                 rest on an IPv6 topology (e.g. seed-three-switch.yaml), and IPv4 with \
                 `subcast-lab run FILE --scenario put-get`",
                topology.display(),
                family.name()
            );
            let locate = bins.locate();
            let (t, l, o) = (topology.clone(), locate.clone(), out.clone());
            // With --json the full bench's stdout is bench.json alone.
            let print = if json && !rate_only { None } else { Some(json) };
            let rate_part = move || bench_rate::main_part(&t, &l, rate_seconds, &o, print);
            if rate_only {
                return guarded(rate_part).map(drop);
            }
            if put_only {
                return put_only_cmd(topology, locate, &out, json);
            }
            if peer_only {
                return peer_only_cmd(topology, locate, &out, json, plan);
            }
            if ovs_only {
                let v = guarded(move || bench_ovs::part(&locate, reps))?;
                std::fs::create_dir_all(&out)?;
                let file = out.join("bench-ovs.json");
                std::fs::write(&file, serde_json::to_string_pretty(&v)?)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!("{}\nwrote {}", bench_ovs::render(&v), file.display());
                }
                return Ok(());
            }
            let o = bench::BenchOptions {
                peer: plan,
                out: out.clone(),
                reps,
                fixed_ms: fixed_join_delay_ms,
                loss_only,
                loss_reps,
                loss_object: loss_object_size,
                loss_at,
            };
            let results = guarded(move || bench::run(&topology, &locate, &o))?;
            if loss_only {
                std::fs::create_dir_all(&out)?;
                std::fs::write(
                    out.join("bench-loss.json"),
                    serde_json::to_string_pretty(&results)?,
                )?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&results)?);
                } else {
                    let mut t = String::new();
                    bench_loss::render(&results["loss"], &mut t);
                    println!("{t}\nwrote {}", out.join("bench-loss.json").display());
                }
                return Ok(());
            }
            chart::write_outputs(&results, &out)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                print!("{}", chart::render(&results));
                println!(
                    "wrote {} and {}",
                    out.join("bench.json").display(),
                    out.join("bench.svg").display()
                );
            }
            guarded(rate_part).map(drop)
        }
        Cmd::Up {
            file,
            close_mld,
            static_groups,
            seconds,
        } => {
            if !labs::lab_tests_enabled() {
                anyhow::bail!("building a lab needs root and iproute2");
            }
            let topo = Topology::from_yaml_file(&file)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                // Handlers first, so a signal during the build still tears down after it.
                let mut int = signal(SignalKind::interrupt())?;
                let mut term = signal(SignalKind::terminate())?;
                let opts = LabOptions {
                    close_mld,
                    static_negotiating_groups: static_groups,
                    ..LabOptions::default()
                };
                let lab = tokio::task::spawn_blocking(move || Lab::build(&topo, opts))
                    .await?
                    .context("building the lab")?;
                println!("{}", serde_json::to_string_pretty(&lab.describe())?);
                let wait = seconds.map_or(Duration::MAX, Duration::from_secs);
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                tracing::info!(prefix = lab.prefix(), "tearing down");
                drop(lab);
                Ok(())
            })
        }
    }
}
