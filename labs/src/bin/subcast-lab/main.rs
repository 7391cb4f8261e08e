//! `subcast-lab`: check a topology file, bring a lab up, run the demo and scenarios
//! with the real daemons, and the benchmark. See `labs/README.md`.

mod bench;
mod bins;
mod chart;
mod dstcap;
mod expect;
mod putget;
mod report;
mod scenario;
mod stack;

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
    /// Directory holding subcast-agent, subcast-controller and subcast-node (default:
    /// next to this binary, then the workspace's target directory).
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
    /// put-get: object size in bytes (one chunk up to 1 MiB).
    #[arg(long, default_value_t = 262_144)]
    object_size: usize,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
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
    };
    let report = guarded(move || scenario::run(&opts))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::render(&topo, &report));
    }
    if report["ok"].as_bool() != Some(true) {
        anyhow::bail!("some checks failed (see the report above)");
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
            let t = Topology::from_yaml_file(&file)?;
            println!(
                "{}: {} switches, {} trunks, {} hosts, {} negotiating groups: OK",
                file.display(),
                t.switches.len(),
                t.links.len(),
                t.hosts.len(),
                t.negotiating_groups.len()
            );
            for s in t.switches.keys() {
                println!(
                    "  switch {s}: hosts {:?}, trunks to {:?}",
                    t.hosts_on(s),
                    t.neighbours(s)
                );
            }
            for g in t.negotiating_groups.keys() {
                let addr = t
                    .group_address(g)
                    .map(|a| a.to_string())
                    .unwrap_or_default();
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
        Cmd::Demo { mut args } => {
            // The demo is the README's first command: make sure the daemons match
            // this checkout (cargo build is a no-op when they are up to date).
            if !args.bins.no_build && args.bins.bin_dir.is_none() {
                args.bins.build = true;
            }
            run_cmd(
                PathBuf::from("seed-three-switch.yaml"),
                Scenario::PutGet,
                args,
            )
        }
        Cmd::Bench {
            topology,
            json,
            out,
            reps,
            fixed_join_delay_ms,
            bins,
        } => {
            let topology =
                topology_file(&topology.unwrap_or_else(|| "seed-three-switch.yaml".into()));
            let locate = bins.locate();
            let results =
                guarded(move || bench::run(&topology, &locate, reps, fixed_join_delay_ms))?;
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
            Ok(())
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
